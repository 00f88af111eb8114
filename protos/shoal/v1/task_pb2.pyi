import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import identity_pb2 as _identity_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_ACTIVE: _ClassVar[TaskState]
    TASK_STATE_PREPARING: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_COMPLETED: _ClassVar[TaskState]

class JobAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_ACTION_UNSPECIFIED: _ClassVar[JobAction]
    JOB_ACTION_NONE: _ClassVar[JobAction]
    JOB_ACTION_DISABLE: _ClassVar[JobAction]
    JOB_ACTION_TERMINATE: _ClassVar[JobAction]

class DependencyAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPENDENCY_ACTION_UNSPECIFIED: _ClassVar[DependencyAction]
    DEPENDENCY_ACTION_SATISFY: _ClassVar[DependencyAction]
    DEPENDENCY_ACTION_BLOCK: _ClassVar[DependencyAction]

class SubtaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBTASK_STATE_UNSPECIFIED: _ClassVar[SubtaskState]
    SUBTASK_STATE_PREPARING: _ClassVar[SubtaskState]
    SUBTASK_STATE_RUNNING: _ClassVar[SubtaskState]
    SUBTASK_STATE_COMPLETED: _ClassVar[SubtaskState]

class DependencyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPENDENCY_STATUS_UNSPECIFIED: _ClassVar[DependencyStatus]
    DEPENDENCY_STATUS_WAITING: _ClassVar[DependencyStatus]
    DEPENDENCY_STATUS_BLOCKED: _ClassVar[DependencyStatus]
    DEPENDENCY_STATUS_SATISFIED: _ClassVar[DependencyStatus]

class AddTaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADD_TASK_STATUS_UNSPECIFIED: _ClassVar[AddTaskStatus]
    ADD_TASK_STATUS_SUCCESS: _ClassVar[AddTaskStatus]
    ADD_TASK_STATUS_CLIENT_ERROR: _ClassVar[AddTaskStatus]
    ADD_TASK_STATUS_SERVER_ERROR: _ClassVar[AddTaskStatus]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_ACTIVE: TaskState
TASK_STATE_PREPARING: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_COMPLETED: TaskState
JOB_ACTION_UNSPECIFIED: JobAction
JOB_ACTION_NONE: JobAction
JOB_ACTION_DISABLE: JobAction
JOB_ACTION_TERMINATE: JobAction
DEPENDENCY_ACTION_UNSPECIFIED: DependencyAction
DEPENDENCY_ACTION_SATISFY: DependencyAction
DEPENDENCY_ACTION_BLOCK: DependencyAction
SUBTASK_STATE_UNSPECIFIED: SubtaskState
SUBTASK_STATE_PREPARING: SubtaskState
SUBTASK_STATE_RUNNING: SubtaskState
SUBTASK_STATE_COMPLETED: SubtaskState
DEPENDENCY_STATUS_UNSPECIFIED: DependencyStatus
DEPENDENCY_STATUS_WAITING: DependencyStatus
DEPENDENCY_STATUS_BLOCKED: DependencyStatus
DEPENDENCY_STATUS_SATISFIED: DependencyStatus
ADD_TASK_STATUS_UNSPECIFIED: AddTaskStatus
ADD_TASK_STATUS_SUCCESS: AddTaskStatus
ADD_TASK_STATUS_CLIENT_ERROR: AddTaskStatus
ADD_TASK_STATUS_SERVER_ERROR: AddTaskStatus

class TaskExecutionInfo(_message.Message):
    __slots__ = ("start_time", "end_time", "exit_code", "failure_info", "retry_count", "last_retry_time", "requeue_count", "last_requeue_time", "result", "last_attempt_stats", "container_info")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_RETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_REQUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_STATS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_INFO_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    failure_info: _common_pb2.FailureInfo
    retry_count: int
    last_retry_time: _timestamp_pb2.Timestamp
    requeue_count: int
    last_requeue_time: _timestamp_pb2.Timestamp
    result: _common_pb2.TaskExecutionResult
    last_attempt_stats: _common_pb2.TaskStatistics
    container_info: _common_pb2.TaskContainerExecutionInfo
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., failure_info: _Optional[_Union[_common_pb2.FailureInfo, _Mapping]] = ..., retry_count: _Optional[int] = ..., last_retry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requeue_count: _Optional[int] = ..., last_requeue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.TaskExecutionResult, str]] = ..., last_attempt_stats: _Optional[_Union[_common_pb2.TaskStatistics, _Mapping]] = ..., container_info: _Optional[_Union[_common_pb2.TaskContainerExecutionInfo, _Mapping]] = ...) -> None: ...

class TaskNodeInfo(_message.Message):
    __slots__ = ("pool_id", "node_id", "task_root_directory", "node_address")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ROOT_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    node_id: str
    task_root_directory: str
    node_address: str
    def __init__(self, pool_id: _Optional[str] = ..., node_id: _Optional[str] = ..., task_root_directory: _Optional[str] = ..., node_address: _Optional[str] = ...) -> None: ...

