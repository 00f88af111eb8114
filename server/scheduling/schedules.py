"""Job schedules, decided purely: when a schedule's jobs are due, which it makes, skips, or waits for.

A schedule's due times are a grid: `anchor`, `anchor + interval`, `anchor + 2 * interval`, ... (an
interval), the times `cron` matches from `anchor` on, read in `time_zone` (cron), or `anchor` alone (one
job). Jobs are made at due times, with Batch's rules:

- at most one active job: a due time that comes while a job is active (or the schedule is disabled)
  waits for it to end, and is skipped if its start window passes first;
- a job ending after several due times passed makes one job, for the latest of them (the others are
  skipped: a schedule never builds a backlog);
- no job after `do_not_run_after`; the schedule completes once that has passed (a one-job schedule:
  once its one job ended, or its one due time was skipped) and its active job, if any, ended.

`decide(view, now)` says what to do about one schedule now; the room that applies it
(`server/lifecycle/schedules.py`) keeps `last_due`, the latest due time handled (a job made for it, or
skipped), in the same commit as the job it makes, so a restart neither loses nor doubles a run.

No clock, no I/O: `now` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shoal.v1 import schedule_pb2

S = schedule_pb2

#: The shortest start window and recurrence interval (Batch's: one minute).
MIN_SCHEDULE_SECONDS: Final = 60.0
#: Fields of a cron expression (crontab(5): minute, hour, day of month, month, day of week).
CRON_FIELDS: Final = 5
_MICROSECOND: Final = timedelta(microseconds=1)

#: The lifecycle of a job schedule; a move not here is a bug or a FAILED_PRECONDITION for the caller.
SCHEDULE_TRANSITIONS: Final[Mapping[int, frozenset[int]]] = {
    S.JOB_SCHEDULE_STATE_ACTIVE: frozenset(
        {
            S.JOB_SCHEDULE_STATE_DISABLED,  # DisableJobSchedule
            S.JOB_SCHEDULE_STATE_TERMINATING,  # TerminateJobSchedule
            S.JOB_SCHEDULE_STATE_COMPLETED,  # past do_not_run_after, or its one job done (or terminated at once)
            S.JOB_SCHEDULE_STATE_DELETING,  # DeleteJobSchedule
        }
    ),
    S.JOB_SCHEDULE_STATE_DISABLED: frozenset(
        {
            S.JOB_SCHEDULE_STATE_ACTIVE,  # EnableJobSchedule
            S.JOB_SCHEDULE_STATE_TERMINATING,  # TerminateJobSchedule
            S.JOB_SCHEDULE_STATE_COMPLETED,  # past do_not_run_after while disabled
            S.JOB_SCHEDULE_STATE_DELETING,  # DeleteJobSchedule
        }
    ),
    S.JOB_SCHEDULE_STATE_TERMINATING: frozenset(
        {
            S.JOB_SCHEDULE_STATE_COMPLETED,  # its active job completed
            S.JOB_SCHEDULE_STATE_DELETING,  # DeleteJobSchedule
        }
    ),
    S.JOB_SCHEDULE_STATE_COMPLETED: frozenset(
        {
            S.JOB_SCHEDULE_STATE_DELETING,  # DeleteJobSchedule
        }
    ),
    # Gone once its jobs are: no state follows.
    S.JOB_SCHEDULE_STATE_DELETING: frozenset(),
}
#: States a schedule makes no more jobs from and that only a deletion leaves.
TERMINAL_SCHEDULE_STATES: Final = frozenset(
    s for s, nxt in SCHEDULE_TRANSITIONS.items() if nxt <= {S.JOB_SCHEDULE_STATE_DELETING}
)


def cron_problem(expression: str, time_zone: str) -> list[tuple[str, str]]:
    """What is wrong with a cron expression and its time zone, as (field, problem) pairs under `schedule.`."""
    out: list[tuple[str, str]] = []
    if len(expression.split()) != CRON_FIELDS or not croniter.is_valid(expression):
        out.append(("cron", "must be a cron expression of five fields (minute hour day-of-month month day-of-week)"))
    if time_zone:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(("time_zone", f"must be an IANA time zone name such as 'Europe/Paris' (got {time_zone[:64]!r})"))
    return out


@dataclass(frozen=True)
class Recurrence:
    """When a schedule's jobs are due (see the module's docstring)."""

    #: The first due time (interval, one job); cron: due times are its matches at or after it.
    anchor: datetime
    #: Between two due times; None with no cron: one job only.
    interval: timedelta | None = None
    #: A five-field cron expression instead of `interval` ("" when none).
    cron: str = ""
    #: The IANA zone `cron` is read in ("" means UTC).
    time_zone: str = ""
    #: How long after its due time a job may still be made (None: no limit).
    start_window: timedelta | None = None
    #: No job after this time (None: no end).
    do_not_run_after: datetime | None = None

    @property
    def recurring(self) -> bool:
        return self.interval is not None or bool(self.cron)

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone or "UTC")

    def next_due(self, after: datetime | None) -> datetime | None:
        """The first due time later than `after` (the first at all when None), or None when there is none
        (one job only, past `do_not_run_after`)."""
        if self.cron:
            start = self.anchor - _MICROSECOND if after is None or after < self.anchor else after
            due = croniter(self.cron, start.astimezone(self._zone())).get_next(datetime)
            found: datetime | None = due.astimezone(self.anchor.tzinfo)
        elif self.interval is None:
            found = self.anchor if after is None or after < self.anchor else None
        elif after is None or after < self.anchor:
            found = self.anchor
        else:
            found = self.anchor + ((after - self.anchor) // self.interval + 1) * self.interval
        if found is not None and self.do_not_run_after is not None and found > self.do_not_run_after:
            return None
        return found

    def latest_due(self, after: datetime | None, now: datetime) -> datetime | None:
        """The latest due time in (`after`, `now`], or None when none fell there."""
        if self.do_not_run_after is not None and now > self.do_not_run_after:
            now = self.do_not_run_after
        if now < self.anchor:
            return None
        if self.cron:
            due = croniter(self.cron, (now + _MICROSECOND).astimezone(self._zone())).get_prev(datetime)
            found: datetime | None = due.astimezone(self.anchor.tzinfo)
            if found is not None and found < self.anchor:
                found = None
        elif self.interval is None:
            found = self.anchor
        else:
            found = self.anchor + ((now - self.anchor) // self.interval) * self.interval
        if found is None or (after is not None and found <= after):
            return None
        return found


@dataclass(frozen=True)
class ScheduleView:
    """What `decide` needs to know of one schedule."""

    recurrence: Recurrence
    #: The latest due time handled (a job made for it, or skipped); None before the first.
    last_due: datetime | None
    #: ACTIVE (not disabled): jobs may be made.
    enabled: bool
    #: One of its jobs is not completed yet.
    job_active: bool


@dataclass(frozen=True)
class Decision:
    """What to do about a schedule now."""

    #: Make a job now, for this due time (it becomes `last_due`).
    make_for: datetime | None = None
    #: The due times up to this one were skipped (their windows passed): it becomes `last_due`.
    skip_to: datetime | None = None
    #: The schedule completes (no job made, none active, none to come).
    complete: bool = False
    #: When the next job is due, as the schedule shows it (in the past while one waits for the active
    #: job); None when none will be made.
    next_run_time: datetime | None = None
    #: Decide again then (None: only when something changes: a job ends, the schedule is changed).
    wake_at: datetime | None = None

    @property
    def last_due(self) -> datetime | None:
        """The due time handled by this decision, if any."""
        return self.make_for or self.skip_to


def decide(view: ScheduleView, now: datetime) -> Decision:
    """What `view`'s schedule does at `now`: make a job, skip due times whose windows passed, wait, or
    complete. Pure: no clock, no I/O."""
    rec = view.recurrence
    window = rec.start_window
    last = view.last_due
    make_for = skip_to = None
    job_active = view.job_active
    waiting: datetime | None = None  # a due time waiting for the active job (or for the schedule's enabling)
    latest = rec.latest_due(last, now)
    if latest is not None:
        past_end = rec.do_not_run_after is not None and now > rec.do_not_run_after
        if past_end or (window is not None and now > latest + window):
            skip_to = last = latest
        elif view.enabled and not job_active:
            make_for = last = latest
            job_active = True
        else:
            waiting = latest
    # (Every due time up to now is handled or waiting: the next one is later than now.)
    upcoming = rec.next_due(now)
    wakes = [upcoming] if upcoming is not None else []
    if waiting is not None and window is not None:
        wakes.append(waiting + window + _MICROSECOND)  # (then skipped, if still waiting)
    if rec.do_not_run_after is not None and now <= rec.do_not_run_after:
        wakes.append(rec.do_not_run_after + _MICROSECOND)
    over = upcoming is None and waiting is None
    if over and rec.recurring and rec.do_not_run_after is not None and now <= rec.do_not_run_after:
        over = False  # (a recurring schedule with an end runs until then)
    complete = over and not job_active
    return Decision(
        make_for=make_for,
        skip_to=skip_to,
        complete=complete,
        next_run_time=None if complete else (waiting or upcoming),
        wake_at=None if complete else min(wakes, default=None),
    )
