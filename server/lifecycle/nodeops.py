"""Node operations: disabling and enabling a node's scheduling (and, later, reboot, reimage, removal).

Decided by `server.scheduling.nodeops`, applied here: the node's scheduling state is written with its
new state, its running tasks requeued or terminated (KillTasks sent after the commit), and the scheduler
woken where a node takes tasks again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import NodeRec
from shoal.server.scheduling import nodeops
from shoal.v1 import pool_pb2 as P

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel


class NodeOperations:
    """What an operator does to one node."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    async def disable_scheduling(self, pool_id: str, node_id: str, option: int) -> P.Node:
        """No new tasks on the node; its running ones requeued, terminated or left to finish."""
        n = self.k.node(pool_id, node_id)
        change = nodeops.disable(n.state, n.scheduling_disabled, bool(n.running), option)
        self._set_scheduling(n, change.disabled)
        if change.eviction is not nodeops.Eviction.NONE:
            reason = "the node's scheduling was disabled"
            refs = self.k.node_life.evict_tasks(
                n, terminate=change.eviction is nodeops.Eviction.TERMINATE, reason=reason
            )
            self.k.send_kills([(n, ref) for ref in refs])
        if change.state is not None and n.state != change.state:
            self.k.set_node_state(n, change.state)
        self.k.refresh_pool(self.k.pools[n.pool_key])
        await self.k.flush()
        if change.eviction is nodeops.Eviction.REQUEUE:
            self.k.kick_scheduler()  # (its tasks wait for another node)
        return n.view()

    async def enable_scheduling(self, pool_id: str, node_id: str) -> P.Node:
        """The node takes tasks again."""
        n = self.k.node(pool_id, node_id)
        change = nodeops.enable(n.state, n.scheduling_disabled)
        self._set_scheduling(n, change.disabled)
        if change.state is not None:
            self.k.set_node_state(n, change.state)
        self.k.refresh_pool(self.k.pools[n.pool_key])
        await self.k.flush()
        self.k.kick_scheduler()
        return n.view()

    def _set_scheduling(self, n: NodeRec, disabled: bool) -> None:
        n.scheduling_disabled = disabled
        n.proto.scheduling_state = P.SCHEDULING_STATE_DISABLED if disabled else P.SCHEDULING_STATE_ENABLED
        self.k.mark("nodes", n.key, n)

    def node_counts(self, pool_ids: list[str]) -> list[P.PoolNodeCounts]:
        """Per pool, its dedicated and its low-priority nodes by state."""
        out = []
        for pool_id in pool_ids:
            pool = self.k.pools[idkey(pool_id)]
            out.append(
                P.PoolNodeCounts(
                    pool_id=pool.proto.id,
                    dedicated=nodeops.node_counts(n.state for n in pool.nodes.values() if n.proto.is_dedicated),
                    low_priority=nodeops.node_counts(n.state for n in pool.nodes.values() if not n.proto.is_dedicated),
                )
            )
        return out
