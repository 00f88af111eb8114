"""The pure roll-ups of accounting (`scheduling/usage.py`): sums add up, the peak is the max, counts
never go negative, and the bytes appended to a stored task merge into the message as set by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain import wire
from shoal.server.scheduling.usage import (
    SUMMED,
    Tally,
    add_stats,
    add_usage,
    creation_parts,
    creation_time,
    first_attempt_change,
    seconds_between,
    waited_since,
)
from shoal.v1 import common_pb2, task_pb2

pytestmark = pytest.mark.timeout(60)

_counts = st.integers(min_value=0, max_value=2**40)
_seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)

attempt_stats = st.builds(
    common_pb2.TaskStatistics,
    wall_clock_seconds=_seconds,
    user_cpu_seconds=_seconds,
    kernel_cpu_seconds=_seconds,
    peak_memory_bytes=_counts,
    read_bytes=_counts,
    write_bytes=_counts,
    read_ops=_counts,
    write_ops=_counts,
)


def _tally(attempts: list[common_pb2.TaskStatistics]) -> Tally:
    t = Tally()
    for s in attempts:
        t.add_attempt(s, 1.0)
    return t


@given(st.lists(attempt_stats, max_size=8), st.lists(attempt_stats, max_size=8))
def test_sums_are_additive_and_the_peak_is_the_max(xs: list, ys: list) -> None:
    whole = _tally(xs + ys)
    parts = _tally(xs)
    parts.add_tally(_tally(ys))
    a, b = whole.to_proto(), parts.to_proto()
    for name in SUMMED:
        assert getattr(a.totals, name) == pytest.approx(getattr(b.totals, name))
    assert (
        a.totals.peak_memory_bytes
        == b.totals.peak_memory_bytes
        == max((s.peak_memory_bytes for s in xs + ys), default=0)
    )
    assert a.attempts == b.attempts == len(xs) + len(ys)
    assert a.wait_seconds == pytest.approx(len(xs) + len(ys))


@given(st.lists(attempt_stats, max_size=8))
def test_the_message_form_of_a_task_and_of_a_tally_agree(xs: list) -> None:
    usage = common_pb2.UsageStatistics()
    tally = Tally()
    for s in xs:
        add_usage(usage, s, 2.0)
        tally.add_attempt(s, 2.0)
    back = Tally.from_proto(usage).to_proto()
    assert back.totals == usage.totals and back.attempts == usage.attempts and back.wait_seconds == usage.wait_seconds
    via_tally = tally.to_proto()
    assert via_tally.attempts == usage.attempts
    for name in SUMMED:
        assert getattr(via_tally.totals, name) == pytest.approx(getattr(usage.totals, name))


@given(st.lists(attempt_stats, max_size=6), st.lists(st.sampled_from(["retry", "requeue", "ok", "fail"]), max_size=20))
def test_counts_never_go_negative(xs: list, outcomes: list) -> None:
    t = _tally(xs)
    for o in outcomes:
        if o == "retry":
            t.task_retries += 1
        elif o == "requeue":
            t.task_requeues += 1
        elif o == "ok":
            t.tasks_succeeded += 1
        else:
            t.tasks_failed += 1
    p = t.to_proto()
    assert min(p.tasks_succeeded, p.tasks_failed, p.task_retries, p.task_requeues, p.attempts) >= 0
    for name in SUMMED:
        assert getattr(p.totals, name) >= 0


def test_add_stats_sums_and_keeps_the_largest_peak() -> None:
    into = common_pb2.TaskStatistics(user_cpu_seconds=1, peak_memory_bytes=10, write_ops=1)
    add_stats(into, common_pb2.TaskStatistics(user_cpu_seconds=2, peak_memory_bytes=5, write_ops=2))
    assert (into.user_cpu_seconds, into.peak_memory_bytes, into.write_ops) == (3, 10, 3)


def test_waits_are_from_the_latest_queueing_and_never_negative() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    created, retried, unset = Timestamp(seconds=100), Timestamp(seconds=150), Timestamp()
    assert waited_since(created, retried, unset) == retried
    assert seconds_between(Timestamp(seconds=160, nanos=500_000_000), retried) == 10.5
    assert seconds_between(Timestamp(seconds=90), created) == 0.0


@given(st.integers(min_value=-(2**40), max_value=2**40), st.integers(min_value=0, max_value=999_999_999))
def test_the_creation_time_is_read_from_the_bytes(seconds: int, nanos: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    now = Timestamp(seconds=seconds, nanos=nanos)
    spec = task_pb2.TaskSpec(id="t", command_line="true").SerializeToString()
    stored = wire.new_task_bytes("jobs/j/tasks/t", spec, wire.new_task_tail(task_pb2.TASK_STATE_ACTIVE, now))
    assert creation_parts(stored) == (seconds, nanos)


@given(attempt_stats, st.floats(min_value=0, max_value=1e6), st.booleans())
def test_the_bytes_appended_to_a_stored_task_merge_as_set_by_hand(
    s: common_pb2.TaskStatistics, wait: float, ok: bool
) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    now = Timestamp(seconds=1_700_000_000, nanos=123)
    spec = task_pb2.TaskSpec(id="t", command_line="true").SerializeToString()
    stored = wire.new_task_bytes("jobs/j/tasks/t", spec, wire.new_task_tail(task_pb2.TASK_STATE_ACTIVE, now))
    assert creation_time(stored) == now and creation_parts(stored) == (now.seconds, now.nanos)
    merged = task_pb2.Task.FromString(stored + first_attempt_change(s.SerializeToString(), wait, ok))
    by_hand = task_pb2.Task.FromString(stored)
    by_hand.execution_info.last_attempt_stats.CopyFrom(s)
    add_usage(by_hand.stats, s, wait)
    if ok:
        by_hand.stats.tasks_succeeded = 1
    else:
        by_hand.stats.tasks_failed = 1
    assert merged == by_hand
