"""Which exit options apply to a task's final outcome: a pure decision.

A task's `exit_conditions` (Batch's exitConditions) say what its final outcome, after its retries,
does to its job (`job_action`) and to the tasks that depend on it (`dependency_action`). The
lookup, in Batch's order:

1. the first `exit_codes` entry for the exit code, then the first `exit_code_ranges` entry that
   holds it (a program's exit code only: a pre-processing error has none);
2. `pre_processing_error` or `file_upload_error` for those failures (an exit code listed in step 1
   takes precedence over `file_upload_error`, as Batch documents);
3. `default` for any other failure (a nonzero exit code not listed, a pre-processing or upload
   error without its own entry, a task ended without an exit code);
4. otherwise the defaults: a success (exit code 0) not listed explicitly never takes `default`.

A field left unspecified in the options found takes the outcome's default: job action NONE and
dependency action SATISFY for a success, TERMINATE and BLOCK for a failure (whatever its exit code:
a file upload error after exit code 0 is a failure).

No I/O, no clock; only `rules_from_proto` and `exit_conditions_problems` read the protobuf message,
so that `decide`, on the path of every completion, works on plain values (and costs nothing for
the common task without exit conditions: its rules are None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from shoal.v1 import task_pb2

# The numbers of shoal.v1.JobAction and shoal.v1.DependencyAction: plain ints, compared cheaply
# in the compiled core. 0 (UNSPECIFIED) in an ExitOptions means "the outcome's default".
JOB_ACTION_UNSPECIFIED: Final = 0
JOB_ACTION_NONE: Final = 1
#: Disable the job, its running tasks requeued.
JOB_ACTION_DISABLE: Final = 2
#: Terminate the job (terminate_reason "TaskFailed").
JOB_ACTION_TERMINATE: Final = 3
DEPENDENCY_ACTION_UNSPECIFIED: Final = 0
DEPENDENCY_ACTION_SATISFY: Final = 1
DEPENDENCY_ACTION_BLOCK: Final = 2

# What kind of final outcome a task had (`Outcome.kind`).
#: The program ran and exited with code 0, and its outputs were uploaded.
SUCCESS: Final = 0
#: Any other failure of a task that started: a nonzero exit code, a wall-clock limit, terminated
#: (its exit code when it has one, else None).
EXIT_CODE_FAILURE: Final = 1
#: The task could not start: resource files, program not found, launch failure. No exit code.
PRE_PROCESSING_ERROR: Final = 2
#: The program ran (its exit code may be 0) but uploading its output files failed.
FILE_UPLOAD_ERROR: Final = 3

#: Failure codes (`FailureInfo.code`) of a task that could not start.
PRE_PROCESSING_CODES: Final = frozenset(
    {
        "CommandProgramNotFound",
        "CommandLaunchFailed",
        "BlobNotFound",
        "BlobDownloadMiscError",
        "BlobAccessDenied",
        "ResourceFileCreateFailed",
        "ResourceFileWriteFailed",
    }
)
#: Failure codes of a task whose output files could not be uploaded.
FILE_UPLOAD_CODES: Final = frozenset({"FileUploadMiscError"})


@dataclass(frozen=True)
class Outcome:
    """A task's final outcome, as the exit conditions see it."""

    #: SUCCESS, EXIT_CODE_FAILURE, PRE_PROCESSING_ERROR or FILE_UPLOAD_ERROR.
    kind: int
    #: The program's exit code, None when it has none (it did not start, or was ended without one).
    exit_code: int | None = None


def outcome_of(*, succeeded: bool, exit_code: int | None, failure_code: str) -> Outcome:
    """The `Outcome` of a completion reported as `succeeded`, `exit_code` and failure code."""
    if succeeded:
        return Outcome(SUCCESS, exit_code)
    if failure_code in PRE_PROCESSING_CODES:
        return Outcome(PRE_PROCESSING_ERROR, exit_code)
    if failure_code in FILE_UPLOAD_CODES:
        return Outcome(FILE_UPLOAD_ERROR, exit_code)
    return Outcome(EXIT_CODE_FAILURE, exit_code)


