"""From formula text to statements: Batch's limits, the lark grammar (``formula.lark``), the syntax
tree, and the static checks made when a formula is enabled.

`parse` raises `FormulaError`; `check` returns it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Final

import lark
from lark import Token, Transformer_NonRecursive, v_args

from shoal.server.autoscale import names
from shoal.server.autoscale.errors import SYNTAX_ERROR, TOO_LONG, FormulaError

#: Batch's limits: "The formula string cannot exceed 8 KB" (its error says 8192 characters), "can
#: include up to 100 statements that are separated by semicolons".
MAX_LENGTH: Final = 8192
MAX_STATEMENTS: Final = 100
#: How deeply expressions may nest: far beyond any real formula, and keeps the evaluator's recursion
#: well inside Python's stack.
MAX_DEPTH: Final = 100

#: Built-in functions and how many arguments each takes (min, max; None: any number, a doubleVecList).
FUNCTION_ARITY: Final[dict[str, tuple[int, int | None]]] = {
    "avg": (0, None),
    "len": (0, None),
    "max": (0, None),
    "min": (0, None),
    "norm": (0, None),
    "range": (0, None),
    "std": (0, None),
    "sum": (0, None),
    "lg": (1, 1),
    "ln": (1, 1),
    "log": (1, 2),
    "ceil": (1, 1),
    "floor": (1, 1),
    "round": (1, 1),
    "percentile": (2, 2),
    "rand": (0, 0),
    "stop": (0, 0),
    "time": (0, 1),
    "val": (2, 2),
}

#: The sample methods of a metric variable and how many arguments each takes.
METHOD_ARITY: Final[dict[str, tuple[int, int]]] = {
    "GetSample": (1, 3),
    "GetSamplePeriod": (0, 0),
    "Count": (0, 0),
    "HistoryBeginTime": (0, 0),
    "GetSamplePercent": (1, 2),
}


# --- the syntax tree: each node carries the 1-based line and column where it starts (for an operator,
# where the operator is) ---


@dataclass(frozen=True, slots=True)
class Node:
    """A syntax tree node."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Number(Node):
    """A numeric literal."""

    value: float


@dataclass(frozen=True, slots=True)
class String(Node):
    """A double-quoted string literal."""

    value: str


