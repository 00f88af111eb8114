"""JobScheduleService: Batch's job schedules (the rules are `server/lifecycle/schedules.py`)."""

from __future__ import annotations

import grpc

from shoal.server.api import tenancy
from shoal.server.api.auth import caller
from shoal.server.api.errors import invalid, not_found, rpc_errors
from shoal.server.api.etags import tagged
from shoal.server.api.identity_checks import PoolAccounts, pool_accounts
from shoal.server.api.paging import page
from shoal.server.api.schedule_checks import SCHEDULE_OUTPUT_ONLY, check_job_schedule, check_update
from shoal.server.api.validation import POOL_OUTPUT_ONLY, check_enum, check_request_id, clear_output_only
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import check_id, parse_name
from shoal.server.domain.ids import key as idkey
from shoal.server.lifecycle.schedules import UPDATABLE_SCHEDULE_FIELDS, ScheduleRec
from shoal.server.scheduling.schedules import MIN_SCHEDULE_SECONDS
from shoal.v1 import job_pb2, schedule_pb2, schedule_pb2_grpc

Ctx = grpc.aio.ServicerContext
S = schedule_pb2


def schedule_id_of(name: str, field: str = "name") -> str:
    """The id in `jobschedules/{id}`, or `name` itself when it is a bare id (refused: INVALID_NAME)."""
    if "/" not in name:
        check_id(name, field, "INVALID_NAME")
        return name
    (sid,) = parse_name(name, "jobschedules", field=field)
    return sid


def _clear_auto_pool_output_only(spec: job_pb2.Job) -> None:
    """Drop what the server sets on a pool from the auto pool a job specification makes (as CreateJob does):
    each job's pool is made from it as it is stored."""
    if spec.HasField("auto_pool_specification"):
        clear_output_only(spec.auto_pool_specification.pool, POOL_OUTPUT_ONLY)


