"""The `shoal server` process: wires the store, control plane, controllers, provider and gRPC services."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import grpc
import psutil
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shoal import logs, native
from shoal.agent.v1 import agent_pb2_grpc
from shoal.agentidentity import AgentIdentity
from shoal.clock import Clock, SystemClock
from shoal.credfiles import CREDENTIALS_FILE, SERVERS_DIR, server_file_name
from shoal.grpcguard import guarded
from shoal.server.accounts.model import DEFAULT_ACCOUNT, PrincipalKind, Quotas
from shoal.server.accounts.registry import AccountRegistry
from shoal.server.api import agents, tenancy
from shoal.server.api.accounts import AccountServicer
from shoal.server.api.agentgate import AgentGate
from shoal.server.api.agents import AgentServicer
from shoal.server.api.applications import ApplicationServicer, PackageServicer
from shoal.server.api.auth import (
    ACCOUNT_HEADER,
    AUTHORIZATION_HEADER,
    BEARER,
    AuthenticatingRegistrar,
    Authenticator,
)
from shoal.server.api.certificates import CertificateServicer
from shoal.server.api.jobs import JobServicer
from shoal.server.api.join import JoinServicer
from shoal.server.api.nodefiles import NodeChannels
from shoal.server.api.pool_admission import auto_pool_admission
from shoal.server.api.pools import PoolServicer
from shoal.server.api.schedules import JobScheduleServicer
from shoal.server.api.tasks import TaskServicer
from shoal.server.applications.nodes import PackageDeployer
from shoal.server.applications.registry import ApplicationRegistry
from shoal.server.certificates.registry import CertificateRegistry
from shoal.server.controllers.health import run_elasticity, run_health
from shoal.server.controllers.scheduler import run_scheduler
from shoal.server.controllers.schedules import run_schedules
from shoal.server.controlplane import DEFAULT_DISPATCH_AHEAD, ControlPlane
from shoal.server.domain.errors import Unauthenticated
from shoal.server.domain.ids import key as idkey
from shoal.server.gcpolicy import LongLivedGc
from shoal.server.nodeusers.registry import NodeUserRegistry
from shoal.server.observability import metrics as server_metrics
from shoal.server.observability.rpc import InstrumentingRegistrar, RpcStats
from shoal.server.providers.local import LocalProvider
from shoal.server.scheduling.schedules import MIN_SCHEDULE_SECONDS
from shoal.server.scheduling.spot import SpotSettings
from shoal.server.security import ServerSecurity
from shoal.server.storage.blobstore import BlobStore
from shoal.server.storage.service import AccountStores, StorageServicer
from shoal.server.store.sqlite import SqliteStore
from shoal.server.web.dashboard import Dashboard
from shoal.server.web.gateway import Gateway, served_name
from shoal.server.web.server import WebConfig, WebServer
from shoal.server.web.targets import targets_extension
from shoal.tlsconfig import name_options, server_credentials
from shoal.v1 import (
    account_pb2,
    account_pb2_grpc,
    application_pb2,
    application_pb2_grpc,
    certificate_pb2,
    certificate_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    join_pb2,
    join_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)

log = logging.getLogger("shoal.server")

#: Open on the public port: its join token is the caller's credential.
JOIN_NODE = "/shoal.v1.JoinService/JoinNode"

# Large enough for 100,000 tasks in one AddTasks; larger requests get RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
NON_LOOPBACK_FLAG = "--allow-non-loopback-without-authentication"
#: The one way to turn security off on the public API: no TLS and no keys; every caller then acts as the
#: default account, and may administer accounts too.
PLAINTEXT_FLAG = "--insecure-plaintext"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (mode 0600 from the start; replaced atomically)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


class NotLoopbackError(ValueError):
    """The listen address is not a loopback address and the operator did not insist."""


def check_loopback(listen: str, allow_non_loopback: bool) -> None:
    """Refuse a non-loopback listen address for a plaintext server: anyone reaching it runs code."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_non_loopback:
        raise NotLoopbackError(
            f"refusing to listen on {listen} in plaintext: without TLS and keys anyone who can reach this "
            f"address can run commands on the nodes. Use a 127.x.x.x address, or pass {NON_LOOPBACK_FLAG} "
            "if you really mean it."
        )


