"""What the client returns about autoscale: a pool's formula settings and the runs of its formula."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shoal.v1 import pool_pb2

#: The interval a pool without one set is evaluated at.
DEFAULT_EVALUATION_INTERVAL = timedelta(seconds=15)


@dataclass(frozen=True, kw_only=True)
class AutoScaleSettings:
    """How an autoscale pool sizes itself."""

    formula: str
    """The formula, in Batch's autoscale language."""
    evaluation_interval: timedelta
    """How often it is evaluated (default 15 seconds)."""

    @classmethod
    def from_proto(cls, msg: pool_pb2.Pool) -> AutoScaleSettings:
        """Build from a ``shoal.v1.Pool`` with autoscale enabled."""
        interval = (
            msg.auto_scale_evaluation_interval.ToTimedelta()
            if msg.HasField("auto_scale_evaluation_interval")
            else DEFAULT_EVALUATION_INTERVAL
        )
        return cls(formula=msg.auto_scale_formula, evaluation_interval=interval)


@dataclass(frozen=True, kw_only=True)
class AutoScaleRunError:
    """Why an evaluation failed (Batch's ``AutoScaleRunError``)."""

    code: str
    """``AutoScalingFormulaSyntaxError``, ``AutoScalingFormulaEvaluationError``, ..."""
    message: str
    """What went wrong."""
    line: int = 0
    """Where in the formula, 1-based (0: not known)."""
    column: int = 0
    """The column on that line, 1-based (0: not known)."""
    values: dict[str, str] = field(default_factory=dict)
    """The variables the formula had assigned before the error."""


@dataclass(frozen=True, kw_only=True)
class AutoScaleRun:
    """One evaluation of an autoscale formula."""

    timestamp: datetime | None
    """When it ran."""
    results: str
    """Every variable the formula assigned: ``$TargetDedicatedNodes=3;$NodeDeallocationOption=requeue;...``."""
    error: AutoScaleRunError | None = None
    """Why it failed (None: it did not)."""

    @property
    def values(self) -> dict[str, str]:
        """``results`` as a dict (variable name → value as text)."""
        out: dict[str, str] = {}
        for part in self.results.split(";"):
            name, sep, value = part.partition("=")
            if sep and name.strip():
                out[name.strip()] = value.strip()
        return out

    @classmethod
    def from_proto(cls, msg: pool_pb2.AutoScaleRun) -> AutoScaleRun:
        """Build from a ``shoal.v1.AutoScaleRun``."""
        error = None
        if msg.HasField("error"):
            e = msg.error
            error = AutoScaleRunError(
                code=e.code,
                message=e.message,
                line=e.line,
                column=e.column,
                values={v.name: v.value for v in e.values},
            )
        timestamp = msg.timestamp.ToDatetime(tzinfo=UTC) if msg.HasField("timestamp") else None
        return cls(timestamp=timestamp, results=msg.results, error=error)