@dataclass(frozen=True, slots=True)
class Var(Node):
    """A variable, a service-defined name or a TimeInterval_* constant."""

    name: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A built-in function call."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Method(Node):
    """A sample method called on a metric variable (``$CPUPercent.GetSample(...)``)."""

    target: Expr
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Field(Node):
    """A timestamp member (``time().weekday``)."""

    target: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """``-x`` or ``!x``."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """An arithmetic or comparison operator."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Logical(Node):
    """``&&`` or ``||``; the right side is evaluated only when it decides the result."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Ternary(Node):
    """``c ? a : b``; only the chosen branch is evaluated."""

    cond: Expr
    then: Expr
    otherwise: Expr


Expr = Number | String | Var | Call | Method | Field | Unary | Binary | Logical | Ternary


@dataclass(frozen=True, slots=True)
class Assign(Node):
    """``name = expr``."""

    name: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class ExprStatement(Node):
    """An expression evaluated for its effect (``stop()``) or its errors."""

    expr: Expr


Statement = Assign | ExprStatement


# --- parsing ---


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("shoal.server.autoscale").joinpath("formula.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


class _Deep(Exception):
    """Raised inside the transformer when nesting passes MAX_DEPTH."""

    def __init__(self, line: int, column: int) -> None:
        super().__init__(line, column)
        self.line = line
        self.column = column


def _depth_check(nodes: tuple[object, ...], depths: dict[int, int], node: Node) -> Node:
    d = 1 + max((depths.get(id(c), 0) for c in nodes), default=0)
    if d > MAX_DEPTH:
        raise _Deep(node.line, node.column)
    depths[id(node)] = d
    return node


def _unquote(text: str) -> str:
    out: list[str] = []
    it = iter(text[1:-1])
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


@v_args(inline=True)
class _Build(Transformer_NonRecursive):
    """The lark tree into `Node`s (non-recursive: deep nesting must not exhaust the stack)."""

    def __init__(self) -> None:
        super().__init__()
        # Node depth by id; the nodes stay alive in the tree being built.
        self._depths: dict[int, int] = {}

    def _n(self, node: Node, *children: object) -> Node:
        return _depth_check(children, self._depths, node)

    def number(self, tok: Token) -> Node:
        return Number(tok.line or 0, tok.column or 0, float(tok))

    def string(self, tok: Token) -> Node:
        return String(tok.line or 0, tok.column or 0, _unquote(str(tok)))

    def var(self, tok: Token) -> Node:
        return Var(tok.line or 0, tok.column or 0, str(tok))

    def args(self, *items: Expr) -> tuple[Expr, ...]:
        return items

    def call(self, name: Token, args: tuple[Expr, ...] | None) -> Node:
        a = args or ()
        return self._n(Call(name.line or 0, name.column or 0, str(name), a), *a)

    def method(self, target: Expr, name: Token, args: tuple[Expr, ...] | None) -> Node:
        a = args or ()
        return self._n(Method(name.line or 0, name.column or 0, target, str(name), a), target, *a)

    def field(self, target: Expr, name: Token) -> Node:
        return self._n(Field(name.line or 0, name.column or 0, target, str(name)), target)

    def unary(self, op: Token, operand: Expr) -> Node:
        return self._n(Unary(op.line or 0, op.column or 0, str(op), operand), operand)

    def binary(self, left: Expr, op: Token, right: Expr) -> Node:
        return self._n(Binary(op.line or 0, op.column or 0, str(op), left, right), left, right)

    def logical(self, left: Expr, op: Token, right: Expr) -> Node:
        return self._n(Logical(op.line or 0, op.column or 0, str(op), left, right), left, right)

    def ternary(self, cond: Expr, q: Token, then: Expr, otherwise: Expr) -> Node:
        return self._n(Ternary(q.line or 0, q.column or 0, cond, then, otherwise), cond, then, otherwise)

    def assign(self, name: Token, expr: Expr) -> Statement:
        return Assign(name.line or 0, name.column or 0, str(name), expr)

    def exprstmt(self, expr: Expr) -> Statement:
        return ExprStatement(expr.line, expr.column, expr)

    def start(self, *stmts: Statement | None) -> tuple[Statement, ...]:
        return tuple(s for s in stmts if s is not None)


_TOKEN_TEXT: Final = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "QMARK": "'?'",
    "OR": "'||'",
    "AND": "'&&'",
    "EQ": "'=='",
    "NE": "'!='",
    "LT": "'<'",
    "LE": "'<='",
    "GT": "'>'",
    "GE": "'>='",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "BANG": "'!'",
    "$END": "the end of the formula",
}


def _expected(terminals: set[str] | frozenset[str] | None) -> str:
    if not terminals:
        return ""
    shown = sorted(_TOKEN_TEXT.get(t, t) for t in terminals)
    return "; expected " + (", ".join(shown[:8]) + (", ..." if len(shown) > 8 else ""))


def _end_position(text: str) -> tuple[int, int]:
    line = text.count("\n") + 1
    return line, len(text) - (text.rfind("\n") + 1) + 1


def _syntax_error(text: str, e: lark.exceptions.LarkError) -> FormulaError:
    if isinstance(e, lark.exceptions.UnexpectedEOF) or (
        isinstance(e, lark.exceptions.UnexpectedToken) and e.token.type == "$END"
    ):
        line, col = _end_position(text)
        return FormulaError(
            SYNTAX_ERROR, "unexpected end of formula" + _expected(set(e.expected)), line=line, column=col
        )
    if isinstance(e, lark.exceptions.UnexpectedToken):
        tok = e.token
        hint = " (is a ';' missing before it?)" if "SEMICOLON" in e.expected and tok.type in ("NAME", "NUMBER") else ""
        return FormulaError(
            SYNTAX_ERROR, f"unexpected {str(tok)!r}{hint}" + _expected(e.expected), line=e.line, column=e.column
        )
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        pos = e.pos_in_stream
        ch = text[pos] if pos is not None and 0 <= pos < len(text) else "?"
        return FormulaError(SYNTAX_ERROR, f"unexpected character {ch!r}", line=e.line, column=e.column)
    if isinstance(e, lark.exceptions.VisitError) and isinstance(e.orig_exc, _Deep):
        deep = e.orig_exc
        return FormulaError(
            SYNTAX_ERROR, f"expressions nest more than {MAX_DEPTH} deep", line=deep.line, column=deep.column
        )
    return FormulaError(SYNTAX_ERROR, f"the formula could not be parsed ({type(e).__name__})")


def parse(text: str) -> tuple[Statement, ...]:
    """The statements of a formula, or `FormulaError` (too long, a syntax error, too many statements)."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(TOO_LONG, f"the formula has {len(text)} characters; at most {MAX_LENGTH} are allowed")
    try:
        tree = _parser().parse(text)
        stmts: tuple[Statement, ...] = _Build().transform(tree)
    except lark.exceptions.LarkError as e:
        raise _syntax_error(text, e) from None
    if len(stmts) > MAX_STATEMENTS:
        extra = stmts[MAX_STATEMENTS]
        raise FormulaError(
            SYNTAX_ERROR,
            f"the formula has {len(stmts)} statements; at most {MAX_STATEMENTS} are allowed",
            line=extra.line,
            column=extra.column,
        )
    return stmts