class MultiInstanceSettings(_message.Message):
    __slots__ = ("number_of_instances", "coordination_command_line", "common_resource_files")
    NUMBER_OF_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    COORDINATION_COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    COMMON_RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    number_of_instances: int
    coordination_command_line: str
    common_resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    def __init__(self, number_of_instances: _Optional[int] = ..., coordination_command_line: _Optional[str] = ..., common_resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ...) -> None: ...

class TaskIdRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class TaskDependencies(_message.Message):
    __slots__ = ("task_ids", "task_id_ranges")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_RANGES_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    task_id_ranges: _containers.RepeatedCompositeFieldContainer[TaskIdRange]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ..., task_id_ranges: _Optional[_Iterable[_Union[TaskIdRange, _Mapping]]] = ...) -> None: ...

class ExitOptions(_message.Message):
    __slots__ = ("job_action", "dependency_action")
    JOB_ACTION_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_ACTION_FIELD_NUMBER: _ClassVar[int]
    job_action: JobAction
    dependency_action: DependencyAction
    def __init__(self, job_action: _Optional[_Union[JobAction, str]] = ..., dependency_action: _Optional[_Union[DependencyAction, str]] = ...) -> None: ...

class ExitCodeMapping(_message.Message):
    __slots__ = ("code", "exit_options")
    CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    exit_options: ExitOptions
    def __init__(self, code: _Optional[int] = ..., exit_options: _Optional[_Union[ExitOptions, _Mapping]] = ...) -> None: ...

class ExitCodeRangeMapping(_message.Message):
    __slots__ = ("start", "end", "exit_options")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EXIT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    exit_options: ExitOptions
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., exit_options: _Optional[_Union[ExitOptions, _Mapping]] = ...) -> None: ...

class ExitConditions(_message.Message):
    __slots__ = ("exit_codes", "exit_code_ranges", "pre_processing_error", "file_upload_error", "default")
    EXIT_CODES_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_RANGES_FIELD_NUMBER: _ClassVar[int]
    PRE_PROCESSING_ERROR_FIELD_NUMBER: _ClassVar[int]
    FILE_UPLOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    exit_codes: _containers.RepeatedCompositeFieldContainer[ExitCodeMapping]
    exit_code_ranges: _containers.RepeatedCompositeFieldContainer[ExitCodeRangeMapping]
    pre_processing_error: ExitOptions
    file_upload_error: ExitOptions
    default: ExitOptions
    def __init__(self, exit_codes: _Optional[_Iterable[_Union[ExitCodeMapping, _Mapping]]] = ..., exit_code_ranges: _Optional[_Iterable[_Union[ExitCodeRangeMapping, _Mapping]]] = ..., pre_processing_error: _Optional[_Union[ExitOptions, _Mapping]] = ..., file_upload_error: _Optional[_Union[ExitOptions, _Mapping]] = ..., default: _Optional[_Union[ExitOptions, _Mapping]] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("id", "display_name", "command_line", "environment_settings", "resource_files", "output_files", "constraints", "required_slots", "multi_instance_settings", "depends_on", "exit_conditions", "user_identity", "dedicated_nodes_only", "application_package_references", "container_settings")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    MULTI_INSTANCE_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    EXIT_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_NODES_ONLY_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    command_line: str
    environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    output_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.OutputFile]
    constraints: _common_pb2.TaskConstraints
    required_slots: int
    multi_instance_settings: MultiInstanceSettings
    depends_on: TaskDependencies
    exit_conditions: ExitConditions
    user_identity: _identity_pb2.UserIdentity
    dedicated_nodes_only: bool
    application_package_references: _containers.RepeatedCompositeFieldContainer[_common_pb2.ApplicationPackageReference]
    container_settings: _common_pb2.TaskContainerSettings
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., command_line: _Optional[str] = ..., environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[_common_pb2.OutputFile, _Mapping]]] = ..., constraints: _Optional[_Union[_common_pb2.TaskConstraints, _Mapping]] = ..., required_slots: _Optional[int] = ..., multi_instance_settings: _Optional[_Union[MultiInstanceSettings, _Mapping]] = ..., depends_on: _Optional[_Union[TaskDependencies, _Mapping]] = ..., exit_conditions: _Optional[_Union[ExitConditions, _Mapping]] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., dedicated_nodes_only: _Optional[bool] = ..., application_package_references: _Optional[_Iterable[_Union[_common_pb2.ApplicationPackageReference, _Mapping]]] = ..., container_settings: _Optional[_Union[_common_pb2.TaskContainerSettings, _Mapping]] = ...) -> None: ...

