"""The node agent: NodeService, the session with the control plane, and the task runner together."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.metadata
import logging
import os
import secrets
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psutil

from shoal import logs
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.agentidentity import CA_FILE, AgentIdentity, identity_dir
from shoal.certs.authority import ROLE_NODE, CertificateError, identity_of, not_after
from shoal.clock import Clock, SystemClock
from shoal.grpcguard import guarded
from shoal.nodeagent import certificates, health, packages, process, restart
from shoal.nodeagent.config import DEFAULT_HEARTBEAT_INTERVAL, AgentConfig
from shoal.nodeagent.containertasks import NodeContainers
from shoal.nodeagent.execport import ExecEndpoint
from shoal.nodeagent.execport import server_context as exec_server_context
from shoal.nodeagent.execservice import exec_admission
from shoal.nodeagent.fileservice import NodeFileService
from shoal.nodeagent.jobtasks import is_process_key
from shoal.nodeagent.join import JoinError, join
from shoal.nodeagent.launcher import LAUNCHER
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.metrics import AgentCounters, AgentView, MetricsEndpoint, registry_for
from shoal.nodeagent.mpilauncher import write_launcher
from shoal.nodeagent.nodeexec import NodeExec
from shoal.nodeagent.nodeusers import NodeLoginUsers
from shoal.nodeagent.outbox import Outbox
from shoal.nodeagent.packages import PackageCache
from shoal.nodeagent.runner import TaskRunner
from shoal.nodeagent.starttask import run_start_task
from shoal.nodeagent.state import RunningFile, read_node_id, write_node_id
from shoal.nodeagent.storage import StorageClient
from shoal.nodeagent.users import NodeUsers, unreachable_part
from shoal.nodeagent.watchdog import RootBusyError, Watchdog, take_root_lock
from shoal.paths import UnsafePathError
from shoal.tlsconfig import SERVER_TLS_NAME, channel_credentials, name_options, server_credentials
from shoal.v1 import common_pb2, pool_pb2


def _version() -> str:
    try:
        return importlib.metadata.version("shoal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


#: The Shoal version this agent runs (the node's `agent_version`).
AGENT_VERSION = _version()

log = logging.getLogger(__name__)

_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]

EXIT_OK = 0
EXIT_ORPHANED = 3
EXIT_ROOT_BUSY = 4
#: No certificate to speak to the server with, no join token that got one, or the server refuses it.
EXIT_NO_IDENTITY = 5
#: The server asked for a restart (RebootNode, ReimageNode): the process starts again (`restart.exec_again`).
EXIT_RESTART = 6
#: How the control plane refuses a node's certificate (see shoal.server.api.agentgate).
_REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
#: The start task's process group in running.json.
START_TASK_KEY = "startup"
WELCOME_TIMEOUT = 30.0
MAX_EVENTS_PER_MESSAGE = 1000
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class SessionEnded(Exception):
    """The stream ended or failed before or after Welcome."""


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _Connection:
    """One Connect stream: messages queued for the writer."""

    def __init__(self, wake: asyncio.Event) -> None:
        self.queue: collections.deque[agent_pb2.AgentMessage] = collections.deque()
        self._wake = wake
        self.ack_up_to = 0

    def send(self, msg: agent_pb2.AgentMessage) -> None:
        self.queue.append(msg)
        self._wake.set()

    def ack(self, command_id: int) -> None:
        """Acknowledge commands up to `command_id`, on the next message that leaves."""
        self.ack_up_to = max(self.ack_up_to, command_id)
        self._wake.set()

    def take_ack(self) -> int:
        """The acknowledgement not yet sent (0: none); it is sent with the caller's message."""
        ack, self.ack_up_to = self.ack_up_to, 0
        return ack


