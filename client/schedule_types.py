"""What the client says and returns about job schedules: when their jobs are due, and the schedules."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from shoal.v1 import schedule_pb2

from .common_types import _duration, _metadata_from_proto, _ts, duration_to_proto
from .errors import InvalidArgument
from .types import Job

__all__ = ["JobSchedule", "JobScheduleState", "Schedule", "job_schedule_state_to_proto"]


class JobScheduleState(enum.StrEnum):
    """Lifecycle state of a job schedule."""

    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    """Makes jobs when they are due."""
    COMPLETED = "completed"
    """Makes no more jobs: past its ``do_not_run_after``, its one job done, or terminated."""
    DISABLED = "disabled"
    """Makes no job until enabled (its active job goes on)."""
    TERMINATING = "terminating"
    """Its active job is being terminated."""
    DELETING = "deleting"
    """Its jobs are being deleted, then it goes."""


_STATES = {
    schedule_pb2.JOB_SCHEDULE_STATE_UNSPECIFIED: JobScheduleState.UNSPECIFIED,
    schedule_pb2.JOB_SCHEDULE_STATE_ACTIVE: JobScheduleState.ACTIVE,
    schedule_pb2.JOB_SCHEDULE_STATE_COMPLETED: JobScheduleState.COMPLETED,
    schedule_pb2.JOB_SCHEDULE_STATE_DISABLED: JobScheduleState.DISABLED,
    schedule_pb2.JOB_SCHEDULE_STATE_TERMINATING: JobScheduleState.TERMINATING,
    schedule_pb2.JOB_SCHEDULE_STATE_DELETING: JobScheduleState.DELETING,
}
_STATES_TO_PROTO = {v: k for k, v in _STATES.items()}


def job_schedule_state_to_proto(state: JobScheduleState | str) -> int:
    """The proto enum value of a schedule state given as ``JobScheduleState`` or its string."""
    try:
        return int(_STATES_TO_PROTO[JobScheduleState(str(state).lower())])
    except ValueError:
        choices = [s.value for s in JobScheduleState if s is not JobScheduleState.UNSPECIFIED]
        raise InvalidArgument(
            f"unknown job schedule state {state!r}; one of {choices}",
            reason="INVALID_FILTER",
            field_violations=[("state", f"one of {choices}")],
        ) from None


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    return ts


def _delta(value: float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """When a job schedule makes its jobs. With neither ``recurrence_interval`` nor ``cron``: one job."""

    recurrence_interval: timedelta | None = None
    """Time between two due times (at least a minute)."""
    cron: str = ""
    """Instead of ``recurrence_interval``: a five-field cron expression (``"30 2 * * 1-5"``), read in ``time_zone``."""
    time_zone: str = ""
    """An IANA time zone name for ``cron`` (empty: UTC)."""
    start_window: timedelta | None = None
    """How long after its due time a job may still be made (at least a minute; None: no limit). A due time
    whose job cannot be made within it (the previous job still running, the schedule disabled) is skipped."""
    do_not_run_until: datetime | None = None
    """No job before this time (None: from the schedule's creation)."""
    do_not_run_after: datetime | None = None
    """No job after this time; the schedule then completes once its active job ended."""

    @classmethod
    def of(
        cls,
        *,
        recurrence_interval: float | timedelta | None = None,
        cron: str = "",
        time_zone: str = "",
        start_window: float | timedelta | None = None,
        do_not_run_until: datetime | None = None,
        do_not_run_after: datetime | None = None,
    ) -> Schedule:
        """A schedule with durations given in seconds or as timedeltas."""
        return cls(
            recurrence_interval=_delta(recurrence_interval) if recurrence_interval is not None else None,
            cron=cron,
            time_zone=time_zone,
            start_window=_delta(start_window) if start_window is not None else None,
            do_not_run_until=do_not_run_until,
            do_not_run_after=do_not_run_after,
        )

    def to_proto(self) -> schedule_pb2.Schedule:
        """The ``shoal.v1.Schedule`` message."""
        msg = schedule_pb2.Schedule(cron=self.cron, time_zone=self.time_zone)
        if self.recurrence_interval is not None:
            msg.recurrence_interval.CopyFrom(duration_to_proto(self.recurrence_interval))
        if self.start_window is not None:
            msg.start_window.CopyFrom(duration_to_proto(self.start_window))
        if self.do_not_run_until is not None:
            msg.do_not_run_until.CopyFrom(_timestamp(self.do_not_run_until))
        if self.do_not_run_after is not None:
            msg.do_not_run_after.CopyFrom(_timestamp(self.do_not_run_after))
        return msg

    @classmethod
    def from_proto(cls, msg: schedule_pb2.Schedule) -> Schedule:
        """Build from a ``shoal.v1.Schedule``."""
        return cls(
            recurrence_interval=_duration(msg, "recurrence_interval"),
            cron=msg.cron,
            time_zone=msg.time_zone,
            start_window=_duration(msg, "start_window"),
            do_not_run_until=_ts(msg, "do_not_run_until"),
            do_not_run_after=_ts(msg, "do_not_run_after"),
        )


@dataclass(frozen=True, kw_only=True)
class JobSchedule:
    """Jobs that recur: a job made from ``job_specification`` at each due time, named ``<id>:job-<n>``."""

    id: str
    """The schedule's id."""
    name: str
    """Resource name ``jobschedules/{id}``."""
    display_name: str
    """Free-form name for people."""
    schedule: Schedule
    """When its jobs are due."""
    job_specification: Job
    """The job each run makes (its id, state and times are empty: they are each job's)."""
    state: JobScheduleState
    """``active``, ``disabled``, ``terminating``, ``completed`` or ``deleting``."""
    next_run_time: datetime | None
    """When the next job is due (in the past while it waits for the job before it; None: no more)."""
    recent_job_id: str
    """The id of the job it made last ("" before the first)."""
    etag: str
    """Changes with every change of the schedule: pass it as ``etag=`` to act only on the schedule as read."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Name/value pairs kept for its users, in their order."""
    creation_time: datetime | None = None
    """When it was created."""
    state_transition_time: datetime | None = None
    """When its state last changed."""
    previous_state: JobScheduleState = JobScheduleState.UNSPECIFIED
    """The state before the current one."""
    end_time: datetime | None = None
    """When it completed."""
    last_modified: datetime | None = None
    """When its schedule, job specification or metadata last changed."""
    proto: schedule_pb2.JobSchedule = field(repr=False, compare=False)
    """The raw ``shoal.v1.JobSchedule`` message."""

    @property
    def pool_id(self) -> str:
        """The pool its jobs run on."""
        return self.job_specification.pool_id

    @classmethod
    def from_proto(cls, msg: schedule_pb2.JobSchedule) -> JobSchedule:
        """Build from a ``shoal.v1.JobSchedule``."""
        ex = msg.execution_info
        return cls(
            id=msg.id,
            name=msg.name,
            display_name=msg.display_name,
            schedule=Schedule.from_proto(msg.schedule),
            job_specification=Job.from_proto(msg.job_specification),
            state=_STATES.get(msg.state, JobScheduleState.UNSPECIFIED),
            next_run_time=_ts(ex, "next_run_time"),
            recent_job_id=ex.recent_job.id,
            etag=msg.etag,
            metadata=_metadata_from_proto(msg.metadata),
            creation_time=_ts(msg, "creation_time"),
            state_transition_time=_ts(msg, "state_transition_time"),
            previous_state=_STATES.get(msg.previous_state, JobScheduleState.UNSPECIFIED),
            end_time=_ts(ex, "end_time"),
            last_modified=_ts(msg, "last_modified"),
            proto=msg,
        )
