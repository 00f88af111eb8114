"""A pool's allocation beyond plain resizes: removing named nodes, stopping a resize, and resize timeouts.

Decided by `server.scheduling.resizing`; applied here through the kernel, as `PoolLifecycle.resize_pool`
applies a resize: the pool's target and errors written with its nodes' new states, then the leaving
nodes dismissed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shoal.server.domain.errors import FailedPrecondition, invalid_input
from shoal.server.domain.etags import check_etag
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import NodeRec, PoolRec
from shoal.server.lifecycle.pools import members
from shoal.server.scheduling import resizing
from shoal.v1 import pool_pb2 as P

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel


class PoolAllocation:
    """RemoveNodes, StopPoolResize and the resize timeout."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def _active(self, pool_id: str, etag: str) -> PoolRec:
        pool = self.k.pool(pool_id)
        check_etag(f"pool {pool_id!r}", pool.proto, etag)
        if pool.proto.state != P.POOL_STATE_ACTIVE:
            raise FailedPrecondition("POOL_BEING_DELETED", f"pool {pool_id!r} is being deleted")
        self.k.refresh_pool_now(pool)
        return pool

    async def remove_nodes(
        self, pool_id: str, node_ids: Sequence[str], option: int, timeout: float | None, *, etag: str = ""
    ) -> P.Pool:
        """Exactly those nodes leave (their tasks as `option` says); the pool's target drops by as many."""
        pool = self._active(pool_id, etag)
        if pool.proto.allocation_state != P.ALLOCATION_STATE_STEADY:
            raise FailedPrecondition(
                "POOL_RESIZING", f"pool {pool_id!r} is resizing: remove nodes once its allocation state is steady"
            )
        v = resizing.removal_problems(node_ids, {n.key: n.state for n in pool.nodes.values()})
        if v:
            raise invalid_input("INVALID_NODE_IDS", v)
        leaving = [pool.nodes[idkey(i)] for i in node_ids]
        low = sum(1 for n in leaving if not n.proto.is_dedicated)
        pool.proto.target_nodes = max(0, pool.proto.target_nodes - (len(leaving) - low))
        pool.proto.target_low_priority_nodes = max(0, pool.proto.target_low_priority_nodes - low)
        if timeout is not None:
            pool.proto.resize_timeout.FromSeconds(int(timeout))
        del pool.proto.resize_errors[:]
        self.k.mark("pools", pool.key, pool)
        for n in leaving:
            self.k.node_life.leave(n, option)
        return await self._applied(pool, leaving)

    async def stop_resize(self, pool_id: str, *, etag: str = "") -> P.Pool:
        """The resize stops where it is: what is made stays, nothing more is made, nothing rolled back."""
        pool = self._active(pool_id, etag)
        if pool.proto.enable_auto_scale:
            raise FailedPrecondition(
                "AUTO_SCALE_ENABLED",
                f"pool {pool_id!r} sizes itself by its autoscale formula: disable autoscale to stop its resize",
            )
        if pool.proto.allocation_state != P.ALLOCATION_STATE_RESIZING:
            raise FailedPrecondition("POOL_NOT_RESIZING", f"pool {pool_id!r} is not resizing")
        dedicated = len(members(pool, dedicated=True))
        low = len(members(pool, dedicated=False))
        target, target_low = pool.proto.target_nodes, pool.proto.target_low_priority_nodes
        pool.proto.target_nodes = dedicated
        pool.proto.target_low_priority_nodes = low
        pool.proto.resize_errors.append(
            resizing.resize_error(
                "ResizeStopped",
                f"the resize to {target} nodes (and {target_low} low-priority) was stopped at {dedicated} (and {low})",
                target=str(target),
                reached=str(dedicated),
                target_low_priority=str(target_low),
                reached_low_priority=str(low),
            )
        )
        pool.proto.allocation_state = P.ALLOCATION_STATE_STOPPING
        pool.proto.allocation_state_transition_time.CopyFrom(self.k.stamp())
        self.k.mark("pools", pool.key, pool)
        return await self._applied(pool, [])

    async def check_resize_timeouts(self) -> None:
        """Resizes past their pool's timeout give up the nodes that have not come up (AllocationTimedout)."""
        now = self.k.clock.now()
        changed: list[tuple[PoolRec, list[NodeRec]]] = []
        for pool in self.k.pools.values():
            p = pool.proto
            since = (
                p.allocation_state_transition_time.ToDatetime()
                if p.HasField("allocation_state_transition_time")
                else None
            )
            if since is not None and now.tzinfo is not None:
                since = since.replace(tzinfo=now.tzinfo)
            if not resizing.timed_out(p.allocation_state, since, now, resizing.timeout_seconds(p)):
                continue
            stuck = [n for n in pool.nodes.values() if n.state in resizing.NOT_UP]
            if p.provider == "local":
                stuck_low = sum(1 for n in stuck if not n.proto.is_dedicated)
                p.target_nodes = len(members(pool, dedicated=True)) - (len(stuck) - stuck_low)
                p.target_low_priority_nodes = len(members(pool, dedicated=False)) - stuck_low
            p.resize_errors.append(
                resizing.resize_error(
                    "AllocationTimedout",
                    f"{len(stuck)} node(s) did not come up within the resize timeout",
                    nodes=",".join(n.proto.id for n in stuck),
                )
            )
            self.k.mark("pools", pool.key, pool)
            for n in stuck:
                self.k.node_life.leave(n, P.NODE_DEALLOCATION_OPTION_REQUEUE)
            self.k.refresh_pool_now(pool)
            if p.allocation_state == P.ALLOCATION_STATE_RESIZING:
                # What is still settling (leaving) is not waited for again: the resize is over.
                p.allocation_state = P.ALLOCATION_STATE_STOPPING
                p.allocation_state_transition_time.CopyFrom(self.k.stamp())
            changed.append((pool, stuck))
        if not changed:
            return
        await self.k.flush()
        for _pool, stuck in changed:
            self.k.node_life.after_node_changes(stuck)

    async def _applied(self, pool: PoolRec, leaving: list[NodeRec]) -> P.Pool:
        self.k.refresh_pool_now(pool)
        await self.k.flush()
        self.k.node_life.after_node_changes(leaving)
        self.k.kick_scheduler()
        return pool.proto
