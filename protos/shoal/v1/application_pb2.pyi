import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PackageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKAGE_STATE_UNSPECIFIED: _ClassVar[PackageState]
    PACKAGE_STATE_PENDING: _ClassVar[PackageState]
    PACKAGE_STATE_ACTIVE: _ClassVar[PackageState]

class PackageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKAGE_FORMAT_UNSPECIFIED: _ClassVar[PackageFormat]
    PACKAGE_FORMAT_ZIP: _ClassVar[PackageFormat]
    PACKAGE_FORMAT_TAR: _ClassVar[PackageFormat]
PACKAGE_STATE_UNSPECIFIED: PackageState
PACKAGE_STATE_PENDING: PackageState
PACKAGE_STATE_ACTIVE: PackageState
PACKAGE_FORMAT_UNSPECIFIED: PackageFormat
PACKAGE_FORMAT_ZIP: PackageFormat
PACKAGE_FORMAT_TAR: PackageFormat

class Application(_message.Message):
    __slots__ = ("name", "id", "display_name", "allow_updates", "default_version", "versions", "etag", "account", "creation_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UPDATES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    allow_updates: bool
    default_version: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    etag: str
    account: str
    creation_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., allow_updates: _Optional[bool] = ..., default_version: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ..., etag: _Optional[str] = ..., account: _Optional[str] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApplicationPackage(_message.Message):
    __slots__ = ("name", "application_id", "version", "state", "format", "size", "sha256", "creation_time", "last_activation_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVATION_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    application_id: str
    version: str
    state: PackageState
    format: PackageFormat
    size: int
    sha256: str
    creation_time: _timestamp_pb2.Timestamp
    last_activation_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., application_id: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[_Union[PackageState, str]] = ..., format: _Optional[_Union[PackageFormat, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_activation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateApplicationRequest(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: Application
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ...) -> None: ...

class GetApplicationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListApplicationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApplicationsResponse(_message.Message):
    __slots__ = ("applications", "next_page_token")
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    next_page_token: str
    def __init__(self, applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateApplicationRequest(_message.Message):
    __slots__ = ("application", "update_mask", "etag")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    application: Application
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteApplicationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteApplicationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateApplicationPackageRequest(_message.Message):
    __slots__ = ("parent", "version")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    parent: str
    version: str
    def __init__(self, parent: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetApplicationPackageRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListApplicationPackagesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApplicationPackagesResponse(_message.Message):
    __slots__ = ("packages", "next_page_token")
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    packages: _containers.RepeatedCompositeFieldContainer[ApplicationPackage]
    next_page_token: str
    def __init__(self, packages: _Optional[_Iterable[_Union[ApplicationPackage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UploadApplicationPackageRequest(_message.Message):
    __slots__ = ("name", "data", "finish")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    finish: bool
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., finish: _Optional[bool] = ...) -> None: ...

class ActivateApplicationPackageRequest(_message.Message):
    __slots__ = ("name", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: PackageFormat
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[PackageFormat, str]] = ...) -> None: ...

class DeleteApplicationPackageRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteApplicationPackageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
