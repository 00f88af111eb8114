"""Every formula of Batch's autoscale documentation (batch_doc_formulas.toml) parses and gives the
documented result on a constructed history."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shoal.server.autoscale import SYNTAX_ERROR, check
from tests.unit.autoscale.formulas import NOW, error_of, history, run, value_of

pytestmark = pytest.mark.timeout(60)

DOCS = tomllib.loads((Path(__file__).parent / "batch_doc_formulas.toml").read_text())
MONDAY_10AM = datetime(2016, 10, 17, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(n for n in DOCS if n != "cpu_complete_2021"))
def test_every_documented_formula_passes_check(name: str) -> None:
    assert check(DOCS[name]["text"]) is None


def test_a_missing_semicolon_is_the_error_the_article_warns_of() -> None:
    err = check(DOCS["cpu_complete_2021"]["text"])
    assert err is not None and err.code == SYNTAX_ERROR
    assert (err.line, err.column) == (8, 1)  # (the text starts after the opening line break)
    assert "';' missing" in err.message


def test_pending_tasks_average_when_samples_suffice() -> None:
    h = history({"PendingTasks": lambda k: float(k % 3 + 5)}, count=20)  # 6 samples in 180 s: 5,6,7,...
    r = run(DOCS["pending_tasks"]["text"], hist=h)
    assert r.error is None
    assert r.targets is not None and r.targets.dedicated == 6 and r.targets.deallocation_option == "taskcompletion"
    assert r.results == (
        "$TargetDedicatedNodes=6;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;"
        "maxNumberofVMs=25;pendingTaskSamplePercent=100;pendingTaskSamples=6;startingNumberOfVMs=1"
    )


def test_pending_tasks_starts_with_one_vm_without_history_and_caps_at_25() -> None:
    assert run(DOCS["pending_tasks"]["text"]).targets.dedicated == 1  # type: ignore[union-attr]
    h = history({"PendingTasks": 400.0}, count=10)
    assert run(DOCS["pending_tasks"]["text"], hist=h).targets.dedicated == 25  # type: ignore[union-attr]


def test_pending_tasks_results_as_batch_recorded_them() -> None:
    # An autoscale run recorded by a Batch client's tests, with maxNumberofVMs = 2 and an idle pool:
    # $TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;maxNumberofVMs=2;...
    text = DOCS["pending_tasks"]["text"].replace("maxNumberofVMs = 25", "maxNumberofVMs = 2")
    text = text.replace("$NodeDeallocationOption = taskcompletion;", "")
    r = run(text, hist=history({"PendingTasks": 0.0}, count=10))
    assert r.results == (
        "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;"
        "maxNumberofVMs=2;pendingTaskSamplePercent=100;pendingTaskSamples=0;startingNumberOfVMs=1"
    )


def test_preempted_nodes_are_replaced_by_dedicated_ones() -> None:
    h = history({"PreemptedNodeCount": lambda k: 3.0 if k < 2 else 1.0}, count=10)
    r = run(DOCS["preempted_nodes"]["text"], hist=h)
    assert r.targets is not None
    assert (r.targets.dedicated, r.targets.low_priority) == (1, 24)


def test_cpu_formula_grows_ten_percent_when_busy_and_caps_at_400() -> None:
    busy = history({"CPUPercent": 0.9}, count=120)
    r = run(DOCS["cpu_complete_2019"]["text"], hist=busy, current={"CurrentDedicatedNodes": 20})
    assert r.targets is not None and r.targets.dedicated == 22  # 20 * 1.1, truncated
    assert (
        value_of(
            DOCS["cpu_complete_2019"]["text"], "$totalDedicatedNodes", hist=busy, current={"CurrentDedicatedNodes": 20}
        )
        == "22"
    )
    r = run(DOCS["cpu_complete_2019"]["text"], hist=busy, current={"CurrentDedicatedNodes": 1000})
    assert r.targets is not None and r.targets.dedicated == 400


def test_cpu_formula_shrinks_when_idle() -> None:
    idle = history({"CPUPercent": 0.1}, count=120)
    r = run(DOCS["cpu_complete_2019"]["text"], hist=idle, current={"CurrentDedicatedNodes": 20})
    assert r.targets is not None and r.targets.dedicated == 18


def test_weekday_formula() -> None:
    assert run(DOCS["weekday_monday"]["text"], now=MONDAY_10AM).targets.dedicated == 5  # type: ignore[union-attr]
    assert run(DOCS["weekday_monday"]["text"]).targets.dedicated == 1  # type: ignore[union-attr]


def test_keep_current_and_zero() -> None:
    r = run(DOCS["keep_current"]["text"], current={"CurrentDedicatedNodes": 7}, dedicated=3)
    assert r.targets is not None and r.targets.dedicated == 7
    r = run(DOCS["zero"]["text"], dedicated=3)
    assert r.targets is not None and r.targets.dedicated == 0


def test_evaluate_snippet_gives_the_documented_results() -> None:
    # The article's run predates low-priority nodes; Batch now lists $TargetLowPriorityNodes too.
    r = run(DOCS["evaluate_snippet"]["text"])
    documented = DOCS["evaluate_snippet"]["documented_results"]
    assert r.results == documented.replace(
        ";$NodeDeallocationOption", ";$TargetLowPriorityNodes=0;$NodeDeallocationOption"
    )
    assert r.targets is not None and r.targets.dedicated == 10


def test_time_based_examples() -> None:
    for name in ("example1_time_based", "python_sdk"):
        assert run(DOCS[name]["text"], now=MONDAY_10AM).targets.dedicated == 20  # type: ignore[union-attr]
        assert run(DOCS[name]["text"]).targets.dedicated == 10  # type: ignore[union-attr]
    assert value_of(DOCS["example1_mountain_time"]["text"], "$curTime") == "2016-10-13T13:18:47.805Z"


def test_example2_task_based() -> None:
    text = DOCS["example2_task_based"]["text"]
    # Enough samples: the larger of the last sample and the 15-minute average, capped at 20.
    h = history({"PendingTasks": lambda k: 30.0 if k == 0 else 6.0}, count=40)
    assert run(text, hist=h).targets.dedicated == 20  # type: ignore[union-attr]
    h = history({"PendingTasks": lambda k: 3.0 if k == 0 else 6.0}, count=40)
    r = run(text, hist=h)
    assert r.targets is not None and r.targets.dedicated == 5  # avg of 30 samples: (3 + 29 * 6) / 30 = 5.9
    # Too few samples: the last one; none pending: half the current target.
    h = history({"PendingTasks": 4.0}, count=3)
    assert run(text, hist=h).targets.dedicated == 4  # type: ignore[union-attr]
    assert run(text, hist=history({"PendingTasks": 0.0}, count=3), dedicated=9).targets.dedicated == 4  # type: ignore[union-attr]
    # No history at all: max(0, empty) is 0.
    assert run(text, dedicated=6).targets.dedicated == 3  # type: ignore[union-attr]


def test_example3_parallel_tasks() -> None:
    text = DOCS["example3_parallel_tasks"]["text"]
    h = history({"ActiveTasks": 9.0}, count=40)
    # cores 0, extraVMs (9 + 3) / 4 = 3, capped at 3.
    assert run(text, hist=h).targets.dedicated == 3  # type: ignore[union-attr]
    assert value_of(text, "$extraVMs", hist=history({"ActiveTasks": 2.0}, count=40), dedicated=1) == "0.25"


def test_example4_initial_size() -> None:
    text = DOCS["example4_initial_size"]["text"]
    start = datetime(2016, 10, 13, 19, 0, tzinfo=UTC)
    # 18 minutes after the start: past startup; nothing ran or waited for an hour: 0.
    quiet = history({"RunningTasks": 0.0, "ActiveTasks": 0.0}, count=120)
    r = run(text, hist=quiet)
    assert r.targets is not None and r.targets.dedicated == 0
    assert value_of(text, "lifespan", hist=quiet) == "00:18:47.8050000"
    busy = history({"RunningTasks": 0.0, "ActiveTasks": lambda k: 2.0 if k == 5 else 0.0}, count=120)
    assert run(text, hist=busy).targets.dedicated == 4  # type: ignore[union-attr]
    # Within the first 10 minutes: 4, whatever the samples (the ternary leaves GetSample unevaluated).
    early = datetime(2016, 10, 13, 19, 5, tzinfo=UTC)
    assert run(text, now=early).targets.dedicated == 4  # type: ignore[union-attr]
    # Past startup with half the hour's samples missing: GetSample(span, 50) fails the evaluation.
    err = error_of(text, hist=history({"RunningTasks": 0.0, "ActiveTasks": 0.0}, count=40))
    assert err.code == "InsufficientSampleData"
    assert err.values[0] == (
        "Message",
        "Line 7, Col 70: Insufficient data from data set: $RunningTasks wanted 50%, received 33.33%",
    )
    assert start < NOW


def test_get_sample_counts_of_the_article() -> None:
    # "would return 20 samples if all samples for the last 10 minutes are present"; with the last
    # minute missing, 18: then 95% fails and 80% succeeds.
    full = history({"CPUPercent": 0.5}, count=40)
    assert value_of("x = len($CPUPercent.GetSample(TimeInterval_Minute * 10))", hist=full) == "20"
    gap = history({"CPUPercent": lambda k: None if k < 2 else 0.5}, count=40)
    assert value_of("x = len($CPUPercent.GetSample(TimeInterval_Minute * 10))", hist=gap) == "18"
    assert (
        error_of("x = $CPUPercent.GetSample(TimeInterval_Minute * 10, 95)", hist=gap).code == "InsufficientSampleData"
    )
    assert value_of("x = len($CPUPercent.GetSample(TimeInterval_Minute * 10, 80))", hist=gap) == "18"
    assert value_of(DOCS["cpu_last_five_minutes"]["text"], hist=full) == "[" + ",".join(["0.5"] * 10) + "]"


def test_running_tasks_ranges() -> None:
    h = history({"RunningTasks": 1.0}, count=40)
    # The article: $runningTasksSample=[1,1,1,1,1,1,1,1,1,1];
    assert value_of(DOCS["running_tasks_range"]["text"], "$runningTasksSample", hist=h) == "[1,1,1,1,1,1,1,1,1,1]"
    assert value_of(DOCS["running_tasks_range_75"]["text"], "$runningTasksSample", hist=h) == "[1,1]"
    sparse = history({"RunningTasks": lambda k: 1.0 if k != 3 else None}, count=40)
    assert error_of(DOCS["running_tasks_range_75"]["text"], hist=sparse).code == "InsufficientSampleData"


def test_test_azbatchautoscale_example() -> None:
    # Documented: $TargetDedicated=5;$NodeDeallocationOption=requeue;totalNodes=5 (a pool with no samples).
    r = run(DOCS["test_azbatchautoscale"]["text"], current={"CurrentDedicatedNodes": 2})
    assert r.results == "$TargetDedicatedNodes=5;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;totalNodes=5"
    busy = history({"CPUPercent": 0.9}, count=40)
    r = run(DOCS["test_azbatchautoscale"]["text"], hist=busy, current={"CurrentDedicatedNodes": 10})
    assert r.targets is not None and r.targets.dedicated == 11


def test_sdk_recorded_runs() -> None:
    # Batch's SDK tests record: "$TargetDedicatedNodes=3" -> "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;
    # $NodeDeallocationOption=requeue".
    assert run("$TargetDedicatedNodes=3").results == (
        "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    )


def test_a_fraction_is_truncated_as_users_report() -> None:
    # MicrosoftDocs/azure-docs#95350: one active task over 2 slots gives 0.5 nodes, "rounded down to 0".
    text = (
        "startingNumberOfVMs = 1;\nmaxNumberofVMs = 10;\n"
        "activeTaskSamplePercent = $ActiveTasks.GetSamplePercent(180 * TimeInterval_Second);\n"
        "activeTaskMax = activeTaskSamplePercent < 70 ? startingNumberOfVMs : "
        "max($ActiveTasks.GetSample(180 *   TimeInterval_Second));\n"
        "$TargetDedicatedNodes = min(maxNumberofVMs, activeTaskMax / $TaskSlotsPerNode);\n"
        "$NodeDeallocationOption = taskcompletion;\n"
    )
    r = run(text, hist=history({"ActiveTasks": 1.0}, count=10), current={"TaskSlotsPerNode": 2})
    assert r.targets is not None and r.targets.dedicated == 0
    assert r.results.startswith("$TargetDedicatedNodes=0.5;")
