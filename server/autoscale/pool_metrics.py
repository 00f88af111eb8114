"""What a pool looks like to its autoscale formula: one sample of its metrics, as a pure function of its
nodes' last heartbeats, its task counts and the sample before.

The control plane takes a sample of every pool each sampling interval (`server.lifecycle.autoscaling`)
into the pool's `MetricHistory`; formulas read them as Batch's sample variables (`$CPUPercent`,
`$ActiveTasks`, ...). The node-count variables (`$CurrentDedicatedNodes`, ...) are also given as plain
values of the moment (`current_values`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shoal.v1 import pool_pb2 as P

#: Node states whose node can take tasks now (`$UsableNodeCount`).
USABLE = frozenset({P.NODE_STATE_IDLE, P.NODE_STATE_RUNNING})
#: The machine counters a heartbeat carries that samples report as differences over the interval.
COUNTERS = (
    ("$DiskReadBytes", "disk_read_bytes"),
    ("$DiskWriteBytes", "disk_write_bytes"),
    ("$DiskReadOps", "disk_read_ops"),
    ("$DiskWriteOps", "disk_write_ops"),
    ("$NetworkInBytes", "network_in_bytes"),
    ("$NetworkOutBytes", "network_out_bytes"),
)


@dataclass(frozen=True)
class NodeMetrics:
    """One node as a sample needs it."""

    key: str
    state: int
    is_dedicated: bool
    #: Its agent's last heartbeat (None: none since the server started, or it is not connected).
    cpu_percent: float | None = None
    memory_bytes: float = 0.0
    disk_bytes: float = 0.0
    #: Counters since its machine booted, by heartbeat field name (see COUNTERS).
    counters: Mapping[str, float] | None = None


@dataclass(frozen=True)
class TaskTally:
    """The pool's tasks, over the jobs that run on it."""

    #: Ready to run: ACTIVE, their dependencies met, in a job that schedules (multi-instance: instances).
    active: int = 0
    #: PREPARING or RUNNING.
    running: int = 0
    #: Completed since the pool's jobs were made (the sample reports the difference with the last one).
    succeeded: int = 0
    failed: int = 0


def current_values(nodes: Sequence[NodeMetrics], task_slots_per_node: int) -> dict[str, float]:
    """The plain values formulas read as doubles: node counts of the moment and the pool's slots."""
    dedicated = sum(1 for n in nodes if n.is_dedicated and n.state != P.NODE_STATE_LEAVING_POOL)
    low = sum(1 for n in nodes if not n.is_dedicated and n.state != P.NODE_STATE_LEAVING_POOL)
    return {
        "$CurrentDedicatedNodes": float(dedicated),
        "$CurrentLowPriorityNodes": float(low),
        "$PreemptedNodeCount": float(sum(1 for n in nodes if n.state == P.NODE_STATE_PREEMPTED)),
        "$UsableNodeCount": float(sum(1 for n in nodes if n.state in USABLE)),
        "$TaskSlotsPerNode": float(task_slots_per_node),
    }


def pool_sample(
    nodes: Sequence[NodeMetrics],
    tasks: TaskTally,
    *,
    task_slots_per_node: int,
    interval_seconds: float,
    counters_before: Mapping[str, Mapping[str, float]] | None = None,
    tasks_before: TaskTally | None = None,
) -> dict[str, float]:
    """One sample of the pool's metrics (name → value). Node metrics come from the nodes whose agent
    reported (`$SampleNodeCount` of them): CPU, memory and disk are averages over those nodes; counters
    are summed differences with `counters_before` (node key → its counters at the last sample) over the
    nodes in both.
    A metric nothing measured is left out: the sample has no value for it, as Batch's missing samples."""
    values = current_values(nodes, task_slots_per_node)
    reporting = [n for n in nodes if n.cpu_percent is not None]
    values["$SampleNodeCount"] = float(len(reporting))
    if reporting:
        count = len(reporting)
        values["$CPUPercent"] = sum(n.cpu_percent or 0.0 for n in reporting) / count
        values["$MemoryBytes"] = sum(n.memory_bytes for n in reporting) / count
        values["$DiskBytes"] = sum(n.disk_bytes for n in reporting) / count
        values["$WallClockSeconds"] = interval_seconds * count
    if counters_before:
        for name, counter in COUNTERS:
            total = 0.0
            seen = False
            for n in nodes:
                then = counters_before.get(n.key)
                if n.counters is None or then is None:
                    continue
                seen = True
                # (A counter that went back is a restarted machine: what it counted since is the delta.)
                a, b = then.get(counter, 0.0), n.counters.get(counter, 0.0)
                total += b - a if b >= a else b
            if seen:
                values[name] = total
    values["$ActiveTasks"] = float(tasks.active)
    values["$RunningTasks"] = float(tasks.running)
    values["$PendingTasks"] = float(tasks.active + tasks.running)
    if tasks_before is not None:
        values["$SucceededTasks"] = float(max(0, tasks.succeeded - tasks_before.succeeded))
        values["$FailedTasks"] = float(max(0, tasks.failed - tasks_before.failed))
    else:
        values["$SucceededTasks"] = 0.0
        values["$FailedTasks"] = 0.0
    return values
