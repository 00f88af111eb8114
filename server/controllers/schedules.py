"""The job schedule loop: wakes at the earliest time a schedule has something to do (a job due, a start
window closing, a do_not_run_after passing), or when schedules change, and lets the room act
(`ScheduleLifecycle.run_due`). Time is the control plane's clock, so tests move it by hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shoal.server.controlplane import ControlPlane

log = logging.getLogger("shoal.schedules")

#: The longest the loop sleeps at a time: a wall clock that jumps is noticed within this.
MAX_SLEEP_SECONDS = 30.0


async def run_schedules(cp: ControlPlane, *, max_sleep: float = MAX_SLEEP_SECONDS) -> None:
    """For ever: act on the schedules that are due, then sleep until the next is (or one changes)."""
    room = cp.schedules
    while True:
        room.changed.clear()
        try:
            await cp.run_due_schedules()
        except Exception:
            log.exception("job schedule pass failed")
        wake = room.next_wake()
        delay = max_sleep if wake is None else min(max_sleep, (wake - cp.clock.now()).total_seconds())
        if delay <= 0:
            # Something is due already (a job ended during the pass): again, after letting others run.
            await asyncio.sleep(0.001)
            continue
        sleeper = asyncio.ensure_future(cp.clock.sleep(delay))
        changed = asyncio.ensure_future(room.changed.wait())
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, changed):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
