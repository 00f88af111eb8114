"""The metric history and the sample methods: windows, counts, percentages and Batch's failure rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shoal.server.autoscale import EVALUATION_ERROR, INSUFFICIENT_SAMPLE_DATA, MetricHistory, PoolSample
from tests.unit.autoscale.formulas import NOW, error_of, history, run, value_of

pytestmark = pytest.mark.timeout(60)


def test_history_keeps_the_newest_capacity_samples() -> None:
    h = history({"ActiveTasks": lambda k: float(k)}, count=10, capacity=4, interval=5)
    assert len(h) == 4
    assert h.last("ActiveTasks", 10, NOW) == [3.0, 2.0, 1.0, 0.0]
    assert h.count("$ActiveTasks") == 4
    assert h.begin_time("ActiveTasks") == NOW - timedelta(seconds=15)


def test_history_drops_a_sample_not_newer_than_the_last() -> None:
    h = MetricHistory()
    assert h.add(PoolSample(NOW, {"ActiveTasks": 1.0}))
    assert not h.add(PoolSample(NOW, {"ActiveTasks": 2.0}))
    assert not h.add(PoolSample(NOW - timedelta(seconds=1), {"ActiveTasks": 3.0}))
    assert h.last("ActiveTasks", 5, NOW) == [1.0]


def test_absent_metrics_have_no_sample_at_that_time() -> None:
    h = history({"ActiveTasks": lambda k: None if k % 2 else 1.0, "RunningTasks": 2.0}, count=6)
    assert h.count("ActiveTasks") == 3 and h.count("RunningTasks") == 6 and h.count("CPUPercent") == 0
    assert h.begin_time("CPUPercent") is None


def test_naive_times_are_utc() -> None:
    h = MetricHistory()
    h.add(PoolSample(NOW.replace(tzinfo=None), {"ActiveTasks": 1.0}))
    assert h.begin_time("ActiveTasks") == NOW


def test_history_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        MetricHistory(interval_seconds=0)
    with pytest.raises(ValueError):
        MetricHistory(capacity=0)


def test_get_sample_count_takes_the_newest_oldest_first() -> None:
    h = history({"ActiveTasks": lambda k: float(10 - k)}, count=5)  # 6..10
    assert value_of("x = $ActiveTasks.GetSample(1)", hist=h) == "[10]"
    assert value_of("x = $ActiveTasks.GetSample(3)", hist=h) == "[8,9,10]"
    assert value_of("x = $ActiveTasks.GetSample(2.7)", hist=h) == "[9,10]"
    assert value_of("x = $ActiveTasks.GetSample(50)", hist=h) == "[6,7,8,9,10]"
    assert value_of("x = $ActiveTasks.GetSample(0)", hist=h) == "[]"
    assert value_of("x = $ActiveTasks.GetSample(1)") == "[]"  # no history: empty, as example 2 relies on
    # Samples later than the evaluation's time are not seen.
    assert value_of("x = $ActiveTasks.GetSample(1)", hist=h, now=NOW - timedelta(seconds=31)) == "[8]"


@pytest.mark.parametrize(("count", "words"), [("-1", "number of samples"), ("1/0", "number of samples")])
def test_get_sample_count_must_be_a_count(count: str, words: str) -> None:
    err = error_of(f"x = $ActiveTasks.GetSample({count})")
    assert err.code == EVALUATION_ERROR and words in err.message


def test_windows_by_interval_and_timestamp() -> None:
    h = history({"ActiveTasks": lambda k: float(k)}, count=40)  # value = age in intervals of 30 s
    assert value_of("x = $ActiveTasks.GetSample(TimeInterval_Minute * 2)", hist=h) == "[3,2,1,0]"
    # (start, end) look-back intervals in either order: between 1 and 2 minutes ago.
    assert value_of("x = $ActiveTasks.GetSample(TimeInterval_Minute, TimeInterval_Minute * 2)", hist=h) == "[3,2]"
    assert value_of("x = $ActiveTasks.GetSample(TimeInterval_Minute * 2, TimeInterval_Minute)", hist=h) == "[3,2]"
    assert value_of("x = $ActiveTasks.GetSample(time() - TimeInterval_Minute)", hist=h) == "[1,0]"
    assert (
        value_of("x = $ActiveTasks.GetSample(time() - TimeInterval_Minute * 2, TimeInterval_Minute)", hist=h) == "[3,2]"
    )
    assert value_of("x = $ActiveTasks.GetSample(TimeInterval_Zero)", hist=h) == "[]"


def test_sample_percent_is_of_the_expected_count() -> None:
    # Every other sample of 10 minutes: 10 of the 20 expected.
    h = history({"CPUPercent": lambda k: None if k % 2 else 1.0}, count=40)
    assert value_of("x = $CPUPercent.GetSamplePercent(TimeInterval_Minute * 10)", hist=h) == "50"
    assert value_of("x = $CPUPercent.GetSamplePercent(TimeInterval_Minute, TimeInterval_Minute * 3)", hist=h) == "50"
    assert value_of("x = $CPUPercent.GetSamplePercent(TimeInterval_Minute * 10)") == "0"
    assert value_of("x = $CPUPercent.GetSamplePercent(TimeInterval_Zero)") == "100"
    full = history({"CPUPercent": 1.0}, count=40, interval=5)
    assert value_of("x = $CPUPercent.GetSamplePercent(TimeInterval_Minute)", hist=full) == "100"
    assert value_of("x = len($CPUPercent.GetSample(TimeInterval_Minute))", hist=full) == "12"  # 60 s / 5 s


def test_get_sample_fails_below_the_sample_percent() -> None:
    h = history({"CPUPercent": lambda k: None if k % 2 else 1.0}, count=40)
    assert value_of("x = len($CPUPercent.GetSample(TimeInterval_Minute * 10, 50))", hist=h) == "10"
    err = error_of("x = $CPUPercent.GetSample(TimeInterval_Minute * 10, 50.5)", hist=h)
    assert err.code == INSUFFICIENT_SAMPLE_DATA
    assert err.values[0] == (
        "Message",
        "Line 1, Col 17: Insufficient data from data set: $CPUPercent wanted 50.5%, received 50%",
    )
    err = error_of("x = $CPUPercent.GetSample(TimeInterval_Minute * 10, TimeInterval_Zero, 75)", hist=h)
    assert err.code == INSUFFICIENT_SAMPLE_DATA


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ("TimeInterval_Minute, 101", "between 0 and 100"),
        ("TimeInterval_Minute, -1", "between 0 and 100"),
        ("TimeInterval_Minute, TimeInterval_Zero, time()", "samplePercent must be a double"),
        ("TimeInterval_Minute, 50, 50", "no third argument"),
        ("1, 2", "takes one argument"),
        ('"a"', "timeinterval or a timestamp"),
        ('TimeInterval_Minute, "a"', "timeinterval or a timestamp"),
        ("TimeInterval_Minute * 1e300", "out of range"),
    ],
)
def test_get_sample_argument_errors(args: str, words: str) -> None:
    err = error_of(f"x = $CPUPercent.GetSample({args})")
    assert err.code == EVALUATION_ERROR and words in err.message


def test_the_other_methods() -> None:
    h = history({"CPUPercent": 1.0}, count=7)
    assert value_of("x = $CPUPercent.GetSamplePeriod()", hist=h) == "00:00:30"
    assert value_of("x = $CPUPercent.Count()", hist=h) == "7"
    assert value_of("x = $CPUPercent.HistoryBeginTime()", hist=h) == "2016-10-13T19:15:47.805Z"
    assert value_of("x = time() - $CPUPercent.HistoryBeginTime()", hist=h) == "00:03:00"
    assert value_of("x = $MemoryBytes.Count()", hist=h) == "0"
    err = error_of("x = $MemoryBytes.HistoryBeginTime()", hist=h)
    assert err.code == INSUFFICIENT_SAMPLE_DATA and "$MemoryBytes has no samples" in err.values[0][1]


@pytest.mark.parametrize(
    "name",
    [
        "CPUPercent",
        "WallClockSeconds",
        "MemoryBytes",
        "DiskBytes",
        "DiskReadBytes",
        "DiskWriteBytes",
        "DiskReadOps",
        "DiskWriteOps",
        "NetworkInBytes",
        "NetworkOutBytes",
        "SampleNodeCount",
        "ActiveTasks",
        "RunningTasks",
        "PendingTasks",
        "SucceededTasks",
        "FailedTasks",
        "TaskSlotsPerNode",
        "CurrentDedicatedNodes",
        "CurrentLowPriorityNodes",
        "PreemptedNodeCount",
        "UsableNodeCount",
    ],
)
def test_every_metric_has_its_samples(name: str) -> None:
    h = history({name: 2.0}, count=3)
    assert value_of(f"x = ${name}.GetSample(3)", hist=h) == "[2,2,2]"
    assert run(f"x = ${name}.Count()", hist=h).error is None
