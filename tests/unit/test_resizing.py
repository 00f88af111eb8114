"""The pure decisions of a pool's resizes: which nodes a removal names, and when a resize has timed out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.scheduling import resizing
from shoal.v1 import pool_pb2 as P


def test_removal_problems_name_each_node() -> None:
    members = {"a": P.NODE_STATE_IDLE, "b": P.NODE_STATE_LEAVING_POOL}
    assert resizing.removal_problems(["A"], members) == []
    got = resizing.removal_problems(["a", "b", "c", "A"], members)
    assert [f for f, _ in got] == ["node_ids[1]", "node_ids[2]", "node_ids[3]"]
    assert [f for f, _ in resizing.removal_problems([], members)] == ["node_ids"]
    assert [f for f, _ in resizing.removal_problems(["a"] * 101, members)] == ["node_ids"]


def test_timeouts() -> None:
    pool = P.Pool()
    assert resizing.timeout_seconds(pool) == resizing.DEFAULT_RESIZE_TIMEOUT_SECONDS
    pool.resize_timeout.CopyFrom(duration_pb2.Duration(seconds=30))
    assert resizing.timeout_seconds(pool) == 30
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert not resizing.timed_out(P.ALLOCATION_STATE_STEADY, t0, t0 + timedelta(hours=1), 30)
    assert not resizing.timed_out(P.ALLOCATION_STATE_RESIZING, None, t0, 30)
    assert resizing.timed_out(P.ALLOCATION_STATE_RESIZING, t0, t0 + timedelta(seconds=31), 30)


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=5, max_value=3600))
def test_a_resize_times_out_exactly_after_its_timeout(elapsed: int, timeout: int) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    got = resizing.timed_out(P.ALLOCATION_STATE_RESIZING, t0, t0 + timedelta(seconds=elapsed), timeout)
    assert got == (elapsed > timeout)
