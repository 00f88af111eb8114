"""The local provider: every node is a `shoal agent` child process on this machine.

Each node gets its own root directory under ``<data dir>/nodes/<node id>`` and
its own loopback address (127.0.1.N). The agent's pid is kept with the node, so
a restarted server adopts agents that are still running instead of starting
duplicates. When a node has left its pool (resized down, pool deleted), its
root directory is deleted, as Batch deletes every file of a removed node: once
the root's lock is free (its agent's watchdog has killed every task), so that
no task makes files there again while it is deleted. At start, the directories
of nodes that are no longer in the store (the server was killed between a
node's removal and the deletion of its files, or it left before nodes recorded
their roots) are deleted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from shoal import rootlock
from shoal.agentidentity import AgentIdentity, identity_dir
from shoal.certs.authority import CertificateError, identity_of, not_after
from shoal.paths import remove_tree
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import id_problem
from shoal.server.domain.records import NodeRec
from shoal.server.security import ServerSecurity
from shoal.v1 import pool_pb2

log = logging.getLogger("shoal.provider.local")

#: How long removing a node's root waits for its lock (the agent's watchdog kills its tasks within 5 s).
ROOT_LOCK_TIMEOUT = 15.0
#: A dead agent is started again this long after its node went UNKNOWN, doubling with each start that did
#: not bring it back, up to the second value.
RESTART_BACKOFF = (2.0, 60.0)
#: Where local agents serve their metrics: any free port of the loopback (each tells the server which).
LOCAL_METRICS_LISTEN = "127.0.0.1:0"
#: Where the roots of nodes no longer in the store go before they are deleted, in `<data dir>/nodes`
#: (not a node id: ids have no dot).
TRASH = ".removed"


class LocalProvider:
    """Starts and stops agent processes for the nodes of `local` pools."""

    def __init__(
        self,
        cp: ControlPlane,
        *,
        data_dir: Path,
        server_address: str,
        agent_address: str = "",
        security: ServerSecurity | None = None,
        orphan_timeout: float = 60.0,
        root_lock_timeout: float = ROOT_LOCK_TIMEOUT,
        log_format: str = "",
        metrics_listen: str = LOCAL_METRICS_LISTEN,
    ) -> None:
        self.cp = cp
        self.data_dir = data_dir
        #: The public API (tasks' SHOAL_ADDRESS) and the agent port (mutual TLS) the agents use.
        self.server_address = server_address
        self.agent_address = agent_address or server_address
        #: Issues each local node its certificate, and revokes it when the node is gone.
        self.security = security
        self.orphan_timeout = orphan_timeout
        self.root_lock_timeout = root_lock_timeout
        #: How the agents log (`shoal.logs.FORMATS`; empty: as their environment, inherited, says).
        self.log_format = log_format
        #: Where each agent serves its metrics (a free port of the loopback: it reports which).
        self.metrics_listen = metrics_listen
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: node key -> (agent starts since it was last up, loop time before which it is not started again).
        self._restarts: dict[str, tuple[int, float]] = {}
        #: Set by `stop_all`: agents that exit now are not started again.
        self._stopping = False
        #: Preempted nodes whose agent is being killed and files deleted (a recovery waits for it).
        self._wipes: dict[str, asyncio.Task[None]] = {}

    def node_root(self, node: NodeRec) -> Path:
        return self.data_dir / "nodes" / node.proto.id

    def _give_identity(self, node: NodeRec, root: Path) -> None:
        """Put the node's certificate into its root before its agent starts (the agent joins without a
        token: the server issues the certificate itself). One still valid for a day is kept."""
        if self.security is None:
            return
        directory = identity_dir(root)
        kept = AgentIdentity.load(directory)
        if kept is not None and kept.ca_pem == self.security.ca.cert_pem:
            try:
                ident = identity_of(kept.cert_pem)
                fresh = not_after(kept.cert_pem) - self.cp.clock.now() > timedelta(days=1)
            except (CertificateError, ValueError):
                fresh = False
            else:
                revoked = self.security.node_certs.is_revoked(ident.serial)
                fresh = fresh and ident.node_id == node.proto.id and not revoked
            if fresh:
                return
        self.security.issue_node(node.proto.id, node.proto.pool_id).save(directory)

    def node_added(self, node: NodeRec) -> None:
        """Start the agent for a CREATING node."""
        root = self.node_root(node)
        root.mkdir(parents=True, exist_ok=True)
        self._give_identity(node, root)
        argv = [
            sys.executable,
            "-m",
            "shoal.nodeagent",
            "--server",
            self.server_address,
            "--agent-server",
            self.agent_address,
            "--node-root",
            str(root),
            "--ip",
            node.proto.ip_address,
            "--node-id",
            node.proto.id,
            "--pool",
            node.proto.pool_id,
            "--orphan-timeout",
            str(self.orphan_timeout),
        ]
        if self.metrics_listen:
            argv += ["--metrics-listen", self.metrics_listen]
        if self.log_format:
            argv += ["--log-format", self.log_format]
        out = open(root / "agent.out", "ab")  # noqa: SIM115 - handed to the child
        try:
            # Its own session: a Ctrl-C in the server's terminal does not reach
            # the agents; the server stops them itself when it should.
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        self._procs[node.key] = proc
        node.internal["pid"] = proc.pid
        node.internal["root"] = str(root)
        self.cp.mark("nodes", node.key, node)
        self._spawn(self._reap(node.key, proc))
        log.info("started agent for %s (pid %d, %s)", node.proto.id, proc.pid, node.proto.ip_address)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap(self, node_key: str, proc: subprocess.Popen[bytes]) -> None:
        while proc.poll() is None:
            await asyncio.sleep(0.5)
        if self._procs.get(node_key) is proc:
            del self._procs[node_key]
        node = self.cp.nodes.get(node_key)
        if node is not None and node.state == pool_pb2.NODE_STATE_LEAVING_POOL:
            await self.cp.node_gone(node_key)

    def node_leaving(self, node: NodeRec) -> None:
        """Stop the agent (it was sent Shutdown); escalate if it does not go."""
        self._spawn(self._stop(node.key, int(node.internal.get("pid", 0))))

    async def _stop(self, node_key: str, pid: int) -> None:
        proc = self._procs.get(node_key)
        deadline = asyncio.get_running_loop().time() + 5.0
        while _alive(pid, proc) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        if _alive(pid, proc):
            _signal(pid, signal.SIGTERM)
            await asyncio.sleep(2.0)
            if _alive(pid, proc):
                _signal(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait()
        await self.cp.node_gone(node_key)

    def node_removed(self, node: NodeRec) -> None:
        """The node has left its pool: its certificates are revoked (any node's: this is where the server
        hears of every node that is gone), its agent is stopped (if it still runs) and its root directory
        deleted."""
        if self.security is not None:
            self.security.node_certs.revoke_node(node.proto.id)
        self._wipes.pop(node.key, None)
        root = self._own_root(node)
        if root is None:
            return
        self._spawn(self._remove_root(node.key, node.proto.id, int(node.internal.get("pid", 0)), root))

    def node_preempted(self, node: NodeRec) -> None:
        """A spot eviction: the agent is killed at once (no time to shut down: its watchdog kills its
        tasks) and the node's files are deleted, as a preempted VM's disks are."""
        root = self._own_root(node)
        if root is None:
            return
        wipe = asyncio.get_running_loop().create_task(
            self._remove_root(node.key, node.proto.id, int(node.internal.get("pid", 0)), root)
        )
        self._wipes[node.key] = wipe
        self._tasks.add(wipe)
        wipe.add_done_callback(self._tasks.discard)

    def node_recovering(self, node: NodeRec) -> None:
        """A preempted node comes back as new: once its old files are gone, its agent starts on a fresh root."""
        # (Its new allocation time says which return this is: a node preempted again meanwhile and back
        # once more has another, and only that return starts an agent.)
        self._spawn(self._recover(node.key, node.proto.allocation_time.ToNanoseconds()))

    async def _recover(self, node_key: str, allocation: int) -> None:
        def still_this_return() -> NodeRec | None:
            node = self.cp.nodes.get(node_key)
            if node is None or node.state != pool_pb2.NODE_STATE_CREATING or self._stopping:
                return None
            return node if node.proto.allocation_time.ToNanoseconds() == allocation else None

        wipe = self._wipes.get(node_key)
        if wipe is not None:
            await asyncio.wait([wipe])
            if self._wipes.get(node_key) is wipe:
                del self._wipes[node_key]
        node = still_this_return()
        if node is None:
            return
        root = self.node_root(node)
        if root.exists() and self._nodes_dir() is not None:
            # (The server stopped before the preemption's deletion ended.)
            await asyncio.to_thread(remove_node_root_when_free, root, self.root_lock_timeout)
        node = still_this_return()
        if node is not None:
            self.node_added(node)

    def _own_root(self, node: NodeRec) -> Path | None:
        """The node's root directory, if this provider made it: exactly `<data dir>/nodes/<node id>`, as
        recorded when its agent was started (a joined node's files are not the server's to delete)."""
        recorded = node.internal.get("root")
        if not recorded or id_problem(node.proto.id) is not None:
            return None
        root = self.node_root(node)
        if str(root) != str(recorded) or self._nodes_dir() is None:
            return None
        return root

    def _nodes_dir(self) -> Path | None:
        """`<data dir>/nodes`, or None when it is not the real directory there (a link that leads
        elsewhere: nothing is deleted through it)."""
        nodes = self.data_dir / "nodes"
        if nodes.is_symlink() or nodes.resolve() != self.data_dir.resolve() / "nodes":
            return None
        return nodes

    async def _remove_root(self, node_key: str, node_id: str, pid: int, root: Path) -> None:
        # An agent still running (a leaving node forgotten because it went silent) would write there again.
        if pid > 0 and _is_agent(pid, node_id):
            _signal(pid, signal.SIGKILL)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5.0
            while _alive(pid, self._procs.get(node_key)) and loop.time() < deadline:
                await asyncio.sleep(0.05)
        # Its watchdog may still be killing its tasks (which could make files again): it holds the lock until done.
        await asyncio.to_thread(remove_node_root_when_free, root, self.root_lock_timeout)
        log.info("removed the directory of %s (%s)", node_id, root)

    async def remove_orphan_roots(self) -> None:
        """Delete the root directories of nodes that are in no `local` pool of the store: the server was
        killed between committing a node's removal and deleting its files, or the node left before
        nodes recorded their roots. Call it once the control plane has loaded, before nodes can be
        added (a node id is never reused, but a store started afresh counts from the start again).

        Only direct children of `<data dir>/nodes` that are real directories named as node ids go,
        and not one whose lock a live agent holds; each is first moved aside (at once, so that its id
        is free) and then deleted in the background, with what an earlier start left moved aside.
        """
        nodes = self._nodes_dir()
        if nodes is None or not nodes.is_dir():
            return
        keep = {
            n.key
            for n in self.cp.nodes.values()
            if (pool := self.cp.pools.get(n.pool_key)) is not None and pool.proto.provider == "local"
        }
        moved = await asyncio.to_thread(_move_orphans_aside, nodes, keep)
        if moved:
            log.info("deleting the directories of %d node(s) no longer in the store: %s", len(moved), ", ".join(moved))
        self._spawn(asyncio.to_thread(_empty_trash, nodes / TRASH))

    def adopt_or_restart(self) -> None:
        """After a server restart: keep agents that still run, start the missing ones."""
        for node in list(self.cp.nodes.values()):
            pool = self.cp.pools.get(node.pool_key)
            if pool is None or pool.proto.provider != "local":
                continue
            pid = int(node.internal.get("pid", 0))
            alive = pid > 0 and _is_agent(pid, node.proto.id)
            if node.state == pool_pb2.NODE_STATE_LEAVING_POOL:
                if alive:
                    self.node_leaving(node)
                else:
                    self._spawn(self.cp.node_gone(node.key))
            elif node.state == pool_pb2.NODE_STATE_PREEMPTED:
                # (Killed, and its files deleted, once more: the server may have stopped in between.)
                self.node_preempted(node)
            elif not alive:
                log.info("agent of %s is gone; starting it again", node.proto.id)
                self.node_added(node)
            else:
                self._spawn(self._watch_adopted(node.key, pid))

    async def run_restarts(self, period: float = 1.0) -> None:
        """Every `period`: start again the agents of nodes that went UNKNOWN because their agent died."""
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                self.restart_dead_agents()
            except Exception:
                log.exception("restarting dead agents failed")

    def restart_dead_agents(self) -> None:
        """Start the agent of every UNKNOWN node of a `local` pool whose agent is gone: no process holds
        its root's lock (neither an agent nor its watchdog, which holds it until the agent's tasks are
        dead). The server has given up on the node by then and requeued its tasks; the agent that
        starts registers as the same node, which returns to service (its start task runs again). A start
        that does not bring the node back is tried again later and later (RESTART_BACKOFF)."""
        if self._stopping:
            return
        now = asyncio.get_running_loop().time()
        for node in list(self.cp.nodes.values()):
            if node.state != pool_pb2.NODE_STATE_UNKNOWN:
                if node.key in self._restarts and node.connected:
                    del self._restarts[node.key]  # back: the next death starts the backoff afresh
                continue
            if node.connected:
                continue
            pool = self.cp.pools.get(node.pool_key)
            root = self._own_root(node)
            if pool is None or pool.proto.provider != "local" or root is None:
                continue
            starts, not_before = self._restarts.get(node.key, (0, now + RESTART_BACKOFF[0]))
            if node.key not in self._restarts:
                self._restarts[node.key] = (starts, not_before)
            if now < not_before or _root_in_use(root):
                continue
            self._restarts[node.key] = (
                starts + 1,
                now + min(RESTART_BACKOFF[1], RESTART_BACKOFF[0] * 2 ** (starts + 1)),
            )
            log.warning("the agent of %s is gone: starting it again", node.proto.id)
            self.node_added(node)

    async def _watch_adopted(self, node_key: str, pid: int) -> None:
        while _alive(pid, None):
            await asyncio.sleep(1.0)
        node = self.cp.nodes.get(node_key)
        if node is not None and node.state == pool_pb2.NODE_STATE_LEAVING_POOL:
            await self.cp.node_gone(node_key)

    async def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every agent this server started or adopted (on `shoal up` exit)."""
        self._stopping = True
        pids = {int(n.internal.get("pid", 0)) for n in self.cp.nodes.values() if n.internal.get("pid")}
        for n in self.cp.nodes.values():
            if n.session is not None:
                from shoal.agent.v1 import agent_pb2

                n.session.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="server stopping")))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(_alive(p, None) for p in pids) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for p in pids:
            if _alive(p, None):
                _signal(p, signal.SIGKILL)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        for t in list(self._tasks):
            t.cancel()


