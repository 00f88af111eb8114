"""Parsing and the static checks: limits, positions of errors, what check() refuses."""

from __future__ import annotations

from importlib import resources

import pytest

from shoal.server.autoscale import (
    MAX_LENGTH,
    MAX_STATEMENTS,
    SYNTAX_ERROR,
    TOO_LONG,
    FormulaError,
    check,
    parse,
)
from shoal.server.autoscale.syntax import Assign, Binary, Call, ExprStatement, Field, Logical, Method, Ternary

pytestmark = pytest.mark.timeout(60)


def test_the_grammar_ships_with_the_package() -> None:
    assert resources.files("shoal.server.autoscale").joinpath("formula.lark").is_file()


def test_statements_comments_and_trailing_semicolons() -> None:
    stmts = parse("// a comment\na = 1; // another\n$b = a + 2;;\n\nstop();")
    assert [type(s) for s in stmts] == [Assign, Assign, ExprStatement]
    assert isinstance(stmts[2].expr, Call) and stmts[2].expr.name == "stop"
    assert parse("") == () and parse(" ; ;\n// only a comment") == ()


def test_precedence_is_c_like() -> None:
    (s,) = parse("x = 1 + 2 * 3 < 4 || !5 && 6 == 7 ? 8 : 9 ? 10 : 11")
    assert isinstance(s, Assign) and isinstance(s.expr, Ternary)
    cond = s.expr.cond
    assert isinstance(cond, Logical) and cond.op == "||"
    assert isinstance(cond.left, Binary) and cond.left.op == "<"
    assert isinstance(cond.right, Logical) and cond.right.op == "&&"
    assert isinstance(s.expr.otherwise, Ternary)  # right-associative


def test_method_and_field_calls() -> None:
    (s,) = parse("x = $CPUPercent.GetSample(TimeInterval_Minute * 5)")
    assert isinstance(s, Assign) and isinstance(s.expr, Method) and s.expr.name == "GetSample"
    (s,) = parse("x = time().weekday")
    assert isinstance(s, Assign) and isinstance(s.expr, Field) and s.expr.name == "weekday"


def test_string_literals() -> None:
    (s,) = parse('x = time("Thu, 13 Oct 2016 19:18:47 GMT")')
    assert isinstance(s, Assign) and isinstance(s.expr, Call)
    assert s.expr.args[0].value == "Thu, 13 Oct 2016 19:18:47 GMT"  # type: ignore[union-attr]
    (s,) = parse(r'x = "a \"b\" c"')
    assert s.expr.value == 'a "b" c'  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("a = ", 1, 5, "end of formula"),
        ("a = 1 +* 2", 1, 8, "'*'"),
        ("a = 1;\nb = @", 2, 5, "'@'"),
        ("a = 1\nb = 2", 2, 1, "';' missing"),
        ("a = (1 + 2", 1, 11, "end of formula"),
        ("a = 1 ? 2", 1, 10, "end of formula"),
        ('a = "unterminated', 1, 5, "'\"'"),
        ("a = min(1,,2)", 1, 11, "','"),
        ("1 = a", 1, 3, "'='"),
    ],
)
def test_syntax_errors_carry_their_position(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(FormulaError) as e:
        parse(text)
    assert e.value.code == SYNTAX_ERROR
    assert (e.value.line, e.value.column) == (line, column)
    assert words in e.value.message
    assert e.value.values == (("Message", f"Line {line}, Col {column}: {e.value.message}"),)


def test_length_limit() -> None:
    ok = "a = 1;" + " " * (MAX_LENGTH - 6)
    assert check(ok) is None
    err = check(ok + " ")
    assert err is not None and err.code == TOO_LONG and str(MAX_LENGTH) in err.message


def test_statement_limit() -> None:
    assert check("a = 1;" * MAX_STATEMENTS) is None
    err = check("a = 1;" * (MAX_STATEMENTS + 1))
    assert err is not None and err.code == SYNTAX_ERROR and "statements" in err.message
    assert (err.line, err.column) == (1, 6 * MAX_STATEMENTS + 1)


def test_nesting_is_bounded() -> None:
    err = check("a = " + "-" * 500 + "1")
    assert err is not None and err.code == SYNTAX_ERROR and "nest" in err.message
    assert check("a = " + "(" * 500 + "1" + ")" * 500) is None  # parentheses add no depth


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a = foo(1)", "unknown function 'foo'"),
        ("a = $CPUPercent.Average()", "unknown method 'Average'"),
        ("a = rand(1)", "rand takes 0 argument(s), not 1"),
        ("a = val(1)", "val takes 2 argument(s), not 1"),
        ("a = log(1, 2, 3)", "log takes 1 to 2"),
        ("a = $CPUPercent.GetSample()", "GetSample takes 1 to 3"),
        ("a = $CPUPercent.Count(1)", "Count takes 0"),
        ("a = time().GetSample(1)", "method of the metric variables"),
        ("x = 1; a = x.Count()", "method of the metric variables"),
        ("$CPUPercent = 1", "$CPUPercent is read-only"),
        ("$CurrentDedicatedNodes = 1", "read-only"),
        ("$TaskSlotsPerNode = 1", "read-only"),
        ("TimeInterval_Minute = 1", "read-only"),
    ],
)
def test_check_refuses(text: str, words: str) -> None:
    err = check(text)
    assert err is not None and err.code == SYNTAX_ERROR
    assert words in err.message
    assert err.line is not None and err.column is not None


def test_check_accepts_settable_variables_and_user_variables() -> None:
    text = (
        "$TargetDedicatedNodes = 1; $TargetDedicated = 2; $TargetLowPriorityNodes = 3; $TargetLowPriority = 4;"
        "$NodeDeallocationOption = requeue; mine = 1; $mine = 2; x = avg(); y = max($a, $CPUPercent.GetSample(1))"
    )
    # An undefined variable ($a) is evaluation errors, not check errors.
    assert check(text) is None
