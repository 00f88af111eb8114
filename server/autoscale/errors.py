"""Formula errors: what Batch reports in `AutoScaleRun.error` (code, message, values), with the
1-based line and column of the place that failed when known."""

from __future__ import annotations

from typing import Final

#: Batch's codes (its REST error table and the pool autoscale event).
SYNTAX_ERROR: Final = "AutoScalingFormulaSyntaxError"
TOO_LONG: Final = "AutoScaleFormulaTooLong"
INSUFFICIENT_SAMPLE_DATA: Final = "InsufficientSampleData"
#: Shoal's code for the other evaluation failures (a type mismatch, an undefined variable, an index out
#: of range, an invalid target): Batch documents no code of its own for them.
EVALUATION_ERROR: Final = "AutoScalingFormulaEvaluationError"
#: Never expected: a defect of the evaluator, reported rather than raised (see `evaluate`).
INTERNAL_ERROR: Final = "InternalError"

#: Batch's message for `INSUFFICIENT_SAMPLE_DATA` (its pool autoscale event).
INSUFFICIENT_SAMPLE_MESSAGE: Final = "Autoscale evaluation failed due to insufficient sample data"


class FormulaError(Exception):
    """Why a formula was refused or its evaluation failed.

    Raised by `parse`; returned (never raised) by `check` and `evaluate`.
    """

    code: str
    """A Batch error code such as ``"AutoScalingFormulaSyntaxError"``."""
    message: str
    """What went wrong, for a person."""
    line: int | None
    """1-based line of the failing place, when known."""
    column: int | None
    """1-based column of the failing place, when known."""
    detail: str
    """The specific account of the failure that `values` carries (the message unless Batch's message is
    a generic one, as for InsufficientSampleData)."""
    values: tuple[tuple[str, str], ...]
    """Batch's `AutoScaleRunError.values`: first ``("Message", "Line L, Col C: ...")``, then each
    variable the formula had assigned before it failed, as in its results."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        values: tuple[tuple[str, str], ...] = (),
        detail: str | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.line = line
        self.column = column
        self.detail = message if detail is None else detail
        self.values = values or (("Message", self.located()),)

    def located(self) -> str:
        """The message with its position, as Batch writes it: ``"Line 15, Col 44: ..."``."""
        if self.line is None or self.column is None:
            return self.detail
        return f"Line {self.line}, Col {self.column}: {self.detail}"

    def with_values(self, values: tuple[tuple[str, str], ...]) -> FormulaError:
        """A copy whose `values` are the position message followed by `values`."""
        return FormulaError(
            self.code,
            self.message,
            line=self.line,
            column=self.column,
            values=(("Message", self.located()), *values),
            detail=self.detail,
        )

    def __str__(self) -> str:
        return f"{self.code}: {self.located()}"

    def __repr__(self) -> str:
        return f"FormulaError({self.code!r}, {self.message!r}, line={self.line!r}, column={self.column!r})"
