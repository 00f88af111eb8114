"""The last hour of the server's metrics, sampled from its Prometheus registry, for the dashboard's charts.

Each sample sums a family's values over its labels, and keeps the ``state`` label's values apart (tasks and
nodes by state), so what is kept is bounded by the families, never by tasks or nodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

#: How often a sample is taken, and how long samples are kept.
INTERVAL_SECONDS = 15.0
WINDOW_SECONDS = 3600.0
#: Labels whose values become series of their own.
SPLIT_LABELS = ("state",)


def flatten(families: Iterable[Metric]) -> dict[str, float]:
    """One value per series name: counters and gauges summed over their labels, and per ``state``.

    A counter's series is named as its sample (``…_total``); histograms and summaries give their
    ``_count`` and ``_sum``.
    """
    values: dict[str, float] = {}
    for family in families:
        if family.type not in ("counter", "gauge", "histogram", "summary"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created") or sample.name.endswith("_bucket"):
                continue
            if family.type in ("histogram", "summary") and not sample.name.endswith(("_count", "_sum")):
                continue
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
            for label in SPLIT_LABELS:
                if label in sample.labels:
                    name = f"{sample.name}{{{label}={sample.labels[label]}}}"
                    values[name] = values.get(name, 0.0) + sample.value
    return values


class MetricHistory:
    """Samples taken at times (seconds since the epoch), the oldest dropped past the window."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, interval_seconds: float = INTERVAL_SECONDS) -> None:
        self.interval = interval_seconds
        self._samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=int(window_seconds // interval_seconds) + 1)

    def record(self, at: float, values: dict[str, float]) -> None:
        """Keep one sample."""
        self._samples.append((at, values))

    def as_json(self) -> dict[str, object]:
        """``{"times": [...], "series": {name: [value or None, ...]}}``, aligned on the times."""
        names = sorted({name for _, values in self._samples for name in values})
        return {
            "interval": self.interval,
            "times": [at for at, _ in self._samples],
            "series": {name: [values.get(name) for _, values in self._samples] for name in names},
        }


async def sample_forever(registry: CollectorRegistry, history: MetricHistory, now: Callable[[], float]) -> None:
    """Sample `registry` into `history` every interval until cancelled (a failing collector skips one)."""
    while True:
        try:
            history.record(now(), flatten(registry.collect()))
        except Exception:  # (a collector's bug must not end the history: logged, one sample skipped)
            log.exception("could not sample the metrics")
        await asyncio.sleep(history.interval)