@dataclass(frozen=True)
class ExitOptions:
    """What one exit condition does; 0 in a field means the outcome's default."""

    #: A JOB_ACTION_* number.
    job_action: int = JOB_ACTION_UNSPECIFIED
    #: A DEPENDENCY_ACTION_* number.
    dependency_action: int = DEPENDENCY_ACTION_UNSPECIFIED


@dataclass(frozen=True)
class ExitRules:
    """A task's exit conditions, read once from its `ExitConditions` (see `rules_from_proto`)."""

    #: Exit code -> options; the first entry of a code listed twice.
    codes: dict[int, ExitOptions]
    #: (start, end, options), inclusive, in the order given.
    ranges: tuple[tuple[int, int, ExitOptions], ...]
    pre_processing: ExitOptions | None
    file_upload: ExitOptions | None
    default: ExitOptions | None


class ExitDecision(NamedTuple):
    """The actions a final outcome takes, never unspecified."""

    #: JOB_ACTION_NONE, JOB_ACTION_DISABLE or JOB_ACTION_TERMINATE. Applied only when the job's
    #: on_task_failure is PERFORM_EXIT_OPTIONS_JOB_ACTION (the caller's concern).
    job_action: int
    #: DEPENDENCY_ACTION_SATISFY or DEPENDENCY_ACTION_BLOCK.
    dependency_action: int


#: Batch's defaults.
SUCCESS_DEFAULTS: Final = ExitDecision(JOB_ACTION_NONE, DEPENDENCY_ACTION_SATISFY)
FAILURE_DEFAULTS: Final = ExitDecision(JOB_ACTION_TERMINATE, DEPENDENCY_ACTION_BLOCK)


def _match(rules: ExitRules, outcome: Outcome) -> ExitOptions | None:
    """The options that apply to `outcome`, or None for the defaults."""
    kind = outcome.kind
    code = outcome.exit_code
    # A pre-processing error has no program exit code to look up (the program did not run).
    if code is not None and kind != PRE_PROCESSING_ERROR:
        found = rules.codes.get(code)
        if found is not None:
            return found
        for start, end, options in rules.ranges:
            if start <= code <= end:
                return options
    if kind == SUCCESS:
        return None
    if kind == PRE_PROCESSING_ERROR:
        if rules.pre_processing is not None:
            return rules.pre_processing
    elif kind == FILE_UPLOAD_ERROR and rules.file_upload is not None:
        return rules.file_upload
    return rules.default


def decide(rules: ExitRules | None, outcome: Outcome) -> ExitDecision:
    """The job and dependency actions of `outcome` under `rules` (None: the task has no exit conditions)."""
    defaults = SUCCESS_DEFAULTS if outcome.kind == SUCCESS else FAILURE_DEFAULTS
    if rules is None:
        return defaults
    options = _match(rules, outcome)
    if options is None:
        return defaults
    job_action = options.job_action
    dependency_action = options.dependency_action
    if job_action == JOB_ACTION_UNSPECIFIED:
        job_action = defaults.job_action
    if dependency_action == DEPENDENCY_ACTION_UNSPECIFIED:
        dependency_action = defaults.dependency_action
    if job_action == defaults.job_action and dependency_action == defaults.dependency_action:
        return defaults
    return ExitDecision(job_action, dependency_action)


# The twelve valid ExitOptions, shared by every task (a million tasks with exit conditions keep
# references, not copies).
_SHARED_OPTIONS: Final = tuple(ExitOptions(j, d) for j in range(4) for d in range(3))


def _options(msg: task_pb2.ExitOptions) -> ExitOptions:
    job_action = msg.job_action
    dependency_action = msg.dependency_action
    if 0 <= job_action <= 3 and 0 <= dependency_action <= 2:
        return _SHARED_OPTIONS[job_action * 3 + dependency_action]
    return ExitOptions(job_action, dependency_action)  # refused by exit_conditions_problems


