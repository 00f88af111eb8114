"""How the server process runs Python's cyclic garbage collector.

The control plane keeps a record for every task (a million is a normal day) and
takes them in bulk. A full collection walks every object the collector tracks,
and one starts each time the objects that survived earlier collections have
grown by a quarter: adding 100,000 tasks to a fresh control plane set off 14 of
them, ~130 ms each, a fifth of the CPU the tasks took in all (measured
in-process, `gc.callbacks`), and each one a pause of the event loop.

`LongLivedGc`: when a full collection leaves many survivors outside the frozen
set (`freeze_min_objects`: after a bulk add, say), they are long-lived here
(records, sessions, caches) and are moved out of the collector's view at once
(`gc.freeze`); later full collections walk only what was made since. Objects in
flight at that moment are frozen with them, and a cycle among frozen objects
that later becomes garbage would stay: hence the threshold (small full
collections, which follow one another quickly once the frozen set is out of
the count, freeze nothing), and a refresh every `refresh_seconds` that gives
everything back to the collector (`gc.unfreeze`), collects once and logs how
much it found unreachable. The youngest generation is also collected less often
(`YOUNG_THRESHOLD`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

#: How often frozen objects are given back to the collector (one full walk of them all).
REFRESH_SECONDS = 600.0
#: Survivors of a full collection (outside the frozen set) from which they are frozen.
FREEZE_MIN_OBJECTS = 100_000
#: Allocations between two collections of the youngest generation (Python's default is 700). A young
#: collection walks what is still alive of what was made since the last one: the long-lived new
#: records, which it walks once whatever the threshold, and the temporaries of the work in flight,
#: which it walks again each time. Fewer, larger ones: 2% fewer instructions per task in-process.
YOUNG_THRESHOLD = 20_000


class LongLivedGc:
    """Freeze what survives a full collection when it is much; give it all back now and then."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS, freeze_min_objects: int = FREEZE_MIN_OBJECTS) -> None:
        self.refresh_seconds = refresh_seconds
        self.freeze_min_objects = freeze_min_objects
        #: Full collections seen since `install`, and how many of them froze their survivors (for tests and logs).
        self.full_collections = 0
        self.freezes = 0
        self._thresholds = gc.get_threshold()

    def install(self) -> None:
        """Start freezing the survivors of full collections, and collect the young less often (once per process)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
            self._thresholds = gc.get_threshold()
            gc.set_threshold(YOUNG_THRESHOLD, *self._thresholds[1:])

    def uninstall(self) -> None:
        """Stop, and put the thresholds back; what is frozen stays frozen until `refresh`."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
            gc.set_threshold(*self._thresholds)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.full_collections += 1
            # Listing them costs a fraction of the collection that just walked them.
            if len(gc.get_objects(2)) >= self.freeze_min_objects:
                self.freezes += 1
                gc.freeze()

    def refresh(self) -> int:
        """Give every frozen object back to the collector and collect once; how many were found unreachable."""
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        found = gc.collect()
        log.info("garbage collector refresh: %d objects were frozen, %d found unreachable", frozen, found)
        return found

    async def run(self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Refresh every `refresh_seconds`, forever."""
        while True:
            await sleep(self.refresh_seconds)
            self.refresh()
