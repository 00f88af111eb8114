"""Hypothesis properties of the formula language: parsing and evaluation never raise, doubles are IEEE's
(Python's), GetSample(count) never returns more than count."""

from __future__ import annotations

import math
import operator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.server.autoscale import INTERNAL_ERROR, FormulaError, MetricHistory, PoolSample, check, parse
from shoal.server.autoscale.values import format_double
from tests.unit.autoscale.formulas import NOW, run, value_of

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of formulas, so that generated text reaches deep into the grammar and the evaluator.
TOKENS = [
    "$TargetDedicatedNodes",
    "$TargetLowPriority",
    "$NodeDeallocationOption",
    "$CPUPercent",
    "$ActiveTasks",
    "$CurrentDedicatedNodes",
    "$TaskSlotsPerNode",
    "x",
    "$y",
    "TimeInterval_Minute",
    "TimeInterval_Second",
    "taskcompletion",
    "requeue",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "!",
    "&&",
    "||",
    "?",
    ":",
    "(",
    ")",
    ",",
    ";",
    ".",
    "\n",
    "// c\n",
    "0",
    "1",
    "2.5",
    "1e3",
    "100",
    '"2016-10-13T00:00:00Z"',
    '""',
    "avg(",
    "max(",
    "min(",
    "len(",
    "std(",
    "sum(",
    "norm(",
    "range(",
    "lg(",
    "ln(",
    "log(",
    "ceil(",
    "floor(",
    "round(",
    "percentile(",
    "val(",
    "rand()",
    "time()",
    "time(",
    "stop()",
    ".GetSample(",
    ".GetSamplePercent(",
    ".Count()",
    ".HistoryBeginTime()",
    ".GetSamplePeriod()",
    ".weekday",
    ".hour",
]
formula_texts = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)

EXPRESSIONS = st.recursive(
    st.sampled_from(
        [
            "1",
            "0",
            "2.5",
            "-3",
            "x",
            "TimeInterval_Minute",
            "time()",
            "$CurrentDedicatedNodes",
            "$ActiveTasks.GetSample(3)",
            "$ActiveTasks.GetSample(TimeInterval_Minute * 2, 50)",
            "$ActiveTasks.GetSamplePercent(TimeInterval_Minute)",
            "$CPUPercent.Count()",
            '"a"',
            "rand()",
        ]
    ),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "<", "==", "&&", "||"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(
            st.sampled_from(["avg", "max", "min", "sum", "len", "std", "lg", "ceil", "round"]),
            st.lists(inner, min_size=1, max_size=3),
        ).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        inner.map(lambda e: f"-{e}"),
        inner.map(lambda e: f"val({e}, 0)"),
        inner.map(lambda e: f"({e}).hour"),
    ),
    max_leaves=12,
)
programs = st.lists(
    st.tuples(st.sampled_from(["x", "$y", "$TargetDedicatedNodes", "$TargetLowPriorityNodes"]), EXPRESSIONS),
    min_size=1,
    max_size=6,
).map(lambda stmts: "x = 1;\n" + ";\n".join(f"{n} = {e}" for n, e in stmts))


def _history(values: list[float | None]) -> MetricHistory:
    h = MetricHistory(interval_seconds=30)
    for k, v in enumerate(values):
        h.add(PoolSample(NOW - timedelta(seconds=30 * (len(values) - 1 - k)), {} if v is None else {"ActiveTasks": v}))
    return h


@SETTINGS
@given(st.one_of(st.text(max_size=300), formula_texts))
def test_parse_raises_only_formula_errors(text: str) -> None:
    try:
        parse(text)
    except FormulaError as e:
        assert e.code and e.message
        assert (e.line is None) == (e.column is None)
        if e.line is not None:
            assert e.line >= 1 and e.column >= 1  # type: ignore[operator]
    err = check(text)
    assert err is None or isinstance(err, FormulaError)


@SETTINGS
@given(st.one_of(formula_texts, programs), st.lists(st.one_of(st.none(), st.floats(-10, 10)), max_size=12))
def test_evaluation_never_raises(text: str, samples: list[float | None]) -> None:
    r = run(text, hist=_history(samples), current={"CurrentDedicatedNodes": 2, "TaskSlotsPerNode": 1})
    assert (r.targets is None) == (r.error is not None)
    if r.error is not None:
        assert r.error.code != INTERNAL_ERROR, r.error
        assert r.error.values[0][0] == "Message"
    else:
        assert r.targets is not None and r.targets.dedicated >= 0 and r.targets.low_priority >= 0
    assert r.results.startswith("$TargetDedicatedNodes=")


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e150, max_value=1e150)
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@SETTINGS
@given(finite, st.sampled_from(sorted(OPS)), finite)
def test_arithmetic_on_doubles_is_pythons(a: float, op: str, b: float) -> None:
    if op == "/" and b == 0:
        expected = math.nan if a == 0 else math.copysign(math.inf, a) * math.copysign(1, b)
    else:
        expected = OPS[op](a, b)
    got = float(value_of(f"x = ({a!r}) {op} ({b!r})"))
    assert got == expected or (math.isnan(got) and math.isnan(expected))


@SETTINGS
@given(finite, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), finite)
def test_comparisons_on_doubles_are_pythons(a: float, op: str, b: float) -> None:
    expected = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
    assert value_of(f"x = ({a!r}) {op} ({b!r})") == ("1" if expected else "0")


@SETTINGS
@given(st.lists(st.one_of(st.none(), st.floats(0, 100)), max_size=60), st.integers(0, 80))
def test_get_sample_count_never_returns_more_than_count(samples: list[float | None], count: int) -> None:
    h = _history(samples)
    got = h.last("ActiveTasks", count, NOW)
    present = [v for v in samples if v is not None]
    assert len(got) <= count
    assert got == (present[-count:] if count else [])
    shown = value_of(f"x = len($ActiveTasks.GetSample({count}))", hist=h)
    assert int(shown) == len(got)


@SETTINGS
@given(st.lists(st.one_of(st.none(), st.floats(0, 100)), max_size=60), st.integers(0, 40))
def test_sample_percent_is_a_percent_and_windows_hold_no_more_than_expected(
    samples: list[float | None], minutes: int
) -> None:
    h = _history(samples)
    pct = float(value_of(f"x = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * {minutes})", hist=h))
    assert 0 <= pct <= 100
    n = int(value_of(f"x = len($ActiveTasks.GetSample(TimeInterval_Minute * {minutes}))", hist=h))
    assert n <= 2 * minutes  # a window of w seconds holds at most w / 30 samples


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_doubles_are_written_so_that_they_read_back(x: float) -> None:
    text = format_double(x)
    assert float(text) == x
    assert "e" not in text and (("E" in text) == (abs(x) >= 1e15 or (x != 0 and abs(x) < 1e-4)))
