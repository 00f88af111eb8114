import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CertificateFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_FORMAT_UNSPECIFIED: _ClassVar[CertificateFormat]
    CERTIFICATE_FORMAT_PFX: _ClassVar[CertificateFormat]
    CERTIFICATE_FORMAT_CER: _ClassVar[CertificateFormat]

class CertificateState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_STATE_UNSPECIFIED: _ClassVar[CertificateState]
    CERTIFICATE_STATE_ACTIVE: _ClassVar[CertificateState]
    CERTIFICATE_STATE_DELETING: _ClassVar[CertificateState]
    CERTIFICATE_STATE_DELETE_FAILED: _ClassVar[CertificateState]

class CertificateVisibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_VISIBILITY_UNSPECIFIED: _ClassVar[CertificateVisibility]
    CERTIFICATE_VISIBILITY_START_TASK: _ClassVar[CertificateVisibility]
    CERTIFICATE_VISIBILITY_TASK: _ClassVar[CertificateVisibility]
    CERTIFICATE_VISIBILITY_REMOTE_USER: _ClassVar[CertificateVisibility]
CERTIFICATE_FORMAT_UNSPECIFIED: CertificateFormat
CERTIFICATE_FORMAT_PFX: CertificateFormat
CERTIFICATE_FORMAT_CER: CertificateFormat
CERTIFICATE_STATE_UNSPECIFIED: CertificateState
CERTIFICATE_STATE_ACTIVE: CertificateState
CERTIFICATE_STATE_DELETING: CertificateState
CERTIFICATE_STATE_DELETE_FAILED: CertificateState
CERTIFICATE_VISIBILITY_UNSPECIFIED: CertificateVisibility
CERTIFICATE_VISIBILITY_START_TASK: CertificateVisibility
CERTIFICATE_VISIBILITY_TASK: CertificateVisibility
CERTIFICATE_VISIBILITY_REMOTE_USER: CertificateVisibility

class DeleteCertificateError(_message.Message):
    __slots__ = ("code", "message", "values")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    values: _containers.RepeatedCompositeFieldContainer[CertificateErrorValue]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., values: _Optional[_Iterable[_Union[CertificateErrorValue, _Mapping]]] = ...) -> None: ...

class CertificateErrorValue(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ("name", "thumbprint", "thumbprint_algorithm", "state", "state_transition_time", "previous_state", "previous_state_transition_time", "public_data", "delete_certificate_error", "subject", "issuer", "not_before", "not_after", "has_private_key", "account")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THUMBPRINT_FIELD_NUMBER: _ClassVar[int]
    THUMBPRINT_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_DATA_FIELD_NUMBER: _ClassVar[int]
    DELETE_CERTIFICATE_ERROR_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    HAS_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    thumbprint: str
    thumbprint_algorithm: str
    state: CertificateState
    state_transition_time: _timestamp_pb2.Timestamp
    previous_state: CertificateState
    previous_state_transition_time: _timestamp_pb2.Timestamp
    public_data: bytes
    delete_certificate_error: DeleteCertificateError
    subject: str
    issuer: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    has_private_key: bool
    account: str
    def __init__(self, name: _Optional[str] = ..., thumbprint: _Optional[str] = ..., thumbprint_algorithm: _Optional[str] = ..., state: _Optional[_Union[CertificateState, str]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_state: _Optional[_Union[CertificateState, str]] = ..., previous_state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., public_data: _Optional[bytes] = ..., delete_certificate_error: _Optional[_Union[DeleteCertificateError, _Mapping]] = ..., subject: _Optional[str] = ..., issuer: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_private_key: _Optional[bool] = ..., account: _Optional[str] = ...) -> None: ...

class CertificateReference(_message.Message):
    __slots__ = ("thumbprint", "thumbprint_algorithm", "visibility")
    THUMBPRINT_FIELD_NUMBER: _ClassVar[int]
    THUMBPRINT_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    thumbprint: str
    thumbprint_algorithm: str
    visibility: _containers.RepeatedScalarFieldContainer[CertificateVisibility]
    def __init__(self, thumbprint: _Optional[str] = ..., thumbprint_algorithm: _Optional[str] = ..., visibility: _Optional[_Iterable[_Union[CertificateVisibility, str]]] = ...) -> None: ...

class AddCertificateRequest(_message.Message):
    __slots__ = ("data", "format", "password", "thumbprint", "thumbprint_algorithm")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    THUMBPRINT_FIELD_NUMBER: _ClassVar[int]
    THUMBPRINT_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: CertificateFormat
    password: str
    thumbprint: str
    thumbprint_algorithm: str
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[CertificateFormat, str]] = ..., password: _Optional[str] = ..., thumbprint: _Optional[str] = ..., thumbprint_algorithm: _Optional[str] = ...) -> None: ...

class GetCertificateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCertificatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: CertificateState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[CertificateState, str]] = ...) -> None: ...

class ListCertificatesResponse(_message.Message):
    __slots__ = ("certificates", "next_page_token")
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedCompositeFieldContainer[Certificate]
    next_page_token: str
    def __init__(self, certificates: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCertificateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelCertificateDeletionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
