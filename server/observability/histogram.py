"""A histogram of plain counters, for observations made on one thread (the event loop's).

prometheus_client's own Histogram takes a lock for each bucket it increments, which costs a few times
this on a path that runs per scheduling pass or per call; this one is read by a collector at scrape
time (on the same thread) and turned into a `HistogramMetricFamily` there.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence


class Histogram:
    """Counts of observations per bucket (upper bounds, inclusive, as Prometheus's ``le``) and their sum."""

    __slots__ = ("_counts", "bounds", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be increasing")
        self.bounds = tuple(float(b) for b in bounds)
        #: One count per bound, then the observations above the last (``+Inf``).
        self._counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self._counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self._counts)

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs, ``+Inf`` last, and the sum: what `HistogramMetricFamily` takes."""
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            total += n
            buckets.append(("+Inf" if bound == float("inf") else _le(bound), total))
        return buckets, self.sum


def _le(bound: float) -> str:
    # (As prometheus_client writes its own bounds: 0.005, 1.0, 2.5.)
    return repr(bound)
