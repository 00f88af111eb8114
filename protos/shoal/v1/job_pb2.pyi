import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
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

class OnAllTasksComplete(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_ALL_TASKS_COMPLETE_UNSPECIFIED: _ClassVar[OnAllTasksComplete]
    ON_ALL_TASKS_COMPLETE_NO_ACTION: _ClassVar[OnAllTasksComplete]
    ON_ALL_TASKS_COMPLETE_TERMINATE_JOB: _ClassVar[OnAllTasksComplete]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_ACTIVE: JobState
JOB_STATE_TERMINATING: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_DELETING: JobState
ON_ALL_TASKS_COMPLETE_UNSPECIFIED: OnAllTasksComplete
ON_ALL_TASKS_COMPLETE_NO_ACTION: OnAllTasksComplete
ON_ALL_TASKS_COMPLETE_TERMINATE_JOB: OnAllTasksComplete

class JobConstraints(_message.Message):
    __slots__ = ("max_wall_clock_time", "max_task_retry_count")
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    max_wall_clock_time: _duration_pb2.Duration
    max_task_retry_count: int
    def __init__(self, max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_task_retry_count: _Optional[int] = ...) -> None: ...

class JobExecutionInfo(_message.Message):
    __slots__ = ("start_time", "end_time", "terminate_reason")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_REASON_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    terminate_reason: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., terminate_reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "id", "display_name", "pool_id", "priority", "constraints", "common_environment_settings", "on_all_tasks_complete", "state", "creation_time", "state_transition_time", "execution_info", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    COMMON_ENVIRONMENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ON_ALL_TASKS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    pool_id: str
    priority: int
    constraints: JobConstraints
    common_environment_settings: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnvironmentSetting]
    on_all_tasks_complete: OnAllTasksComplete
    state: JobState
    creation_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    execution_info: JobExecutionInfo
    etag: str
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., pool_id: _Optional[str] = ..., priority: _Optional[int] = ..., constraints: _Optional[_Union[JobConstraints, _Mapping]] = ..., common_environment_settings: _Optional[_Iterable[_Union[_common_pb2.EnvironmentSetting, _Mapping]]] = ..., on_all_tasks_complete: _Optional[_Union[OnAllTasksComplete, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_info: _Optional[_Union[JobExecutionInfo, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

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

class GetJobTaskCountsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("active", "running", "completed", "succeeded", "failed")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    active: int
    running: int
    completed: int
    succeeded: int
    failed: int
    def __init__(self, active: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...
