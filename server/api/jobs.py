"""JobService."""

from __future__ import annotations

import grpc

from shoal.server.api.errors import invalid, rpc_errors
from shoal.server.api.etags import tagged
from shoal.server.api.paging import page
from shoal.server.api.validation import (
    JOB_OUTPUT_ONLY,
    MAX_REASON,
    check_duration,
    check_enum,
    check_job,
    check_request_id,
    clear_output_only,
)
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import parse_name
from shoal.v1 import job_pb2, job_pb2_grpc

Ctx = grpc.aio.ServicerContext


class JobServicer(job_pb2_grpc.JobServiceServicer):
    """Serves JobService from the control plane."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    @rpc_errors
    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: Ctx) -> job_pb2.Job:
        v = check_job(request.job) + check_request_id(request.request_id)
        if v:
            raise invalid("INVALID_JOB", v)
        clear_output_only(request.job, JOB_OUTPUT_ONLY)
        return tagged(await self.cp.create_job(request.job, request.request_id))

    @rpc_errors
    async def GetJob(self, request: job_pb2.GetJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.name, "jobs")
        return tagged(self.cp.job(jid).proto)

    @rpc_errors
    async def ListJobs(self, request: job_pb2.ListJobsRequest, context: Ctx) -> job_pb2.ListJobsResponse:
        v = check_enum(request.state, job_pb2.JobState, "state")
        if v:
            raise invalid("INVALID_FILTER", v)
        jobs = (
            j.proto
            for j in sorted(self.cp.jobs.values(), key=lambda j: j.seq)
            if not request.state or j.proto.state == request.state
        )
        items, token = page(jobs, request.page_size, request.page_token, f"jobs?state={request.state}")
        return job_pb2.ListJobsResponse(jobs=[tagged(j) for j in items], next_page_token=token)

    @rpc_errors
    async def UpdateJob(self, request: job_pb2.UpdateJobRequest, context: Ctx) -> job_pb2.Job:
        (jid,) = parse_name(request.job.name or f"jobs/{request.job.id}", "jobs", field="job.name")
        mask = set(request.update_mask) or {"priority", "on_all_tasks_complete"}
        unknown = mask - {"priority", "on_all_tasks_complete"}
        if unknown:
            raise invalid("INVALID_UPDATE_MASK", [("update_mask", f"cannot update {sorted(unknown)}")])
        v = []
        if "priority" in mask and not -1000 <= request.job.priority <= 1000:
            v.append(("job.priority", "must be between -1000 and 1000"))
        if "on_all_tasks_complete" in mask:
            v += check_enum(request.job.on_all_tasks_complete, job_pb2.OnAllTasksComplete, "job.on_all_tasks_complete")
        # The constraints cannot be updated (yet): a malformed Duration there is still refused, not ignored.
        c = request.job.constraints
        if c.HasField("max_wall_clock_time"):
            v += check_duration(c.max_wall_clock_time, "job.constraints.max_wall_clock_time", positive=True)
        if v:
            raise invalid("INVALID_JOB", v)
        on_all = request.job.on_all_tasks_complete if "on_all_tasks_complete" in mask else None
        job = await self.cp.update_job(
            jid, request.job.priority if "priority" in mask else None, on_all or None, etag=request.job.etag
        )
        return tagged(job)

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
