"""The server's Prometheus metrics, on its own registry (`ShoalServer.metrics`, served at ``/metrics``).

Most are read from the live state when Prometheus scrapes (`ControlPlaneCollector`): counts of pools,
nodes, jobs and tasks by state, queue depth, task slots, and the control plane's plain int counters
(`Kernel.stats`, the store's). Nothing is added to the path a task takes but a few int increments the
kernel keeps anyway; what is observed as it happens is observed once per scheduling pass or per store
transaction (`install`), into `Histogram`s that the collector reads.

Conventions (https://prometheus.io/docs/practices/naming/): the ``shoal_`` prefix, base units in the
name (``_seconds``, ``_bytes``), ``_total`` on counters (added by the client library), help text on
each. Labels have few values: a pool (or account) and a state, a method and a status code; never a
job's, task's or node's id (those are fields of the JSON log lines, see `shoal.logs`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from shoal import native
from shoal.grpcguard import REFUSALS
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.records import TaskRec
from shoal.server.observability.histogram import Histogram
from shoal.server.observability.rpc import RpcStats
from shoal.server.store.sqlite import SqliteStore
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2

#: Seconds: a pass over some nodes takes tens of microseconds, a full pass over 10,000 nodes a second.
PASS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds: a task's wait for a node, from a millisecond (a free slot) to hours (a full pool).
WAIT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
#: Seconds: a group commit of a few rows to one of a hundred thousand.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: A task's wait is sampled at most this often (seconds): one task of a pass, not every task.
WAIT_SAMPLE_SECONDS = 0.01

#: State values -> label values: ``NODE_STATE_IDLE`` -> ``idle``.
NODE_STATES = {
    v.number: v.name.removeprefix("NODE_STATE_").lower() for v in pool_pb2.NodeState.DESCRIPTOR.values if v.number
}
TASK_STATES = {
    v.number: v.name.removeprefix("TASK_STATE_").lower() for v in task_pb2.TaskState.DESCRIPTOR.values if v.number
}
JOB_STATES = {
    v.number: v.name.removeprefix("JOB_STATE_").lower() for v in job_pb2.JobState.DESCRIPTOR.values if v.number
}
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS


def _version() -> str:
    try:
        return importlib.metadata.version("shoal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Observed:
    """What is observed as it happens (once per pass, per transaction); read by the collector."""

    #: Scheduling passes: over every node ("full") or over the nodes that reported ("nodes").
    full_passes: Histogram = field(default_factory=lambda: Histogram(PASS_BUCKETS))
    node_passes: Histogram = field(default_factory=lambda: Histogram(PASS_BUCKETS))
    #: Sampled waits of tasks from ACTIVE to placed.
    waits: Histogram = field(default_factory=lambda: Histogram(WAIT_BUCKETS))
    #: Store transactions' durations.
    commits: Histogram = field(default_factory=lambda: Histogram(COMMIT_BUCKETS))
    #: The time (of the control plane's clock, seconds) before which no wait is sampled.
    next_sample: float = 0.0


class ControlPlaneCollector(Collector):
    """Reads the control plane's state and counters when Prometheus scrapes."""

    def __init__(self, cp: ControlPlane, store: SqliteStore, observed: Observed) -> None:
        self.cp = cp
        self.store = store
        self.observed = observed

    def collect(self) -> Iterator[Metric]:
        yield from self._pools_and_nodes()
        yield from self._jobs_and_tasks()
        yield from self._counters()
        yield from self._histograms()

    def _pool_label(self, pool_key: str) -> str:
        pool = self.cp.pools.get(pool_key)
        return pool.proto.id if pool is not None else ""

    def _pools_and_nodes(self) -> Iterator[Metric]:
        cp = self.cp
        pools = GaugeMetricFamily("shoal_pools", "Pools, by allocation state.", labels=["allocation_state"])
        by_allocation: dict[str, int] = {}
        nodes = GaugeMetricFamily("shoal_nodes", "Compute nodes, by pool and state.", labels=["pool", "state"])
        connected = GaugeMetricFamily(
            "shoal_nodes_connected", "Compute nodes whose agent is connected to the server, by pool.", labels=["pool"]
        )
        slots = GaugeMetricFamily(
            "shoal_pool_task_slots", "Task slots of the pool's nodes that take work (idle or running).", labels=["pool"]
        )
        used = GaugeMetricFamily(
            "shoal_pool_task_slots_used",
            "Task slots taken by running tasks, by pool (work sent ahead to busy nodes not counted).",
            labels=["pool"],
        )
        for pool in list(cp.pools.values()):
            pool_id = pool.proto.id
            alloc = pool_pb2.AllocationState.Name(pool.proto.allocation_state).removeprefix("ALLOCATION_STATE_")
            by_allocation[alloc.lower()] = by_allocation.get(alloc.lower(), 0) + 1
            counts = dict.fromkeys(NODE_STATES.values(), 0)
            up = total = taken = 0
            for n in list(pool.nodes.values()):
                label = NODE_STATES.get(n.state, "unspecified")
                counts[label] = counts.get(label, 0) + 1
                if n.connected:
                    up += 1
                if n.state in (pool_pb2.NODE_STATE_IDLE, pool_pb2.NODE_STATE_RUNNING):
                    total += n.task_slots
                    taken += min(n.running.total, n.task_slots)
            for state, count in counts.items():
                nodes.add_metric([pool_id, state], count)
            connected.add_metric([pool_id], up)
            slots.add_metric([pool_id], total)
            used.add_metric([pool_id], taken)
        for alloc, count in by_allocation.items():
            pools.add_metric([alloc], count)
        yield from (pools, nodes, connected, slots, used)

    def _jobs_and_tasks(self) -> Iterator[Metric]:
        cp = self.cp
        jobs = GaugeMetricFamily("shoal_jobs", "Jobs, by pool and state.", labels=["pool", "state"])
        tasks = GaugeMetricFamily(
            "shoal_tasks",
            'Tasks, by the pool of their job and state (a job whose pool is gone: pool="").',
            labels=["pool", "state"],
        )
        queued = GaugeMetricFamily(
            "shoal_tasks_queued",
            "Tasks waiting for a node (queue depth), by pool: active tasks whose dependencies are met.",
            labels=["pool"],
        )
        job_counts: dict[tuple[str, str], int] = {}
        task_counts: dict[str, dict[int, int]] = {}
        waiting: dict[str, int] = {}
        for job in list(cp.jobs.values()):
            pool = self._pool_label(job.pool_key)
            state = JOB_STATES.get(job.proto.state, "unspecified")
            job_counts[(pool, state)] = job_counts.get((pool, state), 0) + 1
            counts = task_counts.setdefault(pool, dict.fromkeys(TASK_STATES, 0))
            for s, n in job.counts.items():
                if s in counts:
                    counts[s] += n
            if job.queue or job.released:
                waiting[pool] = waiting.get(pool, 0) + len(job.queue) + len(job.released)
        for (pool, state), n in job_counts.items():
            jobs.add_metric([pool, state], n)
        for pool_rec in cp.pools.values():
            task_counts.setdefault(pool_rec.proto.id, dict.fromkeys(TASK_STATES, 0))
        for pool, counts in task_counts.items():
            for s, n in counts.items():
                tasks.add_metric([pool, TASK_STATES[s]], n)
            queued.add_metric([pool], waiting.get(pool, 0))
        yield from (jobs, tasks, queued)

    def _counters(self) -> Iterator[Metric]:
        stats = self.cp.stats
        yield CounterMetricFamily(
            "shoal_tasks_dispatched", "Task attempts placed on nodes (dispatched).", value=stats.dispatched
        )
        ended = CounterMetricFamily(
            "shoal_task_attempts_ended", "Task attempts that ended on a node, by result.", labels=["result"]
        )
        ended.add_metric(["success"], stats.attempts_succeeded)
        ended.add_metric(["failure"], stats.attempts_ended - stats.attempts_succeeded)
        yield ended
        yield CounterMetricFamily(
            "shoal_tasks_completed", "Tasks that completed (after their last attempt, or ended).", value=stats.completed
        )
        yield CounterMetricFamily(
            "shoal_tasks_requeued",
            "Tasks put back in the queue without counting a retry (their node was lost or left).",
            value=stats.requeues,
        )
        yield CounterMetricFamily(
            "shoal_agent_reports_stale",
            "Agent reports about an attempt that was no longer the task's current one (dropped).",
            value=stats.stale_reports,
        )
        yield CounterMetricFamily(
            "shoal_store_commits", "Store transactions committed (group commits).", value=self.store.transactions
        )
        yield CounterMetricFamily(
            "shoal_store_rows_written", "Rows written or deleted by store transactions.", value=self.store.rows_written
        )
        yield CounterMetricFamily(
            "shoal_grpc_malformed_requests",
            "Requests refused because their bytes were not a message of their method (this process).",
            value=REFUSALS.total,
        )

    def _histograms(self) -> Iterator[Metric]:
        o = self.observed
        passes = HistogramMetricFamily(
            "shoal_scheduler_pass_duration_seconds",
            "How long scheduling passes took: over every node (full, with their commits) or over the nodes "
            "that reported (nodes).",
            labels=["kind"],
        )
        for kind, h in (("full", o.full_passes), ("nodes", o.node_passes)):
            buckets, total = h.snapshot()
            passes.add_metric([kind], buckets=buckets, sum_value=total)
        yield passes
        waits = HistogramMetricFamily(
            "shoal_task_queue_wait_seconds",
            "How long tasks waited from becoming active (added, retried or requeued) to being placed on a "
            f"node; sampled: the first task a scheduling pass places, at most one every {WAIT_SAMPLE_SECONDS} s.",
        )
        buckets, total = o.waits.snapshot()
        waits.add_metric([], buckets=buckets, sum_value=total)
        yield waits
        commits = HistogramMetricFamily(
            "shoal_store_commit_duration_seconds", "How long store transactions (group commits) took to write."
        )
        buckets, total = o.commits.snapshot()
        commits.add_metric([], buckets=buckets, sum_value=total)
        yield commits


