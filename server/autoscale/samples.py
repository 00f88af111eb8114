"""The sample methods of a metric variable, over a pool's `MetricHistory`, after Batch's rules.

A window is given by look-back intervals (``TimeInterval_Minute * 5``: since five minutes before now)
or timestamps; ``GetSample(a, b)`` takes the samples between the two, whichever order they are given in
(Batch writes ``GetSample(1 * TimeInterval_Minute, 6 * TimeInterval_Minute)``). A window of w seconds
is expected to hold w / interval samples; the sample percent is how many of those it holds (at most
100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from shoal.server.autoscale.history import MetricHistory
from shoal.server.autoscale.values import Interval, OperationError, Timestamp, Value, Vec, format_double, type_name


class InsufficientData(OperationError):
    """Fewer samples than a formula required (Batch's InsufficientSampleData)."""


_METHODS: Final = ("GetSample", "GetSamplePeriod", "Count", "HistoryBeginTime", "GetSamplePercent")


def _moment(v: Value, now: datetime, what: str) -> datetime:
    if isinstance(v, Interval):
        if not math.isfinite(v.seconds) or abs(v.seconds) > 1e11:
            raise OperationError(f"{what} is out of range")
        return now - timedelta(seconds=v.seconds)
    if isinstance(v, Timestamp):
        return v.at
    raise OperationError(f"{what} must be a timeinterval or a timestamp, not a {type_name(v)}")


def _percent_arg(v: Value) -> float:
    if not isinstance(v, float):
        raise OperationError(f"samplePercent must be a double, not a {type_name(v)}")
    if not 0 <= v <= 100:
        raise OperationError(f"samplePercent must be between 0 and 100, not {format_double(v)}")
    return v


def _window(history: MetricHistory, metric: str, a: Value, b: Value | None, now: datetime) -> tuple[list[float], float]:
    """The samples between `a` and `b` (b omitted: now) and their percent of those expected."""
    start = _moment(a, now, "the window's start")
    end = now if b is None else _moment(b, now, "the window's end")
    lo, hi = min(start, end), max(start, end)
    values = history.window(metric, lo, hi)
    expected = (hi - lo).total_seconds() / history.interval_seconds
    percent = 100.0 if expected <= 0 else min(100.0, len(values) / expected * 100.0)
    return values, percent


def _shown(p: float) -> str:
    return format_double(math.floor(p * 100) / 100)


def sample_method(
    history: MetricHistory, variable: str, metric: str, method: str, args: Sequence[Value], now: datetime
) -> Value:
    """Call `method` of metric variable `variable` (whose history is `metric`) with evaluated `args`."""
    if method == "GetSample":
        first = args[0]
        if isinstance(first, float):
            if len(args) > 1:
                raise OperationError("GetSample(count) takes one argument")
            if not math.isfinite(first) or first < 0:
                raise OperationError(f"GetSample's count must be a number of samples, not {format_double(first)}")
            return Vec(tuple(history.last(metric, int(first), now)))
        end: Value | None = None
        wanted = 0.0
        if len(args) >= 2:
            if isinstance(args[1], float):
                if len(args) > 2:
                    raise OperationError("GetSample(start, samplePercent) takes no third argument")
                wanted = _percent_arg(args[1])
            else:
                end = args[1]
                if len(args) > 2:
                    wanted = _percent_arg(args[2])
        values, percent = _window(history, metric, first, end, now)
        if percent < wanted:
            raise InsufficientData(
                f"Insufficient data from data set: {variable} wanted {_shown(wanted)}%, received {_shown(percent)}%"
            )
        return Vec(tuple(values))
    if method == "GetSamplePercent":
        _, percent = _window(history, metric, args[0], args[1] if len(args) > 1 else None, now)
        return percent
    if method == "GetSamplePeriod":
        return Interval(history.interval_seconds)
    if method == "Count":
        return float(history.count(metric))
    if method == "HistoryBeginTime":
        begin = history.begin_time(metric)
        if begin is None:
            raise InsufficientData(f"Insufficient data from data set: {variable} has no samples")
        return Timestamp(begin)
    raise OperationError(f"unknown method {method!r}; a metric variable has {', '.join(_METHODS)}")
