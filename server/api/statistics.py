"""GetJobStatistics and GetPoolStatistics (accounting), served from `lifecycle.accounting`: bases of
`JobServicer` and `PoolServicer`, so that the two files do not grow with them.

Tenancy is the authenticator's, as for every request naming a job or pool: another account's job or
pool answers as a missing one (NOT_FOUND, `JOB_NOT_FOUND` / `POOL_NOT_FOUND`).
"""

from __future__ import annotations

import grpc

from shoal.server.api.errors import rpc_errors
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import parse_name
from shoal.v1 import job_pb2, pool_pb2

Ctx = grpc.aio.ServicerContext


class JobStatisticsMethods:
    """JobService.GetJobStatistics."""

    cp: ControlPlane

    @rpc_errors
    async def GetJobStatistics(self, request: job_pb2.GetJobStatisticsRequest, context: Ctx) -> job_pb2.JobStatistics:
        (jid,) = parse_name(request.name, "jobs")
        return self.cp.accounting.job_statistics(jid)


class PoolStatisticsMethods:
    """PoolService.GetPoolStatistics."""

    cp: ControlPlane

    @rpc_errors
    async def GetPoolStatistics(
        self, request: pool_pb2.GetPoolStatisticsRequest, context: Ctx
    ) -> pool_pb2.PoolStatistics:
        (pid,) = parse_name(request.name, "pools")
        return self.cp.accounting.pool_statistics(pid)