class BuildCollector(Collector):
    """``shoal_build_info``: the version, and whether the compiled core runs (`shoal.native`)."""

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("shoal_build", "The Shoal version this server runs, and whether its core is compiled.")
        info.add_metric([], {"version": _version(), "compiled": "true" if native.status().active else "false"})
        yield info


def install(registry: CollectorRegistry, cp: ControlPlane, store: SqliteStore, rpc: RpcStats) -> Observed:
    """Fill `registry` with the server's metrics and start observing passes and commits."""
    observed = Observed()

    def passed(seconds: float, full: bool) -> None:
        (observed.full_passes if full else observed.node_passes).observe(seconds)

    def sample(t: TaskRec) -> None:
        stamp = cp.stamp()
        now = stamp.seconds + stamp.nanos / 1e9
        if now < observed.next_sample:
            return
        observed.next_sample = now + WAIT_SAMPLE_SECONDS
        since = t.read().state_transition_time
        observed.waits.observe(max(0.0, now - (since.seconds + since.nanos / 1e9)))

    def committed(seconds: float, rows: int) -> None:
        observed.commits.observe(seconds)

    cp.pass_observer = passed
    cp.wait_sampler = sample
    store.commit_observer = committed
    registry.register(ControlPlaneCollector(cp, store, observed))
    registry.register(rpc)
    registry.register(BuildCollector())
    # The process's CPU, memory, open files (process_*), its Python (python_info) and its collector (python_gc_*).
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return observed