class JobScheduleServicer(schedule_pb2_grpc.JobScheduleServiceServicer):
    """Serves JobScheduleService from the control plane; every schedule belongs to its caller's account."""

    def __init__(
        self,
        cp: ControlPlane,
        quotas: tenancy.QuotasOf = tenancy.no_quotas,
        *,
        min_seconds: float = MIN_SCHEDULE_SECONDS,
    ) -> None:
        self.cp = cp
        self.quotas = quotas
        #: The shortest start window and recurrence interval taken (Batch's minute; lower only for tests).
        self.min_seconds = min_seconds

    def _own(self, name: str, field: str = "name") -> ScheduleRec:
        """The caller's schedule named `name`; another account's is answered as missing."""
        sid = schedule_id_of(name, field)
        rec = self.cp.schedules.schedule(sid)
        if tenancy.owner(rec.proto) != caller().account:
            raise not_found("JOB_SCHEDULE_NOT_FOUND", f"job schedule {sid!r} does not exist")
        return rec

    def _pool_accounts(self, spec: job_pb2.Job) -> PoolAccounts | None:
        """The user accounts of the job specification's pool (another account's pool: refused as missing),
        or of the auto pool it makes."""
        if spec.HasField("auto_pool_specification"):
            return pool_accounts(spec.auto_pool_specification.pool)
        if not spec.pool_id:
            return None
        pool = self.cp.pools.get(idkey(spec.pool_id))
        if pool is None or tenancy.owner(pool.proto) != caller().account:
            raise not_found("POOL_NOT_FOUND", f"pool {spec.pool_id!r} does not exist")
        return pool_accounts(pool.proto)

    @rpc_errors
    async def CreateJobSchedule(
        self, request: schedule_pb2.CreateJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        js = request.job_schedule
        v = check_job_schedule(js, None, self.min_seconds) + check_request_id(request.request_id)
        if v:
            raise invalid("INVALID_JOB_SCHEDULE", v)
        # (Checked again with the pool's user accounts, now that its id is known to be well formed.)
        v = check_job_schedule(js, self._pool_accounts(js.job_specification), self.min_seconds)
        if v:
            raise invalid("INVALID_JOB_SCHEDULE", v)
        clear_output_only(js, SCHEDULE_OUTPUT_ONLY)
        _clear_auto_pool_output_only(js.job_specification)
        account = js.account = caller().account
        tenancy.check_quota(self.cp, account, self.quotas(account), jobs=1)
        made = await self.cp.create_job_schedule(js, tenancy.scoped_request_id(account, request.request_id))
        return tagged(made)

    @rpc_errors
    async def GetJobSchedule(
        self, request: schedule_pb2.GetJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        return tagged(self._own(request.name).proto)

    @rpc_errors
    async def ListJobSchedules(
        self, request: schedule_pb2.ListJobSchedulesRequest, context: Ctx
    ) -> schedule_pb2.ListJobSchedulesResponse:
        v = check_enum(request.state, S.JobScheduleState, "state")
        if v:
            raise invalid("INVALID_FILTER", v)
        account = caller().account
        found = (
            r.proto
            for r in sorted(self.cp.schedules.schedules.values(), key=lambda r: r.seq)
            if (not request.state or r.proto.state == request.state) and tenancy.owner(r.proto) == account
        )
        items, token = page(found, request.page_size, request.page_token, f"jobschedules?state={request.state}")
        return S.ListJobSchedulesResponse(job_schedules=[tagged(s) for s in items], next_page_token=token)

    @rpc_errors
    async def UpdateJobSchedule(
        self, request: schedule_pb2.UpdateJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        js = request.job_schedule
        rec = self._own(js.name, "job_schedule.name") if js.name else self._own(js.id, "job_schedule.id")
        mask = frozenset(request.update_mask.paths)
        if not mask:
            raise invalid(
                "INVALID_UPDATE_MASK",
                [("update_mask", f"name the fields to update, among {sorted(UPDATABLE_SCHEDULE_FIELDS)}")],
            )
        unknown = mask - UPDATABLE_SCHEDULE_FIELDS
        if unknown:
            raise invalid(
                "INVALID_UPDATE_MASK",
                [("update_mask", f"cannot update {sorted(unknown)}; updatable: {sorted(UPDATABLE_SCHEDULE_FIELDS)}")],
            )
        v = check_update(js, mask, None, self.min_seconds)
        if not v and "job_specification" in mask:
            v = check_update(js, mask, self._pool_accounts(js.job_specification), self.min_seconds)
        if v:
            raise invalid("INVALID_JOB_SCHEDULE", v)
        if "job_specification" in mask:
            _clear_auto_pool_output_only(js.job_specification)
        etag = request.etag or js.etag
        return tagged(await self.cp.update_job_schedule(rec.proto.id, js, mask, etag=etag))

    @rpc_errors
    async def DeleteJobSchedule(
        self, request: schedule_pb2.DeleteJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        rec = self._own(request.name)
        return tagged(await self.cp.delete_job_schedule(rec.proto.id, etag=request.etag))

    @rpc_errors
    async def DisableJobSchedule(
        self, request: schedule_pb2.DisableJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        rec = self._own(request.name)
        return tagged(await self.cp.disable_job_schedule(rec.proto.id, etag=request.etag))

    @rpc_errors
    async def EnableJobSchedule(
        self, request: schedule_pb2.EnableJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        rec = self._own(request.name)
        return tagged(await self.cp.enable_job_schedule(rec.proto.id, etag=request.etag))

    @rpc_errors
    async def TerminateJobSchedule(
        self, request: schedule_pb2.TerminateJobScheduleRequest, context: Ctx
    ) -> schedule_pb2.JobSchedule:
        rec = self._own(request.name)
        return tagged(await self.cp.terminate_job_schedule(rec.proto.id, etag=request.etag))

    @rpc_errors
    async def ListJobsFromSchedule(
        self, request: schedule_pb2.ListJobsFromScheduleRequest, context: Ctx
    ) -> job_pb2.ListJobsResponse:
        v = check_enum(request.state, job_pb2.JobState, "state")
        if v:
            raise invalid("INVALID_FILTER", v)
        rec = self._own(request.name)
        jobs = (j.proto for j in self.cp.schedules.jobs_of(rec) if not request.state or j.proto.state == request.state)
        listing = f"jobschedules/{rec.key}/jobs?state={request.state}"
        items, token = page(jobs, request.page_size, request.page_token, listing)
        return job_pb2.ListJobsResponse(jobs=[tagged(j) for j in items], next_page_token=token)
