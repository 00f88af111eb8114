"""How the server process runs Python's cyclic garbage collector.

The control plane keeps a record for every task (a million is a normal day) and
takes them in bulk. A full collection walks every object the collector tracks,
and one starts each time the objects that survived earlier collections have
grown by a quarter: adding 100,000 tasks to a fresh control plane set off 14 of
them, ~130 ms each, a fifth of the CPU the tasks took in all (measured
in-process, `gc.callbacks`), and each one a pause of the event loop.

`LongLivedGc`: whatever survives a full collection is long-lived here (records,
sessions, caches), so it is moved out of the collector's view at once
(`gc.freeze`); the next full collection walks only what was made since. A
cycle among frozen objects that later becomes garbage would stay, so every
`refresh_seconds` everything is given back to the collector (`gc.unfreeze`) and
collected once, and what survives is frozen again.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

#: How often frozen objects are given back to the collector (one full walk of them all).
REFRESH_SECONDS = 3600.0


class LongLivedGc:
    """Freeze what survives each full collection; give it all back now and then."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.refresh_seconds = refresh_seconds
        #: Full collections seen since `install` (for tests and logs).
        self.full_collections = 0

    def install(self) -> None:
        """Start freezing the survivors of full collections (once per process)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        """Stop; what is frozen stays frozen until `refresh`."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.full_collections += 1
            gc.freeze()

    def refresh(self) -> int:
        """Give every frozen object back to the collector and collect once; how many were found unreachable."""
        gc.unfreeze()
        return gc.collect()

    async def run(self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Refresh every `refresh_seconds`, forever."""
        while True:
            await sleep(self.refresh_seconds)
            self.refresh()
