import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import identity_pb2 as _identity_pb2
from shoal.v1 import pool_pb2 as _pool_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_ACTIVE: _ClassVar[JobState]
    JOB_STATE_TERMINATING: _ClassVar[JobState]
    JOB_STATE_COMPLETED: _ClassVar[JobState]
    JOB_STATE_DELETING: _ClassVar[JobState]
    JOB_STATE_DISABLING: _ClassVar[JobState]
    JOB_STATE_DISABLED: _ClassVar[JobState]
    JOB_STATE_ENABLING: _ClassVar[JobState]

class OnAllTasksComplete(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_ALL_TASKS_COMPLETE_UNSPECIFIED: _ClassVar[OnAllTasksComplete]
    ON_ALL_TASKS_COMPLETE_NO_ACTION: _ClassVar[OnAllTasksComplete]
    ON_ALL_TASKS_COMPLETE_TERMINATE_JOB: _ClassVar[OnAllTasksComplete]

class OnTaskFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_TASK_FAILURE_UNSPECIFIED: _ClassVar[OnTaskFailure]
    ON_TASK_FAILURE_NO_ACTION: _ClassVar[OnTaskFailure]
    ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION: _ClassVar[OnTaskFailure]

class OnDependencyFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_DEPENDENCY_FAILURE_UNSPECIFIED: _ClassVar[OnDependencyFailure]
    ON_DEPENDENCY_FAILURE_BLOCK: _ClassVar[OnDependencyFailure]
    ON_DEPENDENCY_FAILURE_FAIL: _ClassVar[OnDependencyFailure]

class DisableJobOption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISABLE_JOB_OPTION_UNSPECIFIED: _ClassVar[DisableJobOption]
    DISABLE_JOB_OPTION_REQUEUE: _ClassVar[DisableJobOption]
    DISABLE_JOB_OPTION_TERMINATE: _ClassVar[DisableJobOption]
    DISABLE_JOB_OPTION_WAIT: _ClassVar[DisableJobOption]

class PoolLifetimeOption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POOL_LIFETIME_OPTION_UNSPECIFIED: _ClassVar[PoolLifetimeOption]
    POOL_LIFETIME_OPTION_JOB: _ClassVar[PoolLifetimeOption]
    POOL_LIFETIME_OPTION_JOB_SCHEDULE: _ClassVar[PoolLifetimeOption]

class PreparationTaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPARATION_TASK_STATE_UNSPECIFIED: _ClassVar[PreparationTaskState]
    PREPARATION_TASK_STATE_RUNNING: _ClassVar[PreparationTaskState]
    PREPARATION_TASK_STATE_COMPLETED: _ClassVar[PreparationTaskState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_ACTIVE: JobState
JOB_STATE_TERMINATING: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_DELETING: JobState
JOB_STATE_DISABLING: JobState
JOB_STATE_DISABLED: JobState
JOB_STATE_ENABLING: JobState
ON_ALL_TASKS_COMPLETE_UNSPECIFIED: OnAllTasksComplete
ON_ALL_TASKS_COMPLETE_NO_ACTION: OnAllTasksComplete
ON_ALL_TASKS_COMPLETE_TERMINATE_JOB: OnAllTasksComplete
ON_TASK_FAILURE_UNSPECIFIED: OnTaskFailure
ON_TASK_FAILURE_NO_ACTION: OnTaskFailure
ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION: OnTaskFailure
ON_DEPENDENCY_FAILURE_UNSPECIFIED: OnDependencyFailure
ON_DEPENDENCY_FAILURE_BLOCK: OnDependencyFailure
ON_DEPENDENCY_FAILURE_FAIL: OnDependencyFailure
DISABLE_JOB_OPTION_UNSPECIFIED: DisableJobOption
DISABLE_JOB_OPTION_REQUEUE: DisableJobOption
DISABLE_JOB_OPTION_TERMINATE: DisableJobOption
DISABLE_JOB_OPTION_WAIT: DisableJobOption
POOL_LIFETIME_OPTION_UNSPECIFIED: PoolLifetimeOption
POOL_LIFETIME_OPTION_JOB: PoolLifetimeOption
POOL_LIFETIME_OPTION_JOB_SCHEDULE: PoolLifetimeOption
PREPARATION_TASK_STATE_UNSPECIFIED: PreparationTaskState
PREPARATION_TASK_STATE_RUNNING: PreparationTaskState
PREPARATION_TASK_STATE_COMPLETED: PreparationTaskState

class JobManagerTask(_message.Message):
    __slots__ = ("id", "display_name", "command_line", "resource_files", "output_files", "environment_settings", "constraints", "kill_job_on_completion", "run_exclusive", "required_slots", "user_identity", "allow_low_priority_node", "application_package_references", "container_settings")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    KILL_JOB_ON_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    RUN_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_LOW_PRIORITY_NODE_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    output_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.OutputFile]
    environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    constraints: _common_pb2.TaskConstraints
    kill_job_on_completion: bool
    run_exclusive: bool
    required_slots: int
    user_identity: _identity_pb2.UserIdentity
    allow_low_priority_node: bool
    application_package_references: _containers.RepeatedCompositeFieldContainer[_common_pb2.ApplicationPackageReference]
    container_settings: _common_pb2.TaskContainerSettings
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[_common_pb2.OutputFile, _Mapping]]] = ..., environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., constraints: _Optional[_Union[_common_pb2.TaskConstraints, _Mapping]] = ..., kill_job_on_completion: _Optional[bool] = ..., run_exclusive: _Optional[bool] = ..., required_slots: _Optional[int] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., allow_low_priority_node: _Optional[bool] = ..., application_package_references: _Optional[_Iterable[_Union[_common_pb2.ApplicationPackageReference, _Mapping]]] = ..., container_settings: _Optional[_Union[_common_pb2.TaskContainerSettings, _Mapping]] = ...) -> None: ...

