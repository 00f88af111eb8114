"""Evaluate a formula once, as Batch's autoscale run does: pure (the time, the history, the pool's
current values and the random source are inputs), never raising.

Statements run in order; the first error ends the run and leaves the pool as it was (no targets).
``stop()`` ends it where it stands, with the targets set so far.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from shoal.server.autoscale import functions, names
from shoal.server.autoscale.errors import (
    EVALUATION_ERROR,
    INSUFFICIENT_SAMPLE_DATA,
    INSUFFICIENT_SAMPLE_MESSAGE,
    INTERNAL_ERROR,
    FormulaError,
)
from shoal.server.autoscale.history import MetricHistory
from shoal.server.autoscale.samples import InsufficientData, sample_method
from shoal.server.autoscale.syntax import (
    Assign,
    Binary,
    Call,
    Expr,
    Field,
    Logical,
    Method,
    Number,
    Statement,
    String,
    Ternary,
    Unary,
    Var,
    compile_formula,
)
from shoal.server.autoscale.values import (
    Interval,
    OperationError,
    Timestamp,
    Value,
    binary,
    format_double,
    format_value,
    truth,
    type_name,
    unary,
    utc,
)

#: The largest target Batch's (32-bit) node counts hold.
MAX_TARGET: Final = 2**31 - 1

_FIELDS: Final = ("year", "month", "day", "weekday", "hour", "minute", "second")


@dataclass(frozen=True, kw_only=True)
class EvaluationInputs:
    """What one evaluation sees of the pool and the world."""

    now: datetime
    """The evaluation's time: ``time()`` and the origin of look-back windows (naive means UTC)."""
    history: MetricHistory
    """The pool's metric samples."""
    current: Mapping[str, float] = field(default_factory=dict)
    """Plain values of the read-only variables that are doubles: ``CurrentDedicatedNodes``,
    ``CurrentLowPriorityNodes``, ``TaskSlotsPerNode``, ``UsableNodeCount`` (with or without ``$``)."""
    target_dedicated: int = 0
    """The pool's target: ``$TargetDedicatedNodes`` before the formula sets it."""
    target_low_priority: int = 0
    """The pool's target: ``$TargetLowPriorityNodes`` before the formula sets it."""
    deallocation_option: str = "requeue"
    """``$NodeDeallocationOption`` before the formula sets it."""
    random: random.Random = field(default_factory=lambda: random.Random(0))
    """The source of ``rand()``."""


