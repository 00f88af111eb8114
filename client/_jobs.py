"""Jobs: ``client.jobs`` (create, read, update, disable/enable, end, and their preparation status)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from shoal.v1 import job_pb2

from ._rpc import PAGE_SIZE, Rpc
from ._stats import JobStatisticsMixin
from .autopool_types import AutoPoolSpecification
from .common_types import _env_to_proto, _metadata_to_proto, duration_to_proto
from .errors import InvalidArgument
from .json_specs import parse_message
from .types import Job, JobState, TaskCounts, job_state_to_proto, on_all_tasks_complete_to_proto
from .workflow_types import (
    DisableJobOption,
    JobConstraints,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    OnDependencyFailure,
    OnTaskFailure,
    PreparationAndReleaseTaskStatus,
    disable_job_option_to_proto,
    on_dependency_failure_to_proto,
    on_task_failure_to_proto,
)

__all__ = ["JobsAPI"]


class JobsAPI(JobStatisticsMixin):
    """Jobs: ``client.jobs``."""

    def __init__(self, rpc: Rpc):
        self._rpc = rpc

    def create(
        self,
        *,
        id: str,
        pool_id: str = "",
        auto_pool: AutoPoolSpecification | None = None,
        priority: int = 0,
        max_task_retry_count: int = 0,
        common_environment: Mapping[str, str] | None = None,
        on_all_tasks_complete: str = "noaction",
        max_wall_clock_time: timedelta | None = None,
        display_name: str = "",
        uses_task_dependencies: bool = False,
        on_task_failure: OnTaskFailure | str | None = None,
        on_dependency_failure: OnDependencyFailure | str | None = None,
        job_manager_task: JobManagerTask | None = None,
        job_preparation_task: JobPreparationTask | None = None,
        job_release_task: JobReleaseTask | None = None,
        max_parallel_tasks: int | None = None,
        metadata: Mapping[str, str] | None = None,
        dedicated_nodes_only: bool = False,
        request_id: str | None = None,
    ) -> Job:
        """Create a job on pool ``pool_id``, or on a pool made for it: ``auto_pool`` (give one of the two).

        An auto pool is deleted when the job completes or is deleted, unless it is kept alive; when it
        cannot be made the job is still made, completed, with :attr:`Job.scheduling_error` saying why.

        ``uses_task_dependencies`` lets its tasks have ``depends_on``;
        ``on_task_failure`` (``noaction`` or ``performexitoptionsjobaction``)
        says whether a task failing for good applies its exit options' job
        action; ``on_dependency_failure`` (``block`` or ``fail``) what happens to
        the dependents of such a task. ``max_parallel_tasks`` caps the job's
        tasks running at once (-1 or None: unlimited). ``metadata`` is kept in
        its order. With ``dedicated_nodes_only`` none of its tasks runs on a low-priority (preemptible)
        node. Options left None send nothing: the server's defaults apply.
        """
        job = job_pb2.Job(
            id=id,
            display_name=display_name,
            pool_id=pool_id,
            priority=priority,
            common_environment_settings=_env_to_proto(common_environment or {}),
            on_all_tasks_complete=on_all_tasks_complete_to_proto(on_all_tasks_complete),  # type: ignore[arg-type]
            uses_task_dependencies=uses_task_dependencies,
            metadata=_metadata_to_proto(metadata or {}),
            dedicated_nodes_only=dedicated_nodes_only,
        )
        job.constraints.max_task_retry_count = max_task_retry_count
        if max_wall_clock_time is not None:
            job.constraints.max_wall_clock_time.CopyFrom(duration_to_proto(max_wall_clock_time))
        if on_task_failure is not None:
            job.on_task_failure = on_task_failure_to_proto(on_task_failure)  # type: ignore[assignment]
        if on_dependency_failure is not None:
            job.on_dependency_failure = on_dependency_failure_to_proto(on_dependency_failure)  # type: ignore[assignment]
        if job_manager_task is not None:
            job.job_manager_task.CopyFrom(job_manager_task.to_proto())
        if job_preparation_task is not None:
            job.job_preparation_task.CopyFrom(job_preparation_task.to_proto())
        if job_release_task is not None:
            job.job_release_task.CopyFrom(job_release_task.to_proto())
        if max_parallel_tasks is not None:
            job.max_parallel_tasks = max_parallel_tasks
        if auto_pool is not None:
            job.auto_pool_specification.CopyFrom(auto_pool.to_proto())
        return self._create(job, request_id)

    def create_from_json(self, data: Mapping[str, Any], *, request_id: str | None = None) -> Job:
        """Create a job from a JSON object in the API's own field names (a ``shoal.v1.Job``).

        Every field is accepted by its proto name or its JSON name (``pool_id``
        or ``poolId``), with enums by name (``"ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION"``)
        and durations as ``"90s"``, as ``az batch job create --json-file`` takes
        Batch's. Unknown fields raise :class:`InvalidArgument` naming them.
        """
        return self._create(parse_message(data, job_pb2.Job, path="", reason="INVALID_JOB_SPEC"), request_id)

    def _create(self, job: job_pb2.Job, request_id: str | None) -> Job:
        request = job_pb2.CreateJobRequest(job=job, request_id=request_id or uuid.uuid4().hex)
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.CreateJob, request))

    def get(self, job_id: str) -> Job:
        """The job ``job_id``."""
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.GetJob, job_pb2.GetJobRequest(name=f"jobs/{job_id}")))

    def list(self, state: JobState | str | None = None) -> Iterator[Job]:
        """Every job (all pages), only those in ``state`` when given."""
        state_value = job_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.jobs.ListJobs,
            lambda token: job_pb2.ListJobsRequest(
                page_size=PAGE_SIZE,
                page_token=token,
                state=state_value,  # type: ignore[arg-type]
            ),
            "jobs",
        ):
            yield Job.from_proto(msg)

    def update(
        self,
        job_id: str,
        *,
        priority: int | None = None,
        constraints: JobConstraints | None = None,
        on_all_tasks_complete: str | None = None,
        on_task_failure: OnTaskFailure | str | None = None,
        max_parallel_tasks: int | None = None,
        metadata: Mapping[str, str] | None = None,
        auto_pool_keep_alive: bool | None = None,
        etag: str | None = None,
    ) -> Job:
        """Change the fields given (and only those: the update mask names them).

        ``constraints`` replaces the job's constraints whole (start from
        :attr:`Job.constraints` to change one of them); ``on_all_tasks_complete``
        cannot go back to ``noaction``; ``max_parallel_tasks=-1`` lifts the cap;
        ``metadata`` replaces the job's metadata (``{}`` clears it);
        ``auto_pool_keep_alive`` whether the job's auto pool outlives it. With
        ``etag`` (a :attr:`Job.etag` read before), raises :class:`Aborted`
        ``ETAG_MISMATCH`` if the job changed since.
        """
        job = job_pb2.Job(name=f"jobs/{job_id}", id=job_id, etag=etag or "")
        mask = []
        if priority is not None:
            job.priority = priority
            mask.append("priority")
        if constraints is not None:
            job.constraints.CopyFrom(constraints.to_proto())
            mask.append("constraints")
        if on_all_tasks_complete is not None:
            job.on_all_tasks_complete = on_all_tasks_complete_to_proto(on_all_tasks_complete)  # type: ignore[assignment]
            mask.append("on_all_tasks_complete")
        if on_task_failure is not None:
            job.on_task_failure = on_task_failure_to_proto(on_task_failure)  # type: ignore[assignment]
            mask.append("on_task_failure")
        if max_parallel_tasks is not None:
            job.max_parallel_tasks = max_parallel_tasks
            mask.append("max_parallel_tasks")
        if metadata is not None:
            job.metadata.extend(_metadata_to_proto(metadata))
            mask.append("metadata")
        if auto_pool_keep_alive is not None:
            job.auto_pool_specification.keep_alive = auto_pool_keep_alive
            mask.append("auto_pool_specification.keep_alive")
        if not mask:
            raise InvalidArgument(
                "nothing to update", reason="EMPTY_UPDATE", field_violations=[("update_mask", "empty")]
            )
        request = job_pb2.UpdateJobRequest(job=job, update_mask=mask)
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.UpdateJob, request))

    def disable(
        self, job_id: str, *, disable_tasks: DisableJobOption | str = DisableJobOption.REQUEUE, etag: str | None = None
    ) -> Job:
        """Stop scheduling the job's tasks: ``active`` → ``disabling`` → ``disabled``.

        ``disable_tasks`` says what happens to its running tasks: ``requeue``
        (ended, to run again once enabled), ``terminate`` (ended, failed) or
        ``wait`` (left to finish; the job stays ``disabling`` meanwhile). Only an
        active job may be disabled (:class:`FailedPrecondition` otherwise); with
        ``etag``, only the job as read.
        """
        request = job_pb2.DisableJobRequest(
            name=f"jobs/{job_id}",
            disable_tasks=disable_job_option_to_proto(disable_tasks),  # type: ignore[arg-type]
            etag=etag or "",
        )
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.DisableJob, request))

    def enable(self, job_id: str, *, etag: str | None = None) -> Job:
        """Schedule a disabled job's tasks again: ``disabled`` → ``enabling`` → ``active``.

        Only a disabled job may be enabled (:class:`FailedPrecondition` otherwise); with ``etag``, only the
        job as read.
        """
        request = job_pb2.EnableJobRequest(name=f"jobs/{job_id}", etag=etag or "")
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.EnableJob, request))

    def terminate(self, job_id: str, *, reason: str = "", etag: str | None = None) -> Job:
        """End the job's running tasks; the job becomes completed (conditional on ``etag`` when given)."""
        request = job_pb2.TerminateJobRequest(name=f"jobs/{job_id}", terminate_reason=reason, etag=etag or "")
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.TerminateJob, request))

    def delete(self, job_id: str, *, etag: str | None = None) -> Job:
        """Delete the job, its tasks and their directories on the nodes (conditional on ``etag`` when given)."""
        request = job_pb2.DeleteJobRequest(name=f"jobs/{job_id}", etag=etag or "")
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.DeleteJob, request))

    def task_counts(self, job_id: str) -> TaskCounts:
        """How many of the job's tasks are in each state, and how many wait on or are blocked by others."""
        request = job_pb2.GetJobTaskCountsRequest(name=f"jobs/{job_id}")
        return TaskCounts.from_proto(self._rpc.unary(self._rpc.jobs.GetJobTaskCounts, request))

    def prep_release_status(self, job_id: str) -> Iterator[PreparationAndReleaseTaskStatus]:
        """Per node (all pages): the job preparation and release tasks run there.

        For a job without a preparation task the server refuses with reason
        ``JOB_PREPARATION_TASK_NOT_SPECIFIED``.
        """
        for msg in self._rpc.pages(
            self._rpc.jobs.ListPreparationAndReleaseTaskStatus,
            lambda token: job_pb2.ListPreparationAndReleaseTaskStatusRequest(
                name=f"jobs/{job_id}", page_size=PAGE_SIZE, page_token=token
            ),
            "statuses",
        ):
            yield PreparationAndReleaseTaskStatus.from_proto(msg)
