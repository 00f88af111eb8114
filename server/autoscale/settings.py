"""A pool's autoscale settings: their limits, defaults and field violations (pure)."""

from __future__ import annotations

from shoal.server.autoscale.syntax import check
from shoal.v1 import pool_pb2 as P

#: Evaluation interval: default, least and most (Batch: 15 min, 5 min and 168 h; Shoal reacts in seconds).
DEFAULT_INTERVAL_SECONDS = 15.0
MIN_INTERVAL_SECONDS = 5.0
MAX_INTERVAL_SECONDS = 168 * 3600.0
#: EnableAutoScale calls on one pool are at least this far apart (Batch's TooManyEnableAutoScaleRequests).
ENABLE_SPACING_SECONDS = 30.0
#: The most nodes of each kind a formula may ask of one pool (the pool size limit).
MAX_TARGET = 1000
#: `$NodeDeallocationOption`'s values and what they mean.
DEALLOCATION_OPTIONS = {
    "requeue": P.NODE_DEALLOCATION_OPTION_REQUEUE,
    "terminate": P.NODE_DEALLOCATION_OPTION_TERMINATE,
    "taskcompletion": P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION,
    "retaineddata": P.NODE_DEALLOCATION_OPTION_RETAINED_DATA,
}


def interval_seconds(pool: P.Pool) -> float:
    """The pool's evaluation interval."""
    if not pool.HasField("auto_scale_evaluation_interval"):
        return DEFAULT_INTERVAL_SECONDS
    d = pool.auto_scale_evaluation_interval
    return d.seconds + d.nanos / 1e9


def formula_violations(formula: str, field: str) -> list[tuple[str, str]]:
    """Field violations of an autoscale formula: empty, too long, a syntax error (with its line and
    column), an unknown function, an assignment to a read-only variable."""
    if not formula.strip():
        return [(field, "is required when autoscale is enabled")]
    problem = check(formula)
    return [] if problem is None else [(field, f"{problem.located()} ({problem.code})")]


def interval_violations(pool: P.Pool, field: str) -> list[tuple[str, str]]:
    """Field violations of the evaluation interval (when it is set)."""
    if not pool.HasField("auto_scale_evaluation_interval"):
        return []
    seconds = interval_seconds(pool)
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        return [(field, f"must be between {MIN_INTERVAL_SECONDS:g} seconds and 168 hours")]
    return []
