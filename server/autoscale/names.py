"""The names a formula knows: Batch's service-defined variables, the time-interval constants, the
deallocation options.

Metric names are kept without their ``$`` (``"CPUPercent"``): a `PoolSample` and
`EvaluationInputs.current` may spell them either way, `bare` takes the ``$`` off.
"""

from __future__ import annotations

from typing import Final

#: The read-only sample variables, each a metric of the pool's history (Batch's "Read-only
#: service-defined variables"; `TaskSlotsPerNode` and `UsableNodeCount` from newer Batch docs).
METRICS: Final = (
    "CPUPercent",
    "WallClockSeconds",
    "MemoryBytes",
    "DiskBytes",
    "DiskReadBytes",
    "DiskWriteBytes",
    "DiskReadOps",
    "DiskWriteOps",
    "NetworkInBytes",
    "NetworkOutBytes",
    "SampleNodeCount",
    "ActiveTasks",
    "RunningTasks",
    "PendingTasks",
    "SucceededTasks",
    "FailedTasks",
    "TaskSlotsPerNode",
    "CurrentDedicatedNodes",
    "CurrentLowPriorityNodes",
    "PreemptedNodeCount",
    "UsableNodeCount",
)

#: Read-only variables that are also plain doubles, taken from `EvaluationInputs.current`: Batch's
#: documented formulas use them in arithmetic (``$CurrentDedicatedNodes * 1.1``,
#: ``activeTaskMax / $TaskSlotsPerNode``); they keep their sample methods too.
CURRENT: Final = frozenset({"CurrentDedicatedNodes", "CurrentLowPriorityNodes", "TaskSlotsPerNode", "UsableNodeCount"})

#: Older spellings of read-only variables (``$CurrentDedicated`` in Batch's PowerShell reference).
READ_ALIASES: Final = {"CurrentDedicated": "CurrentDedicatedNodes"}

TARGET_DEDICATED: Final = "$TargetDedicatedNodes"
TARGET_LOW_PRIORITY: Final = "$TargetLowPriorityNodes"
DEALLOCATION: Final = "$NodeDeallocationOption"

#: Settable variables and their aliases. When a formula sets both a full name and its alias, the full
#: name's value wins (Batch: "the value assigned to the fully named variable will take precedence").
TARGET_ALIASES: Final = {"$TargetDedicated": TARGET_DEDICATED, "$TargetLowPriority": TARGET_LOW_PRIORITY}
SETTABLE: Final = frozenset({TARGET_DEDICATED, TARGET_LOW_PRIORITY, DEALLOCATION, *TARGET_ALIASES})

#: `$NodeDeallocationOption`'s values; a formula writes them bare (``= taskcompletion``) or quoted.
DEALLOCATION_OPTIONS: Final = frozenset({"requeue", "terminate", "taskcompletion", "retaineddata"})

#: The timeinterval constants, in seconds (TimeInterval_Year is 365 days, as .NET's).
TIME_INTERVALS: Final = {
    "TimeInterval_Zero": 0.0,
    "TimeInterval_100ns": 1e-7,
    "TimeInterval_Microsecond": 1e-6,
    "TimeInterval_Millisecond": 1e-3,
    "TimeInterval_Second": 1.0,
    "TimeInterval_Minute": 60.0,
    "TimeInterval_Hour": 3600.0,
    "TimeInterval_Day": 86400.0,
    "TimeInterval_Week": 7 * 86400.0,
    "TimeInterval_Year": 365 * 86400.0,
}


def bare(name: str) -> str:
    """A metric name without its leading ``$``."""
    return name[1:] if name.startswith("$") else name


def metric_of(name: str) -> str | None:
    """The metric a variable names (``"$CPUPercent"`` -> ``"CPUPercent"``), or None."""
    if not name.startswith("$"):
        return None
    m = READ_ALIASES.get(name[1:], name[1:])
    return m if m in _METRIC_SET else None


def is_read_only(name: str) -> bool:
    """True for names a formula may not assign: the metrics and the time-interval constants."""
    return metric_of(name) is not None or name in TIME_INTERVALS


_METRIC_SET: Final = frozenset(METRICS)
