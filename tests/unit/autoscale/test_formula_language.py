"""Evaluation: the operation table, the functions, the variables, targets, results and errors."""

from __future__ import annotations

import math

import pytest

from shoal.server.autoscale import EVALUATION_ERROR, INSUFFICIENT_SAMPLE_DATA, check
from tests.unit.autoscale.formulas import NOW, error_of, history, run, value_of

pytestmark = pytest.mark.timeout(60)


# --- the operation table ---


@pytest.mark.parametrize(
    ("expr", "shown"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3.5"),
        ("2 - 5", "-3"),
        ("1 / 0", "Infinity"),
        ("-1 / 0", "-Infinity"),
        ("0 / 0", "NaN"),
        ("1.1 * 3", "3.3000000000000003"),
        ("1e20", "1E+20"),
        ("0.00001", "1E-05"),
        ("-2", "-2"),
        ("!0", "1"),
        ("!3", "0"),
        ("--2", "2"),
        ("3 > 2", "1"),
        ("3 < 2", "0"),
        ("2 <= 2", "1"),
        ("2 >= 3", "0"),
        ("2 == 2", "1"),
        ("2 != 2", "0"),
        ("1 && 0", "0"),
        ("1 && 2", "1"),
        ("0 || 0", "0"),
        ("0 || 5", "1"),
        ("0 ? 1 : 2", "2"),
        ("0.5 ? 1 : 2", "1"),
        ('"abc" < "abd"', "1"),
        ('"a" == "a"', "1"),
        ('"B" < "a"', "1"),
        ("TimeInterval_Minute * 5", "00:05:00"),
        ("5 * TimeInterval_Minute", "00:05:00"),
        ("TimeInterval_Hour / 4", "00:15:00"),
        ("TimeInterval_Day + TimeInterval_Hour", "1.01:00:00"),
        ("TimeInterval_Second - TimeInterval_Minute", "-00:00:59"),
        ("-TimeInterval_Second", "-00:00:01"),
        ("TimeInterval_100ns", "00:00:00.0000001"),
        ("TimeInterval_Millisecond * 1500", "00:00:01.5000000"),
        ("TimeInterval_Week", "7.00:00:00"),
        ("TimeInterval_Year", "365.00:00:00"),
        ("TimeInterval_Zero", "00:00:00"),
        ("TimeInterval_Minute > TimeInterval_Second", "1"),
        ("time() + TimeInterval_Hour", "2016-10-13T20:18:47.805Z"),
        ("TimeInterval_Hour + time()", "2016-10-13T20:18:47.805Z"),
        ("time() - TimeInterval_Day", "2016-10-12T19:18:47.805Z"),
        ('time() - time("2016-10-13T19:00:00Z")', "00:18:47.8050000"),
        ('time() > time("2016-10-13")', "1"),
        ('time("2016-10-13") == time("Thu, 13 Oct 2016 00:00:00 GMT")', "1"),
    ],
)
def test_operations(expr: str, shown: str) -> None:
    assert value_of(f"x = {expr}") == shown


def test_doublevec_operations() -> None:
    h = history({"ActiveTasks": lambda k: float(3 - k)}, count=3)  # 1, 2, 3 oldest first
    v = "$ActiveTasks.GetSample(3)"
    assert value_of(f"x = {v}", hist=h) == "[1,2,3]"
    assert value_of(f"x = {v} * 2", hist=h) == "[2,4,6]"
    assert value_of(f"x = {v} - 1", hist=h) == "[0,1,2]"
    assert value_of(f"x = {v} / 2", hist=h) == "[0.5,1,1.5]"
    assert value_of(f"x = {v} + {v}", hist=h) == "[2,4,6]"
    assert value_of(f"x = {v} * {v}", hist=h) == "[1,4,9]"
    err = error_of(f"x = {v} + $ActiveTasks.GetSample(2)", hist=h)
    assert err.code == EVALUATION_ERROR and "same length" in err.message


@pytest.mark.parametrize(
    ("expr", "column", "words"),
    [
        ('1 + "a"', 7, "double + string"),
        ("TimeInterval_Minute + 1", 25, "timeinterval + double"),
        ("1 / TimeInterval_Minute", 7, "double / timeinterval"),
        ("time() + time()", 12, "timestamp + timestamp"),
        ("time() * 2", 12, "timestamp * double"),
        ("time() < 1", 12, "timestamp < double"),
        ("2 + $ActiveTasks.GetSample(1)", 7, "double + doubleVec"),
        ("$ActiveTasks.GetSample(1) < 1", 31, "doubleVec < double"),
        ('-"a"', 5, "operator - is not defined for string"),
        ("!TimeInterval_Minute", 5, "operator ! is not defined for timeinterval"),
        ("TimeInterval_Minute ? 1 : 2", 25, "condition of ?: must be a double"),
        ('"a" && 1', 9, "left side of &&"),
        ("(1).hour", 9, "double has no member 'hour'"),
        ("time().week", 12, "no member 'week'"),
    ],
)
def test_type_errors_are_evaluation_errors_with_their_position(expr: str, column: int, words: str) -> None:
    err = error_of(f"x = {expr}")
    assert err.code == EVALUATION_ERROR
    assert words in err.message
    assert (err.line, err.column) == (1, column)