class Subtask(_message.Message):
    __slots__ = ("id", "node_info", "state", "start_time", "end_time", "exit_code", "failure_info", "result", "stats", "container_info")
    ID_FIELD_NUMBER: _ClassVar[int]
    NODE_INFO_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_INFO_FIELD_NUMBER: _ClassVar[int]
    id: int
    node_info: TaskNodeInfo
    state: SubtaskState
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    failure_info: _common_pb2.FailureInfo
    result: _common_pb2.TaskExecutionResult
    stats: _common_pb2.TaskStatistics
    container_info: _common_pb2.TaskContainerExecutionInfo
    def __init__(self, id: _Optional[int] = ..., node_info: _Optional[_Union[TaskNodeInfo, _Mapping]] = ..., state: _Optional[_Union[SubtaskState, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., failure_info: _Optional[_Union[_common_pb2.FailureInfo, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.TaskExecutionResult, str]] = ..., stats: _Optional[_Union[_common_pb2.TaskStatistics, _Mapping]] = ..., container_info: _Optional[_Union[_common_pb2.TaskContainerExecutionInfo, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("name", "spec", "state", "previous_state", "creation_time", "state_transition_time", "execution_info", "node_info", "attempt", "etag", "subtasks", "waiting_reason", "dependency_state", "job_manager", "stats")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    NODE_INFO_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    WAITING_REASON_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_MANAGER_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: TaskSpec
    state: TaskState
    previous_state: TaskState
    creation_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    execution_info: TaskExecutionInfo
    node_info: TaskNodeInfo
    attempt: int
    etag: str
    subtasks: _containers.RepeatedCompositeFieldContainer[Subtask]
    waiting_reason: str
    dependency_state: DependencyState
    job_manager: bool
    stats: _common_pb2.UsageStatistics
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., previous_state: _Optional[_Union[TaskState, str]] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_info: _Optional[_Union[TaskExecutionInfo, _Mapping]] = ..., node_info: _Optional[_Union[TaskNodeInfo, _Mapping]] = ..., attempt: _Optional[int] = ..., etag: _Optional[str] = ..., subtasks: _Optional[_Iterable[_Union[Subtask, _Mapping]]] = ..., waiting_reason: _Optional[str] = ..., dependency_state: _Optional[_Union[DependencyState, _Mapping]] = ..., job_manager: _Optional[bool] = ..., stats: _Optional[_Union[_common_pb2.UsageStatistics, _Mapping]] = ...) -> None: ...

class DependencyState(_message.Message):
    __slots__ = ("status", "task_id", "reason", "unsatisfied")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNSATISFIED_FIELD_NUMBER: _ClassVar[int]
    status: DependencyStatus
    task_id: str
    reason: str
    unsatisfied: int
    def __init__(self, status: _Optional[_Union[DependencyStatus, str]] = ..., task_id: _Optional[str] = ..., reason: _Optional[str] = ..., unsatisfied: _Optional[int] = ...) -> None: ...

class AddTaskRequest(_message.Message):
    __slots__ = ("parent", "task")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    parent: str
    task: TaskSpec
    def __init__(self, parent: _Optional[str] = ..., task: _Optional[_Union[TaskSpec, _Mapping]] = ...) -> None: ...

class AddTasksRequest(_message.Message):
    __slots__ = ("parent", "tasks")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, parent: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ...) -> None: ...

class AddTaskResult(_message.Message):
    __slots__ = ("task_id", "status", "error_reason", "error_message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: AddTaskStatus
    error_reason: str
    error_message: str
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[AddTaskStatus, str]] = ..., error_reason: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class AddTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AddTaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AddTaskResult, _Mapping]]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "state")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    state: TaskState
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TerminateTaskRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteTaskRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ReactivateTaskRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateTaskRequest(_message.Message):
    __slots__ = ("task", "update_mask")
    TASK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., update_mask: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchTasksRequest(_message.Message):
    __slots__ = ("parent", "task_ids")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, parent: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchTasksResponse(_message.Message):
    __slots__ = ("tasks", "initial", "initial_complete")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    INITIAL_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    initial: bool
    initial_complete: bool
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., initial: _Optional[bool] = ..., initial_complete: _Optional[bool] = ...) -> None: ...

class ListTaskFilesRequest(_message.Message):
    __slots__ = ("name", "path", "recursive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    recursive: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class ListTaskFilesResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.NodeFile]
    def __init__(self, files: _Optional[_Iterable[_Union[_common_pb2.NodeFile, _Mapping]]] = ...) -> None: ...

class ReadTaskFileRequest(_message.Message):
    __slots__ = ("name", "path", "offset", "follow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    offset: int
    follow: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class GetTaskFilePropertiesRequest(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DeleteTaskFileRequest(_message.Message):
    __slots__ = ("name", "path", "recursive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    recursive: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class DeleteTaskFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSubtasksRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSubtasksResponse(_message.Message):
    __slots__ = ("subtasks",)
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    subtasks: _containers.RepeatedCompositeFieldContainer[Subtask]
    def __init__(self, subtasks: _Optional[_Iterable[_Union[Subtask, _Mapping]]] = ...) -> None: ...
