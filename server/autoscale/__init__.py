"""Batch's autoscale formula language: parse, check and evaluate formulas as Azure Batch does. Pure: no
I/O, no clock, no randomness but what is passed in.

- ``check(formula_text) -> FormulaError | None``: what Batch refuses when autoscale is enabled (longer
  than 8192 characters, a syntax error, more than 100 statements, an unknown function or method, a
  wrong number of arguments, an assignment to a read-only variable).
- ``evaluate(formula_text, inputs: EvaluationInputs) -> Evaluation``: one autoscale run. `Evaluation`
  has the new `Targets` (None when it failed), Batch's ``results`` string and the `FormulaError`
  (code, message, 1-based line and column, Batch's ``values``). It never raises.
- ``MetricHistory(interval_seconds=5.0, capacity=1440)`` with ``add(PoolSample(time, values))``: the
  pool's samples that ``$ActiveTasks.GetSample(...)`` and the other sample methods read.
- ``parse(formula_text)``: the statements, or raises `FormulaError`.

The grammar is ``formula.lark`` beside this file.
"""

from shoal.server.autoscale.errors import (
    EVALUATION_ERROR,
    INSUFFICIENT_SAMPLE_DATA,
    INTERNAL_ERROR,
    SYNTAX_ERROR,
    TOO_LONG,
    FormulaError,
)
from shoal.server.autoscale.evaluator import Evaluation, EvaluationInputs, Targets, evaluate
from shoal.server.autoscale.history import MetricHistory, PoolSample
from shoal.server.autoscale.names import METRICS
from shoal.server.autoscale.syntax import MAX_LENGTH, MAX_STATEMENTS, check, parse

__all__ = [
    "EVALUATION_ERROR",
    "INSUFFICIENT_SAMPLE_DATA",
    "INTERNAL_ERROR",
    "MAX_LENGTH",
    "MAX_STATEMENTS",
    "METRICS",
    "SYNTAX_ERROR",
    "TOO_LONG",
    "Evaluation",
    "EvaluationInputs",
    "FormulaError",
    "MetricHistory",
    "PoolSample",
    "Targets",
    "check",
    "evaluate",
    "parse",
]
