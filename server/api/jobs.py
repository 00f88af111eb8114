"""JobService."""

from __future__ import annotations

import grpc

from shoal.server.api import tenancy
from shoal.server.api.auth import caller
from shoal.server.api.errors import already_exists, failed_precondition, invalid, rpc_errors
from shoal.server.api.etags import tagged
from shoal.server.api.identity_checks import pool_accounts
from shoal.server.api.paging import page
from shoal.server.api.statistics import JobStatisticsMethods
from shoal.server.api.validation import (
    JOB_OUTPUT_ONLY,
    MAX_REASON,
    POOL_OUTPUT_ONLY,
    check_enum,
    check_job,
    check_job_constraints,
    check_job_task_durations,
    check_max_parallel_tasks,
    check_metadata,
    check_request_id,
    clear_output_only,
)
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.ids import parse_name
from shoal.server.lifecycle.jobs import UPDATABLE_JOB_FIELDS
from shoal.v1 import job_pb2, job_pb2_grpc

Ctx = grpc.aio.ServicerContext


class JobServicer(JobStatisticsMethods, job_pb2_grpc.JobServiceServicer):
    """Serves JobService from the control plane."""

    def __init__(self, cp: ControlPlane, quotas: tenancy.QuotasOf = tenancy.no_quotas) -> None:
        self.cp = cp
        self.quotas = quotas

    @rpc_errors
    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: Ctx) -> job_pb2.Job:
        job = request.job
        # (The pool its tasks' user names must be accounts of: the one it names, or the one it has made.)
        auto = job.auto_pool_specification.pool if job.HasField("auto_pool_specification") else None
        named = self.cp.pools.get(idkey(job.pool_id)) if auto is None else None
        pool = auto if auto is not None else (named.proto if named is not None else None)
        accounts = pool_accounts(pool) if pool is not None else None
        v = check_job(job, accounts) + check_request_id(request.request_id)
        if v:
            raise invalid("INVALID_JOB", v)
        if self.cp.schedules.exists(job.id):
            raise already_exists(
                "JOB_SCHEDULE_EXISTS", f"a job schedule with id {job.id!r} exists: a job may not share it"
            )
        clear_output_only(job, JOB_OUTPUT_ONLY)
        if auto is not None:
            clear_output_only(auto, POOL_OUTPUT_ONLY)
        account = request.job.account = caller().account
        tenancy.check_quota(self.cp, account, self.quotas(account), jobs=1)
        return tagged(await self.cp.create_job(request.job, tenancy.scoped_request_id(account, request.request_id)))

    @rpc_errors
    async def GetJob(self, request: job_pb2.GetJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.name, "jobs")
        return tagged(self.cp.job(jid).proto)

    @rpc_errors
    async def ListJobs(self, request: job_pb2.ListJobsRequest, context: Ctx) -> job_pb2.ListJobsResponse:
        v = check_enum(request.state, job_pb2.JobState, "state")
        if v:
            raise invalid("INVALID_FILTER", v)
        account = caller().account
        schedule = idkey(request.job_schedule_id)
        jobs = (
            j.proto
            for j in sorted(self.cp.jobs.values(), key=lambda j: j.seq)
            if (not request.state or j.proto.state == request.state)
            and tenancy.owner(j.proto) == account
            and (not schedule or idkey(j.proto.job_schedule_id) == schedule)
        )
        listing = f"jobs?state={request.state}" + (f"&job_schedule_id={schedule}" if schedule else "")
        items, token = page(jobs, request.page_size, request.page_token, listing)
        return job_pb2.ListJobsResponse(jobs=[tagged(j) for j in items], next_page_token=token)

    @rpc_errors
    async def UpdateJob(self, request: job_pb2.UpdateJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.job.name or f"jobs/{request.job.id}", "jobs", field="job.name")
        mask = frozenset(request.update_mask) or frozenset({"priority", "on_all_tasks_complete"})
        unknown = mask - UPDATABLE_JOB_FIELDS
        if unknown:
            raise invalid(
                "INVALID_UPDATE_MASK",
                [("update_mask", f"cannot update {sorted(unknown)}; updatable: {sorted(UPDATABLE_JOB_FIELDS)}")],
            )
        job = request.job
        v = []
        if "priority" in mask and not -1000 <= job.priority <= 1000:
            v.append(("job.priority", "must be between -1000 and 1000"))
        if "on_all_tasks_complete" in mask:
            v += check_enum(job.on_all_tasks_complete, job_pb2.OnAllTasksComplete, "job.on_all_tasks_complete")
        if "on_task_failure" in mask:
            v += check_enum(job.on_task_failure, job_pb2.OnTaskFailure, "job.on_task_failure")
        if "max_parallel_tasks" in mask:
            v += check_max_parallel_tasks(job, "job.max_parallel_tasks")
        if "metadata" in mask:
            v += check_metadata(job.metadata, "job.metadata")
        # Constraints not in the mask are still checked: a malformed Duration is refused, not ignored.
        v += check_job_constraints(job.constraints, "job.constraints") + check_job_task_durations(job)
        if v:
            raise invalid("INVALID_JOB", v)
        return tagged(await self.cp.update_job(jid, job, mask, etag=job.etag))

    @rpc_errors
    async def DisableJob(self, request: job_pb2.DisableJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.name, "jobs")
        v = check_enum(request.disable_tasks, job_pb2.DisableJobOption, "disable_tasks")
        if v:
            raise invalid("INVALID_DISABLE_OPTION", v)
        return tagged(await self.cp.disable_job(jid, request.disable_tasks, etag=request.etag))

    @rpc_errors
    async def EnableJob(self, request: job_pb2.EnableJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.name, "jobs")
        return tagged(await self.cp.enable_job(jid, etag=request.etag))

    @rpc_errors
    async def ListPreparationAndReleaseTaskStatus(
        self, request: job_pb2.ListPreparationAndReleaseTaskStatusRequest, context: Ctx
    ) -> job_pb2.ListPreparationAndReleaseTaskStatusResponse:
        (jid,) = parse_name(request.name, "jobs")
        job = self.cp.job(jid)
        if not job.proto.HasField("job_preparation_task"):
            raise failed_precondition("JOB_PREPARATION_TASK_NOT_SPECIFIED", f"job {jid!r} has no job preparation task")
        statuses = self.cp.prep_life.statuses(job)
        items, token = page(statuses, request.page_size, request.page_token, f"jobs/{job.key}/prep")
        return job_pb2.ListPreparationAndReleaseTaskStatusResponse(statuses=items, next_page_token=token)

    @rpc_errors
    async def TerminateJob(self, request: job_pb2.TerminateJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.name, "jobs")
        if len(request.terminate_reason) > MAX_REASON:
            raise invalid("INVALID_REASON", [("terminate_reason", f"must be at most {MAX_REASON} characters")])
        return tagged(await self.cp.terminate_job(jid, request.terminate_reason, etag=request.etag))

    @rpc_errors
    async def DeleteJob(self, request: job_pb2.DeleteJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.name, "jobs")
        return tagged(await self.cp.delete_job(jid, etag=request.etag))

    @rpc_errors
    async def GetJobTaskCounts(self, request: job_pb2.GetJobTaskCountsRequest, context: Ctx) -> job_pb2.TaskCounts:
        (jid,) = parse_name(request.name, "jobs")
        return self.cp.job_counts(jid)
