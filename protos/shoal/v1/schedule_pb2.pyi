import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobScheduleState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_SCHEDULE_STATE_UNSPECIFIED: _ClassVar[JobScheduleState]
    JOB_SCHEDULE_STATE_ACTIVE: _ClassVar[JobScheduleState]
    JOB_SCHEDULE_STATE_COMPLETED: _ClassVar[JobScheduleState]
    JOB_SCHEDULE_STATE_DISABLED: _ClassVar[JobScheduleState]
    JOB_SCHEDULE_STATE_TERMINATING: _ClassVar[JobScheduleState]
    JOB_SCHEDULE_STATE_DELETING: _ClassVar[JobScheduleState]
JOB_SCHEDULE_STATE_UNSPECIFIED: JobScheduleState
JOB_SCHEDULE_STATE_ACTIVE: JobScheduleState
JOB_SCHEDULE_STATE_COMPLETED: JobScheduleState
JOB_SCHEDULE_STATE_DISABLED: JobScheduleState
JOB_SCHEDULE_STATE_TERMINATING: JobScheduleState
JOB_SCHEDULE_STATE_DELETING: JobScheduleState

class Schedule(_message.Message):
    __slots__ = ("do_not_run_until", "do_not_run_after", "start_window", "recurrence_interval", "cron", "time_zone")
    DO_NOT_RUN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    DO_NOT_RUN_AFTER_FIELD_NUMBER: _ClassVar[int]
    START_WINDOW_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    do_not_run_until: _timestamp_pb2.Timestamp
    do_not_run_after: _timestamp_pb2.Timestamp
    start_window: _duration_pb2.Duration
    recurrence_interval: _duration_pb2.Duration
    cron: str
    time_zone: str
    def __init__(self, do_not_run_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., do_not_run_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., recurrence_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cron: _Optional[str] = ..., time_zone: _Optional[str] = ...) -> None: ...

class RecentJob(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class JobScheduleExecutionInfo(_message.Message):
    __slots__ = ("next_run_time", "recent_job", "end_time")
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    RECENT_JOB_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    next_run_time: _timestamp_pb2.Timestamp
    recent_job: RecentJob
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recent_job: _Optional[_Union[RecentJob, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobSchedule(_message.Message):
    __slots__ = ("name", "id", "display_name", "schedule", "job_specification", "metadata", "state", "creation_time", "state_transition_time", "previous_state", "previous_state_transition_time", "execution_info", "etag", "account", "last_modified")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    JOB_SPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    schedule: Schedule
    job_specification: _job_pb2.Job
    metadata: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataItem]
    state: JobScheduleState
    creation_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    previous_state: JobScheduleState
    previous_state_transition_time: _timestamp_pb2.Timestamp
    execution_info: JobScheduleExecutionInfo
    etag: str
    account: str
    last_modified: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., job_specification: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., metadata: _Optional[_Iterable[_Union[_common_pb2.MetadataItem, _Mapping]]] = ..., state: _Optional[_Union[JobScheduleState, str]] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_state: _Optional[_Union[JobScheduleState, str]] = ..., previous_state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_info: _Optional[_Union[JobScheduleExecutionInfo, _Mapping]] = ..., etag: _Optional[str] = ..., account: _Optional[str] = ..., last_modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateJobScheduleRequest(_message.Message):
    __slots__ = ("job_schedule", "request_id")
    JOB_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    job_schedule: JobSchedule
    request_id: str
    def __init__(self, job_schedule: _Optional[_Union[JobSchedule, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetJobScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobSchedulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobScheduleState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobScheduleState, str]] = ...) -> None: ...

class ListJobSchedulesResponse(_message.Message):
    __slots__ = ("job_schedules", "next_page_token")
    JOB_SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_schedules: _containers.RepeatedCompositeFieldContainer[JobSchedule]
    next_page_token: str
    def __init__(self, job_schedules: _Optional[_Iterable[_Union[JobSchedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateJobScheduleRequest(_message.Message):
    __slots__ = ("job_schedule", "update_mask", "etag")
    JOB_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    job_schedule: JobSchedule
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, job_schedule: _Optional[_Union[JobSchedule, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteJobScheduleRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DisableJobScheduleRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class EnableJobScheduleRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class TerminateJobScheduleRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ListJobsFromScheduleRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token", "state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    state: _job_pb2.JobState
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.JobState, str]] = ...) -> None: ...
