"""Pools and their sizing: create, resize, delete; which nodes leave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shoal.clock import to_timestamp
from shoal.server.domain import states
from shoal.server.domain.errors import AlreadyExists, FailedPrecondition
from shoal.server.domain.etags import check_etag
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import NodeRec, PoolRec
from shoal.server.scheduling import poolupdate
from shoal.v1 import pool_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

ts = to_timestamp
P = pool_pb2


class PoolLifecycle:
    """Pools: their creation, size and deletion."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    async def create_pool(self, spec: pool_pb2.Pool, request_id: str = "") -> pool_pb2.Pool:
        """Create a pool and start making its nodes."""
        if request_id and f"pool:{request_id}" in self.k.requests:
            return self.k.pool(self.k.requests[f"pool:{request_id}"]).proto
        rec = self.make_pool(spec)
        if request_id:
            self.k.requests[f"pool:{request_id}"] = spec.id
            self.k.mark("requests", f"pool:{request_id}", spec.id)
        await self.k.flush()
        return rec.proto

    def make_pool(self, spec: pool_pb2.Pool) -> PoolRec:
        """Make the pool `spec` describes in this change; its nodes start once the caller's flush has
        committed it. Refused (ALREADY_EXISTS) if its id is taken."""
        k = idkey(spec.id)
        if k in self.k.pools:
            raise AlreadyExists("POOL_EXISTS", f"pool {spec.id!r} already exists")
        pool = P.Pool()
        pool.CopyFrom(spec)
        now = self.k.clock.now()
        pool.name = f"pools/{spec.id}"
        pool.provider = spec.provider or "local"
        pool.task_slots_per_node = spec.task_slots_per_node or 1
        pool.state = P.POOL_STATE_ACTIVE
        pool.allocation_state = P.ALLOCATION_STATE_RESIZING
        pool.creation_time.CopyFrom(ts(now))
        pool.state_transition_time.CopyFrom(ts(now))
        pool.allocation_state_transition_time.CopyFrom(ts(now))
        pool.current_nodes = 0
        # (Its registries' passwords are kept apart, written with it: never stored in it or returned.)
        self.k.registry_credentials.keep_pool(pool)
        rec = PoolRec(k, pool)
        self.k.pools[k] = rec
        self.k.mark("pools", k, rec)
        new_nodes = self.grow(rec)
        self.k.refresh_pool(rec)
        if new_nodes:
            self.k.after_commit(lambda: self.start_nodes(new_nodes))
        return rec

    def grow(self, pool: PoolRec) -> list[NodeRec]:
        """Make the nodes the pool lacks for its dedicated and low-priority targets (CREATING)."""
        if pool.proto.provider != "local":
            return []
        added = []
        for dedicated, target in ((True, pool.proto.target_nodes), (False, pool.proto.target_low_priority_nodes)):
            for _ in range(target - len(members(pool, dedicated=dedicated))):
                added.append(self._make_node(pool, dedicated))
        return added

    def _make_node(self, pool: PoolRec, dedicated: bool) -> NodeRec:
        self.k.meta["node_counter"] += 1
        self.k.mark_meta("node_counter")
        n = self.k.meta["node_counter"]
        node_id = f"node-{n}"
        ip = f"127.0.{1 + (n - 1) // 254}.{1 + (n - 1) % 254}"
        now = ts(self.k.clock.now())
        proto = P.Node(
            name=f"pools/{pool.proto.id}/nodes/{node_id}",
            id=node_id,
            pool_id=pool.proto.id,
            state=P.NODE_STATE_CREATING,
            ip_address=ip,
            task_slots=pool.proto.task_slots_per_node,
            is_dedicated=dedicated,
        )
        proto.state_transition_time.CopyFrom(now)
        proto.allocation_time.CopyFrom(now)
        rec = NodeRec(idkey(node_id), proto, last_seen=self.k.clock.monotonic())
        self.k.nodes[rec.key] = rec
        pool.nodes[rec.key] = rec
        self.k.mark("nodes", rec.key, rec)
        return rec

    def start_nodes(self, nodes: list[NodeRec]) -> None:
        if self.k.provider is None:
            return
        for n in nodes:
            self.k.provider.node_added(n)

    def choose_leavers(self, pool: PoolRec, count: int, *, dedicated: bool = True) -> list[NodeRec]:
        """The `count` nodes of one kind to leave first: those doing least (preempted, not up yet, lost,
        failed), then idle before running ones, the newest first."""
        order: dict[int, int] = {
            P.NODE_STATE_PREEMPTED: -1,
            P.NODE_STATE_CREATING: 0,
            P.NODE_STATE_UNKNOWN: 1,
            P.NODE_STATE_START_TASK_FAILED: 2,
            P.NODE_STATE_STARTING: 3,
            P.NODE_STATE_WAITING_FOR_START_TASK: 3,
            P.NODE_STATE_OFFLINE: 4,
            P.NODE_STATE_IDLE: 5,
            P.NODE_STATE_RUNNING: 6,
        }
        candidates = members(pool, dedicated=dedicated)
        candidates.sort(key=lambda n: (order.get(n.state, 9), n.used_slots, -_serial(n.key)))
        return candidates[:count]

    async def resize_pool(
        self,
        pool_id: str,
        target: int,
        option: int = P.NODE_DEALLOCATION_OPTION_REQUEUE,
        *,
        etag: str = "",
        target_low_priority: int | None = None,
    ) -> pool_pb2.Pool:
        """Change the pool's target size; new nodes start, surplus nodes leave.

        As in Batch, only a pool whose allocation is steady may be resized: a resize under way is not
        redirected (the caller waits for STEADY, or stops the resize).
        """
        pool = self.k.pool(pool_id)
        check_etag(f"pool {pool_id!r}", pool.proto, etag)
        if pool.proto.state != P.POOL_STATE_ACTIVE:
            raise FailedPrecondition("POOL_BEING_DELETED", f"pool {pool_id!r} is being deleted")
        self.k.refresh_pool_now(pool)
        if pool.proto.allocation_state != P.ALLOCATION_STATE_STEADY:
            raise FailedPrecondition(
                "POOL_RESIZING",
                f"pool {pool_id!r} is resizing ({pool.proto.current_nodes} nodes, target "
                f"{pool.proto.target_nodes}): resize it once its allocation state is steady",
            )
        if pool.proto.enable_auto_scale:
            raise FailedPrecondition(
                "AUTO_SCALE_ENABLED",
                f"pool {pool_id!r} sizes itself by its autoscale formula: disable autoscale to resize it",
            )
        pool.proto.target_nodes = target
        if target_low_priority is not None:
            pool.proto.target_low_priority_nodes = target_low_priority
        # (Resize errors tell of the last resize.)
        del pool.proto.resize_errors[:]
        self.k.mark("pools", pool.key, pool)
        leaving, added = self.retarget(pool, option)
        self.k.refresh_pool_now(pool)
        await self.k.flush()
        self.k.node_life.after_node_changes(leaving)
        self.start_nodes(added)
        self.k.kick_scheduler()
        return pool.proto

    def retarget(self, pool: PoolRec, option: int) -> tuple[list[NodeRec], list[NodeRec]]:
        """Nodes leave or are made towards the pool's (new) targets, dedicated and low-priority: (those
        leaving, those made). Nothing is flushed or sent: the caller does, then dismisses the leavers and
        starts the new nodes."""
        leaving: list[NodeRec] = []
        for dedicated, target in ((True, pool.proto.target_nodes), (False, pool.proto.target_low_priority_nodes)):
            surplus = len(members(pool, dedicated=dedicated)) - target
            if surplus > 0:
                leaving += self.choose_leavers(pool, surplus, dedicated=dedicated)
        for n in leaving:
            self.k.node_life.leave(n, option)
        return leaving, self.grow(pool)

    async def update_pool(
        self,
        pool_id: str,
        patch: pool_pb2.Pool,
        paths: Sequence[str],
        *,
        etag: str = "",
        certificate_states: Mapping[str, int] | None = None,
    ) -> pool_pb2.Pool:
        """UpdatePool: set the fields the mask `paths` names from `patch` (see `scheduling.poolupdate`).

        A new target resizes the pool as ResizePool does (surplus nodes leave with their tasks requeued);
        a new start task or new certificate references reach no running node, only nodes whose agent
        joins from now on (as Batch: at their next reboot or reimage). The change is committed before
        anything is sent.
        """
        pool = self.k.pool(pool_id)
        self.k.refresh_pool_now(pool)
        update = poolupdate.decide(pool.proto, patch, paths, etag, certificate_states)
        pool.proto.CopyFrom(update.pool)
        self.k.mark("pools", pool.key, pool)
        leaving: list[NodeRec] = []
        added: list[NodeRec] = []
        if update.new_target is not None:
            leaving, added = self.retarget(pool, P.NODE_DEALLOCATION_OPTION_REQUEUE)
        self.k.refresh_pool_now(pool)
        await self.k.flush()
        self.k.node_life.after_node_changes(leaving)
        self.start_nodes(added)
        if update.new_target is not None:
            self.k.kick_scheduler()
        return pool.proto

    async def delete_pool(self, pool_id: str, *, etag: str = "") -> pool_pb2.Pool:
        """Start deleting a pool: its nodes leave (their tasks are requeued), then it is gone."""
        pool = self.k.pool(pool_id)
        check_etag(f"pool {pool_id!r}", pool.proto, etag)
        if pool.proto.state == P.POOL_STATE_DELETING:
            return pool.proto
        result = self.delete_now(pool)
        await self.k.flush()
        return result

    def delete_now(self, pool: PoolRec) -> pool_pb2.Pool:
        """Start deleting `pool` in this change (as DeletePool; the caller flushes): its nodes leave, their
        tasks requeued; a pool without nodes is gone at once. Its leaving nodes are dismissed and its
        watchers told once committed. Returns the pool as it was when deleted."""
        states.check_transition(states.POOL_TRANSITIONS, pool.proto.state, P.POOL_STATE_DELETING, "pool")
        pool.proto.state = P.POOL_STATE_DELETING
        pool.proto.state_transition_time.CopyFrom(ts(self.k.clock.now()))
        pool.proto.target_nodes = 0
        pool.proto.target_low_priority_nodes = 0
        leaving = [n for n in pool.nodes.values() if n.state != P.NODE_STATE_LEAVING_POOL]
        for n in leaving:
            self.k.node_life.leave(n, P.NODE_DEALLOCATION_OPTION_REQUEUE)
        self.k.mark("pools", pool.key, pool)
        self.k.refresh_pool(pool)
        result = P.Pool()
        result.CopyFrom(pool.proto)
        if not pool.nodes:
            del self.k.pools[pool.key]
            self.k.delete_row("pools", pool.key)
            self.k.after_commit(lambda: self.k.node_watch.pool_gone(pool))
        self.k.after_commit(lambda: self.k.node_life.after_node_changes(leaving))
        self.k.after_commit(self.k.kick_scheduler)
        return result


def members(pool: PoolRec, *, dedicated: bool) -> list[NodeRec]:
    """The pool's nodes of one kind that are not leaving it (preempted ones included, as Batch counts
    them in `currentLowPriorityNodes`)."""
    return [
        n for n in pool.nodes.values() if n.state != P.NODE_STATE_LEAVING_POOL and n.proto.is_dedicated == dedicated
    ]


def _serial(node_key: str) -> int:
    """The number ending a node id the server counted out ("node-12"); 0 for any other id (a joined
    node's random one, an agent's own name)."""
    tail = node_key.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
