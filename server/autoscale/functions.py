"""The built-in functions of Batch's autoscale formulas (`stop` is the evaluator's own).

Functions of a doubleVecList flatten their arguments first (``max($a, $b.GetSample(1))``); lg, ln,
log, ceil, floor and round work on a double or, element by element, on a doubleVec.
"""

from __future__ import annotations

import math
import random as _random
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Final

from shoal.server.autoscale.values import OperationError, Timestamp, Value, Vec, flatten, type_name, utc


def _nonempty(xs: list[float], name: str) -> list[float]:
    if not xs:
        raise OperationError(f"{name}() of an empty list")
    return xs


def _total(xs: list[float]) -> float:
    # Left to right, as .NET adds (Python's sum() compensates since 3.12).
    t = 0.0
    for x in xs:
        t += x
    return t


def _max(xs: list[float]) -> float:
    # NaN wins, as in .NET's Math.Max (Python's max depends on the order).
    return math.nan if any(math.isnan(x) for x in xs) else max(xs)


def _min(xs: list[float]) -> float:
    return math.nan if any(math.isnan(x) for x in xs) else min(xs)


def _std(xs: list[float]) -> float:
    """The sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    mean = _total(xs) / len(xs)
    return math.sqrt(_total([(x - mean) ** 2 for x in xs]) / (len(xs) - 1))


_LIST_FUNCTIONS: Final[dict[str, Callable[[list[float]], float]]] = {
    "avg": lambda xs: _total(_nonempty(xs, "avg")) / len(xs),
    "len": lambda xs: float(len(xs)),
    "max": lambda xs: _max(_nonempty(xs, "max")),
    "min": lambda xs: _min(_nonempty(xs, "min")),
    "norm": lambda xs: math.sqrt(_total([x * x for x in xs])),
    "range": lambda xs: _max(_nonempty(xs, "range")) - _min(xs),
    "std": lambda xs: _std(_nonempty(xs, "std")),
    "sum": _total,
}


def _ln(x: float) -> float:
    """Natural log with .NET's edges: log(0) = -Infinity, log(negative) = NaN."""
    if math.isnan(x) or x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    return math.log(x)


def _lg(x: float) -> float:
    return math.log2(x) if x > 0 and math.isfinite(x) else _ln(x)


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 and math.isfinite(x) else _ln(x)


def _log_base(x: float, base: float) -> float:
    """.NET's Math.Log(a, newBase)."""
    if math.isnan(x) or math.isnan(base) or base == 1 or base < 0:
        return math.nan
    if x != 1 and (base == 0 or base == math.inf):
        return math.nan
    lb = _ln(base)
    return _ln(x) / lb if lb != 0 else math.nan


def _whole(f: Callable[[float], float]) -> Callable[[float], float]:
    return lambda x: f(x) if math.isfinite(x) else x


_ELEMENTWISE: Final[dict[str, Callable[[float], float]]] = {
    "lg": _lg,
    "ln": _ln,
    "log": _log10,
    "ceil": _whole(lambda x: float(math.ceil(x))),
    "floor": _whole(lambda x: float(math.floor(x))),
    # Half to even, as .NET's Math.Round(double).
    "round": _whole(lambda x: float(round(x))),
}


def _elementwise(name: str, f: Callable[[float], float], v: Value) -> Value:
    if isinstance(v, float):
        return f(v)
    if isinstance(v, Vec):
        return Vec(tuple(f(x) for x in v.values))
    raise OperationError(f"{name}() takes a double or a doubleVec, not a {type_name(v)}")


def _double(v: Value, what: str) -> float:
    if not isinstance(v, float):
        raise OperationError(f"{what} must be a double, not a {type_name(v)}")
    return v


def _index(v: float, what: str) -> int:
    if not math.isfinite(v):
        raise OperationError(f"{what} must be a finite number, not {v}")
    return int(v)  # toward zero, as Batch makes a target of a fraction


def percentile(xs: list[float], p: float) -> float:
    """The nearest-rank percentile: the smallest element with at least p% of the elements at or below it
    (Batch: "Returns the percentile element of the vector v")."""
    if not xs:
        raise OperationError("percentile() of an empty doubleVec")
    if not 0 <= p <= 100:
        raise OperationError(f"percentile() needs p between 0 and 100, not {p}")
    ordered = sorted(xs)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


_W3C: Final = re.compile(
    r"(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?)?)?)?"
)


def parse_time(text: str) -> datetime:
    """A W3C-DTF (ISO 8601 profile: ``1997``, ``1997-07-16``, ``1997-07-16T19:20:30.45+01:00``) or RFC 1123
    (``Sun, 06 Nov 1994 08:49:37 GMT``) date and time; one without a zone is UTC."""
    s = text.strip()
    m = _W3C.fullmatch(s)
    if m:
        try:
            frac = m["f"] or "0"
            at = datetime(
                int(m["y"]),
                int(m["mo"] or 1),
                int(m["d"] or 1),
                int(m["h"] or 0),
                int(m["mi"] or 0),
                int(m["s"] or 0),
                int(frac[:6].ljust(6, "0")),
                tzinfo=UTC,
            )
            tz = m["tz"]
            if tz and tz not in "Zz":
                sign = -1 if tz[0] == "-" else 1
                digits = tz[1:].replace(":", "")
                offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                at = at.replace(tzinfo=timezone(sign * offset))
            return utc(at)
        except (ValueError, OverflowError):
            raise OperationError(f"time() cannot read {text!r}: not a valid date and time") from None
    try:
        return utc(parsedate_to_datetime(s))
    except (TypeError, ValueError, IndexError, OverflowError):
        raise OperationError(
            f"time() cannot read {text!r}: expected W3C-DTF (2016-10-13T19:18:47Z) or RFC 1123 "
            "(Thu, 13 Oct 2016 19:18:47 GMT)"
        ) from None


def call(name: str, args: Sequence[Value], *, now: datetime, rng: _random.Random) -> Value:
    """Apply built-in function `name` (arity already checked) to evaluated arguments."""
    if name in _LIST_FUNCTIONS:
        return _LIST_FUNCTIONS[name](flatten(args, name))
    if name == "log" and len(args) == 2:
        base = _double(args[1], "log()'s base")
        return _elementwise(name, lambda x: _log_base(x, base), args[0])
    if name in _ELEMENTWISE:
        return _elementwise(name, _ELEMENTWISE[name], args[0])
    if name == "percentile":
        return percentile(flatten(args[:1], name), _double(args[1], "percentile()'s p"))
    if name == "rand":
        return rng.random()
    if name == "time":
        if not args:
            return Timestamp(utc(now))
        text = args[0]
        if not isinstance(text, str):
            raise OperationError(f"time() takes a string, not a {type_name(text)}")
        return Timestamp(utc(now) if text == "" else parse_time(text))
    if name == "val":
        xs = flatten(args[:1], name)
        i = _index(_double(args[1], "val()'s index"), "val()'s index")
        if not 0 <= i < len(xs):
            raise OperationError(f"val() index {i} is out of range for a doubleVec of {len(xs)}")
        return xs[i]
    raise OperationError(f"unknown function {name!r}")
