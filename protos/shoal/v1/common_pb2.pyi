import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import identity_pb2 as _identity_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputFileUploadCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FILE_UPLOAD_CONDITION_UNSPECIFIED: _ClassVar[OutputFileUploadCondition]
    OUTPUT_FILE_UPLOAD_CONDITION_TASK_SUCCESS: _ClassVar[OutputFileUploadCondition]
    OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE: _ClassVar[OutputFileUploadCondition]
    OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION: _ClassVar[OutputFileUploadCondition]

class ErrorCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CATEGORY_UNSPECIFIED: _ClassVar[ErrorCategory]
    ERROR_CATEGORY_USER_ERROR: _ClassVar[ErrorCategory]
    ERROR_CATEGORY_SERVER_ERROR: _ClassVar[ErrorCategory]

class TaskExecutionResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_EXECUTION_RESULT_UNSPECIFIED: _ClassVar[TaskExecutionResult]
    TASK_EXECUTION_RESULT_SUCCESS: _ClassVar[TaskExecutionResult]
    TASK_EXECUTION_RESULT_FAILURE: _ClassVar[TaskExecutionResult]

class StartTaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    START_TASK_STATE_UNSPECIFIED: _ClassVar[StartTaskState]
    START_TASK_STATE_RUNNING: _ClassVar[StartTaskState]
    START_TASK_STATE_COMPLETED: _ClassVar[StartTaskState]

class ContainerType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_TYPE_UNSPECIFIED: _ClassVar[ContainerType]
    CONTAINER_TYPE_DOCKER_COMPATIBLE: _ClassVar[ContainerType]
    CONTAINER_TYPE_CRI_COMPATIBLE: _ClassVar[ContainerType]

class ContainerWorkingDirectory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_WORKING_DIRECTORY_UNSPECIFIED: _ClassVar[ContainerWorkingDirectory]
    CONTAINER_WORKING_DIRECTORY_TASK_WORKING_DIRECTORY: _ClassVar[ContainerWorkingDirectory]
    CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT: _ClassVar[ContainerWorkingDirectory]
OUTPUT_FILE_UPLOAD_CONDITION_UNSPECIFIED: OutputFileUploadCondition
OUTPUT_FILE_UPLOAD_CONDITION_TASK_SUCCESS: OutputFileUploadCondition
OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE: OutputFileUploadCondition
OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION: OutputFileUploadCondition
ERROR_CATEGORY_UNSPECIFIED: ErrorCategory
ERROR_CATEGORY_USER_ERROR: ErrorCategory
ERROR_CATEGORY_SERVER_ERROR: ErrorCategory
TASK_EXECUTION_RESULT_UNSPECIFIED: TaskExecutionResult
TASK_EXECUTION_RESULT_SUCCESS: TaskExecutionResult
TASK_EXECUTION_RESULT_FAILURE: TaskExecutionResult
START_TASK_STATE_UNSPECIFIED: StartTaskState
START_TASK_STATE_RUNNING: StartTaskState
START_TASK_STATE_COMPLETED: StartTaskState
CONTAINER_TYPE_UNSPECIFIED: ContainerType
CONTAINER_TYPE_DOCKER_COMPATIBLE: ContainerType
CONTAINER_TYPE_CRI_COMPATIBLE: ContainerType
CONTAINER_WORKING_DIRECTORY_UNSPECIFIED: ContainerWorkingDirectory
CONTAINER_WORKING_DIRECTORY_TASK_WORKING_DIRECTORY: ContainerWorkingDirectory
CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT: ContainerWorkingDirectory