def test_logical_operators_and_the_ternary_evaluate_lazily() -> None:
    # The unevaluated side would fail: an undefined variable.
    assert value_of("x = 0 && nothing") == "0"
    assert value_of("x = 1 || nothing") == "1"
    assert value_of("x = 1 ? 2 : nothing") == "2"
    assert error_of("x = 1 && nothing").message == "undefined variable nothing"


def test_timestamp_members() -> None:
    # 2016-10-13T19:18:47.805Z was a Thursday.
    for member, shown in [
        ("year", "2016"),
        ("month", "10"),
        ("day", "13"),
        ("weekday", "4"),
        ("hour", "19"),
        ("minute", "18"),
        ("second", "47"),
    ]:
        assert value_of(f"x = time().{member}") == shown
    assert value_of('x = time("2016-10-16T00:00:00Z").weekday') == "7"  # Sunday
    assert value_of("t = time(); x = t.weekday") == "4"


# --- functions ---


@pytest.mark.parametrize(
    ("expr", "shown"),
    [
        ("avg(1, 2, 3, 6)", "3"),
        ("len(1, 2, 3)", "3"),
        ("len()", "0"),
        ("max(1, 5, 3)", "5"),
        ("min(4, -2, 3)", "-2"),
        ("norm(3, 4)", "5"),
        ("norm()", "0"),
        ("range(1, 5, 3)", "4"),
        ("std(2, 4, 4, 4, 5, 5, 7, 9)", "2.138089935299395"),
        ("std(5)", "0"),
        ("sum(1, 2, 3.5)", "6.5"),
        ("sum()", "0"),
        ("lg(8)", "3"),
        ("ln(1)", "0"),
        ("log(1000)", "3"),
        ("log(8, 2)", "3"),
        ("log(0)", "-Infinity"),
        ("ln(-1)", "NaN"),
        ("ceil(1.2)", "2"),
        ("ceil(-1.2)", "-1"),
        ("floor(1.8)", "1"),
        ("floor(-1.2)", "-2"),
        ("round(2.5)", "2"),
        ("round(3.5)", "4"),
        ("round(-1.4)", "-1"),
        ("percentile(max(1), 50)", "1"),
        ("val(max(7), 0)", "7"),
        ("max(1, 1/0)", "Infinity"),
        ("max(1, 0/0)", "NaN"),
    ],
)
def test_functions_on_doubles(expr: str, shown: str) -> None:
    assert value_of(f"x = {expr}") == shown


def test_functions_flatten_doublevec_lists() -> None:
    h = history({"ActiveTasks": lambda k: float(3 - k)}, count=3)  # [1, 2, 3]
    v = "$ActiveTasks.GetSample(3)"
    assert value_of(f"x = avg({v})", hist=h) == "2"
    assert value_of(f"x = avg({v}, 7)", hist=h) == "3.25"  # avg(1, 2, 3, 7): the documented example
    assert value_of(f"x = max(0, {v}, {v} * 2)", hist=h) == "6"
    assert value_of(f"x = len({v}, 1, {v})", hist=h) == "7"
    assert value_of(f"x = lg({v} * 2)", hist=h) == "[1,2,2.584962500721156]"
    assert value_of(f"x = ceil({v} / 2)", hist=h) == "[1,1,2]"
    assert (
        value_of(f"x = log({v} * 4, 2)", hist=h) == "[2,3,3.5849625007211565]"
    )  # ln(x) / ln(2), as .NET's Math.Log(a, b)
    assert value_of(f"x = percentile({v}, 0)", hist=h) == "1"
    assert value_of(f"x = percentile({v}, 50)", hist=h) == "2"
    assert value_of(f"x = percentile({v}, 67)", hist=h) == "3"
    assert value_of(f"x = percentile({v}, 100)", hist=h) == "3"
    assert value_of(f"x = val({v}, 2)", hist=h) == "3"
    assert value_of(f"x = val({v}, 1.9)", hist=h) == "2"


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("avg()", "avg() of an empty list"),
        ("max()", "max() of an empty list"),
        ("min()", "min() of an empty list"),
        ("range()", "range() of an empty list"),
        ("std()", "std() of an empty list"),
        ("avg(time())", "not a timestamp"),
        ('lg("a")', "lg() takes a double or a doubleVec"),
        ("percentile(max(1), 101)", "between 0 and 100"),
        ("val(max(1), 1)", "index 1 is out of range"),
        ("val(max(1), -1)", "out of range"),
        ("val(max(1), 1/0)", "finite"),
        ("time(5)", "time() takes a string"),
        ('time("yesterday")', "cannot read 'yesterday'"),
        ('time("2016-13-01")', "not a valid date"),
        ("log(8, time())", "base must be a double"),
    ],
)
def test_function_errors(expr: str, words: str) -> None:
    err = error_of(f"x = {expr}")
    assert err.code == EVALUATION_ERROR and words in err.message
    assert (err.line, err.column) == (1, 5)


