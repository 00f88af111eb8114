"""The pure rules of job schedules (`server/scheduling/schedules.py`): due times, and what `decide` does,
by example and as properties over random runs (jobs that end at random, a schedule disabled at random)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.domain import states
from shoal.server.scheduling.schedules import (
    SCHEDULE_TRANSITIONS,
    TERMINAL_SCHEDULE_STATES,
    Recurrence,
    ScheduleView,
    cron_problem,
    decide,
)
from shoal.v1 import schedule_pb2 as S

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def view(rec: Recurrence, last: datetime | None = None, *, enabled: bool = True, active: bool = False) -> ScheduleView:
    return ScheduleView(rec, last, enabled=enabled, job_active=active)


def test_the_state_table() -> None:
    assert {S.JOB_SCHEDULE_STATE_COMPLETED, S.JOB_SCHEDULE_STATE_DELETING} == TERMINAL_SCHEDULE_STATES
    states.check_transition(SCHEDULE_TRANSITIONS, S.JOB_SCHEDULE_STATE_ACTIVE, S.JOB_SCHEDULE_STATE_DISABLED, "s")
    with pytest.raises(states.IllegalTransition):
        states.check_transition(SCHEDULE_TRANSITIONS, S.JOB_SCHEDULE_STATE_COMPLETED, S.JOB_SCHEDULE_STATE_ACTIVE, "s")
    with pytest.raises(states.IllegalTransition):
        states.check_transition(
            SCHEDULE_TRANSITIONS, S.JOB_SCHEDULE_STATE_TERMINATING, S.JOB_SCHEDULE_STATE_DISABLED, "s"
        )


def test_interval_due_times() -> None:
    rec = Recurrence(anchor=T0, interval=H)
    assert rec.next_due(None) == T0
    assert rec.next_due(T0) == T0 + H
    assert rec.next_due(T0 + H / 2) == T0 + H
    assert rec.latest_due(None, T0 - M) is None
    assert rec.latest_due(None, T0 + 150 * M) == T0 + 2 * H
    assert rec.latest_due(T0 + 2 * H, T0 + 150 * M) is None
    ended = Recurrence(anchor=T0, interval=H, do_not_run_after=T0 + 90 * M)
    assert ended.next_due(T0 + H) is None
    assert ended.latest_due(None, T0 + 10 * H) == T0 + H


def test_cron_due_times_follow_the_zone_across_daylight_saving() -> None:
    # 02:30 every day in Paris; on 2026-03-29 the clocks go from 02:00 to 03:00.
    rec = Recurrence(anchor=datetime(2026, 3, 27, tzinfo=UTC), cron="30 2 * * *", time_zone="Europe/Paris")
    first = rec.next_due(None)
    assert first == datetime(2026, 3, 27, 1, 30, tzinfo=UTC)  # (UTC+1)
    assert rec.next_due(first) == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert rec.next_due(datetime(2026, 3, 29, 12, tzinfo=UTC)) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # UTC+2
    assert rec.latest_due(None, datetime(2026, 3, 28, 1, 30, tzinfo=UTC)) == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert rec.latest_due(None, datetime(2026, 3, 27, 1, 29, tzinfo=UTC)) is None


def test_cron_checks() -> None:
    assert cron_problem("*/5 * * * 1-5", "America/New_York") == []
    assert [f for f, _ in cron_problem("0 0 * * * *", "")] == ["cron"]  # (six fields: seconds)
    assert [f for f, _ in cron_problem("61 * * * *", "Nowhere/Land")] == ["cron", "time_zone"]


def test_one_job() -> None:
    rec = Recurrence(anchor=T0)
    d = decide(view(rec), T0)
    assert d.make_for == T0 and not d.complete and d.next_run_time is None
    # Its job active: waits; once it ended: completes.
    assert not decide(view(rec, T0, active=True), T0 + H).complete
    assert decide(view(rec, T0), T0 + H).complete
    # Disabled past its window: skipped, then complete.
    windowed = Recurrence(anchor=T0, start_window=10 * M)
    d = decide(view(windowed, enabled=False), T0 + 11 * M)
    assert d.skip_to == T0 and d.make_for is None and d.complete


def test_waits_then_skips() -> None:
    rec = Recurrence(anchor=T0, interval=H, start_window=10 * M)
    d = decide(view(rec, T0, active=True), T0 + H + 5 * M)
    assert (d.make_for, d.skip_to) == (None, None)
    assert d.next_run_time == T0 + H  # (overdue: waiting)
    assert d.wake_at == T0 + H + 10 * M + timedelta(microseconds=1)
    d = decide(view(rec, T0, active=False), T0 + H + 10 * M)
    assert d.make_for == T0 + H
    d = decide(view(rec, T0, active=True), T0 + H + 11 * M)
    assert d.skip_to == T0 + H and d.next_run_time == T0 + 2 * H and d.wake_at == T0 + 2 * H


def test_a_long_job_makes_one_job_for_the_latest_due_time() -> None:
    rec = Recurrence(anchor=T0, interval=H)
    d = decide(view(rec, T0), T0 + 3 * H + 30 * M)
    assert d.make_for == T0 + 3 * H and d.next_run_time == T0 + 4 * H


def test_completes_past_do_not_run_after() -> None:
    rec = Recurrence(anchor=T0, interval=H, do_not_run_after=T0 + 150 * M)
    d = decide(view(rec, T0 + 2 * H), T0 + 2 * H + M)
    assert not d.complete and d.next_run_time is None and d.wake_at == T0 + 150 * M + timedelta(microseconds=1)
    assert not decide(view(rec, T0 + 2 * H, active=True), T0 + 3 * H).complete
    assert decide(view(rec, T0 + 2 * H), T0 + 3 * H).complete


# ---------------------------------------------------------------- properties over random runs


@st.composite
def runs(draw: st.DrawFn) -> tuple[Recurrence, list[tuple[int, bool, bool]]]:
    """A schedule, and steps: (minutes to move on, whether the active job ends, whether enabled)."""
    interval = draw(st.sampled_from([None, 1, 5, 60, 90]))
    window = draw(st.sampled_from([None, 1, 3, 30, 120]))
    until = draw(st.integers(0, 120))
    after = draw(st.one_of(st.none(), st.integers(0, 600)))
    rec = Recurrence(
        anchor=T0 + until * M,
        interval=interval * M if interval else None,
        start_window=window * M if window else None,
        do_not_run_after=T0 + after * M if after is not None else None,
    )
    steps = draw(
        st.lists(
            st.tuples(st.integers(0, 45), st.booleans(), st.sampled_from([True, True, True, False])),
            min_size=1,
            max_size=60,
        )
    )
    return rec, steps


def _all_due(rec: Recurrence, upto: datetime) -> list[datetime]:
    out: list[datetime] = []
    due = rec.next_due(None)
    while due is not None and due <= upto:
        out.append(due)
        due = rec.next_due(due)
    return out


@settings(max_examples=300, deadline=None)
@given(runs())
def test_properties_of_a_run(run: tuple[Recurrence, list[tuple[int, bool, bool]]]) -> None:
    rec, steps = run
    now = T0
    last: datetime | None = None
    active = False
    completed = False
    made: list[tuple[datetime, datetime]] = []  # (due time, made at)
    #: Per check: (time, whether a job could be made then: none active and enabled).
    checks: list[tuple[datetime, bool]] = []
    for minutes, job_ends, enabled in steps:
        now += minutes * M
        if job_ends:
            active = False
        d = decide(ScheduleView(rec, last, enabled=enabled, job_active=active), now)
        assert not (d.make_for and d.skip_to)
        checks.append((now, enabled and not active))
        if d.make_for is not None:
            assert enabled and not active, "a job made while one is active or the schedule disabled"
            made.append((d.make_for, now))
            active = True
        if d.last_due is not None:
            assert last is None or d.last_due > last, "a due time handled twice"
            last = d.last_due
        if d.complete:
            assert not active
            completed = True
            break
        assert d.wake_at is None or d.wake_at > now, "a wake-up time not in the future"
        if d.next_run_time is not None and rec.do_not_run_after is not None:
            assert d.next_run_time <= rec.do_not_run_after
    dues = [due for due, _ in made]
    assert dues == sorted(set(dues)), "two jobs for one due time"
    all_due = _all_due(rec, now)
    for due, at in made:
        assert due in all_due, "a job for a time that is not a due time"
        assert due <= at, "a job before its due time"
        if rec.start_window is not None:
            assert at <= due + rec.start_window, "a job made after its start window"
        if rec.do_not_run_after is not None:
            assert at <= rec.do_not_run_after, "a job after do_not_run_after"
    # A due time without a job was skipped only because a job could not be made whenever the schedule
    # looked during the time it could have been: from it until its window closed, the next came due or
    # do_not_run_after passed.
    for i, due in enumerate(all_due):
        if due in dues or (last is not None and due > last) or (completed and due > now):
            continue
        nxt = all_due[i + 1] if i + 1 < len(all_due) else None
        ends = [t for t in (due + rec.start_window if rec.start_window else None, nxt) if t is not None]
        closes = min(ends) if ends else None
        for at, could in checks:
            before_end = rec.do_not_run_after is None or at <= rec.do_not_run_after
            if at >= due and (closes is None or at < closes) and before_end:
                assert not could, f"due time {due} skipped though a job could be made at {at}"
    if completed:
        assert rec.do_not_run_after is None or now >= rec.do_not_run_after or not rec.recurring