def default_http_listen(listen: str) -> str:
    """The HTTP port beside `listen`: the same host, two ports above (after the agent port's), or any."""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + 2 if port.isdigit() and int(port) else 0}"


def default_agent_listen(listen: str) -> str:
    """The agent port beside `listen`: the same host, the next port (any free port when `listen`'s is 0)."""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + 1 if port.isdigit() and int(port) else 0}"


#: Listen hosts that mean every address of the machine.
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


def machine_addresses() -> list[str]:
    """The IP addresses of this machine's interfaces now (IPv6 link-local ones left out: a scope is no name)."""
    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            ip = a.address if a.family in (socket.AF_INET, socket.AF_INET6) and "%" not in a.address else ""
            if ip and not ipaddress.ip_address(ip).is_link_local:
                found.append(ip)
    return found


def local_address(listen_host: str, port: int) -> str:
    """The address this machine's clients (and local agents) reach a server listening on `listen_host` at:
    for a wildcard, the loopback (which the certificate names), not the wildcard itself."""
    host = listen_host.strip("[]")
    if host in WILDCARD_HOSTS:
        return f"[::1]:{port}" if host == "::" else f"127.0.0.1:{port}"
    return f"{listen_host}:{port}"


def _listen_hosts(*listens: str) -> list[str]:
    """The names a certificate of the server should carry for these listen addresses.

    A wildcard (``0.0.0.0:7420``, what a server for several machines usually listens on) stands for every
    address of the machine: each one it has at start goes in, or clients and joining agents that reach
    the server by its address could not check its certificate (an address added later needs a restart,
    or the operator's own certificate).
    """
    hosts = ["localhost", "127.0.0.1", "::1"]
    for listen in listens:
        host = listen.rpartition(":")[0].strip("[]")
        hosts.extend(machine_addresses() if host in WILDCARD_HOSTS else [host])
    return list(dict.fromkeys(hosts))


@dataclass
class ServerConfig:
    """How to run one control plane."""

    data_dir: Path
    listen: str = "127.0.0.1:7420"
    #: The agent port (mutual TLS: AgentService and the StorageService agents use). Empty: the listen
    #: host, the next port (see `default_agent_listen`).
    agent_listen: str = ""
    #: The agent port's address as agents elsewhere reach it, told to agents that join (empty: they use
    #: the host they reached the public API at).
    agent_advertise: str = ""
    allow_non_loopback: bool = False
    clock: Clock = field(default_factory=SystemClock)
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    #: Local agents exit when the server has been unreachable this long.
    agent_orphan_timeout: float = 60.0
    #: Write `$SHOAL_HOME/server.json` so clients find this server.
    publish_address: bool = True
    #: Assignments per slot a busy node may hold for jobs of short tasks (0: none).
    dispatch_ahead: int = DEFAULT_DISPATCH_AHEAD
    #: The public API is served over TLS and every call needs an account key (or the administrator's,
    #: or a task's credential). Off only behind `PLAINTEXT_FLAG`, and then on loopback only unless
    #: `allow_non_loopback`.
    secure: bool = True
    #: The public API's certificate chain and key (PEM files) when the operator supplies them; else a
    #: certificate of the cluster CA for the listen host, localhost and this machine's name.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Local pools' low-priority nodes: random preemptions per node-hour, how long a preempted node waits
    #: for capacity, and the seed of the random preemptions (see `server.scheduling.spot`).
    spot_preemption_rate: float = 0.0
    spot_recovery_seconds: float = 30.0
    spot_seed: int | None = None
    #: The shortest start window and recurrence interval a job schedule may have (Batch's minute). Lower
    #: only for tests (`shoal server --schedule-min-interval`).
    schedule_min_seconds: float = MIN_SCHEDULE_SECONDS
    #: The HTTP port (metrics, the dashboard). Empty: the listen host, two ports above the public API's
    #: (any free port when that one's is 0); "off": none.
    http_listen: str = ""
    #: How local agents log (`shoal.logs.FORMATS`; empty: as their environment says, `$SHOAL_LOG_FORMAT`).
    log_format: str = ""


