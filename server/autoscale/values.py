"""The formula's values and operators, after Batch's operation table.

double is a Python float, string a str; doubleVec, timestamp and timeinterval have a type each. A
doubleVecList exists only as a function's arguments (see `flatten`). Arithmetic on doubles is IEEE's, as
.NET's doubles that Batch evaluates with: ``1/0`` is Infinity and ``0/0`` NaN, neither an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final


class OperationError(Exception):
    """An operation the formula asked for cannot be done (a type mismatch, a domain error); the evaluator
    adds the position."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Vec:
    """A doubleVec."""

    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A point in time (UTC)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class Interval:
    """A timeinterval, in seconds."""

    seconds: float


Value = float | str | Vec | Timestamp | Interval


def type_name(v: object) -> str:
    """The formula's name of a value's type."""
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Vec):
        return "doubleVec"
    if isinstance(v, Timestamp):
        return "timestamp"
    if isinstance(v, Interval):
        return "timeinterval"
    return type(v).__name__


def utc(at: datetime) -> datetime:
    """`at` as an aware UTC datetime (a naive one is taken to be UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# --- formatting, as Batch writes values in an autoscale run's results ---


def format_double(x: float) -> str:
    """A double as .NET writes it (shortest round-trip form; ``1E+15``, ``1E-05``, ``NaN``, ``Infinity``)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0" if math.copysign(1.0, x) > 0 else "-0"
    if abs(x) < 1e15 and x == int(x):
        return str(int(x))
    r = repr(x)
    if "e" not in r and abs(x) < 1e15:
        return r
    # Scientific: .NET switches at an exponent of 15 (Python's repr at 16) and writes E, a sign and at
    # least two exponent digits. The digits are repr's (the shortest that round-trip).
    sign, digits, exponent = Decimal(r).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    e = int(exponent) + len(digits) - 1
    mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}E{'+' if e >= 0 else '-'}{abs(e):02d}"


def format_interval(seconds: float) -> str:
    """A timeinterval as .NET's TimeSpan writes it: ``[-][d.]hh:mm:ss[.fffffff]``."""
    if not math.isfinite(seconds):
        return format_double(seconds)
    ticks = round(seconds * 10_000_000)
    sign = "-" if ticks < 0 else ""
    ticks = abs(ticks)
    whole, frac = divmod(ticks, 10_000_000)
    days, rest = divmod(whole, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    out = f"{sign}{f'{days}.' if days else ''}{h:02d}:{m:02d}:{s:02d}"
    return out + (f".{frac:07d}" if frac else "")


def format_timestamp(at: datetime) -> str:
    """A timestamp as Batch writes it: ``2016-10-13T19:18:47.805Z``."""
    u = utc(at)
    return u.strftime("%Y-%m-%dT%H:%M:%S") + f".{u.microsecond // 1000:03d}Z"


def format_value(v: Value) -> str:
    """A value as it appears in an autoscale run's results."""
    if isinstance(v, float):
        return format_double(v)
    if isinstance(v, str):
        return v
    if isinstance(v, Vec):
        return "[" + ",".join(format_double(x) for x in v.values) + "]"
    if isinstance(v, Timestamp):
        return format_timestamp(v.at)
    return format_interval(v.seconds)


# --- arithmetic ---


def divide(a: float, b: float) -> float:
    """IEEE division: x/0 is ±Infinity, 0/0 and NaN/0 are NaN."""
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


_ARITH: Final[dict[str, Callable[[float, float], float]]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": divide,
}

_COMPARE: Final[dict[str, Callable[[object, object], bool]]] = {
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def shift(at: datetime, seconds: float) -> Timestamp:
    """`at` moved by `seconds`; an error when the result is not a representable time."""
    try:
        if not math.isfinite(seconds):
            raise OverflowError
        return Timestamp(at + timedelta(seconds=seconds))
    except (OverflowError, ValueError):
        raise OperationError("the resulting timestamp is out of range") from None


def _mismatch(a: Value, op: str, b: Value) -> OperationError:
    return OperationError(f"operator {op} is not defined for {type_name(a)} {op} {type_name(b)}")


def binary(op: str, a: Value, b: Value) -> Value:
    """``a op b`` for an arithmetic or comparison operator, per Batch's operation table."""
    if op in _COMPARE:
        same = (float, str, Timestamp, Interval)
        for t in same:
            if isinstance(a, t) and isinstance(b, t):
                if t is Timestamp:
                    return 1.0 if _COMPARE[op](a.at, b.at) else 0.0  # type: ignore[union-attr]
                if t is Interval:
                    return 1.0 if _COMPARE[op](a.seconds, b.seconds) else 0.0  # type: ignore[union-attr]
                return 1.0 if _COMPARE[op](a, b) else 0.0
        raise _mismatch(a, op, b)
    f = _ARITH[op]
    if isinstance(a, float) and isinstance(b, float):
        return f(a, b)
    if isinstance(a, Vec) and isinstance(b, float):
        return Vec(tuple(f(x, b) for x in a.values))
    if isinstance(a, Vec) and isinstance(b, Vec):
        if len(a.values) != len(b.values):
            raise OperationError(
                f"operator {op} needs doubleVecs of the same length, not {len(a.values)} and {len(b.values)}"
            )
        return Vec(tuple(f(x, y) for x, y in zip(a.values, b.values, strict=True)))
    if isinstance(a, Interval):
        if isinstance(b, float) and op in "*/":
            return Interval(f(a.seconds, b))
        if isinstance(b, Interval) and op in "+-":
            return Interval(f(a.seconds, b.seconds))
        if isinstance(b, Timestamp) and op == "+":
            return shift(b.at, a.seconds)
    if isinstance(a, float) and isinstance(b, Interval) and op == "*":
        return Interval(a * b.seconds)
    if isinstance(a, Timestamp):
        if isinstance(b, Interval) and op in "+-":
            return shift(a.at, b.seconds if op == "+" else -b.seconds)
        if isinstance(b, Timestamp) and op == "-":
            return Interval((a.at - b.at).total_seconds())
    raise _mismatch(a, op, b)


def unary(op: str, a: Value) -> Value:
    """``-a`` (double, timeinterval) or ``!a`` (double)."""
    if isinstance(a, float):
        return -a if op == "-" else (1.0 if a == 0 else 0.0)
    if isinstance(a, Interval) and op == "-":
        return Interval(-a.seconds)
    raise OperationError(f"operator {op} is not defined for {type_name(a)}")


def truth(v: Value, what: str) -> bool:
    """A double as a condition: nonzero is true (NaN too, as in C)."""
    if not isinstance(v, float):
        raise OperationError(f"{what} must be a double, not {type_name(v)}")
    return v != 0


def flatten(args: Iterable[Value], function: str) -> list[float]:
    """A doubleVecList's arguments as one list: ``avg(v, 7)`` is ``avg(1, 2, 3, 7)`` when v = [1, 2, 3]."""
    out: list[float] = []
    for a in args:
        if isinstance(a, float):
            out.append(a)
        elif isinstance(a, Vec):
            out.extend(a.values)
        else:
            raise OperationError(f"{function}() takes doubles and doubleVecs, not a {type_name(a)}")
    return out