class JobPreparationTask(_message.Message):
    __slots__ = ("id", "command_line", "resource_files", "environment_settings", "constraints", "wait_for_success", "rerun_on_node_reboot_after_success", "user_identity", "container_settings")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RERUN_ON_NODE_REBOOT_AFTER_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    constraints: _common_pb2.TaskConstraints
    wait_for_success: bool
    rerun_on_node_reboot_after_success: bool
    user_identity: _identity_pb2.UserIdentity
    container_settings: _common_pb2.TaskContainerSettings
    def __init__(self, id: _Optional[str] = ..., command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., constraints: _Optional[_Union[_common_pb2.TaskConstraints, _Mapping]] = ..., wait_for_success: _Optional[bool] = ..., rerun_on_node_reboot_after_success: _Optional[bool] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., container_settings: _Optional[_Union[_common_pb2.TaskContainerSettings, _Mapping]] = ...) -> None: ...

class JobReleaseTask(_message.Message):
    __slots__ = ("id", "command_line", "resource_files", "environment_settings", "max_wall_clock_time", "retention_time", "user_identity", "container_settings")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    RETENTION_TIME_FIELD_NUMBER: _ClassVar[int]
    USER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceFile]
    environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    max_wall_clock_time: _duration_pb2.Duration
    retention_time: _duration_pb2.Duration
    user_identity: _identity_pb2.UserIdentity
    container_settings: _common_pb2.TaskContainerSettings
    def __init__(self, id: _Optional[str] = ..., command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[_common_pb2.ResourceFile, _Mapping]]] = ..., environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retention_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., user_identity: _Optional[_Union[_identity_pb2.UserIdentity, _Mapping]] = ..., container_settings: _Optional[_Union[_common_pb2.TaskContainerSettings, _Mapping]] = ...) -> None: ...

class JobConstraints(_message.Message):
    __slots__ = ("max_wall_clock_time", "max_task_retry_count")
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    max_wall_clock_time: _duration_pb2.Duration
    max_task_retry_count: int
    def __init__(self, max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_task_retry_count: _Optional[int] = ...) -> None: ...

