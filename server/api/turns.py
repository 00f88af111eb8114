"""A share of each turn of the event loop for the work that agent reports bring.

asyncio runs, in each turn, every callback that was ready when the turn began. When
many agent streams have a report waiting (a fleet answering a burst of work), one
turn runs all of them, each applying its report and placing work: seconds, at
10,000 nodes. Everything that became ready meanwhile waits for the next turn: the
store's news that a commit ended, the StartTasks it lets go, the stream writers
that send them. So the work piles up in memory while nothing leaves, and then the
server sits idle while the fleet answers all of it at once.

`TurnShare` lets reports into a turn for a slice of time from the first one; the
readers that come later wait for a later turn, behind whatever became ready in
this one.
"""

from __future__ import annotations

import asyncio
import collections


class TurnShare:
    """Admits work into the current turn of the loop for `slice_seconds` from the first admitted; the rest
    waits for later turns, in order."""

    def __init__(self, slice_seconds: float) -> None:
        self.slice_seconds = slice_seconds
        #: When the first work of this turn was let in (loop time), or None: nothing yet.
        self._began: float | None = None
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._turn_scheduled = False

    async def enter(self) -> None:
        """Wait until this turn (or a later one) has time left; the first work of a turn always gets in."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiting and (self._began is None or now - self._began < self.slice_seconds):
            if self._began is None:
                self._began = now
            self._schedule_turn(loop)
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._waiting.append(fut)
        self._schedule_turn(loop)
        await fut

    def _schedule_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new turn: let the first waiting one in (it runs in the turn after this callback's, with the
        rest of what became ready meanwhile; those after it check the time as they come)."""
        self._turn_scheduled = False
        self._began = None
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.cancelled():
                fut.set_result(None)
                self._began = asyncio.get_running_loop().time()
                break
        if self._waiting:
            self._schedule_turn(asyncio.get_running_loop())
