"""Node restarts: RebootNode and ReimageNode, applied.

Decided by `server.scheduling.restarts`. The restart is written on the node with its new state
(REBOOTING or REIMAGING) before anything is sent; then, once no task of the node runs (at once, or when
the last of those left to finish ends), the agent is told `Restart`. The agent kills what it runs,
clears `volatile/` (or wipes its root), starts again as a new process and registers with the restart's
id: `attached` ends the restart there, and the node starts as a new one (its start task, its
certificates, the job preparations that must run again). An agent that reconnects before it has
restarted (or after a server restart) is told again; it does the restart once.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.server.domain.records import NodeRec
from shoal.server.scheduling import restarts
from shoal.server.scheduling.nodeops import Eviction
from shoal.server.scheduling.restarts import PendingRestart
from shoal.v1 import pool_pb2 as P

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")
#: Where the pending restart is kept in `NodeRec.internal` (stored with the node).
KEY = "restart"


def pending(n: NodeRec) -> PendingRestart | None:
    """The restart decided for node `n` and not yet done, if any."""
    return PendingRestart.from_dict(n.internal.get(KEY)) if KEY in n.internal else None


class NodeRestarts:
    """Reboots and reimages of nodes."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    async def restart(self, pool_id: str, node_id: str, option: int, *, reimage: bool) -> P.Node:
        """RebootNode (ReimageNode with `reimage`): the node's state, written, then the agent told."""
        n = self.k.node(pool_id, node_id)
        decision = restarts.decide(n.state, bool(n.running), option, reimage=reimage)
        what = "reimaged" if reimage else "rebooted"
        plan = PendingRestart(
            restart_id=secrets.token_hex(8),
            reimage=reimage,
            wait_for_tasks=decision.wait_for_tasks,
            wait_for_retention=decision.wait_for_retention,
            reason=f"the node is being {what}",
        )
        n.internal[KEY] = plan.as_dict()
        if decision.eviction is not Eviction.NONE:
            refs = self.k.node_life.evict_tasks(
                n, terminate=decision.eviction is Eviction.TERMINATE, reason=f"the node was {what}"
            )
            self.k.send_kills([(n, ref) for ref in refs])
        self.k.set_node_state(n, decision.state)
        self.k.mark("nodes", n.key, n)
        self.k.refresh_pool(self.k.pools[n.pool_key])
        if not decision.wait_for_tasks:
            self._tell(n, plan)
        await self.k.flush()
        if decision.eviction is Eviction.REQUEUE:
            self.k.kick_scheduler()
        log.info("node %s: %s (%s)", n.key, "reimaging" if reimage else "rebooting", plan.restart_id)
        return n.view()

    def tasks_done(self, n: NodeRec) -> None:
        """The last task of restarting node `n` has ended (its end commits with the next flush): tell the
        agent to restart now if it was waiting for them."""
        plan = pending(n)
        if plan is not None and plan.wait_for_tasks:
            plan = plan._replace(wait_for_tasks=False)
            n.internal[KEY] = plan.as_dict()
            self.k.mark("nodes", n.key, n)
            self._tell(n, plan)

    def on_attach(self, n: NodeRec, restart_id: str) -> bool:
        """An agent of restarting node `n` registers: True when it has done the restart (which then ends;
        the node starts as a new one), False when it has not (it is told again, unless its tasks are
        still to finish)."""
        plan = pending(n)
        if plan is None:
            return True  # (a restart this version cannot read: the node starts afresh)
        if restarts.done_by(plan, restart_id):
            del n.internal[KEY]
            if plan.reimage:
                # As new: every job's preparation runs again there, and one that failed keeps its tasks
                # away no more (only now: a preparation still running when it was asked may have failed since).
                self.k.prep_life.node_reimaged(n.key)
            self.k.mark("nodes", n.key, n)
            log.info("node %s is back from its %s", n.key, "reimage" if plan.reimage else "reboot")
            return True
        if not plan.wait_for_tasks or not n.running:
            self._tell(n, plan._replace(wait_for_tasks=False))
        return False

    def _tell(self, n: NodeRec, plan: PendingRestart) -> None:
        """Queue `Restart` for the node's agent (it leaves after the next commit, after any kills)."""
        jobs = [
            (
                j.proto.id,
                j.proto.HasField("job_preparation_task"),
                j.proto.job_preparation_task.rerun_on_node_reboot_after_success
                if j.proto.job_preparation_task.HasField("rerun_on_node_reboot_after_success")
                else True,
            )
            for j in self.k.jobs.values()
        ]
        msg = agent_pb2.Restart(
            restart_id=plan.restart_id,
            reimage=plan.reimage,
            wait_for_retention=plan.wait_for_retention,
            keep_preparations=restarts.keep_preparations(jobs, reimage=plan.reimage),
            reason=plan.reason,
        )
        self.k.send_after_commit(n, agent_pb2.ServerMessage(restart=msg))