# --- static checks ---


def _walk(expr: Expr) -> Iterator[Expr]:
    """Every node of an expression (iteratively: nesting is bounded, but so is the stack)."""
    stack: list[Expr] = [expr]
    while stack:
        e = stack.pop()
        yield e
        match e:
            case Call(args=args):
                stack.extend(args)
            case Method(target=t, args=args):
                stack.append(t)
                stack.extend(args)
            case Field(target=t):
                stack.append(t)
            case Unary(operand=o):
                stack.append(o)
            case Binary(left=a, right=b) | Logical(left=a, right=b):
                stack.extend((a, b))
            case Ternary(cond=c, then=a, otherwise=b):
                stack.extend((c, a, b))
            case _:
                pass


def _arity_error(kind: str, name: str, n: int, lo: int, hi: int | None, node: Node) -> FormulaError | None:
    if n >= lo and (hi is None or n <= hi):
        return None
    want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
    return FormulaError(
        SYNTAX_ERROR, f"{kind} {name} takes {want} argument(s), not {n}", line=node.line, column=node.column
    )


def _check_expr(expr: Expr) -> FormulaError | None:
    for e in _walk(expr):
        if isinstance(e, Call):
            arity = FUNCTION_ARITY.get(e.name)
            if arity is None:
                return FormulaError(SYNTAX_ERROR, f"unknown function {e.name!r}", line=e.line, column=e.column)
            err = _arity_error("function", e.name, len(e.args), arity[0], arity[1], e)
            if err:
                return err
        elif isinstance(e, Method):
            marity = METHOD_ARITY.get(e.name)
            if marity is None:
                return FormulaError(SYNTAX_ERROR, f"unknown method {e.name!r}", line=e.line, column=e.column)
            if not (isinstance(e.target, Var) and names.metric_of(e.target.name)):
                return FormulaError(
                    SYNTAX_ERROR,
                    f"{e.name}() is a method of the metric variables ($CPUPercent, $PendingTasks, ...)",
                    line=e.line,
                    column=e.column,
                )
            err = _arity_error("method", e.name, len(e.args), marity[0], marity[1], e)
            if err:
                return err
    return None


def check_statements(stmts: tuple[Statement, ...]) -> FormulaError | None:
    """The first static error of parsed statements: an unknown function or method, a wrong number of
    arguments, a method called on something other than a metric variable, an assignment to a read-only
    variable."""
    for s in stmts:
        if isinstance(s, Assign) and names.is_read_only(s.name):
            return FormulaError(
                SYNTAX_ERROR, f"{s.name} is read-only and cannot be assigned", line=s.line, column=s.column
            )
        err = _check_expr(s.expr)
        if err:
            return err
    return None


def compile_formula(text: str) -> tuple[Statement, ...]:
    """`parse` and then the static checks; raises `FormulaError`."""
    stmts = parse(text)
    err = check_statements(stmts)
    if err:
        raise err
    return stmts


def check(formula_text: str) -> FormulaError | None:
    """Why Batch would refuse this formula when autoscale is enabled (too long, a syntax error, too many
    statements, an unknown function, an assignment to a read-only variable), or None."""
    try:
        compile_formula(formula_text)
    except FormulaError as e:
        return e
    return None