class ShoalServer:
    """One control plane; `start()` returns the address it listens on."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        if not config.secure:
            check_loopback(config.listen, config.allow_non_loopback)
            # The HTTP port of a plaintext server asks for no key either: the same rule.
            if config.http_listen not in ("", "off"):
                check_loopback(config.http_listen, config.allow_non_loopback)
        self.data_dir = config.data_dir.resolve()
        self.store = SqliteStore(self.data_dir / "shoal.db")
        self.accounts: AccountRegistry | None = None
        #: The accounts' applications and their packages (made by `start`).
        self.applications: ApplicationRegistry | None = None
        self.admin_key = ""
        self.blob_stores = AccountStores(self.data_dir / "storage", self.data_dir / "storage-accounts")
        self.cp = ControlPlane(
            self.store,
            config.clock,
            heartbeat_interval=config.heartbeat_interval,
            dispatch_ahead=config.dispatch_ahead,
        )
        self.cp.preemption.configure(
            SpotSettings(
                preemption_rate_per_hour=config.spot_preemption_rate,
                recovery_seconds=config.spot_recovery_seconds,
                seed=config.spot_seed,
            )
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        #: The cluster CA, the server secret, node certificates: `<data dir>/certs/`.
        self.security = ServerSecurity(self.data_dir, config.clock)
        self.cp.exec_secret = self.security.exec_secret
        self.channels = NodeChannels(self.security.node_channel_credentials())
        self.server: grpc.aio.Server | None = None
        self.agent_server: grpc.aio.Server | None = None
        #: The agent port, as `host:port`.
        self.agent_address = ""
        self.provider: LocalProvider | None = None
        self.address = ""
        self._public_tls: tuple[bytes, bytes] | None = None
        self.listen_address = ""
        self._loops: list[asyncio.Task[None]] = []
        #: The server's metrics (served at ``/metrics`` on the HTTP port). One registry per server, not the
        #: process's default one: tests run several servers in one process.
        self.metrics = CollectorRegistry(auto_describe=True)
        #: Every gRPC call of both ports, counted by method and code (`shoal.server.observability.rpc`).
        self.rpc_stats = RpcStats()
        #: Scheduling passes, sampled task waits and store commits, as observed (read by the metrics).
        self.observed = server_metrics.install(self.metrics, self.cp, self.store, self.rpc_stats)
        self.web: WebServer | None = None
        #: Extensions of the HTTP port's application (the dashboard adds its routes here).
        self.web_extensions: list[Callable[[web.Application], None]] = []
        #: The HTTP port, as `scheme://host:port` ("" when off).
        self.http_url = ""

    async def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = self.security.secret
        # (Registry passwords are kept sealed: see `server.containers.credentials`.)
        self.cp.registry_credentials.sealer = secret
        await self.cp.load()
        accounts = self.accounts = AccountRegistry(self.store, secret, self.config.clock)
        accounts.load(self.cp.account_rows)
        self.cp.account_rows = []
        self.admin_key = await accounts.ensure_admin_key()
        await accounts.ensure(DEFAULT_ACCOUNT)
        if self.config.secure:
            self.cp.node_credential = accounts.task_credential
        certificates = CertificateRegistry(self.store, secret, self.config.clock)
        certificates.load(self.cp.certificate_rows)
        self.cp.certificate_rows = []
        self.cp.node_certificates = certificates.node_certificates
        node_users = NodeUserRegistry(self.store, self.config.clock, self.cp)
        await node_users.load(self.cp.nodeuser_rows)
        self.cp.nodeuser_rows = []
        node_users.install()
        self.cp.schedules.load(self.cp.schedule_rows)
        self.cp.schedule_rows = []
        applications = ApplicationRegistry(
            self.store, BlobStore(self.data_dir / "applications", clock=self.config.clock), self.config.clock
        )
        await asyncio.to_thread(applications.load, self.cp.application_rows)
        self.cp.application_rows = []
        deployer = PackageDeployer(self.cp, applications)
        deployer.install()
        self.applications = applications
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        server = grpc.aio.server(options=options)
        # Every service is added through the guard: bytes that are not a request message are refused
        # (INVALID_ARGUMENT MALFORMED_REQUEST) before a servicer runs, with a log line at most a minute.
        # And each call is admitted before its servicer runs (see `shoal.server.api.auth`). A joining
        # agent's token is its credential, so JoinNode is open.
        authenticator = Authenticator(accounts if self.config.secure else None, self.cp)
        # Innermost, every call counted (by method and status code) and logged with its fields, the
        # refused ones too (see `shoal.server.observability.rpc`).
        counted = InstrumentingRegistrar(server, self.rpc_stats, skip=agents.SELF_CHECKED)
        services = AuthenticatingRegistrar(
            guarded(cast(grpc.aio.Server, counted), agents.SELF_CHECKED), authenticator, open_prefixes=(JOIN_NODE,)
        )

        def quotas(account: str) -> Quotas:
            rec = accounts.accounts.get(account)
            return rec.quotas if rec is not None else Quotas()

        pool_servicer = PoolServicer(self.cp, self.channels, quotas, certificates.states)
        self.cp.autoscale.nodes_allowed = lambda account: tenancy.nodes_left(self.cp, account, quotas(account))
        self.cp.autopools.admit = auto_pool_admission(
            self.cp, quotas, certificates.states, applications.reference_problems
        )
        pool_servicer.node_users = node_users
        pool_servicer.package_problems = applications.reference_problems
        pool_servicer.deploy_packages = lambda pool_id: deployer.deploy_pool(self.cp.pool(pool_id))
        pool_pb2_grpc.add_PoolServiceServicer_to_server(pool_servicer, services)
        job_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(self.cp, quotas), services)
        schedule_pb2_grpc.add_JobScheduleServiceServicer_to_server(
            JobScheduleServicer(self.cp, quotas, min_seconds=self.config.schedule_min_seconds), services
        )
        task_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(self.cp, self.channels), services)
        storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(self.blob_stores), services)
        certificate_pb2_grpc.add_CertificateServiceServicer_to_server(
            CertificateServicer(certificates, self.cp), services
        )

        application_pb2_grpc.add_ApplicationServiceServicer_to_server(ApplicationServicer(applications), services)

        def holds_data(account: str) -> bool:
            return (
                self.blob_stores.holds_containers(account)
                or certificates.holds_any(account)
                or applications.holds_any(account)
            )

        account_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(accounts, self.cp, holds_data), services)
        # The agent port: mutual TLS with certificates of the cluster CA, apart from the public API.
        agent_server = grpc.aio.server(options=options)
        # (The agents' streams are not wrapped: one call per node, where a wrapper would cost per message.)
        agent_counted = InstrumentingRegistrar(agent_server, self.rpc_stats, skip=agents.SELF_CHECKED)
        agent_services = guarded(cast(grpc.aio.Server, agent_counted), agents.SELF_CHECKED)
        gate = AgentGate(self.security.node_certs.is_revoked, self._node_pool_key)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(self.cp, gate), agent_services)
        # Agents reach storage as their node's account: the credential the server gave them in Welcome.
        agent_storage = AuthenticatingRegistrar(agent_services, authenticator)
        storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(self.blob_stores), agent_storage)
        # The nodes fetch their account's package archives there too, with the same credential.
        agent_pb2_grpc.add_PackageServiceServicer_to_server(PackageServicer(applications), agent_storage)
        agent_listen = self.config.agent_listen or default_agent_listen(self.config.listen)
        credentials = self.security.agent_port_credentials(_listen_hosts(self.config.listen, agent_listen))
        agent_port = agent_server.add_secure_port(agent_listen, credentials)
        if agent_port == 0:
            raise OSError(f"cannot listen on {agent_listen} (the agent port)")
        self.agent_address = local_address(agent_listen.rpartition(":")[0], agent_port)
        self.agent_server = agent_server
        join_pb2_grpc.add_JoinServiceServicer_to_server(
            JoinServicer(self.cp, self.security, agent_port=agent_port, agent_address=self.config.agent_advertise),
            services,
        )
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, services)
        names = [
            pool_pb2.DESCRIPTOR.services_by_name["PoolService"].full_name,
            job_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
            schedule_pb2.DESCRIPTOR.services_by_name["JobScheduleService"].full_name,
            task_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
            storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name,
            account_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
            certificate_pb2.DESCRIPTOR.services_by_name["CertificateService"].full_name,
            application_pb2.DESCRIPTOR.services_by_name["ApplicationService"].full_name,
            join_pb2.DESCRIPTOR.services_by_name["JoinService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        # (What enable_server_reflection does for an aio server, through the guard.)
        servicer = reflection.aio.ReflectionServicer(names)  # type: ignore[attr-defined]
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, services)
        if self.config.secure:
            port = server.add_secure_port(self.config.listen, self._public_credentials())
        else:
            port = server.add_insecure_port(self.config.listen)
        if port == 0:
            raise OSError(f"cannot listen on {self.config.listen}")
        host = self.config.listen.rsplit(":", 1)[0]
        #: Where the server listens (perhaps every address), and where clients of this machine reach it.
        self.listen_address = f"{host}:{port}"
        self.address = local_address(host, port)
        self.server = server
        self.provider = LocalProvider(
            self.cp,
            data_dir=self.data_dir,
            server_address=self.address,
            agent_address=self.agent_address,
            security=self.security,
            orphan_timeout=self.config.agent_orphan_timeout,
            log_format=self.config.log_format,
        )
        self.cp.provider = self.provider
        # Before serving: no node can be added while the directories of nodes no longer in the store go.
        await self.provider.remove_orphan_roots()
        await agent_server.start()
        await server.start()
        self.provider.adopt_or_restart()
        await self.cp.flush()
        await self._start_web(authenticator)
        self._loops = [
            asyncio.create_task(run_scheduler(self.cp), name="scheduler"),
            asyncio.create_task(run_health(self.cp, heartbeat_timeout=self.config.heartbeat_timeout), name="health"),
            asyncio.create_task(run_elasticity(self.cp), name="elasticity"),
            asyncio.create_task(run_schedules(self.cp), name="job schedules"),
            asyncio.create_task(self.provider.run_restarts(), name="agent restarts"),
            asyncio.create_task(self.cp.accounting.run(), name="accounting"),
        ]
        for name in names:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        self.cp.kick_scheduler()
        self._publish_address()
        log.info(
            "shoal server listening on %s, agents on %s (mutual TLS; data in %s)",
            self.listen_address,
            self.agent_address,
            self.data_dir,
        )
        log.info("%s", native.status().describe())
        return self.address

    def _public_cert_key(self) -> tuple[bytes, bytes]:
        """The public API's certificate chain and key: the operator's, or one of the cluster CA followed by
        the CA's own (a joining agent pins the CA it finds in the chain by the token's fingerprint). Made
        once per start; the HTTP port uses the same."""
        if self._public_tls is None:
            if self.config.tls_cert is not None and self.config.tls_key is not None:
                self._public_tls = (self.config.tls_cert.read_bytes(), self.config.tls_key.read_bytes())
            else:
                hosts = [*_listen_hosts(self.config.listen), socket.gethostname()]
                cert, key = self.security.ca.issue_server_cert(list(dict.fromkeys(hosts)))
                self._public_tls = (cert + self.security.ca.cert_pem, key)
        return self._public_tls

    def _public_credentials(self) -> grpc.ServerCredentials:
        """TLS for the public API (see `_public_cert_key`)."""
        return server_credentials(*self._public_cert_key())

    async def _start_web(self, authenticator: Authenticator) -> None:
        """The HTTP port: metrics and the dashboard, with the public API's TLS and credentials."""
        listen = self.config.http_listen or default_http_listen(self.config.listen)
        if listen == "off":
            return
        registry = self.metrics
        if self.config.secure and self.config.tls_cert is None:
            # The dashboard's calls to this server's own API check its certificate as a client does.
            gateway = Gateway(self.address, grpc.ssl_channel_credentials(root_certificates=self.security.ca.cert_pem))
        elif self.config.secure:
            # The operator's certificate names the server as its clients reach it, seldom as `self.address`
            # (a loopback address), and its issuer need not be in this machine's roots: the calls trust
            # exactly the certificate this server serves, checked against a name it carries.
            chain, _ = self._public_cert_key()
            gateway = Gateway(
                self.address, grpc.ssl_channel_credentials(root_certificates=chain), name_options(served_name(chain))
            )
        else:
            gateway = Gateway(self.address, None)
        Dashboard(gateway, registry).install_on(self.web_extensions)

        def authenticate(account: str, key: str) -> object:
            principal = authenticator.principal([(ACCOUNT_HEADER, account), (AUTHORIZATION_HEADER, BEARER + key)])
            # A task's credential acts for its node's account within the API only: it opens no dashboard.
            if principal.kind is PrincipalKind.TASK:
                raise Unauthenticated("UNAUTHENTICATED", "a task's credential does not open the dashboard")
            return principal

        # Prometheus's service discovery of the agents' metrics, checked as /metrics is.
        self.web_extensions.append(targets_extension(self.cp, authenticate if self.config.secure else None))
        web_server = WebServer(
            WebConfig(
                clock=self.config.clock,
                authenticate=authenticate if self.config.secure else None,
                exposition=lambda: (generate_latest(registry), CONTENT_TYPE_LATEST),
                tls=self._public_cert_key() if self.config.secure else None,
                extend=self.web_extensions,
            )
        )
        try:
            bound = await web_server.start(listen)
        except OSError as e:
            if self.config.http_listen:
                raise OSError(f"cannot listen on {listen} (the HTTP port): {e}") from e
            # The default port beside the API's is taken: any free one (its URL is printed and published).
            log.warning("the HTTP port %s is taken (%s): listening on any free port instead", listen, e)
            bound = await web_server.start(f"{listen.rpartition(':')[0]}:0")
        self.web = web_server
        host, _, port = bound.rpartition(":")
        self.http_url = f"{web_server.scheme}://{local_address(host, int(port))}"

    def credentials(self) -> dict[str, str | bool]:
        """What a client needs to reach this server as the default account (and as the administrator):
        the address, whether it speaks TLS and the CA to check it with (none: the system's roots, for an
        operator's certificate), and the keys."""
        assert self.accounts is not None
        default = self.accounts.get(DEFAULT_ACCOUNT)
        creds: dict[str, str | bool] = {
            "address": self.address,
            "tls": self.config.secure,
            "account": DEFAULT_ACCOUNT,
            "key": default.primary,
            "admin_key": self.admin_key,
        }
        if self.http_url:
            creds["http_url"] = self.http_url
        if self.config.secure and self.config.tls_cert is None:
            creds["ca_cert"] = self.security.ca.cert_pem.decode()
        return creds

    def _publish_address(self) -> None:
        creds = json.dumps(self.credentials(), indent=2)
        info = json.dumps(
            {
                "address": self.address,
                "agent_address": self.agent_address,
                "http_url": self.http_url,
                "data_dir": str(self.data_dir),
                "pid": os.getpid(),
            }
        )
        (self.data_dir / "server.json").write_text(info)
        write_private(self.data_dir / CREDENTIALS_FILE, creds)
        if self.config.publish_address:
            home = Path(os.environ.get("SHOAL_HOME", Path.home() / ".shoal"))
            with contextlib.suppress(OSError):
                home.mkdir(parents=True, exist_ok=True)
                (home / "server.json").write_text(info)
                write_private(home / CREDENTIALS_FILE, creds)
                # Each server's own too, found by its address (several servers, one user).
                servers = home / SERVERS_DIR
                servers.mkdir(mode=0o700, exist_ok=True)
                write_private(servers / server_file_name(self.address), creds)

    def _node_pool_key(self, node_id: str) -> str | None:
        node = self.cp.nodes.get(idkey(node_id))
        return node.pool_key if node is not None else None

    def agent_identity(self, name: str = "test-agents") -> AgentIdentity:
        """A certificate that may speak for any node on the agent port, with the address to use: for
        processes that host agents outside the server (tests, the bench's simulated fleet)."""
        ident = self.security.provider_identity(name)
        return AgentIdentity(ident.ca_pem, ident.cert_pem, ident.key_pem, self.agent_address)

    async def stop(self, *, stop_agents: bool = False) -> None:
        """Stop serving. With `stop_agents`, local agents are shut down too (as `shoal up` does)."""
        if stop_agents and self.provider is not None:
            await self.provider.stop_all()
        for t in self._loops:
            t.cancel()
        for t in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for n in self.cp.nodes.values():
            if n.session is not None:
                n.session.close()
        try:
            self.cp.accounting.mark_rows()  # (written by the flush below)
            await self.cp.save_node_stats()
        except Exception:
            log.exception("could not write node statistics while stopping")
        if self.web is not None:
            await self.web.stop()
        await asyncio.gather(*(srv.stop(grace=1.0) for srv in (self.server, self.agent_server) if srv is not None))
        await self.channels.close()
        await self.store.close()


