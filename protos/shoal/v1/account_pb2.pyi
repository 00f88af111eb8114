import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccountKeyName(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_KEY_NAME_UNSPECIFIED: _ClassVar[AccountKeyName]
    ACCOUNT_KEY_NAME_PRIMARY: _ClassVar[AccountKeyName]
    ACCOUNT_KEY_NAME_SECONDARY: _ClassVar[AccountKeyName]
ACCOUNT_KEY_NAME_UNSPECIFIED: AccountKeyName
ACCOUNT_KEY_NAME_PRIMARY: AccountKeyName
ACCOUNT_KEY_NAME_SECONDARY: AccountKeyName

class AccountQuotas(_message.Message):
    __slots__ = ("max_pools", "max_nodes", "max_active_jobs")
    MAX_POOLS_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_JOBS_FIELD_NUMBER: _ClassVar[int]
    max_pools: int
    max_nodes: int
    max_active_jobs: int
    def __init__(self, max_pools: _Optional[int] = ..., max_nodes: _Optional[int] = ..., max_active_jobs: _Optional[int] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("name", "id", "quotas", "creation_time", "pools", "nodes", "active_jobs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_JOBS_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    quotas: AccountQuotas
    creation_time: _timestamp_pb2.Timestamp
    pools: int
    nodes: int
    active_jobs: int
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., quotas: _Optional[_Union[AccountQuotas, _Mapping]] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pools: _Optional[int] = ..., nodes: _Optional[int] = ..., active_jobs: _Optional[int] = ...) -> None: ...

class AccountKeys(_message.Message):
    __slots__ = ("account", "primary", "secondary")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_FIELD_NUMBER: _ClassVar[int]
    account: str
    primary: str
    secondary: str
    def __init__(self, account: _Optional[str] = ..., primary: _Optional[str] = ..., secondary: _Optional[str] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetAccountQuotasRequest(_message.Message):
    __slots__ = ("name", "quotas")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    quotas: AccountQuotas
    def __init__(self, name: _Optional[str] = ..., quotas: _Optional[_Union[AccountQuotas, _Mapping]] = ...) -> None: ...

class GetAccountKeysRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RegenerateAccountKeyRequest(_message.Message):
    __slots__ = ("name", "key_name")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    key_name: AccountKeyName
    def __init__(self, name: _Optional[str] = ..., key_name: _Optional[_Union[AccountKeyName, str]] = ...) -> None: ...

class DeleteAccountRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAccountResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
