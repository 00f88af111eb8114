"""Low-priority nodes taken back by their provider (preempted) and brought back when it has capacity.

Decided by `server.scheduling.spot`; applied here through the kernel. A preemption is committed (the node
PREEMPTED, its tasks requeued: Batch's semantics, no retry counted, a gang requeued whole) before the
provider is told to take the node (its agent killed, its files gone). A preempted node keeps its id and
stays listed; once the provider has capacity again it starts as a new node (CREATING: a fresh root, its
start task and every job preparation again).
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from shoal.server.domain.records import NodeRec
from shoal.server.scheduling import spot
from shoal.v1 import pool_pb2 as P

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")


class Preemption:
    """PreemptNode, random preemptions at the configured rate, and recoveries."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.settings = spot.SpotSettings()
        self.rng = random.Random()
        #: Monotonic seconds of the last pass (random preemptions count the time since; a step of the wall
        #: clock must not look like hours gone by).
        self._last_pass: float | None = None

    def configure(self, settings: spot.SpotSettings) -> None:
        """Use `settings` from now on (the server's `--spot-*` options)."""
        self.settings = settings
        self.rng = random.Random(settings.seed)

    async def preempt_node(self, pool_id: str, node_id: str) -> P.Node:
        """PreemptNode: the provider takes the low-priority node back now."""
        pool = self.k.pool(pool_id)
        node = self.k.node(pool_id, node_id)
        spot.check_preemptible(_view(node), pool.proto.provider)
        self._preempt(node, "preempted by request")
        await self.k.flush()
        self._take(node)
        self.k.kick_scheduler()
        return node.proto

    def _preempt(self, node: NodeRec, why: str) -> None:
        log.warning("node %s preempted (%s): its tasks are requeued", node.key, why)
        self.k.node_life.evict_tasks(node, terminate=False, reason="the node was preempted")
        # (Its time in the pool ends here; it counts again from its new allocation once it is back.)
        self.k.accounting.node_left(node)
        node.proto.ClearField("allocation_time")
        self.k.set_node_state(node, P.NODE_STATE_PREEMPTED)
        node.internal["preempted_at"] = self.k.clock.now().timestamp()
        node.internal.pop("restart", None)
        node.internal.pop("agent_errors", None)
        del node.proto.errors[:]
        node.start_task_ok = False
        node.proto.ClearField("start_task_info")
        # Its files go with it: it owes no release, and runs every preparation again when it is back.
        self.k.prep_life.node_reimaged(node.key)
        if node.session is not None:
            node.session.close()
            node.session = None
        self.k.mark("nodes", node.key, node)
        self.k.refresh_pool(self.k.pools[node.pool_key])

    def _take(self, node: NodeRec) -> None:
        if self.k.provider is not None:
            self.k.provider.node_preempted(node)

    async def check(self) -> None:
        """One pass: random preemptions at the configured rate, and preempted nodes whose capacity is back."""
        now = self.k.clock.now().timestamp()
        mono = self.k.clock.monotonic()
        elapsed = 0.0 if self._last_pass is None else mono - self._last_pass
        self._last_pass = mono
        # (Only the pools with low-priority nodes are walked: this runs twice a second.)
        local = [
            n
            for pool in self.k.pools.values()
            if pool.proto.current_low_priority_nodes
            and pool.proto.provider == "local"
            and pool.proto.state == P.POOL_STATE_ACTIVE
            for n in pool.nodes.values()
            if not n.proto.is_dedicated
        ]
        if not local:
            return
        views = [_view(n) for n in local]
        taken = [
            self.k.nodes[key]
            for key in spot.random_preemptions(views, self.settings.preemption_rate_per_hour, elapsed, self.rng)
        ]
        back = [self.k.nodes[key] for key in spot.recoveries(views, now, self.settings.recovery_seconds)]
        if not taken and not back:
            return
        for node in taken:
            self._preempt(node, f"at random, {self.settings.preemption_rate_per_hour:g} per node-hour")
        for node in back:
            log.info("node %s: capacity is back, it starts again", node.key)
            self.k.set_node_state(node, P.NODE_STATE_CREATING)
            node.internal.pop("preempted_at", None)
            node.internal.pop("pid", None)
            node.last_seen = self.k.clock.monotonic()
            node.proto.allocation_time.CopyFrom(self.k.stamp())
            self.k.mark("nodes", node.key, node)
        await self.k.flush()
        for node in taken:
            self._take(node)
        if self.k.provider is not None:
            for node in back:
                self.k.provider.node_recovering(node)
        self.k.kick_scheduler()


def _view(node: NodeRec) -> spot.SpotNode:
    at = node.internal.get("preempted_at")
    return spot.SpotNode(node.key, node.state, node.proto.is_dedicated, float(at) if at is not None else None)
