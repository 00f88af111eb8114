"""What tasks used (accounting): an attempt's statistics and their roll-ups over a task, a job, a pool.

An attempt's figures are measured by its node's agent over the attempt's whole process tree: CPU
time and I/O exactly for every process the command waited for, peak memory as the larger of the
largest process and the tree sampled every second (see the README's "Accounting").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shoal.v1 import common_pb2, job_pb2, pool_pb2

from .common_types import _ts


@dataclass(frozen=True)
class TaskStatistics:
    """What one attempt used (or, in a roll-up, the sums over attempts)."""

    wall_clock_seconds: float = 0.0
    """From the start of its process(es) to their end (a multi-instance attempt: summed over instances)."""
    user_cpu_seconds: float = 0.0
    """CPU time in user mode, over the process tree."""
    kernel_cpu_seconds: float = 0.0
    """CPU time in the kernel, over the process tree."""
    peak_memory_bytes: int = 0
    """The largest resident memory of the tree at one time (in a roll-up: the largest of any attempt)."""
    read_bytes: int = 0
    """Bytes read through read system calls (files and pipes)."""
    write_bytes: int = 0
    """Bytes written through write system calls (files and pipes)."""
    read_ops: int = 0
    """Read system calls."""
    write_ops: int = 0
    """Write system calls."""

    @property
    def cpu_seconds(self) -> float:
        """User plus kernel CPU time."""
        return self.user_cpu_seconds + self.kernel_cpu_seconds

    @classmethod
    def from_proto(cls, msg: common_pb2.TaskStatistics) -> TaskStatistics:
        """Build from a ``shoal.v1.TaskStatistics``."""
        return cls(
            wall_clock_seconds=msg.wall_clock_seconds,
            user_cpu_seconds=msg.user_cpu_seconds,
            kernel_cpu_seconds=msg.kernel_cpu_seconds,
            peak_memory_bytes=msg.peak_memory_bytes,
            read_bytes=msg.read_bytes,
            write_bytes=msg.write_bytes,
            read_ops=msg.read_ops,
            write_ops=msg.write_ops,
        )


@dataclass(frozen=True)
class UsageStatistics:
    """Attempts' statistics rolled up (a task's, a job's, a pool's)."""

    totals: TaskStatistics = field(default_factory=TaskStatistics)
    """Sums over every attempt measured (peak memory: the largest)."""
    tasks_succeeded: int = 0
    """Completions with success."""
    tasks_failed: int = 0
    """Completions with failure (Shoal's ending a task included)."""
    task_retries: int = 0
    """Retries after failed attempts (requeues are not retries)."""
    task_requeues: int = 0
    """Tasks put back in the queue because their node was lost or left."""
    wait_seconds: float = 0.0
    """Seconds tasks waited from being added (or retried, or requeued) until they started, summed."""
    attempts: int = 0
    """Attempts measured."""

    @classmethod
    def from_proto(cls, msg: common_pb2.UsageStatistics) -> UsageStatistics:
        """Build from a ``shoal.v1.UsageStatistics``."""
        return cls(
            totals=TaskStatistics.from_proto(msg.totals),
            tasks_succeeded=msg.tasks_succeeded,
            tasks_failed=msg.tasks_failed,
            task_retries=msg.task_retries,
            task_requeues=msg.task_requeues,
            wait_seconds=msg.wait_seconds,
            attempts=msg.attempts,
        )


@dataclass(frozen=True)
class JobStatistics:
    """What a job's tasks used: every attempt of every task, deleted tasks included."""

    job_id: str
    """The job."""
    usage: UsageStatistics
    """Its tasks' attempts rolled up."""
    last_update_time: datetime | None
    """When the figures last changed."""
    proto: job_pb2.JobStatistics = field(repr=False, compare=False)
    """The raw ``shoal.v1.JobStatistics`` message."""

    @classmethod
    def from_proto(cls, job_id: str, msg: job_pb2.JobStatistics) -> JobStatistics:
        """Build from a ``shoal.v1.JobStatistics``."""
        return cls(
            job_id=job_id,
            usage=UsageStatistics.from_proto(msg.usage),
            last_update_time=_ts(msg, "last_update_time"),
            proto=msg,
        )


@dataclass(frozen=True)
class PoolStatistics:
    """What ran on a pool: the attempts that ended on its nodes, and its nodes' time."""

    pool_id: str
    """The pool."""
    usage: UsageStatistics
    """The attempts that ended on its nodes, rolled up."""
    dedicated_node_seconds: float
    """Seconds of dedicated nodes' time, each from its allocation until it left (or now)."""
    low_priority_node_seconds: float
    """The same for low-priority nodes."""
    dedicated_core_seconds: float
    """Dedicated node seconds times each node's cores."""
    low_priority_core_seconds: float
    """Low-priority node seconds times each node's cores."""
    last_update_time: datetime | None
    """When the figures were read."""
    proto: pool_pb2.PoolStatistics = field(repr=False, compare=False)
    """The raw ``shoal.v1.PoolStatistics`` message."""

    @classmethod
    def from_proto(cls, pool_id: str, msg: pool_pb2.PoolStatistics) -> PoolStatistics:
        """Build from a ``shoal.v1.PoolStatistics``."""
        return cls(
            pool_id=pool_id,
            usage=UsageStatistics.from_proto(msg.usage),
            dedicated_node_seconds=msg.dedicated_node_seconds,
            low_priority_node_seconds=msg.low_priority_node_seconds,
            dedicated_core_seconds=msg.dedicated_core_seconds,
            low_priority_core_seconds=msg.low_priority_core_seconds,
            last_update_time=_ts(msg, "last_update_time"),
            proto=msg,
        )


def task_statistics_of(msg: common_pb2.TaskStatistics, present: bool) -> TaskStatistics | None:
    """`msg` as a TaskStatistics, or None when it is not set (`present`)."""
    return TaskStatistics.from_proto(msg) if present else None
