"""Elasticity in the client: autoscale formulas and preempting low-priority nodes (a base of
``PoolsAPI``: ``client.pools.enable_auto_scale`` and the others)."""

from __future__ import annotations

from datetime import timedelta

from shoal.v1 import pool_pb2

from ._rpc import Rpc
from .autoscale_types import AutoScaleRun
from .common_types import duration_to_proto
from .types import Node, Pool

__all__ = ["AutoScaleMixin"]


class AutoScaleMixin:
    """Autoscale and preemption of one pool's nodes."""

    _rpc: Rpc

    def enable_auto_scale(
        self,
        pool_id: str,
        *,
        formula: str | None = None,
        evaluation_interval: float | timedelta | None = None,
        etag: str | None = None,
    ) -> Pool:
        """Let the pool size itself by ``formula`` (Batch's autoscale language), evaluated at once and then
        every ``evaluation_interval`` (seconds, 5 s to 168 h; default 15 s). Either may be left out when
        autoscale is enabled already (the current one stays; a new interval restarts the schedule).

        Raises :class:`InvalidArgument` ``INVALID_AUTO_SCALE_FORMULA`` naming the line and column of a
        formula error, :class:`FailedPrecondition` ``POOL_RESIZING`` while the pool resizes, and
        ``TOO_MANY_ENABLE_AUTO_SCALE_REQUESTS`` within 30 s of the last enable (as Batch).
        """
        request = pool_pb2.EnableAutoScaleRequest(
            name=f"pools/{pool_id}", auto_scale_formula=formula or "", etag=etag or ""
        )
        if evaluation_interval is not None:
            request.auto_scale_evaluation_interval.CopyFrom(
                duration_to_proto(
                    evaluation_interval
                    if isinstance(evaluation_interval, timedelta)
                    else timedelta(seconds=evaluation_interval)
                )
            )
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.EnableAutoScale, request))

    def disable_auto_scale(self, pool_id: str, *, etag: str | None = None) -> Pool:
        """Size the pool by hand again; it keeps the targets its formula last set."""
        request = pool_pb2.DisableAutoScaleRequest(name=f"pools/{pool_id}", etag=etag or "")
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.DisableAutoScale, request))

    def evaluate_auto_scale(self, pool_id: str, formula: str | None = None) -> AutoScaleRun:
        """A dry run of ``formula`` (default: the pool's) on the pool's live metrics: the value of every
        variable, or the error and where it is (:attr:`AutoScaleRun.error`). Nothing is applied. Only on a
        pool with autoscale enabled (:class:`FailedPrecondition` ``AUTO_SCALE_NOT_ENABLED``), as in Batch."""
        request = pool_pb2.EvaluateAutoScaleRequest(name=f"pools/{pool_id}", auto_scale_formula=formula or "")
        return AutoScaleRun.from_proto(self._rpc.unary(self._rpc.pools.EvaluateAutoScale, request))

    def preempt_node(self, pool_id: str, node_id: str) -> Node:
        """Have the provider take a low-priority node back now, as a spot eviction would (local pools):
        the node goes ``preempted``, its tasks are requeued, and it starts again as new once the provider
        has capacity (the server's ``--spot-recovery-seconds``)."""
        request = pool_pb2.PreemptNodeRequest(name=f"pools/{pool_id}/nodes/{node_id}")
        return Node.from_proto(self._rpc.unary(self._rpc.pools.PreemptNode, request))