def remove_node_root_when_free(root: Path, timeout: float) -> None:
    """Delete node root `root` once its lock is free (see `shoal.rootlock`): its agent and the agent's
    watchdog, which holds the lock until it has killed every task, are done. After `timeout` it is
    deleted anyway (a log line says so)."""
    fd = rootlock.open_existing_lock(root)
    try:
        if fd is not None and not rootlock.wait_for_lock(fd, timeout):
            log.warning("%s is still locked by an agent or its watchdog after %.0f s: deleted anyway", root, timeout)
        remove_tree(root)
    finally:
        if fd is not None:
            os.close(fd)


def _move_orphans_aside(nodes: Path, keep: set[str]) -> list[str]:
    """Move the node roots in `nodes` whose ids are not in `keep` (keys, lower case) into the trash;
    their names. A root whose lock is held (a live agent uses it) is left where it is."""
    moved: list[str] = []
    trash = nodes / TRASH
    with os.scandir(nodes) as it:
        entries = [e for e in it if id_problem(e.name) is None and e.name.lower() not in keep]
    for e in entries:
        if not e.is_dir(follow_symlinks=False):
            continue  # never made by this provider: left alone
        fd = rootlock.open_existing_lock(Path(e.path))
        try:
            if fd is not None and not rootlock.try_lock(fd):
                log.warning("%s belongs to no node but an agent uses it: left in place", e.path)
                continue
            trash.mkdir(exist_ok=True)
            os.rename(e.path, trash / f"{e.name}.{secrets.token_hex(4)}")
            moved.append(e.name)
        except OSError as err:
            log.warning("cannot move %s aside to delete it: %s", e.path, err)
        finally:
            if fd is not None:
                os.close(fd)
    return moved


def _empty_trash(trash: Path) -> None:
    """Delete what is in the trash (node roots moved there, also by an earlier start), and the trash."""
    if trash.is_symlink() or not trash.is_dir():
        return
    for entry in trash.iterdir():
        remove_tree(entry)
    with contextlib.suppress(OSError):
        trash.rmdir()


def _root_in_use(root: Path) -> bool:
    """Whether a process (an agent, or its watchdog) holds the lock of node root `root`."""
    fd = rootlock.open_existing_lock(root)
    if fd is None:
        return False
    try:
        return not rootlock.try_lock(fd)
    finally:
        os.close(fd)


def _alive(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    if pid <= 0:
        return False
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_agent(pid: int, node_id: str) -> bool:
    try:
        cmd = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "shoal.nodeagent" in cmd and node_id in cmd


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
