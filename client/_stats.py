"""Accounting: ``client.jobs.statistics(job_id)`` and ``client.pools.statistics(pool_id)`` (mixins of
`JobsAPI` and `PoolsAPI`)."""

from __future__ import annotations

from shoal.v1 import job_pb2, pool_pb2

from ._rpc import Rpc
from .stats_types import JobStatistics, PoolStatistics

__all__ = ["JobStatisticsMixin", "PoolStatisticsMixin"]


class JobStatisticsMixin:
    """``client.jobs.statistics``."""

    _rpc: Rpc

    def statistics(self, job_id: str) -> JobStatistics:
        """What the job's tasks used: every attempt of every task, deleted tasks included."""
        request = job_pb2.GetJobStatisticsRequest(name=f"jobs/{job_id}")
        return JobStatistics.from_proto(job_id, self._rpc.unary(self._rpc.jobs.GetJobStatistics, request))


class PoolStatisticsMixin:
    """``client.pools.statistics``."""

    _rpc: Rpc

    def statistics(self, pool_id: str) -> PoolStatistics:
        """What ran on the pool (the attempts that ended on its nodes) and its nodes' time."""
        request = pool_pb2.GetPoolStatisticsRequest(name=f"pools/{pool_id}")
        return PoolStatistics.from_proto(pool_id, self._rpc.unary(self._rpc.pools.GetPoolStatistics, request))
