from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ElevationLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ELEVATION_LEVEL_UNSPECIFIED: _ClassVar[ElevationLevel]
    ELEVATION_LEVEL_NON_ADMIN: _ClassVar[ElevationLevel]
    ELEVATION_LEVEL_ADMIN: _ClassVar[ElevationLevel]

class AutoUserScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTO_USER_SCOPE_UNSPECIFIED: _ClassVar[AutoUserScope]
    AUTO_USER_SCOPE_TASK: _ClassVar[AutoUserScope]
    AUTO_USER_SCOPE_POOL: _ClassVar[AutoUserScope]
ELEVATION_LEVEL_UNSPECIFIED: ElevationLevel
ELEVATION_LEVEL_NON_ADMIN: ElevationLevel
ELEVATION_LEVEL_ADMIN: ElevationLevel
AUTO_USER_SCOPE_UNSPECIFIED: AutoUserScope
AUTO_USER_SCOPE_TASK: AutoUserScope
AUTO_USER_SCOPE_POOL: AutoUserScope

class AutoUserSpecification(_message.Message):
    __slots__ = ("scope", "elevation_level")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ELEVATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    scope: AutoUserScope
    elevation_level: ElevationLevel
    def __init__(self, scope: _Optional[_Union[AutoUserScope, str]] = ..., elevation_level: _Optional[_Union[ElevationLevel, str]] = ...) -> None: ...

class UserIdentity(_message.Message):
    __slots__ = ("user_name", "auto_user")
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    AUTO_USER_FIELD_NUMBER: _ClassVar[int]
    user_name: str
    auto_user: AutoUserSpecification
    def __init__(self, user_name: _Optional[str] = ..., auto_user: _Optional[_Union[AutoUserSpecification, _Mapping]] = ...) -> None: ...

class LinuxUserConfiguration(_message.Message):
    __slots__ = ("uid", "gid")
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    uid: int
    gid: int
    def __init__(self, uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class UserAccount(_message.Message):
    __slots__ = ("name", "elevation_level", "linux_user_configuration")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ELEVATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LINUX_USER_CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    elevation_level: ElevationLevel
    linux_user_configuration: LinuxUserConfiguration
    def __init__(self, name: _Optional[str] = ..., elevation_level: _Optional[_Union[ElevationLevel, str]] = ..., linux_user_configuration: _Optional[_Union[LinuxUserConfiguration, _Mapping]] = ...) -> None: ...
