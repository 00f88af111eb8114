"""A pool's metric history: what the formula's sample methods read.

The control plane adds one `PoolSample` per pool every `interval_seconds`; the newest `capacity` are
kept, in a ring of per-metric arrays (8 bytes a value: 21 metrics x 1440 samples is about 240 KB).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shoal.server.autoscale.names import bare
from shoal.server.autoscale.values import utc


@dataclass(frozen=True, slots=True)
class PoolSample:
    """One sample of a pool's metrics."""

    time: datetime
    """When it was taken (naive means UTC)."""
    values: Mapping[str, float] = field(default_factory=dict)
    """One value per metric name (``"ActiveTasks"`` or ``"$ActiveTasks"``); a metric absent here, or
    NaN, has no sample at this time."""


class MetricHistory:
    """The newest `capacity` samples of a pool, taken every `interval_seconds`."""

    def __init__(self, interval_seconds: float = 5.0, capacity: int = 1440) -> None:
        if not interval_seconds > 0 or not math.isfinite(interval_seconds):
            raise ValueError("interval_seconds must be a positive number")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.interval_seconds = float(interval_seconds)
        self.capacity = capacity
        self._times = array("d", [math.nan]) * capacity  # POSIX seconds
        self._values: dict[str, array[float]] = {}
        self._start = 0  # index of the oldest sample
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, sample: PoolSample) -> bool:
        """Keep `sample` (the oldest falls off when full). A sample not newer than the last one is
        dropped (the clock went back): False."""
        t = utc(sample.time).timestamp()
        if self._size and t <= self._times[self._index(self._size - 1)]:
            return False
        if self._size < self.capacity:
            i = self._index(self._size)
            self._size += 1
        else:
            i = self._start
            self._start = (self._start + 1) % self.capacity
        self._times[i] = t
        for arr in self._values.values():
            arr[i] = math.nan
        for name, v in sample.values.items():
            key = bare(name)
            if key not in self._values:
                self._values[key] = array("d", [math.nan]) * self.capacity
            self._values[key][i] = float(v)
        return True

    def _index(self, k: int) -> int:
        return (self._start + k) % self.capacity

    def _points(self, metric: str) -> list[tuple[float, float]]:
        """(time, value) of every sample of `metric`, oldest first."""
        arr = self._values.get(bare(metric))
        if arr is None:
            return []
        out = []
        for k in range(self._size):
            i = self._index(k)
            v = arr[i]
            if not math.isnan(v):
                out.append((self._times[i], v))
        return out

    def last(self, metric: str, count: int, now: datetime) -> list[float]:
        """The newest `count` values of `metric` taken at or before `now`, oldest first."""
        if count <= 0:
            return []
        cut = utc(now).timestamp()
        pts = [v for t, v in self._points(metric) if t <= cut]
        return pts[-count:]

    def window(self, metric: str, start: datetime, end: datetime) -> list[float]:
        """The values of `metric` taken in (start, end], oldest first. Half open, so that a window of
        n intervals holds at most n samples."""
        lo, hi = utc(start).timestamp(), utc(end).timestamp()
        return [v for t, v in self._points(metric) if lo < t <= hi]

    def count(self, metric: str) -> int:
        """How many samples of `metric` the history holds."""
        return len(self._points(metric))

    def begin_time(self, metric: str) -> datetime | None:
        """When the oldest sample of `metric` was taken, or None when there is none."""
        pts = self._points(metric)
        return datetime.fromtimestamp(pts[0][0], UTC) if pts else None