def test_time_formats() -> None:
    assert value_of('x = time("2016-10-13T19:18:47.805Z")') == "2016-10-13T19:18:47.805Z"
    assert value_of('x = time("2016-10-13T21:18:47+02:00")') == "2016-10-13T19:18:47.000Z"
    assert value_of('x = time("2016-10-13T19:18Z")') == "2016-10-13T19:18:00.000Z"
    assert value_of('x = time("2016")') == "2016-01-01T00:00:00.000Z"
    assert value_of('x = time("2016-10")') == "2016-10-01T00:00:00.000Z"
    assert value_of('x = time("Thu, 13 Oct 2016 19:18:47 GMT")') == "2016-10-13T19:18:47.000Z"
    assert value_of('x = time("")') == "2016-10-13T19:18:47.805Z"
    assert value_of("x = time()") == "2016-10-13T19:18:47.805Z"


def test_rand_uses_the_given_source() -> None:
    a = value_of("x = rand()", seed=1)
    assert a == value_of("x = rand()", seed=1)
    assert a != value_of("x = rand()", seed=2)
    assert 0 <= float(a) < 1


def test_stop_ends_the_evaluation_where_it_stands() -> None:
    r = run("$TargetDedicatedNodes = 3; a = 1; stop(); $TargetDedicatedNodes = 9; b = 2")
    assert r.error is None and r.targets is not None and r.targets.dedicated == 3
    assert r.results.endswith(";a=1")
    r = run("$TargetDedicatedNodes = 3; x = 0 ? stop() : 4")
    assert r.results.endswith(";x=4")


# --- variables ---


def test_user_variables_with_and_without_dollar_are_distinct() -> None:
    r = run("a = 1; $a = 2; b = a + $a")
    assert r.results.endswith(";$a=2;a=1;b=3")


def test_user_variables_are_listed_in_ordinal_order() -> None:
    # As Batch lists them: its documented run lists $curTime, $isWeekday, $isWorkingWeekdayHour, $workHours.
    r = run("zeta = 1; Beta = 2; alpha = 3; $w = 4")
    assert r.results.endswith(";$w=4;Beta=2;alpha=3;zeta=1")


def test_settable_variables_start_at_the_pools_values() -> None:
    r = run(
        "a = $TargetDedicatedNodes; b = $TargetLowPriorityNodes; c = $NodeDeallocationOption",
        dedicated=3,
        low_priority=2,
        option="terminate",
    )
    assert r.results == (
        "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=2;$NodeDeallocationOption=terminate;a=3;b=2;c=terminate"
    )
    assert r.targets is not None and (r.targets.dedicated, r.targets.low_priority) == (3, 2)
    assert r.targets.deallocation_option == "terminate"


def test_aliases_and_their_precedence() -> None:
    r = run("$TargetDedicated = 4; $TargetLowPriority = 5")
    assert r.targets is not None and (r.targets.dedicated, r.targets.low_priority) == (4, 5)
    assert r.results.startswith("$TargetDedicatedNodes=4;$TargetLowPriorityNodes=5;")
    # "If both the fully named variable and its alias are set, the fully named variable takes precedence."
    for text in ("$TargetDedicatedNodes = 6; $TargetDedicated = 4", "$TargetDedicated = 4; $TargetDedicatedNodes = 6"):
        assert run(text).targets.dedicated == 6  # type: ignore[union-attr]


def test_deallocation_options() -> None:
    for option in ("requeue", "terminate", "taskcompletion", "retaineddata"):
        assert run(f"$NodeDeallocationOption = {option}").targets.deallocation_option == option  # type: ignore[union-attr]
    assert run('$NodeDeallocationOption = "TaskCompletion"').targets.deallocation_option == "taskcompletion"  # type: ignore[union-attr]
    err = error_of("$NodeDeallocationOption = 1")
    assert err.code == EVALUATION_ERROR and "must be one of" in err.message and (err.line, err.column) == (1, 1)
    assert "must be one of" in error_of('$NodeDeallocationOption = "later"').message


