"""Helpers of the autoscale formula tests: histories built sample by sample, and one-line evaluation."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from shoal.server.autoscale import Evaluation, EvaluationInputs, MetricHistory, PoolSample, evaluate

#: A Thursday, the evaluation time of Batch's documented example run (2016-10-13T19:18:47.805Z).
NOW = datetime(2016, 10, 13, 19, 18, 47, 805000, tzinfo=UTC)


def history(
    metrics: Mapping[str, float | Callable[[int], float | None]],
    *,
    count: int,
    interval: float = 30.0,
    now: datetime = NOW,
    capacity: int = 1440,
) -> MetricHistory:
    """`count` samples, every `interval` seconds, the newest at `now`. A metric given by a function gets
    its value from the sample's age in intervals (0 is the newest); None leaves it out of that sample."""
    h = MetricHistory(interval_seconds=interval, capacity=capacity)
    for k in range(count - 1, -1, -1):
        values: dict[str, float] = {}
        for name, v in metrics.items():
            x = v(k) if callable(v) else v
            if x is not None:
                values[name] = x
        h.add(PoolSample(now - timedelta(seconds=interval * k), values))
    return h


def run(
    formula: str,
    *,
    hist: MetricHistory | None = None,
    now: datetime = NOW,
    current: Mapping[str, float] | None = None,
    dedicated: int = 0,
    low_priority: int = 0,
    option: str = "requeue",
    seed: int = 0,
) -> Evaluation:
    """Evaluate `formula` against a pool with these values."""
    return evaluate(
        formula,
        EvaluationInputs(
            now=now,
            history=hist if hist is not None else MetricHistory(interval_seconds=30.0),
            current=current if current is not None else {"CurrentDedicatedNodes": 0, "CurrentLowPriorityNodes": 0},
            target_dedicated=dedicated,
            target_low_priority=low_priority,
            deallocation_option=option,
            random=random.Random(seed),
        ),
    )


def value_of(formula: str, name: str = "x", **kw: object) -> str:
    """The result text of variable `name` after `formula` (which must evaluate without error)."""
    r = run(formula, **kw)  # type: ignore[arg-type]
    assert r.error is None, r.error
    for part in r.results.split(";"):
        key, _, val = part.partition("=")
        if key == name:
            return val
    raise AssertionError(f"{name} not in {r.results}")


def error_of(formula: str, **kw: object):
    """The error of `formula`'s evaluation (which must fail)."""
    r = run(formula, **kw)  # type: ignore[arg-type]
    assert r.error is not None, r.results
    assert r.targets is None
    return r.error
