"""Job schedules: ``client.schedules`` (create, read, update, disable/enable, terminate, delete, their jobs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from google.protobuf import field_mask_pb2

from shoal.v1 import job_pb2, schedule_pb2

from ._rpc import PAGE_SIZE, Rpc
from .common_types import _env_to_proto, _metadata_to_proto, duration_to_proto
from .errors import InvalidArgument
from .json_specs import parse_message
from .schedule_types import JobSchedule, JobScheduleState, Schedule, job_schedule_state_to_proto
from .types import Job, JobState, job_state_to_proto, on_all_tasks_complete_to_proto
from .workflow_types import JobManagerTask, JobPreparationTask, JobReleaseTask

__all__ = ["SchedulesAPI", "job_specification"]


def job_specification(
    *,
    pool_id: str,
    job_manager_task: JobManagerTask | None = None,
    priority: int = 0,
    max_task_retry_count: int = 0,
    max_wall_clock_time: timedelta | None = None,
    common_environment: Mapping[str, str] | None = None,
    on_all_tasks_complete: str = "noaction",
    job_preparation_task: JobPreparationTask | None = None,
    job_release_task: JobReleaseTask | None = None,
    display_name: str = "",
    metadata: Mapping[str, str] | None = None,
) -> job_pb2.Job:
    """The job a schedule makes at each due time, as a ``shoal.v1.Job`` (no id: each job gets its own).

    A job manager task is the usual way to give a scheduled job its tasks: it runs first and adds them;
    by default its job completes when it does.
    """
    job = job_pb2.Job(
        pool_id=pool_id,
        display_name=display_name,
        priority=priority,
        common_environment_settings=_env_to_proto(common_environment or {}),
        on_all_tasks_complete=on_all_tasks_complete_to_proto(on_all_tasks_complete),  # type: ignore[arg-type]
        metadata=_metadata_to_proto(metadata or {}),
    )
    job.constraints.max_task_retry_count = max_task_retry_count
    if max_wall_clock_time is not None:
        job.constraints.max_wall_clock_time.CopyFrom(duration_to_proto(max_wall_clock_time))
    if job_manager_task is not None:
        job.job_manager_task.CopyFrom(job_manager_task.to_proto())
    if job_preparation_task is not None:
        job.job_preparation_task.CopyFrom(job_preparation_task.to_proto())
    if job_release_task is not None:
        job.job_release_task.CopyFrom(job_release_task.to_proto())
    return job


def _spec_message(spec: job_pb2.Job | Mapping[str, Any]) -> job_pb2.Job:
    if isinstance(spec, job_pb2.Job):
        return spec
    return parse_message(spec, job_pb2.Job, path="job_specification", reason="INVALID_JOB_SPEC")


class SchedulesAPI:
    """Job schedules (Batch's JobSchedule): ``client.schedules``."""

    def __init__(self, rpc: Rpc):
        self._rpc = rpc

    def create(
        self,
        *,
        id: str,
        job: job_pb2.Job | Mapping[str, Any],
        schedule: Schedule | None = None,
        display_name: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> JobSchedule:
        """Create schedule ``id``, making ``job`` (see :func:`job_specification`, or a JSON object in the API's
        field names) at each due time of ``schedule`` (None: one job, now).

        Its jobs are named ``<id>:job-1``, ``<id>:job-2``...; at most one is active at a time: a due time that
        comes while one runs waits for it, and is skipped if its ``start_window`` passes first.
        """
        msg = schedule_pb2.JobSchedule(
            id=id,
            display_name=display_name,
            schedule=(schedule or Schedule()).to_proto(),
            job_specification=_spec_message(job),
            metadata=_metadata_to_proto(metadata or {}),
        )
        return self._create(msg, request_id)

    def create_from_json(self, data: Mapping[str, Any], *, request_id: str | None = None) -> JobSchedule:
        """Create a schedule from a JSON object in the API's own field names (a ``shoal.v1.JobSchedule``:
        ``id``, ``schedule``, ``job_specification``...). Unknown fields raise :class:`InvalidArgument`."""
        msg = parse_message(data, schedule_pb2.JobSchedule, path="", reason="INVALID_JOB_SCHEDULE_SPEC")
        return self._create(msg, request_id)

    def _create(self, msg: schedule_pb2.JobSchedule, request_id: str | None) -> JobSchedule:
        request = schedule_pb2.CreateJobScheduleRequest(job_schedule=msg, request_id=request_id or uuid.uuid4().hex)
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.CreateJobSchedule, request))

    def get(self, schedule_id: str) -> JobSchedule:
        """The schedule ``schedule_id``."""
        request = schedule_pb2.GetJobScheduleRequest(name=f"jobschedules/{schedule_id}")
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.GetJobSchedule, request))

    def list(self, state: JobScheduleState | str | None = None) -> Iterator[JobSchedule]:
        """Every schedule (all pages), only those in ``state`` when given."""
        value = job_schedule_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.schedules.ListJobSchedules,
            lambda token: schedule_pb2.ListJobSchedulesRequest(
                page_size=PAGE_SIZE,
                page_token=token,
                state=value,  # type: ignore[arg-type]
            ),
            "job_schedules",
        ):
            yield JobSchedule.from_proto(msg)

    def update(
        self,
        schedule_id: str,
        *,
        schedule: Schedule | None = None,
        job: job_pb2.Job | Mapping[str, Any] | None = None,
        display_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        etag: str | None = None,
    ) -> JobSchedule:
        """Replace the fields given (and only those): they apply to the jobs made from then on, and the next
        run time is worked out again. With ``etag``, only the schedule as read."""
        msg = schedule_pb2.JobSchedule(name=f"jobschedules/{schedule_id}")
        mask = []
        if schedule is not None:
            msg.schedule.CopyFrom(schedule.to_proto())
            mask.append("schedule")
        if job is not None:
            msg.job_specification.CopyFrom(_spec_message(job))
            mask.append("job_specification")
        if display_name is not None:
            msg.display_name = display_name
            mask.append("display_name")
        if metadata is not None:
            msg.metadata.extend(_metadata_to_proto(metadata))
            mask.append("metadata")
        if not mask:
            raise InvalidArgument(
                "nothing to update", reason="EMPTY_UPDATE", field_violations=[("update_mask", "empty")]
            )
        request = schedule_pb2.UpdateJobScheduleRequest(
            job_schedule=msg, update_mask=field_mask_pb2.FieldMask(paths=mask), etag=etag or ""
        )
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.UpdateJobSchedule, request))

    def disable(self, schedule_id: str, *, etag: str | None = None) -> JobSchedule:
        """Make no job until enabled (its active job goes on)."""
        request = schedule_pb2.DisableJobScheduleRequest(name=f"jobschedules/{schedule_id}", etag=etag or "")
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.DisableJobSchedule, request))

    def enable(self, schedule_id: str, *, etag: str | None = None) -> JobSchedule:
        """Make jobs again; one due now (its window still open) is made at once."""
        request = schedule_pb2.EnableJobScheduleRequest(name=f"jobschedules/{schedule_id}", etag=etag or "")
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.EnableJobSchedule, request))

    def terminate(self, schedule_id: str, *, etag: str | None = None) -> JobSchedule:
        """Terminate its active job (reason ``TerminateJobSchedule``); the schedule completes when it has."""
        request = schedule_pb2.TerminateJobScheduleRequest(name=f"jobschedules/{schedule_id}", etag=etag or "")
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.TerminateJobSchedule, request))

    def delete(self, schedule_id: str, *, etag: str | None = None) -> JobSchedule:
        """Delete its jobs, then the schedule (``deleting`` meanwhile)."""
        request = schedule_pb2.DeleteJobScheduleRequest(name=f"jobschedules/{schedule_id}", etag=etag or "")
        return JobSchedule.from_proto(self._rpc.unary(self._rpc.schedules.DeleteJobSchedule, request))

    def jobs(self, schedule_id: str, *, state: JobState | str | None = None) -> Iterator[Job]:
        """The jobs the schedule made (those not deleted), oldest first; only those in ``state`` when given."""
        value = job_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.schedules.ListJobsFromSchedule,
            lambda token: schedule_pb2.ListJobsFromScheduleRequest(
                name=f"jobschedules/{schedule_id}",
                page_size=PAGE_SIZE,
                page_token=token,
                state=value,  # type: ignore[arg-type]
            ),
            "jobs",
        ):
            yield Job.from_proto(msg)