async def _serve(config: ServerConfig, *, up: tuple[str, int, int] | None) -> int:
    # The collector's policy is the process's: set here, not in ShoalServer (tests run several in one process).
    collector = LongLivedGc()
    collector.install()
    refresher = asyncio.create_task(collector.run(), name="gc-refresh")
    srv = ShoalServer(config)
    await srv.start()
    _say(f"shoal server listening on {srv.listen_address}  (data: {srv.data_dir})")
    if srv.http_url:
        _say(f"dashboard and /metrics at {srv.http_url}/")
    if up is not None:
        pool_id, nodes, slots = up
        if pool_id.lower() not in srv.cp.pools:
            await srv.cp.create_pool(
                pool_pb2.Pool(id=pool_id, target_nodes=nodes, task_slots_per_node=slots, account=DEFAULT_ACCOUNT),
                request_id="",
            )
        _say(f"local pool {pool_id!r}: {nodes} node(s) x {slots} slot(s); Ctrl-C stops everything")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _say("stopping...")
    await srv.stop(stop_agents=up is not None)
    refresher.cancel()
    return 0


def _say(line: str) -> None:
    """Tell the operator: a line on stdout, or a log record where the logs are JSON lines (stdout and stderr
    often land in one stream, which must then hold nothing but JSON)."""
    if logs.configured_format() == "json":
        log.info("%s", line)
    else:
        print(line, flush=True)