class EnvironmentSetting(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class MetadataItem(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ResourceFile(_message.Message):
    __slots__ = ("storage_container_name", "blob_prefix", "http_url", "file_path", "file_mode")
    STORAGE_CONTAINER_NAME_FIELD_NUMBER: _ClassVar[int]
    BLOB_PREFIX_FIELD_NUMBER: _ClassVar[int]
    HTTP_URL_FIELD_NUMBER: _ClassVar[int]
    FILE_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    storage_container_name: str
    blob_prefix: str
    http_url: str
    file_path: str
    file_mode: str
    def __init__(self, storage_container_name: _Optional[str] = ..., blob_prefix: _Optional[str] = ..., http_url: _Optional[str] = ..., file_path: _Optional[str] = ..., file_mode: _Optional[str] = ...) -> None: ...

class OutputFile(_message.Message):
    __slots__ = ("file_pattern", "container_name", "path", "upload_condition")
    FILE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_CONDITION_FIELD_NUMBER: _ClassVar[int]
    file_pattern: str
    container_name: str
    path: str
    upload_condition: OutputFileUploadCondition
    def __init__(self, file_pattern: _Optional[str] = ..., container_name: _Optional[str] = ..., path: _Optional[str] = ..., upload_condition: _Optional[_Union[OutputFileUploadCondition, str]] = ...) -> None: ...

class TaskConstraints(_message.Message):
    __slots__ = ("max_wall_clock_time", "max_task_retry_count", "retention_time")
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETENTION_TIME_FIELD_NUMBER: _ClassVar[int]
    max_wall_clock_time: _duration_pb2.Duration
    max_task_retry_count: int
    retention_time: _duration_pb2.Duration
    def __init__(self, max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_task_retry_count: _Optional[int] = ..., retention_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FailureInfo(_message.Message):
    __slots__ = ("category", "code", "message")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    category: ErrorCategory
    code: str
    message: str
    def __init__(self, category: _Optional[_Union[ErrorCategory, str]] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StartTask(_message.Message):
    __slots__ = ("command_line", "resource_files", "environment_settings", "max_task_retry_count", "wait_for_success", "user_identity", "container_settings")
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[ResourceFile]
    environment_settings: _containers.RepeatedCompositeFieldContainer[EnvironmentSetting]
    max_task_retry_count: int
    wait_for_success: bool
    user_identity: _identity_pb2.UserIdentity
    container_settings: TaskContainerSettings
    def __init__(self, command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[ResourceFile, _Mapping]]] = ..., environment_settings: _Optional[_Iterable[_Union[EnvironmentSetting, _Mapping]]] = ..., max_task_retry_count: _Optional[int] = ..., wait_for_success: _Optional[bool] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., container_settings: _Optional[_Union[TaskContainerSettings, _Mapping]] = ...) -> None: ...

class StartTaskInfo(_message.Message):
    __slots__ = ("state", "start_time", "end_time", "exit_code", "retry_count", "failure_info", "result", "container_info")
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_INFO_FIELD_NUMBER: _ClassVar[int]
    state: StartTaskState
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    retry_count: int
    failure_info: FailureInfo
    result: TaskExecutionResult
    container_info: TaskContainerExecutionInfo
    def __init__(self, state: _Optional[_Union[StartTaskState, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., retry_count: _Optional[int] = ..., failure_info: _Optional[_Union[FailureInfo, _Mapping]] = ..., result: _Optional[_Union[TaskExecutionResult, str]] = ..., container_info: _Optional[_Union[TaskContainerExecutionInfo, _Mapping]] = ...) -> None: ...

class NodeFile(_message.Message):
    __slots__ = ("path", "is_directory", "size", "modify_time", "file_mode")
    PATH_FIELD_NUMBER: _ClassVar[int]
    IS_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    path: str
    is_directory: bool
    size: int
    modify_time: _timestamp_pb2.Timestamp
    file_mode: str
    def __init__(self, path: _Optional[str] = ..., is_directory: _Optional[bool] = ..., size: _Optional[int] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., file_mode: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TaskStatistics(_message.Message):
    __slots__ = ("wall_clock_seconds", "user_cpu_seconds", "kernel_cpu_seconds", "peak_memory_bytes", "read_bytes", "write_bytes", "read_ops", "write_ops")
    WALL_CLOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    USER_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    READ_OPS_FIELD_NUMBER: _ClassVar[int]
    WRITE_OPS_FIELD_NUMBER: _ClassVar[int]
    wall_clock_seconds: float
    user_cpu_seconds: float
    kernel_cpu_seconds: float
    peak_memory_bytes: int
    read_bytes: int
    write_bytes: int
    read_ops: int
    write_ops: int
    def __init__(self, wall_clock_seconds: _Optional[float] = ..., user_cpu_seconds: _Optional[float] = ..., kernel_cpu_seconds: _Optional[float] = ..., peak_memory_bytes: _Optional[int] = ..., read_bytes: _Optional[int] = ..., write_bytes: _Optional[int] = ..., read_ops: _Optional[int] = ..., write_ops: _Optional[int] = ...) -> None: ...

class UsageStatistics(_message.Message):
    __slots__ = ("totals", "tasks_succeeded", "tasks_failed", "task_retries", "task_requeues", "wait_seconds", "attempts")
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    TASKS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    TASK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    TASK_REQUEUES_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    totals: TaskStatistics
    tasks_succeeded: int
    tasks_failed: int
    task_retries: int
    task_requeues: int
    wait_seconds: float
    attempts: int
    def __init__(self, totals: _Optional[_Union[TaskStatistics, _Mapping]] = ..., tasks_succeeded: _Optional[int] = ..., tasks_failed: _Optional[int] = ..., task_retries: _Optional[int] = ..., task_requeues: _Optional[int] = ..., wait_seconds: _Optional[float] = ..., attempts: _Optional[int] = ...) -> None: ...

class ApplicationPackageReference(_message.Message):
    __slots__ = ("application_id", "version")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    version: str
    def __init__(self, application_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ContainerRegistry(_message.Message):
    __slots__ = ("registry_server", "user_name", "password")
    REGISTRY_SERVER_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    registry_server: str
    user_name: str
    password: str
    def __init__(self, registry_server: _Optional[str] = ..., user_name: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class TaskContainerSettings(_message.Message):
    __slots__ = ("image_name", "container_run_options", "registry", "working_directory")
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_RUN_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    image_name: str
    container_run_options: str
    registry: ContainerRegistry
    working_directory: ContainerWorkingDirectory
    def __init__(self, image_name: _Optional[str] = ..., container_run_options: _Optional[str] = ..., registry: _Optional[_Union[ContainerRegistry, _Mapping]] = ..., working_directory: _Optional[_Union[ContainerWorkingDirectory, str]] = ...) -> None: ...

class ContainerConfiguration(_message.Message):
    __slots__ = ("type", "container_image_names", "container_registries", "allow_host_run_options")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_IMAGE_NAMES_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_REGISTRIES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_HOST_RUN_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    type: ContainerType
    container_image_names: _containers.RepeatedScalarFieldContainer[str]
    container_registries: _containers.RepeatedCompositeFieldContainer[ContainerRegistry]
    allow_host_run_options: bool
    def __init__(self, type: _Optional[_Union[ContainerType, str]] = ..., container_image_names: _Optional[_Iterable[str]] = ..., container_registries: _Optional[_Iterable[_Union[ContainerRegistry, _Mapping]]] = ..., allow_host_run_options: _Optional[bool] = ...) -> None: ...

class TaskContainerExecutionInfo(_message.Message):
    __slots__ = ("container_id", "state", "error")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    state: str
    error: str
    def __init__(self, container_id: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
