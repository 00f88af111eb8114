"""How a run of a command on the node ended, as a TaskEvent (or a StartTaskInfo) reports it."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.nodeagent import process
from shoal.v1 import common_pb2

USER_ERROR = common_pb2.ERROR_CATEGORY_USER_ERROR
SERVER_ERROR = common_pb2.ERROR_CATEGORY_SERVER_ERROR
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILURE = common_pb2.TASK_EXECUTION_RESULT_FAILURE
#: Batch's code for a process that exited with a nonzero code: the only failure a retry count retries.
FAILURE_EXIT_CODE = "FailureExitCode"


def failure(category: int, code: str, message: str = "") -> common_pb2.FailureInfo:
    """A FailureInfo."""
    return common_pb2.FailureInfo(category=category, code=code, message=message)  # type: ignore[arg-type]


@dataclass
class Outcome:
    """How an attempt ended."""

    exit_code: int | None = None
    failure_info: common_pb2.FailureInfo | None = None

    @property
    def succeeded(self) -> bool:
        """No failure and exit code 0."""
        return self.failure_info is None and self.exit_code == 0

    @property
    def failed_exit(self) -> bool:
        """The command ran to its end and exited nonzero (what a retry count retries)."""
        return self.failure_info is not None and self.failure_info.code == FAILURE_EXIT_CODE


def wall_clock_ended() -> Outcome:
    """The outcome of an attempt that Shoal ended at its wall clock limit: exit code
    `TERMINATED_EXIT_CODE` (as Batch records, whichever signal ended its processes) and TaskEnded."""
    return Outcome(
        TERMINATED_EXIT_CODE, failure(SERVER_ERROR, "TaskEnded", "the task exceeded its maximum wall clock time")
    )


def ended(exit_code: int | None, message: str) -> Outcome:
    """A run Shoal ended on purpose (killed at the server's request, the job ended): `TERMINATED_EXIT_CODE`
    if a process of it had exited (`exit_code`, whichever signal ended it), no exit code if none had started."""
    return Outcome(
        None if exit_code is None else TERMINATED_EXIT_CODE,
        failure(SERVER_ERROR, "TaskEnded", message),
    )


def outcome_of(result: process.ProcessResult) -> Outcome:
    """The outcome of a process that ran to its end (or was killed past its wall clock)."""
    code = result.exit_code
    if result.timed_out:
        return wall_clock_ended()
    if code != 0:
        return Outcome(code, failure(USER_ERROR, FAILURE_EXIT_CODE, f"the task exited with exit code {code}"))
    return Outcome(code)