@dataclass(frozen=True, slots=True)
class Targets:
    """What the pool is to become."""

    dedicated: int
    low_priority: int
    deallocation_option: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of one evaluation (Batch's AutoScaleRun)."""

    targets: Targets | None
    """The new targets; None when the evaluation failed (the pool stays as it is)."""
    results: str
    """Batch's results: ``$TargetDedicatedNodes=..;$TargetLowPriorityNodes=..;$NodeDeallocationOption=..``
    then every user variable assigned, ``name=value``, in ordinal order of name (as Batch lists them)."""
    error: FormulaError | None
    """Why the evaluation failed, or None."""


class _Stop(Exception):
    """``stop()`` was called."""


def _at(node: Statement | Expr, e: OperationError) -> FormulaError:
    if isinstance(e, InsufficientData):
        # Batch's generic message; the particulars go in values' "Message", as in its autoscale event.
        return FormulaError(
            INSUFFICIENT_SAMPLE_DATA, INSUFFICIENT_SAMPLE_MESSAGE, line=node.line, column=node.column, detail=e.message
        )
    return FormulaError(EVALUATION_ERROR, e.message, line=node.line, column=node.column)


def _target(value: Value, name: str) -> int:
    """A target as Batch takes it: a double truncated toward zero (2.9 is 2), not negative, finite."""
    if not isinstance(value, float):
        raise OperationError(f"{name} must be a double, not a {type_name(value)}")
    if not math.isfinite(value):
        raise OperationError(f"{name} must be a finite number, not {format_double(value)}")
    n = int(value)
    if n < 0:
        raise OperationError(f"{name} must not be negative: {format_double(value)}")
    if n > MAX_TARGET:
        raise OperationError(f"{name} is too large: {format_double(value)}")
    return n


class _Run:
    """One evaluation's state."""

    def __init__(self, inputs: EvaluationInputs) -> None:
        self.inputs = inputs
        self.now = utc(inputs.now)
        self.current = {names.bare(k): float(v) for k, v in inputs.current.items()}
        ded, low = float(inputs.target_dedicated), float(inputs.target_low_priority)
        self.service: dict[str, Value] = {
            names.TARGET_DEDICATED: ded,
            "$TargetDedicated": ded,
            names.TARGET_LOW_PRIORITY: low,
            "$TargetLowPriority": low,
            names.DEALLOCATION: inputs.deallocation_option,
        }
        self.assigned: set[str] = set()
        # Where each settable variable was last assigned: the place of an invalid target.
        self.assigned_at: dict[str, tuple[int, int]] = {}
        self.user: dict[str, Value] = {}

    # --- statements ---

    def run(self, stmts: tuple[Statement, ...]) -> None:
        for s in stmts:
            value = self.eval(s.expr)
            if isinstance(s, Assign):
                try:
                    self.assign(s.name, value)
                except OperationError as e:
                    raise _at(s, e) from None
                if s.name in self.service:
                    self.assigned_at[names.TARGET_ALIASES.get(s.name, s.name)] = (s.line, s.column)

    def assign(self, name: str, value: Value) -> None:
        if name == names.DEALLOCATION:
            if not isinstance(value, str) or value.lower() not in names.DEALLOCATION_OPTIONS:
                shown = value if isinstance(value, str) else type_name(value)
                raise OperationError(
                    f"$NodeDeallocationOption must be one of {', '.join(sorted(names.DEALLOCATION_OPTIONS))}, "
                    f"not {shown}"
                )
            value = value.lower()
        elif name in self.service:
            if not isinstance(value, float):
                raise OperationError(f"{name} must be a double, not a {type_name(value)}")
        else:
            self.user[name] = value
            return
        self.service[name] = value
        self.assigned.add(name)

    # --- the outcome ---

    def final(self, full: str) -> Value:
        """A settable variable's value: its full name's if assigned, else its alias's if assigned."""
        for alias, target in names.TARGET_ALIASES.items():
            if target == full and full not in self.assigned and alias in self.assigned:
                return self.service[alias]
        return self.service[full]

    def results(self) -> str:
        parts = [
            f"{n}={format_value(self.final(n))}"
            for n in (names.TARGET_DEDICATED, names.TARGET_LOW_PRIORITY, names.DEALLOCATION)
        ]
        parts += [f"{n}={format_value(self.user[n])}" for n in sorted(self.user)]
        return ";".join(parts)

    def variables(self) -> tuple[tuple[str, str], ...]:
        """What had been assigned, as results list it: for an error's values."""
        settable = [
            (n, format_value(self.final(n)))
            for n in (names.TARGET_DEDICATED, names.TARGET_LOW_PRIORITY, names.DEALLOCATION)
            if n in self.assigned or any(a in self.assigned for a, t in names.TARGET_ALIASES.items() if t == n)
        ]
        return (*settable, *((n, format_value(self.user[n])) for n in sorted(self.user)))

    def targets(self) -> Targets:
        """The targets the formula set, after Batch's conversion; raises FormulaError for an invalid one."""
        values = []
        for n in (names.TARGET_DEDICATED, names.TARGET_LOW_PRIORITY):
            try:
                values.append(_target(self.final(n), n))
            except OperationError as e:
                line, col = self.assigned_at.get(n, (None, None))
                raise FormulaError(EVALUATION_ERROR, e.message, line=line, column=col) from None
        return Targets(
            dedicated=values[0], low_priority=values[1], deallocation_option=str(self.final(names.DEALLOCATION))
        )

    # --- expressions ---

    def eval(self, e: Expr) -> Value:
        try:
            return self._eval(e)
        except OperationError as err:
            raise _at(e, err) from None

    def _eval(self, e: Expr) -> Value:
        match e:
            case Number(value=v):
                return v
            case String(value=v):
                return v
            case Var(name=n):
                return self.variable(n)
            case Binary(op=op, left=a, right=b):
                return binary(op, self.eval(a), self.eval(b))
            case Unary(op=op, operand=a):
                return unary(op, self.eval(a))
            case Logical(op=op, left=a, right=b):
                left = truth(self.eval(a), f"the left side of {op}")
                if left == (op == "||"):
                    return 1.0 if left else 0.0
                return 1.0 if truth(self.eval(b), f"the right side of {op}") else 0.0
            case Ternary(cond=c, then=a, otherwise=b):
                return self.eval(a) if truth(self.eval(c), "the condition of ?:") else self.eval(b)
            case Call(name="stop"):
                raise _Stop
            case Call(name=n, args=args):
                values = [self.eval(a) for a in args]
                return functions.call(n, values, now=self.now, rng=self.inputs.random)
            case Method(target=Var(name=variable), name=m, args=args):
                metric = names.metric_of(variable)
                if metric is None:  # the static checks rule this out
                    raise OperationError(f"{variable} has no method {m}")
                values = [self.eval(a) for a in args]
                return sample_method(self.inputs.history, variable, metric, m, values, self.now)
            case Field(target=t, name=f):
                return self.field(self.eval(t), f)
        raise OperationError(f"cannot evaluate {type(e).__name__}")

    def variable(self, name: str) -> Value:
        if name in self.service:
            return self.service[name]
        metric = names.metric_of(name)
        if metric is not None:
            if metric in names.CURRENT:
                if metric not in self.current:
                    raise OperationError(f"{name} is not known for this pool")
                return self.current[metric]
            raise OperationError(
                f"{name} is a sample variable, not a double: use its methods, e.g. {name}.GetSample(1) "
                f"or avg({name}.GetSample(TimeInterval_Minute * 5))"
            )
        if name in self.user:
            return self.user[name]
        if name in names.TIME_INTERVALS:
            return Interval(names.TIME_INTERVALS[name])
        if name in names.DEALLOCATION_OPTIONS:
            return name
        raise OperationError(f"undefined variable {name}")

    def field(self, v: Value, name: str) -> Value:
        if not isinstance(v, Timestamp):
            raise OperationError(f"a {type_name(v)} has no member {name!r}")
        if name not in _FIELDS:
            raise OperationError(f"a timestamp has no member {name!r}; it has {', '.join(_FIELDS)}")
        at = v.at
        return float(at.isoweekday() if name == "weekday" else getattr(at, name))


def evaluate(formula_text: str, inputs: EvaluationInputs) -> Evaluation:
    """Evaluate `formula_text` once against `inputs`. Never raises: a formula Batch would refuse, or
    one whose evaluation fails, gives an `Evaluation` with `error` set and no targets."""
    run = _Run(inputs)
    try:
        stmts = compile_formula(formula_text)
    except FormulaError as e:
        return Evaluation(targets=None, results=run.results(), error=e)
    try:
        with contextlib.suppress(_Stop):
            run.run(stmts)
        targets = run.targets()
        return Evaluation(targets=targets, results=run.results(), error=None)
    except FormulaError as e:
        return Evaluation(targets=None, results=run.results(), error=e.with_values(run.variables()))
    except Exception as e:  # a defect here must not take the control plane's evaluation loop down
        err = FormulaError(INTERNAL_ERROR, f"the evaluator failed: {type(e).__name__}: {e}")
        return Evaluation(targets=None, results=run.results(), error=err)
