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
        #: Waiters let go by the last `_next_turn` that have not come back yet: they go first.
        self._released = 0
        self._turn_scheduled = False

    def _admit(self, loop: asyncio.AbstractEventLoop) -> bool:
        now = loop.time()
        if self._began is None:
            self._began = now
        elif now - self._began >= self.slice_seconds:
            return False
        self._schedule_turn(loop)
        return True

    async def enter(self) -> None:
        """Wait until this turn (or a later one) has time left; the first work of a turn always gets in."""
        loop = asyncio.get_running_loop()
        if not self._waiting and not self._released and self._admit(loop):
            return
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            self._waiting.append(fut)
            self._schedule_turn(loop)
            try:
                await fut
            finally:
                if fut.done() and not fut.cancelled():
                    self._released -= 1
            # Every waiter was let go at the start of this turn; they come here in the order they
            # waited, before any newcomer, and those past the slice wait again, in the same order.
            if self._admit(loop):
                return

    def _schedule_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new turn: let every waiter go (they run in the turn after this callback's, in order, and
        each checks the time left as it comes)."""
        self._turn_scheduled = False
        self._began = None
        waiting, self._waiting = self._waiting, collections.deque()
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)
                self._released += 1
