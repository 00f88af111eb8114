"""The injected clock: every timeout, limit and sweep asks one of these for `now`."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from google.protobuf import timestamp_pb2


def to_timestamp(dt: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime (a naive one is taken as UTC, as Timestamp.FromDatetime does).

    Built directly: FromDatetime is pure Python (a time tuple and calendar.timegm) and shows up on
    per-task paths of the server and the agent.
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return timestamp_pb2.Timestamp(seconds=math.floor(dt.timestamp()), nanos=dt.microsecond * 1000)


class Clock(Protocol):
    """Where time comes from. Production uses :class:`SystemClock`; tests use :class:`ManualClock`."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when a test calls :meth:`advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + seconds
        while self._mono < deadline:
            await self._changed.wait()
