"""Nodes and their health: agents attaching and leaving, heartbeats, start tasks, lost nodes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.clock import to_timestamp
from shoal.server.domain import states
from shoal.server.domain.errors import NotFound
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import AgentSession, NodeRec, PoolRec
from shoal.server.lifecycle.kernel import LIVE_NODE_STATES, NODE_STATS_WRITE_SECONDS, RESTARTING_NODE_STATES
from shoal.server.scheduling import nodehealth
from shoal.v1 import common_pb2, pool_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")
ts = to_timestamp
P = pool_pb2


class NodeLifecycle:
    """Nodes: agents that attach, report their start task, go silent or leave."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: When the health pass last wrote the nodes whose statistics changed (monotonic).
        self._stats_written_at = 0.0

    def leave(self, n: NodeRec, option: int) -> None:
        # (RETAINED_DATA waits for the tasks too; the files of a node that leaves go with it, retained or not.)
        waits = option in (P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION, P.NODE_DEALLOCATION_OPTION_RETAINED_DATA)
        wait_for_tasks = waits and bool(n.running)
        self.k.set_node_state(n, P.NODE_STATE_LEAVING_POOL)
        n.internal["wait_for_tasks"] = wait_for_tasks
        if not wait_for_tasks:
            self.evict_tasks(n, terminate=option == P.NODE_DEALLOCATION_OPTION_TERMINATE, reason="node left the pool")

    def evict_tasks(self, n: NodeRec, *, terminate: bool, reason: str) -> list[agent_pb2.AttemptRef]:
        """Take every attempt off node `n`: requeue it (or complete it as terminated)."""
        refs = []
        for tkey in list(n.running):
            t = self.k.jobs[tkey[0]].tasks.get(tkey[1])
            n.running.pop(tkey, None)
            if t is None:
                continue
            refs.append(self.k.attempt_ref(t))
            if terminate:
                if t.gang:
                    self.k.gang_life.end_subtasks(t, reason)
                self.k.task_life.complete_terminated(t, reason)
            else:
                self.k.task_life.requeue(t, reason)
            # (A job disabling until its tasks end may now be disabled.)
            self.k.job_life.check_done(self.k.jobs[t.job_key])
        self.k.refresh_node_activity(n)
        return refs

    def after_node_changes(self, leaving: list[NodeRec]) -> None:
        for n in leaving:
            if n.internal.get("wait_for_tasks"):
                continue
            self.dismiss(n)

    def dismiss(self, n: NodeRec) -> None:
        """Tell a leaving node's agent to stop; the provider reports when it is gone."""
        if n.session is not None:
            n.session.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="node left the pool")))
        if self.k.provider is not None and n.internal.get("pid"):
            self.k.provider.node_leaving(n)
        elif n.session is None:
            asyncio.get_running_loop().create_task(self.node_gone(n.key))

    async def node_gone(self, node_key: str) -> None:
        """The agent behind a leaving node has exited: forget the node."""
        n = self.k.nodes.get(node_key)
        if n is None:
            return
        if n.session is not None:
            n.session.close()
        for tkey in list(n.running):
            t = self.k.jobs.get(tkey[0])
            rec = t.tasks.get(tkey[1]) if t else None
            if rec is not None:
                self.k.task_life.requeue(rec, "node left the pool")
        n.running.clear()
        del self.k.nodes[node_key]
        # Its counters go with it: a node of the same id that joins later starts from zero, whatever
        # tallies of this one a restart reads.
        n.tasks_run = n.tasks_succeeded = 0
        self.k.tally(n)
        pool = self.k.pools.get(n.pool_key)
        if pool is not None:
            pool.nodes.pop(node_key, None)
            self.k.refresh_pool(pool)
        self.k.delete_row("nodes", node_key)
        self.k.node_forgotten(n)
        self.k.node_watch.removed(n.pool_key, n.proto.id)
        self.k.prep_life.node_gone(node_key)
        pool_gone = pool is not None and pool.proto.state == P.POOL_STATE_DELETING and not pool.nodes
        if pool is not None and pool_gone:
            del self.k.pools[pool.key]
            self.k.delete_row("pools", pool.key)
        await self.k.flush()
        if pool is not None and pool_gone:
            self.k.node_watch.pool_gone(pool)
        if self.k.provider is not None:
            # As in Batch, the files of a node that left are gone with it.
            self.k.provider.node_removed(n)
        self.k.kick_scheduler()

    async def attach(
        self, reg: agent_pb2.Register, notify: Callable[[AgentSession], None] | None = None
    ) -> AgentSession:
        """An agent connected: reconcile what it runs with what the server wants.

        `notify` goes to the new session (see AgentSession): set when it shares a stream with others.
        """
        node = self.k.nodes.get(idkey(reg.node_id)) if reg.node_id else None
        if node is None:
            pool = self.k.pools.get(idkey(reg.pool_id)) if reg.pool_id else None
            if pool is None or pool.proto.state != P.POOL_STATE_ACTIVE:
                raise NotFound("NODE_NOT_FOUND", f"no node {reg.node_id!r} and no active pool {reg.pool_id!r} to join")
            node = self.join(pool, reg)
        if node.session is not None:
            node.session.close()
        session = AgentSession(node.key, reg.boot_id, notify)
        node.session = session
        node.last_seen = self.k.clock.monotonic()
        node.node_service_port = reg.node_service_port
        node.exec_port = reg.exec_port
        node.proto.ip_address = reg.ip_address or node.proto.ip_address
        node.forget_placement()
        node.proto.cores = reg.cores
        node.proto.memory_bytes = reg.memory_bytes
        node.proto.root_directory = reg.root_directory
        node.proto.agent_version = reg.agent_version
        node.proto.container_engine = reg.container_engine
        node.proto.metrics_address = reg.metrics_address
        if reg.boot_id and node.internal.get("boot_id") != reg.boot_id:
            # A new agent process: the node's "reboot" (the same process reconnecting is not one).
            node.internal["boot_id"] = reg.boot_id
            node.proto.last_boot_time.CopyFrom(self.k.stamp())
            self.k.mark("nodes", node.key, node)
        node.proto.task_user_isolation = reg.task_user_isolation
        node.proto.agent_user = reg.agent_user
        node.proto.last_heartbeat_time.CopyFrom(ts(self.k.clock.now()))
        self.k.mark("nodes", node.key, node)
        pool = self.k.pools[node.pool_key]
        if node.state in (P.NODE_STATE_LEAVING_POOL, P.NODE_STATE_PREEMPTED):
            # Its unacknowledged reports still count (a task that finished must
            # not run again); whatever else it ran goes back to the queue. (A
            # preempted node's agent that had not died yet is told to go too.)
            self.k.attempt_life.apply_events(node, list(reg.pending_events))
            for tkey in list(node.running):
                job = self.k.jobs.get(tkey[0])
                t = job.tasks.get(tkey[1]) if job else None
                if t is not None:
                    self.k.task_life.requeue(t, "node left the pool")
                node.running.pop(tkey, None)
            await self.k.flush()
            why = "node left the pool" if node.state == P.NODE_STATE_LEAVING_POOL else "node preempted"
            session.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason=why)))
            return session
        # Reports the server never committed come first, so that a completion
        # is not mistaken for a lost attempt below.
        self.k.attempt_life.apply_events(node, list(reg.pending_events))
        # A restarting node's agent that has not restarted yet (a reconnect) is told again, and stays as it is.
        still_restarting = node.state in RESTARTING_NODE_STATES and not self.k.restarts.on_attach(node, reg.restart_id)
        reported = {(idkey(a.job_id), idkey(a.task_id)): a.attempt for a in reg.running}
        # An instance whose node lost it takes its whole gang back to the queue.
        for tkey in list(node.running):
            t = self.k.jobs[tkey[0]].tasks.get(tkey[1]) if tkey[0] in self.k.jobs else None
            if t is None:
                node.running.pop(tkey, None)
            elif reported.get(tkey) != t.attempt:
                self.k.task_life.requeue(t, "the node does not run it")
        kills = []
        for a in reg.running:
            tk = (idkey(a.job_id), idkey(a.task_id))
            job = self.k.jobs.get(tk[0])
            t = job.tasks.get(tk[1]) if job else None
            if t is None or t.instance_on(node.key) != a.instance or t.attempt != a.attempt:
                kills.append((node, a))
        start = pool.proto.start_task if pool.proto.HasField("start_task") else None
        run_start = bool(start and start.command_line) and not reg.start_task_succeeded and not still_restarting
        # A container pool's node pulls its images after this Welcome, before it takes tasks (as Batch).
        node.preparing = bool(pool.proto.container_configuration.container_image_names) and not reg.images_ready
        node.start_task_ok = not run_start and (bool(reg.start_task_succeeded) or not start)
        target: int
        if still_restarting:
            target = node.state
        elif run_start and start is not None and start.wait_for_success:
            target = P.NODE_STATE_STARTING
        elif node.state == P.NODE_STATE_START_TASK_FAILED and reg.start_task_succeeded:
            target = P.NODE_STATE_START_TASK_FAILED
        else:
            target = P.NODE_STATE_RUNNING if node.running else self.k.ready_state(node)
        if node.state in (P.NODE_STATE_IDLE, P.NODE_STATE_RUNNING) and target == P.NODE_STATE_STARTING:
            self.k.set_node_state(node, P.NODE_STATE_STARTING)
        elif node.state != target:
            if node.state == P.NODE_STATE_CREATING and target == P.NODE_STATE_RUNNING:
                target = self.k.ready_state(node)
            if states.can_transition(states.NODE_TRANSITIONS, node.state, target):
                self.k.set_node_state(node, target)
            else:
                self.k.set_node_state(node, P.NODE_STATE_STARTING)
                if target != P.NODE_STATE_STARTING:
                    self.k.set_node_state(node, target)
        if not still_restarting:
            self.apply_errors(node, list(reg.errors))
        self.k.refresh_node_activity(node)
        self.k.refresh_pool(pool)
        # Held back by the session until Welcome has gone out.
        self.k.send_kills(kills)
        self.k.prep_life.attached(node)
        await self.k.flush()
        welcome = agent_pb2.Welcome(
            node_id=node.proto.id,
            pool_id=node.proto.pool_id,
            heartbeat_interval_seconds=self.k.heartbeat_interval,
            run_start_task=run_start,
            task_slots=node.proto.task_slots,
            is_dedicated=node.proto.is_dedicated,
        )
        if self.k.node_credential is not None:
            welcome.account = pool.proto.account or DEFAULT_ACCOUNT
            welcome.credential = self.k.node_credential(welcome.account, node.proto.pool_id, node.proto.id)
        if pool.proto.user_accounts:
            welcome.user_accounts.extend(pool.proto.user_accounts)
        if run_start and start is not None:
            welcome.start_task.CopyFrom(start)
        self._give_certificates(pool, node, welcome)
        self.k.node_welcomed(node, reg, welcome)
        session.send(agent_pb2.ServerMessage(welcome=welcome))
        if reg.pending_events:
            session.ack(max(e.event_id for e in reg.pending_events))
        # RunApplication is not acknowledged: a primary that reconnects while its
        # gang is fully coordinated is told again (the agent ignores a repeat).
        for tkey in node.running:
            job = self.k.jobs.get(tkey[0])
            t = job.tasks.get(tkey[1]) if job else None
            if t is not None and t.gang and t.gang[0] == node.key and len(t.coordinated) == len(t.gang):
                session.send(
                    agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(attempt=self.k.attempt_ref(t)))
                )
        self.k.kick_scheduler()
        return session

    def _give_certificates(self, pool: PoolRec, node: NodeRec, welcome: agent_pb2.Welcome) -> None:
        """The pool's certificates for the node to install (before its start task), and the node's record
        of them: the node holds exactly these until its agent next joins (a deletion checks it)."""
        refs = pool.proto.certificate_references
        if self.k.node_certificates is not None and refs:
            welcome.certificates.extend(self.k.node_certificates(pool.proto.account or DEFAULT_ACCOUNT, refs))
        installed = [c.thumbprint for c in welcome.certificates]
        if [r.thumbprint for r in node.proto.certificate_references] != installed:
            del node.proto.certificate_references[:]
            node.proto.certificate_references.extend(r for r in refs if r.thumbprint in installed)
            self.k.mark("nodes", node.key, node)

    def join(self, pool: PoolRec, reg: agent_pb2.Register) -> NodeRec:
        self.k.meta["node_counter"] += 1
        self.k.mark_meta("node_counter")
        node_id = reg.node_id or f"node-{self.k.meta['node_counter']}"
        proto = P.Node(
            name=f"pools/{pool.proto.id}/nodes/{node_id}",
            id=node_id,
            pool_id=pool.proto.id,
            state=P.NODE_STATE_CREATING,
            ip_address=reg.ip_address,
            task_slots=pool.proto.task_slots_per_node,
            is_dedicated=True,
        )
        proto.allocation_time.CopyFrom(self.k.stamp())
        rec = NodeRec(idkey(node_id), proto, last_seen=self.k.clock.monotonic())
        self.k.nodes[rec.key] = rec
        pool.nodes[rec.key] = rec
        self.k.mark("nodes", rec.key, rec)
        return rec

    def detach(self, session: AgentSession) -> None:
        """The stream ended. The node stays as it is until it comes back or its heartbeat times out."""
        session.close()
        node = self.k.nodes.get(session.node_key)
        if node is not None and node.session is session:
            node.session = None
            self.k.kick_scheduler()

    async def health_report(self, session: AgentSession, report: agent_pb2.NodeHealth) -> None:
        """The agent's node errors changed (all of them: none means healthy again)."""
        node = self.k.nodes.get(session.node_key)
        if node is None or node.session is not session or node.state in RESTARTING_NODE_STATES:
            return
        pulled = node.preparing and report.images_ready
        if pulled:
            node.preparing = False
        self.apply_errors(node, list(report.errors))
        if pulled and not report.errors and node.state == P.NODE_STATE_STARTING:
            self._images_pulled(node)
        self.k.refresh_pool(self.k.pools[node.pool_key])
        await self.k.flush()
        self.k.kick_scheduler()

    def _images_pulled(self, node: NodeRec) -> None:
        """The pool's images are on the node: it settles where it belongs, unless a start task it waits for
        has not ended yet (its report moves it on)."""
        pool = self.k.pools[node.pool_key]
        start = pool.proto.start_task if pool.proto.HasField("start_task") else None
        if start is not None and start.command_line and start.wait_for_success and not node.start_task_ok:
            return
        self.k.set_node_state(node, self.k.ready_state(node))
        self.k.refresh_node_activity(node)

    def apply_errors(self, node: NodeRec, agent_errors: list[pool_pb2.NodeError]) -> None:
        """Set what the node's agent reports wrong with it: UNUSABLE while anything is (its tasks requeued,
        no new one lands there), back where it belongs once nothing is."""
        kept = [e.SerializeToString() for e in agent_errors]
        if node.internal.get("agent_errors", []) != [k.hex() for k in kept]:
            if kept:
                node.internal["agent_errors"] = [k.hex() for k in kept]
            else:
                node.internal.pop("agent_errors", None)
            self._show_errors(node)
        pool = self.k.pools[node.pool_key]
        start = (
            pool.proto.start_task if pool.proto.HasField("start_task") and pool.proto.start_task.command_line else None
        )
        new = nodehealth.health_state(
            node.state,
            bool(agent_errors),
            wait_for_start_task=start is not None and start.wait_for_success,
            start_task_ok=node.start_task_ok,
            start_task_failed=nodehealth.start_task_error(node.proto.start_task_info) is not None,
            ready_state=self.k.ready_state(node),
        )
        if new is None or new == node.state:
            return
        if new == P.NODE_STATE_UNUSABLE and node.running:
            why = ", ".join(e.code for e in agent_errors)
            refs = self.evict_tasks(node, terminate=False, reason=f"the node is unusable ({why})")
            self.k.send_kills([(node, ref) for ref in refs])
        log.warning(
            "node %s: %s",
            node.key,
            "unusable: " + "; ".join(e.message for e in agent_errors) if agent_errors else "usable again",
        )
        self.k.set_node_state(node, new)

    def _show_errors(self, node: NodeRec) -> None:
        """The node's `errors`: its agent's (kept in `internal`), then its start task's failure."""
        agent_errors = [P.NodeError.FromString(bytes.fromhex(h)) for h in node.internal.get("agent_errors", [])]
        errors = nodehealth.node_errors(agent_errors, node.proto.start_task_info)
        if list(node.proto.errors) != errors:
            del node.proto.errors[:]
            node.proto.errors.extend(errors)
        self.k.mark("nodes", node.key, node)

    def heartbeat(self, session: AgentSession, hb: agent_pb2.Heartbeat) -> None:
        node = self.k.nodes.get(session.node_key)
        if node is None or node.session is not session:
            return
        node.last_seen = self.k.clock.monotonic()
        node.proto.cpu_percent = hb.cpu_percent
        node.proto.last_heartbeat_time.CopyFrom(ts(self.k.clock.now()))
        self.k.autoscale.heartbeat(node, hb)

    def touch(self, session: AgentSession) -> None:
        node = self.k.nodes.get(session.node_key)
        if node is not None and node.session is session:
            node.last_seen = self.k.clock.monotonic()

    async def start_task_report(self, session: AgentSession, info: common_pb2.StartTaskInfo) -> None:
        node = self.k.nodes.get(session.node_key)
        if node is None or node.session is not session:
            return
        node.proto.start_task_info.CopyFrom(info)
        self._show_errors(node)
        pool = self.k.pools[node.pool_key]
        wait = pool.proto.start_task.wait_for_success
        if info.state == common_pb2.START_TASK_STATE_RUNNING:
            if wait and node.state == P.NODE_STATE_STARTING:
                self.k.set_node_state(node, P.NODE_STATE_WAITING_FOR_START_TASK)
        elif info.state == common_pb2.START_TASK_STATE_COMPLETED:
            ok = info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
            node.start_task_ok = ok
            if wait and node.state in (P.NODE_STATE_STARTING, P.NODE_STATE_WAITING_FOR_START_TASK):
                self.k.set_node_state(node, self.k.ready_state(node) if ok else P.NODE_STATE_START_TASK_FAILED)
        self.k.mark("nodes", node.key, node)
        self.k.refresh_pool(pool)
        await self.k.flush()
        self.k.kick_scheduler()

    async def check_health(self, timeout: float) -> None:
        """Nodes silent for longer than `timeout` become UNKNOWN and their tasks are requeued."""
        now = self.k.clock.monotonic()
        lost = []
        # An agent gets longer to come up the first time than to answer later.
        creating_timeout = max(60.0, 3 * timeout)
        gone = []
        # One pass, cheapest test first: it runs twice a second over every node.
        for n in self.k.nodes.values():
            silent = now - n.last_seen
            if silent <= timeout:
                continue
            state = n.state
            if state in LIVE_NODE_STATES or (state == P.NODE_STATE_CREATING and silent > creating_timeout):
                lost.append(n)
            elif state in RESTARTING_NODE_STATES and silent > creating_timeout:
                # Its agent did not come back from the restart: the restart is given up on.
                n.internal.pop("restart", None)
                lost.append(n)
            elif state == P.NODE_STATE_LEAVING_POOL and n.session is None:
                gone.append(n.key)
        for key in gone:
            log.warning("leaving node %s is silent: forgetting it", key)
            await self.node_gone(key)
        if now - self._stats_written_at >= NODE_STATS_WRITE_SECONDS:
            self._stats_written_at = now
            self.k.mark_node_stats()
        if not lost:
            if self.k.has_changes():
                await self.k.flush()
            return
        for n in lost:
            log.warning("node %s silent for %.1fs: UNKNOWN", n.key, now - n.last_seen)
            self.evict_tasks(n, terminate=False, reason="node lost")
            self.k.set_node_state(n, P.NODE_STATE_UNKNOWN)
            if n.session is not None:
                n.session.close()
                n.session = None
        await self.k.flush()
        self.k.kick_scheduler()

    async def save_node_stats(self) -> None:
        """Write the node statistics that changed since the health pass last did (at a clean stop)."""
        self.k.mark_node_stats()
        await self.k.flush()