def rules_from_proto(msg: task_pb2.ExitConditions) -> ExitRules | None:
    """`msg` as ExitRules; None when it sets nothing (the common case: `decide` then costs nothing).

    An options message that is present but empty still counts: it stands for the outcome's
    defaults ahead of `default` (an `exit_codes` entry with empty options keeps that code from
    `default`).
    """
    has_pre = msg.HasField("pre_processing_error")
    has_upload = msg.HasField("file_upload_error")
    has_default = msg.HasField("default")
    if not msg.exit_codes and not msg.exit_code_ranges and not has_pre and not has_upload and not has_default:
        return None
    codes: dict[int, ExitOptions] = {}
    for mapping in msg.exit_codes:
        if mapping.code not in codes:  # the first entry for a code wins, as Batch looks them up
            codes[mapping.code] = _options(mapping.exit_options)
    ranges = tuple((r.start, r.end, _options(r.exit_options)) for r in msg.exit_code_ranges)
    return ExitRules(
        codes=codes,
        ranges=ranges,
        pre_processing=_options(msg.pre_processing_error) if has_pre else None,
        file_upload=_options(msg.file_upload_error) if has_upload else None,
        default=_options(msg.default) if has_default else None,
    )


def _options_problems(
    msg: task_pb2.ExitOptions, path: str, job_action_allowed: bool, out: list[tuple[str, str]]
) -> None:
    job_action = msg.job_action
    if not 0 <= job_action <= 3:
        out.append((f"{path}.job_action", f"unknown job action {job_action}"))
    elif not job_action_allowed and job_action in (JOB_ACTION_DISABLE, JOB_ACTION_TERMINATE):
        out.append(
            (
                f"{path}.job_action",
                "is only honoured when the job's on_task_failure is PERFORM_EXIT_OPTIONS_JOB_ACTION",
            )
        )
    dependency_action = msg.dependency_action
    if not 0 <= dependency_action <= 2:
        out.append((f"{path}.dependency_action", f"unknown dependency action {dependency_action}"))


def exit_conditions_problems(
    msg: task_pb2.ExitConditions, *, prefix: str = "exit_conditions", job_action_allowed: bool = True
) -> list[tuple[str, str]]:
    """What is wrong with `msg`, as (field path below `prefix`, message) pairs; empty when nothing.

    With `job_action_allowed` False (the job's on_task_failure is NO_ACTION), a DISABLE or
    TERMINATE job action is refused, as Batch refuses a job action the job would ignore (NONE,
    which changes nothing, is accepted).
    """
    out: list[tuple[str, str]] = []
    for i, mapping in enumerate(msg.exit_codes):
        _options_problems(mapping.exit_options, f"{prefix}.exit_codes[{i}].exit_options", job_action_allowed, out)
    for i, r in enumerate(msg.exit_code_ranges):
        if r.end < r.start:
            out.append((f"{prefix}.exit_code_ranges[{i}].end", f"must not be less than start ({r.start})"))
        _options_problems(r.exit_options, f"{prefix}.exit_code_ranges[{i}].exit_options", job_action_allowed, out)
    if msg.HasField("pre_processing_error"):
        _options_problems(msg.pre_processing_error, f"{prefix}.pre_processing_error", job_action_allowed, out)
    if msg.HasField("file_upload_error"):
        _options_problems(msg.file_upload_error, f"{prefix}.file_upload_error", job_action_allowed, out)
    if msg.HasField("default"):
        _options_problems(msg.default, f"{prefix}.default", job_action_allowed, out)
    return out


__all__ = [
    "DEPENDENCY_ACTION_BLOCK",
    "DEPENDENCY_ACTION_SATISFY",
    "DEPENDENCY_ACTION_UNSPECIFIED",
    "EXIT_CODE_FAILURE",
    "FAILURE_DEFAULTS",
    "FILE_UPLOAD_CODES",
    "FILE_UPLOAD_ERROR",
    "JOB_ACTION_DISABLE",
    "JOB_ACTION_NONE",
    "JOB_ACTION_TERMINATE",
    "JOB_ACTION_UNSPECIFIED",
    "PRE_PROCESSING_CODES",
    "PRE_PROCESSING_ERROR",
    "SUCCESS",
    "SUCCESS_DEFAULTS",
    "ExitDecision",
    "ExitOptions",
    "ExitRules",
    "Outcome",
    "decide",
    "exit_conditions_problems",
    "outcome_of",
    "rules_from_proto",
]