class AutoPoolSpecification(_message.Message):
    __slots__ = ("auto_pool_id_prefix", "pool_lifetime_option", "keep_alive", "pool")
    AUTO_POOL_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    POOL_LIFETIME_OPTION_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    auto_pool_id_prefix: str
    pool_lifetime_option: PoolLifetimeOption
    keep_alive: bool
    pool: _pool_pb2.Pool
    def __init__(self, auto_pool_id_prefix: _Optional[str] = ..., pool_lifetime_option: _Optional[_Union[PoolLifetimeOption, str]] = ..., keep_alive: _Optional[bool] = ..., pool: _Optional[_Union[_pool_pb2.Pool, _Mapping]] = ...) -> None: ...

class JobSchedulingError(_message.Message):
    __slots__ = ("category", "code", "message", "details")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    category: _common_pb2.ErrorCategory
    code: str
    message: str
    details: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    def __init__(self, category: _Optional[_Union[_common_pb2.ErrorCategory, str]] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., details: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ...) -> None: ...

class JobExecutionInfo(_message.Message):
    __slots__ = ("start_time", "end_time", "terminate_reason", "pool_id", "scheduling_error")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_REASON_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_ERROR_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    terminate_reason: str
    pool_id: str
    scheduling_error: JobSchedulingError
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., terminate_reason: _Optional[str] = ..., pool_id: _Optional[str] = ..., scheduling_error: _Optional[_Union[JobSchedulingError, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "id", "display_name", "pool_id", "priority", "constraints", "common_environment_settings", "on_all_tasks_complete", "uses_task_dependencies", "on_task_failure", "on_dependency_failure", "job_manager_task", "job_preparation_task", "job_release_task", "max_parallel_tasks", "metadata", "dedicated_nodes_only", "auto_pool_specification", "state", "creation_time", "state_transition_time", "execution_info", "etag", "previous_state", "previous_state_transition_time", "account", "job_schedule_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    COMMON_ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ON_ALL_TASKS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    USES_TASK_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    ON_TASK_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ON_DEPENDENCY_FAILURE_FIELD_NUMBER: _ClassVar[int]
    JOB_MANAGER_TASK_FIELD_NUMBER: _ClassVar[int]
    JOB_PREPARATION_TASK_FIELD_NUMBER: _ClassVar[int]
    JOB_RELEASE_TASK_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DEDICATED_NODES_ONLY_FIELD_NUMBER: _ClassVar[int]
    AUTO_POOL_SPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    JOB_SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    pool_id: str
    priority: int
    constraints: JobConstraints
    common_environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    on_all_tasks_complete: OnAllTasksComplete
    uses_task_dependencies: bool
    on_task_failure: OnTaskFailure
    on_dependency_failure: OnDependencyFailure
    job_manager_task: JobManagerTask
    job_preparation_task: JobPreparationTask
    job_release_task: JobReleaseTask
    max_parallel_tasks: int
    metadata: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    dedicated_nodes_only: bool
    auto_pool_specification: AutoPoolSpecification
    state: JobState
    creation_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    execution_info: JobExecutionInfo
    etag: str
    previous_state: JobState
    previous_state_transition_time: _timestamp_pb2.Timestamp
    account: str
    job_schedule_id: str
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., pool_id: _Optional[str] = ..., priority: _Optional[int] = ..., constraints: _Optional[_Union[JobConstraints, _Mapping]] = ..., common_environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., on_all_tasks_complete: _Optional[_Union[OnAllTasksComplete, str]] = ..., uses_task_dependencies: _Optional[bool] = ..., on_task_failure: _Optional[_Union[OnTaskFailure, str]] = ..., on_dependency_failure: _Optional[_Union[OnDependencyFailure, str]] = ..., job_manager_task: _Optional[_Union[JobManagerTask, _Mapping]] = ..., job_preparation_task: _Optional[_Union[JobPreparationTask, _Mapping]] = ..., job_release_task: _Optional[_Union[JobReleaseTask, _Mapping]] = ..., max_parallel_tasks: _Optional[int] = ..., metadata: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ..., dedicated_nodes_only: _Optional[bool] = ..., auto_pool_specification: _Optional[_Union[AutoPoolSpecification, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_info: _Optional[_Union[JobExecutionInfo, _Mapping]] = ..., etag: _Optional[str] = ..., previous_state: _Optional[_Union[JobState, str]] = ..., previous_state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account: _Optional[str] = ..., job_schedule_id: _Optional[str] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("job", "request_id")
    JOB_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    job: Job
    request_id: str
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "job_schedule_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    job_schedule_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., job_schedule_id: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class TerminateJobRequest(_message.Message):
    __slots__ = ("name", "terminate_reason", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_REASON_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    terminate_reason: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., terminate_reason: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("job", "update_mask")
    JOB_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    job: Job
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., update_mask: _Optional[_Iterable[str]] = ...) -> None: ...

class DisableJobRequest(_message.Message):
    __slots__ = ("name", "disable_tasks", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISABLE_TASKS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    disable_tasks: DisableJobOption
    etag: str
    def __init__(self, name: _Optional[str] = ..., disable_tasks: _Optional[_Union[DisableJobOption, str]] = ..., etag: _Optional[str] = ...) -> None: ...

class EnableJobRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class PreparationTaskExecutionInfo(_message.Message):
    __slots__ = ("state", "start_time", "end_time", "exit_code", "failure_info", "retry_count", "last_retry_time", "result", "task_root_directory")
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_RETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TASK_ROOT_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    state: PreparationTaskState
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    failure_info: _common_pb2.FailureInfo
    retry_count: int
    last_retry_time: _timestamp_pb2.Timestamp
    result: _common_pb2.TaskExecutionResult
    task_root_directory: str
    def __init__(self, state: _Optional[_Union[PreparationTaskState, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., failure_info: _Optional[_Union[_common_pb2.FailureInfo, _Mapping]] = ..., retry_count: _Optional[int] = ..., last_retry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.TaskExecutionResult, str]] = ..., task_root_directory: _Optional[str] = ...) -> None: ...

class PreparationAndReleaseTaskStatus(_message.Message):
    __slots__ = ("pool_id", "node_id", "node_address", "job_preparation_task_execution_info", "job_release_task_execution_info")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    JOB_PREPARATION_TASK_EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    JOB_RELEASE_TASK_EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    node_id: str
    node_address: str
    job_preparation_task_execution_info: PreparationTaskExecutionInfo
    job_release_task_execution_info: PreparationTaskExecutionInfo
    def __init__(self, pool_id: _Optional[str] = ..., node_id: _Optional[str] = ..., node_address: _Optional[str] = ..., job_preparation_task_execution_info: _Optional[_Union[PreparationTaskExecutionInfo, _Mapping]] = ..., job_release_task_execution_info: _Optional[_Union[PreparationTaskExecutionInfo, _Mapping]] = ...) -> None: ...

class ListPreparationAndReleaseTaskStatusRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPreparationAndReleaseTaskStatusResponse(_message.Message):
    __slots__ = ("statuses", "next_page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[PreparationAndReleaseTaskStatus]
    next_page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[PreparationAndReleaseTaskStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetJobTaskCountsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("active", "running", "completed", "succeeded", "failed", "waiting_on_dependencies", "blocked")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    active: int
    running: int
    completed: int
    succeeded: int
    failed: int
    waiting_on_dependencies: int
    blocked: int
    def __init__(self, active: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., waiting_on_dependencies: _Optional[int] = ..., blocked: _Optional[int] = ...) -> None: ...

class GetJobStatisticsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JobStatistics(_message.Message):
    __slots__ = ("usage", "last_update_time")
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    usage: _common_pb2.UsageStatistics
    last_update_time: _timestamp_pb2.Timestamp
    def __init__(self, usage: _Optional[_Union[_common_pb2.UsageStatistics, _Mapping]] = ..., last_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