class Agent:
    """One node agent. `await Agent(config).run()` returns the process exit code."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        source_env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.layout = NodeLayout(config.node_root.absolute(), config.server)
        self.boot_id = secrets.token_hex(16)
        self.node_id = config.node_id
        self.pool_id = config.pool_id
        self.node_service_port = 0
        #: The Exec-only listener (TLS, no client certificate; see NodeService in agent.proto).
        self.exec_port = 0
        #: The node's certificate, key and CA (`shoal.agentidentity`), once loaded or joined.
        self.identity: AgentIdentity | None = None
        #: The server's agent port.
        self.agent_address = config.agent_server
        self.heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
        self.outbox = Outbox()
        self.running_file = RunningFile(self.layout.running_file)
        #: Set on every Welcome (tests wait on it).
        self.welcomed = asyncio.Event()
        self.exit_code = EXIT_OK
        self._stop = asyncio.Event()
        self._wake = self.outbox.changed
        self._conn: _Connection | None = None
        self._channel: grpc.aio.Channel | None = None
        self._storage: StorageClient | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._start_task: asyncio.Task[None] | None = None
        self._start_task_pgid: int | None = None
        self._start_task_report: common_pb2.StartTaskInfo | None = None
        #: Giving the pool's named users their REMOTE_USER certificates (after a Welcome), if under way.
        self._certificates_given: asyncio.Task[None] | None = None
        self.start_task_succeeded = False
        #: The restart the server asked for, once asked (see `shoal.nodeagent.restart`).
        self._restart: agent_pb2.Restart | None = None
        #: Waiting for the task directories' retention before the restart (RETAINED_DATA), if so.
        self._restart_wait: asyncio.Task[None] | None = None
        #: The node errors the last Register carried (a change since is sent after Welcome).
        self._registered_errors: list[pool_pb2.NodeError] = []
        #: The id of the restart this process was started by, until the server has heard of it.
        self.restart_done = ""
        #: What is wrong with the node: the health check's findings (`shoal.nodeagent.health`) as last
        #: checked, then the pool's application packages that could not be deployed.
        self.node_errors: list[pool_pb2.NodeError] = []
        self._health_errors: list[pool_pb2.NodeError] = []
        self._package_errors: list[pool_pb2.NodeError] = []
        #: The node's application packages (made once the agent has its channel to the control plane).
        self.packages: PackageCache | None = None
        self._root_lock: int | None = None
        self.watchdog: Watchdog | None = None
        #: Who tasks run as (decided once: root, and a node root other users can reach).
        self.users = NodeUsers(root=self.layout.root, prefix=config.user_prefix, enabled=config.task_users)
        #: The node's users (AddNodeUser) and the SSH server at its address.
        self.logins = NodeLoginUsers(
            root=self.layout.root, prefix=config.user_prefix, ip=config.ip, ssh_port=config.ssh_port
        )
        self.runner = TaskRunner(
            config=config,
            layout=self.layout,
            clock=self.clock,
            emit=self._emit,
            storage=lambda: self._storage,
            node_identity=lambda: (self.node_id, self.pool_id),
            running_file=self.running_file,
            source_env=source_env,
            users=self.users,
        )
        self._source_env = source_env
        #: The node's container engine and its pool's images (see `shoal.nodeagent.containertasks`).
        self.containers = NodeContainers(self.layout, self._publish_errors)
        self.runner.containers = self.runner.job_tasks.containers = self.containers
        #: What the agent counts for its metrics, and where it serves them (`config.metrics_listen`): the
        #: address it tells the server ("" when it serves none).
        self.counters = AgentCounters()
        self.metrics_address = ""
        self._metrics: MetricsEndpoint | None = None

    # ---- life cycle ------------------------------------------------------------------------------

    def request_stop(self, reason: str = "", exit_code: int = EXIT_OK) -> None:
        """Kill all tasks and exit (SIGTERM, SIGINT, Shutdown)."""
        if self._stop.is_set() and exit_code == EXIT_OK and self.exit_code == EXIT_RESTART:
            # A signal while restarting: stop, and do not start again (the server asks again if it must).
            log.info("stopping instead of restarting: %s", reason or "requested")
            self.exit_code = EXIT_OK
        if not self._stop.is_set():
            log.info("stopping: %s", reason or "requested")
            self.exit_code = exit_code
            self._stop.set()

    async def run(self) -> int:
        """Run until Shutdown, Restart, a signal, or the orphan timeout; returns the exit code (EXIT_RESTART:
        start the agent again, its root made ready for it)."""
        self.layout.create()
        self.restart_done = restart.done_restart(self.layout)
        if self.users.decide():
            self.layout.open_to_task_users()
            packages.open_to_task_users(self.layout.applications)
            await asyncio.to_thread(LAUNCHER.prepare)
            blocked = unreachable_part(Path(sys.executable).resolve())
            if blocked is not None:
                # Tasks find the agent's Python first on PATH (shoal-mpi-launch, the SDK from inside a task).
                log.warning(
                    "task users cannot run the agent's Python %s (%s is closed to them): install Shoal where "
                    "every user can run it, or tasks that use it fail",
                    sys.executable,
                    blocked,
                )
        elif os.geteuid() == 0:
            log.warning("tasks run as %s, whatever their identity: %s", self.users.agent_user, self.users.reason)
        try:
            # First the root's lock: an earlier agent's watchdog holds it until that agent's tasks are gone.
            self._root_lock = await take_root_lock(self.layout.lock_file, self.config.root_lock_timeout)
        except RootBusyError as e:
            log.error("%s", e)
            return EXIT_ROOT_BUSY
        try:
            code = await self._run_locked()
            if self.watchdog is not None:
                await self.watchdog.close()
                self.watchdog = None
            if code == EXIT_RESTART and self._restart is not None:
                # Still holding the root's lock: no other agent of this root can start meanwhile.
                await asyncio.to_thread(restart.prepare, self.layout, self._restart, tls_dir=self.config.tls_dir)
            return code
        finally:
            if self.watchdog is not None:
                await self.watchdog.close()
            os.close(self._root_lock)
            self._root_lock = None

    async def _run_locked(self) -> int:
        assert self._root_lock is not None
        if self.config.watchdog:
            self.watchdog = await Watchdog.start(
                root=self.layout.root,
                lock_fd=self._root_lock,
                running_file=self.layout.running_file,
                use_cgroup=self.config.task_cgroup,
            )
            self._spawn(self._guard_watchdog(self.watchdog))
        orphans = self.running_file.kill_orphans(self.layout.root)
        if orphans:
            log.warning("killed %d task(s) left by a previous agent process: %s", len(orphans), orphans)
            self._retain_orphan_dirs(orphans)
        if not self.node_id:
            self.node_id = read_node_id(self.layout.node_id_file)
        identity = await self._load_identity()
        if identity is None:
            await self._shutdown()
            return EXIT_NO_IDENTITY
        self.identity = identity
        server = grpc.aio.server()
        agent_pb2_grpc.add_NodeServiceServicer_to_server(
            NodeFileService(
                self.layout,
                self.runner.attempt_done,
                NodeExec(
                    layout=self.layout,
                    users=self.users,
                    running_file=self.running_file,
                    identity=lambda: (self.node_id, self.pool_id),
                    source_env=self._source_env,
                ).serve,
                storage=lambda: self._storage,
            ),
            guarded(server),  # bytes that are not a request: INVALID_ARGUMENT, not a traceback each
        )
        # The server's client certificate reaches NodeService (files, ExecNode); an attempt's processes reach
        # the exec port instead (TLS with the node's certificate, the attempt's secret, the shim's framed
        # protocol: no gRPC to import in the shim, see execport).
        mutual = server_credentials(identity.cert_pem, identity.key_pem, client_ca_pem=identity.ca_pem)
        self.node_service_port = server.add_secure_port(_host_port(self.config.ip, 0), mutual)
        exec_endpoint = ExecEndpoint(
            exec_admission(self.runner), exec_server_context(identity.cert_pem, identity.key_pem)
        )
        self.exec_port = await exec_endpoint.start(self.config.ip)
        # The compiled shim where it can be built (seconds, once per machine), else the Python one.
        self.runner.launcher_dir = await asyncio.to_thread(write_launcher, self.layout.root / "bin")
        await server.start()
        logs.set_static(node=self.node_id, pool=self.pool_id)
        if self.config.metrics_listen:
            await self._serve_metrics(self.config.metrics_listen)
        log.info(
            "agent %s (boot %s) serving files on %s:%d (Exec on %d), control plane %s (agents: %s)",
            self.node_id or "(unassigned)",
            self.boot_id,
            self.config.ip,
            self.node_service_port,
            self.exec_port,
            self.config.server,
            self.agent_address,
        )
        credentials = channel_credentials(identity.ca_pem, identity.cert_pem, identity.key_pem)
        self._channel = grpc.aio.secure_channel(
            self.agent_address, credentials, options=CHANNEL_OPTIONS + name_options(SERVER_TLS_NAME)
        )
        self._storage = StorageClient(self._channel, access=self.layout.access)
        self.packages = PackageCache(
            self.layout.applications, packages.grpc_fetch(lambda: self._channel, self.layout.access)
        )
        self.runner.packages = self.packages
        self._spawn(self.runner.run_sweeper(self.config.sweep_interval_seconds))
        self._spawn(self.runner.run_sampler())
        await self.containers.start(self._task_dir_exists)
        self._health_errors = await asyncio.to_thread(health.node_errors, self.layout, self.config.reserved_disk_bytes)
        self.node_errors = list(self._health_errors)
        self._spawn(self._watch_health())
        try:
            await self._session_loop()
        finally:
            await self._shutdown()
            await exec_endpoint.close()
            await server.stop(0.5)
            if self._metrics is not None:
                await self._metrics.stop()
                self._metrics = None
        return self.exit_code

    async def _serve_metrics(self, listen: str) -> None:
        """Serve the agent's metrics at `listen` (`shoal.nodeagent.metrics`); one that cannot listen there
        is logged and the agent runs without (its tasks matter more than its metrics)."""
        view = AgentView(
            counters=self.counters,
            slots=lambda: self.runner.slots,
            slots_used=self.runner.running_slots,
            active=self.runner.active_count,
            waiting=self.runner.waiting,
            unacknowledged=lambda: len(self.outbox),
            connected=lambda: self._conn is not None,
            node_errors=lambda: len(self.node_errors),
            transfers=lambda: self._storage.counts if self._storage is not None else None,
            version=AGENT_VERSION,
        )
        endpoint = MetricsEndpoint(registry_for(view))
        try:
            self.metrics_address = await endpoint.start(listen, self.config.ip)
        except (OSError, ValueError) as e:
            log.error("cannot serve metrics at %s: %s", listen, e)
            return
        self._metrics = endpoint
        log.info("metrics at http://%s/metrics", self.metrics_address)

    async def _load_identity(self) -> AgentIdentity | None:
        """The node's certificate: the one kept under the node root, or one got by joining with the
        token; None (logged) when there is none. Sets the node and pool ids a node certificate names."""
        directory = self.config.tls_dir or identity_dir(self.layout.root)
        identity = AgentIdentity.load(directory)
        if identity is not None and self.clock.now() >= not_after(identity.cert_pem):
            log.warning("the node certificate in %s has expired", directory)
            identity = None if self.config.join_token else identity
        if identity is None and self.config.join_token:
            identity = await self._join(directory)
        if identity is None:
            if not self.config.join_token:
                log.error(
                    "no node certificate in %s: start the agent with a join token (--token, from "
                    "`shoal pool join-token POOL`)",
                    directory,
                )
            return None
        try:
            ident = identity_of(identity.cert_pem)
        except CertificateError as e:
            log.error("the node certificate in %s is unusable: %s", directory, e)
            return None
        if ident.role == ROLE_NODE:
            if self.node_id and self.node_id.lower() != ident.node_id.lower():
                log.error("this node root belongs to node %s, its certificate to node %s", self.node_id, ident.node_id)
                return None
            self.node_id = ident.node_id
            self.pool_id = self.pool_id or ident.pool_id
        self.agent_address = self.agent_address or identity.agent_address
        if not self.agent_address:
            log.error("the server's agent port is not known: pass --agent-server HOST:PORT")
            return None
        self.runner.agent_ca_file = directory / CA_FILE
        self.layout.access.ca_file = str(directory / CA_FILE)
        return identity

    async def _join(self, directory: Path) -> AgentIdentity | None:
        """Join through the public API with the token (trying again while the server is unreachable)."""
        deadline = self.clock.monotonic() + self.config.orphan_timeout
        backoff = self.config.reconnect_initial_backoff
        while not self._stop.is_set():
            try:
                identity, node_id, pool_id = await join(
                    self.config.server, self.config.join_token, ca_cert_file=self.config.ca_cert_file
                )
            except JoinError as e:
                if not e.retryable or self.clock.monotonic() >= deadline:
                    log.error("joining through %s failed: %s", self.config.server, e)
                    return None
                log.warning("joining through %s: %s (trying again)", self.config.server, e)
                await self._wait_or_stop(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_backoff)
                continue
            identity.save(directory)
            write_node_id(self.layout.node_id_file, node_id)
            log.info("joined pool %s as node %s", pool_id, node_id)
            return identity
        return None

    async def _guard_watchdog(self, watchdog: Watchdog) -> None:
        """Start a new watchdog whenever the last one dies while the agent runs."""
        while True:
            await process.wait_process(watchdog.proc)
            if watchdog.closed or self._stop.is_set():
                return
            watchdog.respawn()

    def _retain_orphan_dirs(self, keys: list[str]) -> None:
        """Give the directories of killed orphans the default retention, so the sweeper removes them."""
        deadline = self.clock.now() + timedelta(seconds=self.config.default_retention_seconds)
        for key in keys:
            if is_process_key(key):
                continue  # a job's preparation or release task: its directory goes with the job
            job_id, _, rest = key.partition("/")
            task_id = rest.rpartition("/")[0]
            with contextlib.suppress(UnsafePathError, OSError):
                task_dir = self.layout.task_dir(job_id, task_id)
                if task_dir.is_dir() and self.runner.retention.deadline(job_id, task_id) is None:
                    self.runner.retention.record(job_id, task_id, deadline)

    async def _shutdown(self) -> None:
        if self._start_task_pgid is not None:
            process.kill_group_now(self._start_task_pgid)
        await self.runner.kill_all()
        await self.containers.stop()
        self.running_file.flush()
        self.running_file.close()
        self.runner.retention.close()
        self.runner.job_tasks.close()
        await self.users.close()
        await self.logins.close()
        for t in list(self._background):
            t.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        if self._channel is not None:
            await self._channel.close(None)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _wait_or_stop(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        sleep = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({stop, sleep}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            sleep.cancel()

    # ---- session -----------------------------------------------------------------------------------

    async def _session_loop(self) -> None:
        backoff = self.config.reconnect_initial_backoff
        lost_since = self.clock.monotonic()
        while not self._stop.is_set():
            welcomed = await self._one_session()
            if self._stop.is_set():
                return
            if welcomed:
                backoff = self.config.reconnect_initial_backoff
                lost_since = self.clock.monotonic()
            if self.clock.monotonic() - lost_since >= self.config.orphan_timeout:
                log.error(
                    "control plane unreachable for %.0fs: killing all tasks and exiting",
                    self.config.orphan_timeout,
                )
                self.request_stop("orphaned", EXIT_ORPHANED)
                return
            remaining = self.config.orphan_timeout - (self.clock.monotonic() - lost_since)
            await self._wait_or_stop(max(0.0, min(backoff, remaining)))
            backoff = min(backoff * 2, self.config.reconnect_max_backoff)

    def _register(self) -> agent_pb2.AgentMessage:
        return agent_pb2.AgentMessage(
            register=agent_pb2.Register(
                agent_version=AGENT_VERSION,
                node_id=self.node_id,
                pool_id=self.pool_id,
                ip_address=self.config.ip,
                node_service_port=self.node_service_port,
                exec_port=self.exec_port,
                cores=psutil.cpu_count() or 1,
                memory_bytes=psutil.virtual_memory().total,
                root_directory=str(self.layout.root),
                boot_id=self.boot_id,
                running=self.runner.active_attempts(),
                pending_events=self.outbox.pending(),
                start_task_succeeded=self.start_task_succeeded,
                prepared_jobs=self.runner.job_tasks.prepared_jobs(),
                released_jobs=self.runner.job_tasks.released_jobs(),
                task_user_isolation=self.users.isolation,
                agent_user=self.users.agent_user,
                restart_id=self.restart_done,
                errors=self._remember_registered_errors(),
                ssh_port=self.logins.ssh_port,
                container_engine=self.containers.description,
                images_ready=self.containers.images_ready,
                metrics_address=self.metrics_address,
            )
        )

    async def _one_session(self) -> bool:
        """One Connect stream from Register to its end; True when a Welcome arrived."""
        assert self._channel is not None
        stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        call = stub.Connect()
        welcomed = False
        tasks: list[asyncio.Task[Any]] = []
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await self.logins.probe_ssh()
            register = self._register()
            watermark = self.outbox.last_id

            async def handshake() -> Any:
                await call.write(register)
                return await call.read()

            shake = asyncio.ensure_future(handshake())
            await asyncio.wait({shake, stop}, timeout=WELCOME_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if not shake.done():
                shake.cancel()
                if self._stop.is_set():
                    return False
                raise SessionEnded(f"no Welcome within {WELCOME_TIMEOUT:.0f}s")
            first = shake.result()
            if first is not _EOF and first.WhichOneof("body") == "shutdown":
                # A node that left the pool while the agent was away is told so instead of welcomed.
                self.logins.leaving()
                self.containers.leaving()
                self.request_stop(f"shutdown requested by the control plane: {first.shutdown.reason}")
                return True
            if first is _EOF or first.WhichOneof("body") != "welcome":
                raise SessionEnded("no Welcome")
            conn = _Connection(self._wake)
            self._conn = conn
            welcomed = True
            self.counters.sessions += 1
            self._on_welcome(first.welcome, conn)
            writer = asyncio.create_task(self._writer(call, conn, watermark))
            tasks = [writer, asyncio.create_task(self._heartbeats(conn))]
            while True:
                read = asyncio.ensure_future(call.read())
                done, _ = await asyncio.wait({read, stop, writer}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    if writer in done and writer.exception() is not None:
                        raise SessionEnded(f"writing failed: {writer.exception()}")
                    break
                msg = read.result()
                if msg is _EOF:
                    log.warning("the control plane closed the stream")
                    break
                try:
                    self._dispatch(msg, conn)
                except Exception:
                    log.exception("handling a %s message failed", msg.WhichOneof("body"))
            if self._stop.is_set():
                # Let queued messages (acks, reports) go out, then close our side.
                writer.cancel()
                with contextlib.suppress(BaseException):
                    await writer
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._flush(call, conn), 1.0)
                    await call.done_writing()
        except (grpc.aio.AioRpcError, SessionEnded, TimeoutError, grpc.aio.UsageError) as e:
            detail = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
            if isinstance(e, grpc.aio.AioRpcError) and e.code() in _REFUSED:
                # Not a passing failure: a revoked certificate, another node's. Trying again cannot help.
                log.error("the control plane refuses this node: %s: %s", e.code().name, detail)
                self.request_stop("refused by the control plane", EXIT_NO_IDENTITY)
                return welcomed
            log.warning("session with %s ended: %s", self.agent_address, detail)
        except Exception:
            log.exception("session with %s failed", self.agent_address)
        finally:
            self._conn = None
            stop.cancel()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            call.cancel()
        return welcomed

    async def _flush(self, call: Any, conn: _Connection) -> None:
        while conn.queue:
            msg = conn.queue.popleft()
            msg.commands_acked_up_to = conn.take_ack()
            await call.write(msg)

    def _on_welcome(self, w: agent_pb2.Welcome, conn: _Connection) -> None:
        # (Its credential and the pool's registry passwords: never in a log line.)
        logs.register_message_secrets(w)
        if w.node_id and w.node_id != self.node_id:
            log.info("node id is %s", w.node_id)
            self.node_id = w.node_id
        if self.node_id and read_node_id(self.layout.node_id_file) != self.node_id:
            write_node_id(self.layout.node_id_file, self.node_id)
        if w.pool_id:
            self.pool_id = w.pool_id
        logs.set_static(node=self.node_id, pool=self.pool_id)
        # Tasks started from now on (and the agent's storage calls) act for the pool's account.
        self.layout.access.account = w.account
        self.layout.access.credential = w.credential
        self.layout.access.is_dedicated = w.is_dedicated
        self.heartbeat_interval = w.heartbeat_interval_seconds or DEFAULT_HEARTBEAT_INTERVAL
        if self._restart_wait is not None and not self._stop.is_set():
            # A restart still waiting is dropped: the server tells it again if it still wants it (it may
            # have given up on it while the agent was away).
            self._restart_wait.cancel()
            self._restart_wait = None
            self._restart = None
        # The pool's container images are pulled from now on (tasks and the start task wait for them), and
        # the node takes no task until they are there (first: what it sends below says so).
        self.containers.welcome(w.containers if w.HasField("containers") else None, self._spawn)
        if self.node_errors != self._registered_errors:
            # What the health check found while the Register was on its way.
            health = agent_pb2.NodeHealth(errors=self.node_errors, images_ready=self.containers.images_ready)
            conn.send(agent_pb2.AgentMessage(node_health=health))
        if self.restart_done:
            # The server has ended the restart (before this Welcome): the next start of the agent is not one.
            restart.forget_restart(self.layout)
            self.restart_done = ""
        # (Before the start task and the first tasks: their users are made from here on.)
        self.users.configure(self.pool_id, w.user_accounts)
        self._install_certificates(w)
        # (Before the start task and the first tasks, which wait for them.)
        self._deploy_pool_packages(list(w.packages))
        self.logins.apply(w.node_users)
        self.runner.set_slots(w.task_slots)
        running = self._start_task is not None and not self._start_task.done()
        if w.run_start_task and not running:
            self._start_task = self._spawn(self._run_start_task(w.start_task))
        elif self._start_task_report is not None:
            conn.send(agent_pb2.AgentMessage(start_task=agent_pb2.StartTaskReport(info=self._start_task_report)))
        self.welcomed.set()
        self.welcomed = asyncio.Event()

    def _install_certificates(self, w: agent_pb2.Welcome) -> None:
        """The pool's certificates into the node's store before the start task runs (a failure is logged and
        leaves tasks without them: they find no certificate directory), then to the named users' homes."""
        try:
            self.layout.certificates.install(w.certificates)
        except OSError:
            log.exception("could not install the pool's certificates")
            return
        if self.layout.certificates.visible(certificates.REMOTE_USER):
            # (The start task waits for this: the named users have theirs before the node is ready.)
            self._certificates_given = self._spawn(
                certificates.give_named_users(self.layout.certificates, self.users, list(w.user_accounts))
            )

    async def _hold(self, conn: _Connection, seconds: float, reason: Callable[[], object]) -> None:
        """Wait up to `seconds` while `reason()` holds, looking again at each new event; a message
        queued for the writer ends the wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not conn.queue and reason() and loop.time() < deadline:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), deadline - loop.time())

    async def _writer(self, call: Any, conn: _Connection, watermark: int) -> None:
        while True:
            await self._wake.wait()
            if self.outbox.last_id > watermark and self.config.event_batch_window > 0:
                await asyncio.sleep(self.config.event_batch_window)
                await self._hold(
                    conn, self.config.running_report_delay, partial(self.outbox.only_running_after, watermark)
                )
                # Work sent ahead still waits for a slot here: the server has nothing to send this node
                # yet, so reports gather until the last of it starts (its RUNNING wakes this loop).
                await self._hold(conn, self.config.busy_report_delay, self.runner.waiting)
            self._wake.clear()
            await self._flush(call, conn)
            while True:
                events = self.outbox.after(watermark, MAX_EVENTS_PER_MESSAGE)
                if not events:
                    break
                watermark = events[-1].event_id
                self.outbox.mark_sent(watermark)
                msg = agent_pb2.AgentMessage(task_events=agent_pb2.TaskEvents(events=events))
                msg.commands_acked_up_to = conn.take_ack()
                await call.write(msg)
            ack = conn.take_ack()
            if ack:
                # Nothing else went out to carry it.
                await call.write(agent_pb2.AgentMessage(ack=agent_pb2.CommandAck(command_id=ack)))

    def _heartbeat(self) -> agent_pb2.Heartbeat:
        """What the node uses now (the metrics autoscale formulas read): CPU, memory, the disk of the node
        root, and the machine's disk and network counters since boot."""
        hb = agent_pb2.Heartbeat(
            cpu_percent=psutil.cpu_percent(None),
            memory_used_bytes=psutil.virtual_memory().used,
            running_task_slots=self.runner.running_slots(),
        )
        with contextlib.suppress(OSError):
            hb.disk_used_bytes = psutil.disk_usage(str(self.layout.root)).used
        disk = psutil.disk_io_counters()
        if disk is not None:
            hb.disk_read_bytes, hb.disk_write_bytes = disk.read_bytes, disk.write_bytes
            hb.disk_read_ops, hb.disk_write_ops = disk.read_count, disk.write_count
        net = psutil.net_io_counters()
        if net is not None:
            hb.network_in_bytes, hb.network_out_bytes = net.bytes_recv, net.bytes_sent
        return hb

    async def _heartbeats(self, conn: _Connection) -> None:
        while True:
            conn.send(agent_pb2.AgentMessage(heartbeat=self._heartbeat()))
            await self.clock.sleep(self.heartbeat_interval)

    def _dispatch(self, msg: agent_pb2.ServerMessage, conn: _Connection) -> None:
        if msg.events_acked_up_to:
            self.outbox.ack(msg.events_acked_up_to)
        kind = msg.WhichOneof("body")
        if kind == "start_tasks":
            self.counters.assignments += len(msg.start_tasks.tasks)
            for assignment in msg.start_tasks.tasks:
                self.runner.start(assignment)
            self._ack(conn, msg.start_tasks.command_id)
        elif kind == "kill_tasks":
            k = msg.kill_tasks
            self._spawn(self.runner.kill(list(k.attempts), k.delete_files))
            self._ack(conn, k.command_id)
        elif kind == "delete_task_files":
            d = msg.delete_task_files
            self._spawn(self.runner.delete_task_files(d.job_id, list(d.task_ids)))
            self._ack(conn, d.command_id)
        elif kind == "run_application":
            self.runner.run_application(msg.run_application.attempt)
            self._ack(conn, msg.run_application.command_id)
        elif kind == "run_job_release":
            self.runner.job_tasks.run_release(msg.run_job_release.release)
            self._ack(conn, msg.run_job_release.command_id)
        elif kind == "deploy_packages":
            self._deploy_pool_packages(list(msg.deploy_packages.packages))
            self._ack(conn, msg.deploy_packages.command_id)
        elif kind == "node_users":
            logs.register_message_secrets(msg.node_users)
            self.logins.apply(msg.node_users.users)
            self._ack(conn, msg.node_users.command_id)
        elif kind == "events_ack":
            self.outbox.ack(msg.events_ack.up_to_event_id)
        elif kind == "shutdown":
            self.logins.leaving()  # (the node's users go as it stops)
            self.containers.leaving()
            self.request_stop(f"shutdown requested by the control plane: {msg.shutdown.reason}")
        elif kind == "restart":
            self._ack(conn, msg.restart.command_id)
            self._begin_restart(msg.restart)
        else:
            log.warning("ignoring unexpected %s message", kind)

    async def _watch_health(self) -> None:
        """Check the node's health now and then; tell the server when what is wrong changes."""
        while True:
            await self.clock.sleep(self.config.health_interval_seconds)
            self._health_errors = await asyncio.to_thread(
                health.node_errors, self.layout, self.config.reserved_disk_bytes
            )
            self._publish_errors()

    def _publish_errors(self, always: bool = False) -> None:
        """Tell the server when what is wrong with the node changed (the health check's findings, the pool's
        packages that could not be deployed, its container images that could not be pulled), or (`always`)
        whether the pool's container images are there."""
        errors = [*self._health_errors, *self._package_errors, *self.containers.errors]
        if always and self._conn is not None:
            self.node_errors = errors
            health = agent_pb2.NodeHealth(errors=errors, images_ready=self.containers.images_ready)
            self._conn.send(agent_pb2.AgentMessage(node_health=health))
            return
        if [(e.code, e.message) for e in errors] != [(e.code, e.message) for e in self.node_errors]:
            for e in errors:
                log.warning("node error %s: %s", e.code, e.message)
            if not errors:
                log.info("the node is healthy again")
            self.node_errors = errors
            if self._conn is not None:
                health = agent_pb2.NodeHealth(errors=errors, images_ready=self.containers.images_ready)
                self._conn.send(agent_pb2.AgentMessage(node_health=health))

    # ---- the pool's application packages ------------------------------------------------------------

    def _deploy_pool_packages(self, wanted: list[agent_pb2.PackageDeployment]) -> None:
        """Deploy the pool's packages (Welcome, DeployPackages): tasks and the start task wait for it; a
        package that cannot be deployed is a node error until a later deployment succeeds."""
        if not wanted and self.runner.pool_deploy is None:
            self.layout.pool_packages.clear()
            if self._package_errors:
                self._package_errors = []
                self._publish_errors()
            return
        self.runner.pool_deploy = self._spawn(self._pool_packages(wanted))

    async def _pool_packages(self, wanted: list[agent_pb2.PackageDeployment]) -> str:
        env, errors = await packages.deploy_pool_packages(self.packages, wanted)
        if asyncio.current_task() is not self.runner.pool_deploy:
            # (A newer deployment (DeployPackages after a Welcome) began meanwhile: its outcome is the one
            # that counts, whichever of the two ends last.)
            return "; ".join(e.message for e in errors)
        self.layout.pool_packages.clear()
        self.layout.pool_packages.update(env)
        self._package_errors = errors
        self._publish_errors()
        return "; ".join(e.message for e in errors)

    def _begin_restart(self, r: agent_pb2.Restart) -> None:
        """Restart as the server asks (once, however often it asks): now, or once every task directory's
        retention has passed (RETAINED_DATA)."""
        if self._restart is not None or r.restart_id == self.restart_done:
            return
        self._restart = r
        what = "reimage" if r.reimage else "reboot"
        if r.wait_for_retention:
            log.info("%s asked: waiting for the retention of the task directories to pass first", what)
            self._restart_wait = self._spawn(self._restart_after_retention(what))
        else:
            self.request_stop(f"{what} requested by the control plane: {r.reason}", EXIT_RESTART)

    def _remember_registered_errors(self) -> list[pool_pb2.NodeError]:
        self._registered_errors = list(self.node_errors)
        return self._registered_errors

    def _task_dir_exists(self, job_id: str, task_id: str) -> bool:
        try:
            return self.layout.task_dir(job_id, task_id).is_dir()
        except UnsafePathError:
            return False

    async def _restart_after_retention(self, what: str) -> None:
        while True:
            last = self.runner.retention.last_deadline(self._task_dir_exists)
            left = 0.0 if last is None else last - self.clock.now().timestamp()
            if left <= 0:
                break
            await self.clock.sleep(min(left, 30.0))
        self.request_stop(
            f"{what} requested by the control plane, the task directories' retention passed", EXIT_RESTART
        )

    @staticmethod
    def _ack(conn: _Connection, command_id: int) -> None:
        if command_id:
            conn.ack(command_id)

    def _emit(self, event: agent_pb2.TaskEvent) -> None:
        self.counters.event(event)
        self.outbox.add(event)

    # ---- start task --------------------------------------------------------------------------------

    def _report_start_task(self, info: common_pb2.StartTaskInfo) -> None:
        self._start_task_report = info
        if info.state == common_pb2.START_TASK_STATE_COMPLETED:
            self.start_task_succeeded = info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
        if self._conn is not None:
            self._conn.send(agent_pb2.AgentMessage(start_task=agent_pb2.StartTaskReport(info=info)))

    def _on_start_task_process(self, pgid: int | None) -> None:
        self._start_task_pgid = pgid
        if pgid is None:
            self.running_file.remove(START_TASK_KEY)
        else:
            self.running_file.add(START_TASK_KEY, pgid)

    async def _run_start_task(self, start_task: common_pb2.StartTask) -> None:
        self.start_task_succeeded = False
        if self._certificates_given is not None:
            await asyncio.wait([self._certificates_given])
        if self.runner.pool_deploy is not None:
            # (Its packages are in its environment: a start task installs from them.)
            await asyncio.wait([self.runner.pool_deploy])
        await self.containers.wait_for_images()
        try:
            await run_start_task(
                start_task,
                layout=self.layout,
                clock=self.clock,
                node_id=self.node_id,
                pool_id=self.pool_id,
                storage=self._storage,
                report=self._report_start_task,
                grace_seconds=self.config.kill_grace_seconds,
                source_env=self._source_env if self._source_env is not None else dict(os.environ),
                on_process=self._on_start_task_process,
                users=self.users,
                containers=self.containers,
            )
        except Exception:
            log.exception("the start task failed inside the agent")