def _logging(log_format: str) -> None:
    """Log to stderr in `log_format` (`shoal.logs.FORMATS`; empty: ``$SHOAL_LOG_FORMAT``, else text), at
    ``$SHOAL_LOG_LEVEL`` (INFO)."""
    logs.configure(log_format or None)


def main_server(
    *,
    data_dir: Path,
    listen: str,
    allow_non_loopback: bool,
    secure: bool = True,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    agent_listen: str = "",
    agent_advertise: str = "",
    http_listen: str = "",
    log_format: str = "",
    **extra: float | int | None,
) -> int:
    """`shoal server`: run the control plane in the foreground until SIGINT/SIGTERM."""
    try:
        _logging(log_format)
    except logs.BadLogFormat as e:
        print(f"error: {e}")
        return 2
    config = ServerConfig(
        data_dir=data_dir,
        listen=listen,
        allow_non_loopback=allow_non_loopback,
        secure=secure,
        tls_cert=tls_cert,
        tls_key=tls_key,
        agent_listen=agent_listen,
        agent_advertise=agent_advertise,
        http_listen=http_listen,
        log_format=logs.configured_format(),
        **extra,  # type: ignore[arg-type]
    )
    try:
        return asyncio.run(_serve(config, up=None))
    except NotLoopbackError as e:
        print(f"error: {e}")
        return 2


def main_up(
    *,
    data_dir: Path,
    listen: str,
    nodes: int,
    slots: int,
    pool_id: str,
    allow_non_loopback: bool,
    secure: bool = True,
    agent_listen: str = "",
    http_listen: str = "",
    log_format: str = "",
) -> int:
    """`shoal up`: a control plane and a local pool in the foreground; Ctrl-C stops both."""
    try:
        _logging(log_format)
    except logs.BadLogFormat as e:
        print(f"error: {e}")
        return 2
    config = ServerConfig(
        data_dir=data_dir,
        listen=listen,
        allow_non_loopback=allow_non_loopback,
        secure=secure,
        agent_listen=agent_listen,
        http_listen=http_listen,
        log_format=logs.configured_format(),
    )
    try:
        return asyncio.run(_serve(config, up=(pool_id, nodes, slots)))
    except NotLoopbackError as e:
        print(f"error: {e}")
        return 2