def test_current_values_are_doubles_and_sample_variables() -> None:
    h = history({"CurrentDedicatedNodes": lambda k: float(k)}, count=3)
    current = {"$CurrentDedicatedNodes": 5, "CurrentLowPriorityNodes": 2, "TaskSlotsPerNode": 4, "UsableNodeCount": 5}
    r = run(
        "a = $CurrentDedicatedNodes * 1.1; b = $CurrentLowPriorityNodes; c = $TaskSlotsPerNode;"
        "d = $UsableNodeCount; e = $CurrentDedicatedNodes.GetSample(3); f = $CurrentDedicated",
        hist=h,
        current=current,
    )
    assert r.error is None
    assert r.results.endswith(";a=5.5;b=2;c=4;d=5;e=[2,1,0];f=5")
    err = error_of("a = $TaskSlotsPerNode", current={})
    assert "not known for this pool" in err.message


@pytest.mark.parametrize("name", ["$CPUPercent", "$PendingTasks", "$PreemptedNodeCount", "$SampleNodeCount"])
def test_sample_variables_are_not_doubles(name: str) -> None:
    err = error_of(f"x = {name} + 1")
    assert err.code == EVALUATION_ERROR and "sample variable" in err.message and (err.line, err.column) == (1, 5)


def test_undefined_variables() -> None:
    err = error_of("a = 1;\nb = a + c")
    assert err.message == "undefined variable c" and (err.line, err.column) == (2, 9)
    assert error_of("something_useless").message == "undefined variable something_useless"


# --- targets, results and errors ---


def test_targets_are_truncated_toward_zero() -> None:
    r = run("$TargetDedicatedNodes = 2.9; $TargetLowPriorityNodes = 0.99")
    assert r.targets is not None and (r.targets.dedicated, r.targets.low_priority) == (2, 0)
    assert r.results.startswith("$TargetDedicatedNodes=2.9;$TargetLowPriorityNodes=0.99;")
    assert run("$TargetDedicatedNodes = -0.5").targets.dedicated == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "words"), [("-1", "must not be negative"), ("0/0", "finite"), ("1/0", "finite"), ("3e10", "too large")]
)
def test_invalid_targets_fail_the_evaluation(value: str, words: str) -> None:
    err = error_of(f"a = 1;\n$TargetLowPriorityNodes = {value}")
    assert err.code == EVALUATION_ERROR and words in err.message and (err.line, err.column) == (2, 1)
    assert (
        "$TargetLowPriorityNodes",
        run(f"$TargetLowPriorityNodes = {value}").results.split(";")[1].split("=")[1],
    ) in err.values


def test_a_target_must_be_a_double() -> None:
    err = error_of("$TargetDedicatedNodes = time()")
    assert err.code == EVALUATION_ERROR and "must be a double" in err.message


def test_an_error_keeps_what_was_assigned_before_it() -> None:
    h = history({"RunningTasks": 1.0}, count=2)
    r = run(
        "$TargetDedicatedNodes = 4;\nb = 2;\na = $RunningTasks.GetSample(TimeInterval_Minute * 10, 90);\nc = 3",
        hist=h,
        dedicated=1,
    )
    assert r.targets is None and r.error is not None
    assert r.error.code == INSUFFICIENT_SAMPLE_DATA
    assert r.error.message == "Autoscale evaluation failed due to insufficient sample data"
    assert r.error.values == (
        ("Message", "Line 3, Col 19: Insufficient data from data set: $RunningTasks wanted 90%, received 10%"),
        ("$TargetDedicatedNodes", "4"),
        ("b", "2"),
    )
    assert r.results == "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;b=2"


def test_a_refused_formula_reports_the_pools_values() -> None:
    r = run("$TargetDedicatedNodes = ", dedicated=2)
    assert r.targets is None and r.error is not None and r.error.code == "AutoScalingFormulaSyntaxError"
    assert r.results == "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    assert check("$TargetDedicatedNodes = ") is not None


def test_results_format_every_type() -> None:
    h = history({"ActiveTasks": 1.5}, count=2)
    r = run(
        'a = 2.5; b = $ActiveTasks.GetSample(2); c = time(); d = TimeInterval_Minute; e = "text"; f = 1e300 * 1e300',
        hist=h,
    )
    assert r.results.endswith(";a=2.5;b=[1.5,1.5];c=2016-10-13T19:18:47.805Z;d=00:01:00;e=text;f=Infinity")
    assert math.isinf(float("inf")) and NOW.year == 2016
