"""One sample of a pool's metrics, as autoscale formulas read it (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.autoscale.pool_metrics import NodeMetrics, TaskTally, current_values, pool_sample
from shoal.v1 import pool_pb2 as P

pytestmark = pytest.mark.timeout(30)


def counters(n: float) -> dict[str, float]:
    return {
        "disk_read_bytes": n,
        "disk_write_bytes": 2 * n,
        "disk_read_ops": n,
        "disk_write_ops": n,
        "network_in_bytes": 3 * n,
        "network_out_bytes": n,
    }


def test_node_counts_by_kind_and_state() -> None:
    nodes = [
        NodeMetrics("a", P.NODE_STATE_IDLE, True),
        NodeMetrics("b", P.NODE_STATE_RUNNING, False),
        NodeMetrics("c", P.NODE_STATE_PREEMPTED, False),
        NodeMetrics("d", P.NODE_STATE_LEAVING_POOL, True),
        NodeMetrics("e", P.NODE_STATE_CREATING, True),
    ]
    assert current_values(nodes, 4) == {
        "$CurrentDedicatedNodes": 2.0,
        "$CurrentLowPriorityNodes": 2.0,
        "$PreemptedNodeCount": 1.0,
        "$UsableNodeCount": 2.0,
        "$TaskSlotsPerNode": 4.0,
    }


def test_node_metrics_average_over_reporting_nodes_and_counters_are_differences() -> None:
    nodes = [
        NodeMetrics("a", P.NODE_STATE_IDLE, True, 20.0, 100.0, 10.0, counters(1000)),
        NodeMetrics("b", P.NODE_STATE_RUNNING, True, 60.0, 300.0, 30.0, counters(500)),
        NodeMetrics("c", P.NODE_STATE_CREATING, True),
    ]
    before = {"a": counters(900), "b": counters(600)}  # b's machine restarted: it counted 500 since
    s = pool_sample(nodes, TaskTally(), task_slots_per_node=1, interval_seconds=5.0, counters_before=before)
    assert s["$SampleNodeCount"] == 2
    assert (s["$CPUPercent"], s["$MemoryBytes"], s["$DiskBytes"]) == (40.0, 200.0, 20.0)
    assert s["$DiskReadBytes"] == 100 + 500
    assert s["$NetworkInBytes"] == 300 + 1500
    assert s["$WallClockSeconds"] == 10.0


def test_without_reports_node_metrics_have_no_sample() -> None:
    s = pool_sample(
        [NodeMetrics("a", P.NODE_STATE_CREATING, True)], TaskTally(), task_slots_per_node=1, interval_seconds=5
    )
    assert "$CPUPercent" not in s and "$DiskReadBytes" not in s
    assert s["$SampleNodeCount"] == 0


def test_task_metrics() -> None:
    s = pool_sample(
        [],
        TaskTally(active=3, running=2, succeeded=10, failed=4),
        task_slots_per_node=1,
        interval_seconds=5,
        tasks_before=TaskTally(succeeded=7, failed=5),
    )
    assert (s["$ActiveTasks"], s["$RunningTasks"], s["$PendingTasks"]) == (3, 2, 5)
    # Completions within the interval (a deleted job makes the tally drop: never negative).
    assert (s["$SucceededTasks"], s["$FailedTasks"]) == (3, 0)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 1e12), st.booleans()), max_size=20))
def test_averages_stay_within_the_nodes_values(values: list[tuple[float, float, bool]]) -> None:
    nodes = [
        NodeMetrics(f"n{i}", P.NODE_STATE_IDLE, dedicated, cpu, mem, 0.0, None)
        for i, (cpu, mem, dedicated) in enumerate(values)
    ]
    s = pool_sample(nodes, TaskTally(), task_slots_per_node=1, interval_seconds=5)
    if values:
        assert min(v[0] for v in values) - 1e-9 <= s["$CPUPercent"] <= max(v[0] for v in values) + 1e-9
        assert s["$SampleNodeCount"] == len(values)
    assert s["$CurrentDedicatedNodes"] + s["$CurrentLowPriorityNodes"] == len(values)
