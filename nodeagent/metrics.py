"""The node agent's Prometheus metrics, served over HTTP at ``/metrics`` (`shoal agent --metrics-listen`).

Read when Prometheus scrapes, from the agent's state and plain int counters (`AgentCounters`, counted
where the agent sends its reports and stages files): its task slots and how many are taken, the attempts
running and waiting for a slot, starts and completions, the reports not yet acknowledged, the files
staged to and from storage, its session with the server; the agent process's own CPU and memory
(``process_*``) and the machine's memory. Labels never carry an id: the target's labels (from the
server's service discovery, ``/metrics/targets``) say which node and pool.

The endpoint asks for no credential and shows nothing secret: listen where only the monitoring system
can reach it (a local agent listens on the loopback).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.storage import TransferCounts
from shoal.v1 import common_pb2

SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
#: Hosts that mean every address of the machine.
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


def split_listen(listen: str) -> tuple[str, int]:
    """(host, port) of ``host:port`` (``[v6]:port``); ValueError saying what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT (port 0: any free port)")
    return host.strip("[]"), int(port)


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class AgentCounters:
    """What the agent counts as it goes (plain ints: read at scrape time, on the same thread)."""

    #: Assignments the server sent (StartTasks), work sent ahead included.
    assignments: int = 0
    #: Attempts that started (reported RUNNING) and that completed, those that succeeded among them.
    started: int = 0
    completed: int = 0
    succeeded: int = 0
    #: Sessions with the server that got as far as a Welcome (the first and every reconnection).
    sessions: int = 0

    def event(self, event: agent_pb2.TaskEvent) -> None:
        """Count a task event the agent reports (its job's preparation and release tasks' are not)."""
        if event.job_task:
            return
        if event.kind == agent_pb2.TASK_EVENT_KIND_RUNNING:
            self.started += 1
        elif event.kind == agent_pb2.TASK_EVENT_KIND_COMPLETED:
            self.completed += 1
            if event.result == SUCCESS:
                self.succeeded += 1


@dataclass
class AgentView:
    """What the collector reads of the agent, as functions (the agent's parts come and go)."""

    counters: AgentCounters
    #: The node's task slots (0: not told yet), and those taken by started attempts.
    slots: Callable[[], int]
    slots_used: Callable[[], int]
    #: Attempts accepted and not completed, and those among them waiting for a slot.
    active: Callable[[], int]
    waiting: Callable[[], int]
    #: Reports not yet acknowledged by the server.
    unacknowledged: Callable[[], int]
    connected: Callable[[], bool]
    node_errors: Callable[[], int]
    #: The storage client's counters (None before the agent connects).
    transfers: Callable[[], TransferCounts | None]
    version: str


class AgentCollector(Collector):
    """The agent's metrics, read from `view` at scrape time."""

    def __init__(self, view: AgentView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        v = self.view
        c = v.counters
        yield GaugeMetricFamily("shoal_agent_task_slots", "The node's task slots (0: not told yet).", value=v.slots())
        yield GaugeMetricFamily(
            "shoal_agent_task_slots_used", "Task slots taken by attempts that started.", value=v.slots_used()
        )
        waiting = v.waiting()
        yield GaugeMetricFamily(
            "shoal_agent_tasks_running",
            "Task attempts started and not completed (instances of multi-instance tasks included).",
            value=max(0, v.active() - waiting),
        )
        yield GaugeMetricFamily(
            "shoal_agent_tasks_waiting",
            "Task attempts the server sent ahead, waiting here for a slot.",
            value=waiting,
        )
        yield CounterMetricFamily(
            "shoal_agent_assignments", "Task assignments the server sent to this node.", value=c.assignments
        )
        yield CounterMetricFamily("shoal_agent_task_starts", "Task attempts that started here.", value=c.started)
        completions = CounterMetricFamily(
            "shoal_agent_task_completions", "Task attempts that completed here, by result.", labels=["result"]
        )
        completions.add_metric(["success"], c.succeeded)
        completions.add_metric(["failure"], c.completed - c.succeeded)
        yield completions
        yield GaugeMetricFamily(
            "shoal_agent_reports_unacknowledged",
            "Task reports the server has not acknowledged yet (kept until it does).",
            value=v.unacknowledged(),
        )
        yield GaugeMetricFamily(
            "shoal_agent_connected", "1 while the agent's session with the server is open.", value=int(v.connected())
        )
        yield CounterMetricFamily(
            "shoal_agent_sessions", "Sessions with the server that were welcomed (reconnections too).", value=c.sessions
        )
        yield GaugeMetricFamily(
            "shoal_agent_node_errors",
            "What is wrong with the node now (it is unusable while any).",
            value=v.node_errors(),
        )
        t = v.transfers() or TransferCounts()
        yield CounterMetricFamily(
            "shoal_agent_storage_downloads", "Blobs downloaded from the server's storage.", value=t.downloads
        )
        yield CounterMetricFamily(
            "shoal_agent_storage_download_bytes", "Bytes downloaded from the server's storage.", value=t.download_bytes
        )
        yield CounterMetricFamily(
            "shoal_agent_storage_uploads", "Blobs uploaded to the server's storage.", value=t.uploads
        )
        yield CounterMetricFamily(
            "shoal_agent_storage_upload_bytes", "Bytes uploaded to the server's storage.", value=t.upload_bytes
        )
        yield CounterMetricFamily(
            "shoal_agent_storage_failures", "Downloads and uploads that failed.", value=t.failures
        )
        memory = psutil.virtual_memory()
        yield GaugeMetricFamily("shoal_node_memory_bytes", "The machine's memory.", value=memory.total)
        yield GaugeMetricFamily(
            "shoal_node_memory_available_bytes",
            "The machine's memory available to new processes.",
            value=memory.available,
        )
        info = InfoMetricFamily("shoal_agent_build", "The Shoal version this agent runs.")
        info.add_metric([], {"version": v.version})
        yield info


def agent_version() -> str:
    """The installed Shoal's version."""
    try:
        return importlib.metadata.version("shoal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def registry_for(view: AgentView) -> CollectorRegistry:
    """A registry of its own (several agents may share a process in tests) with the agent's metrics and
    its process's."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(AgentCollector(view))
    ProcessCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """``GET /metrics`` over HTTP on one address (aiohttp, on the agent's event loop)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._runner: web.AppRunner | None = None
        #: Where it listens, ``host:port``, once started.
        self.address = ""

    async def start(self, listen: str, advertise_host: str) -> str:
        """Listen on `listen` (``host:port``; port 0: any free one); returns the address to reach it at: the
        bound port on the listen host, or on `advertise_host` (the node's address) for a wildcard host."""
        host, port = split_listen(listen)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host or None, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        bound = int(sockets[0].getsockname()[1]) if sockets else port
        shown = advertise_host if host in WILDCARD_HOSTS else host
        self.address = host_port(shown, bound)
        return self.address

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
