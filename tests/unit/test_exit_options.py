"""Exit conditions: which exit options apply to a task's final outcome (examples and hypothesis properties)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.scheduling.exit_options import (
    DEPENDENCY_ACTION_BLOCK,
    DEPENDENCY_ACTION_SATISFY,
    EXIT_CODE_FAILURE,
    FAILURE_DEFAULTS,
    FILE_UPLOAD_ERROR,
    JOB_ACTION_DISABLE,
    JOB_ACTION_NONE,
    JOB_ACTION_TERMINATE,
    PRE_PROCESSING_ERROR,
    SUCCESS,
    SUCCESS_DEFAULTS,
    ExitDecision,
    Outcome,
    decide,
    exit_conditions_problems,
    outcome_of,
    rules_from_proto,
)
from shoal.v1 import task_pb2

NONE, DISABLE, TERMINATE = JOB_ACTION_NONE, JOB_ACTION_DISABLE, JOB_ACTION_TERMINATE
SATISFY, BLOCK = DEPENDENCY_ACTION_SATISFY, DEPENDENCY_ACTION_BLOCK


def opts(job: int = 0, dep: int = 0) -> task_pb2.ExitOptions:
    return task_pb2.ExitOptions(job_action=job, dependency_action=dep)


def conditions(**kw: object) -> task_pb2.ExitConditions:
    return task_pb2.ExitConditions(**kw)


def code(c: int, job: int = 0, dep: int = 0) -> task_pb2.ExitCodeMapping:
    return task_pb2.ExitCodeMapping(code=c, exit_options=opts(job, dep))


def rng(start: int, end: int, job: int = 0, dep: int = 0) -> task_pb2.ExitCodeRangeMapping:
    return task_pb2.ExitCodeRangeMapping(start=start, end=end, exit_options=opts(job, dep))


def run(msg: task_pb2.ExitConditions, kind: int, exit_code: int | None) -> ExitDecision:
    return decide(rules_from_proto(msg), Outcome(kind, exit_code))


def test_batch_defaults_without_exit_conditions() -> None:
    assert rules_from_proto(conditions()) is None
    assert decide(None, Outcome(SUCCESS, 0)) == (NONE, SATISFY)
    assert decide(None, Outcome(EXIT_CODE_FAILURE, 3)) == (TERMINATE, BLOCK)
    assert decide(None, Outcome(EXIT_CODE_FAILURE, None)) == (TERMINATE, BLOCK)
    assert decide(None, Outcome(PRE_PROCESSING_ERROR)) == (TERMINATE, BLOCK)
    assert decide(None, Outcome(FILE_UPLOAD_ERROR, 0)) == (TERMINATE, BLOCK)


def test_exact_code_then_range_then_default() -> None:
    msg = conditions(
        exit_codes=[code(3, dep=SATISFY), code(3, dep=BLOCK, job=DISABLE), code(4, job=NONE)],
        exit_code_ranges=[rng(1, 10, job=DISABLE), rng(5, 20, job=NONE, dep=SATISFY)],
        default=opts(job=NONE),
    )
    # The first entry for a code wins; an unspecified field takes the failure default.
    assert run(msg, EXIT_CODE_FAILURE, 3) == (TERMINATE, SATISFY)
    assert run(msg, EXIT_CODE_FAILURE, 4) == (NONE, BLOCK)
    # An exact code comes before any range; the first range holding the code wins.
    assert run(msg, EXIT_CODE_FAILURE, 7) == (DISABLE, BLOCK)
    assert run(msg, EXIT_CODE_FAILURE, 15) == (NONE, SATISFY)
    # Not listed: default.
    assert run(msg, EXIT_CODE_FAILURE, 42) == (NONE, BLOCK)
    assert run(msg, EXIT_CODE_FAILURE, None) == (NONE, BLOCK)
    assert run(msg, EXIT_CODE_FAILURE, -1) == (NONE, BLOCK)


def test_success_takes_default_only_when_listed() -> None:
    msg = conditions(default=opts(job=DISABLE, dep=SATISFY))
    assert run(msg, SUCCESS, 0) == SUCCESS_DEFAULTS
    listed = conditions(exit_codes=[code(0, dep=BLOCK)], default=opts(job=DISABLE))
    assert run(listed, SUCCESS, 0) == (NONE, BLOCK)  # unspecified job action: the success default
    in_range = conditions(exit_code_ranges=[rng(-5, 5, job=TERMINATE)])
    assert run(in_range, SUCCESS, 0) == (TERMINATE, SATISFY)


def test_pre_processing_error() -> None:
    msg = conditions(pre_processing_error=opts(dep=SATISFY), default=opts(job=NONE))
    assert run(msg, PRE_PROCESSING_ERROR, None) == (TERMINATE, SATISFY)
    # Without its own entry, default.
    assert run(conditions(default=opts(job=NONE)), PRE_PROCESSING_ERROR, None) == (NONE, BLOCK)
    # The program never ran: an exit code reported with it is not looked up.
    msg = conditions(exit_codes=[code(127, job=DISABLE)], pre_processing_error=opts(job=NONE))
    assert run(msg, PRE_PROCESSING_ERROR, 127) == (NONE, BLOCK)


def test_file_upload_error_after_listed_exit_code_takes_the_code() -> None:
    msg = conditions(
        exit_codes=[code(0, dep=SATISFY)],
        exit_code_ranges=[rng(10, 19, job=DISABLE)],
        file_upload_error=opts(job=NONE),
        default=opts(job=DISABLE, dep=SATISFY),
    )
    # A failure (the upload failed): unspecified fields take the failure defaults.
    assert run(msg, FILE_UPLOAD_ERROR, 0) == (TERMINATE, SATISFY)
    assert run(msg, FILE_UPLOAD_ERROR, 12) == (DISABLE, BLOCK)
    assert run(msg, FILE_UPLOAD_ERROR, 1) == (NONE, BLOCK)
    without = conditions(default=opts(job=DISABLE, dep=SATISFY))
    assert run(without, FILE_UPLOAD_ERROR, 0) == (DISABLE, SATISFY)
    assert run(conditions(exit_codes=[code(5)]), FILE_UPLOAD_ERROR, 0) == FAILURE_DEFAULTS


def test_present_but_empty_options_stand_for_the_defaults_ahead_of_default() -> None:
    msg = conditions(exit_codes=[code(3)], pre_processing_error=opts(), default=opts(dep=SATISFY))
    rules = rules_from_proto(msg)
    assert rules is not None
    assert decide(rules, Outcome(EXIT_CODE_FAILURE, 3)) == FAILURE_DEFAULTS
    assert decide(rules, Outcome(PRE_PROCESSING_ERROR)) == FAILURE_DEFAULTS
    assert decide(rules, Outcome(EXIT_CODE_FAILURE, 4)) == (TERMINATE, SATISFY)
    assert rules_from_proto(conditions(default=opts())) is not None


def test_outcome_of_maps_failure_codes() -> None:
    assert outcome_of(succeeded=True, exit_code=0, failure_code="") == Outcome(SUCCESS, 0)
    assert outcome_of(succeeded=False, exit_code=2, failure_code="") == Outcome(EXIT_CODE_FAILURE, 2)
    assert outcome_of(succeeded=False, exit_code=None, failure_code="CommandProgramNotFound").kind == (
        PRE_PROCESSING_ERROR
    )
    assert outcome_of(succeeded=False, exit_code=None, failure_code="BlobNotFound").kind == PRE_PROCESSING_ERROR
    assert outcome_of(succeeded=False, exit_code=0, failure_code="FileUploadMiscError") == Outcome(FILE_UPLOAD_ERROR, 0)
    assert outcome_of(succeeded=False, exit_code=-1073741510, failure_code="TaskEnded") == Outcome(
        EXIT_CODE_FAILURE, -1073741510
    )


def test_problems_name_the_fields() -> None:
    msg = conditions(
        exit_codes=[code(1, job=7), code(2, dep=9)],
        exit_code_ranges=[rng(5, 4), rng(1, 2, job=DISABLE)],
        default=opts(job=TERMINATE, dep=-1),
    )
    assert exit_conditions_problems(msg) == [
        ("exit_conditions.exit_codes[0].exit_options.job_action", "unknown job action 7"),
        ("exit_conditions.exit_codes[1].exit_options.dependency_action", "unknown dependency action 9"),
        ("exit_conditions.exit_code_ranges[0].end", "must not be less than start (5)"),
        ("exit_conditions.default.dependency_action", "unknown dependency action -1"),
    ]
    refused = exit_conditions_problems(msg, prefix="tasks[2].exit_conditions", job_action_allowed=False)
    paths = [p for p, _ in refused]
    assert "tasks[2].exit_conditions.exit_code_ranges[1].exit_options.job_action" in paths
    assert "tasks[2].exit_conditions.default.job_action" in paths
    none_ok = conditions(exit_codes=[code(1, job=NONE)], file_upload_error=opts(dep=SATISFY))
    assert exit_conditions_problems(none_ok, job_action_allowed=False) == []
    assert exit_conditions_problems(conditions()) == []


# -- properties --------------------------------------------------------------------------------

job_actions = st.integers(0, 3)
dep_actions = st.integers(0, 2)
codes = st.integers(-3, 6)


@st.composite
def exit_options(draw: st.DrawFn) -> task_pb2.ExitOptions:
    return opts(draw(job_actions), draw(dep_actions))


@st.composite
def exit_conditions(draw: st.DrawFn) -> task_pb2.ExitConditions:
    msg = task_pb2.ExitConditions()
    for c in draw(st.lists(codes, max_size=4)):
        msg.exit_codes.append(task_pb2.ExitCodeMapping(code=c, exit_options=draw(exit_options())))
    for _ in range(draw(st.integers(0, 3))):
        start = draw(codes)
        end = draw(st.integers(start, start + 4))
        msg.exit_code_ranges.append(
            task_pb2.ExitCodeRangeMapping(start=start, end=end, exit_options=draw(exit_options()))
        )
    for name in ("pre_processing_error", "file_upload_error", "default"):
        if draw(st.booleans()):
            getattr(msg, name).CopyFrom(draw(exit_options()))
    return msg


outcomes = st.one_of(
    st.just(Outcome(SUCCESS, 0)),
    st.builds(Outcome, st.just(EXIT_CODE_FAILURE), st.one_of(st.none(), codes.filter(bool))),
    st.builds(Outcome, st.just(PRE_PROCESSING_ERROR), st.one_of(st.none(), codes)),
    st.builds(Outcome, st.just(FILE_UPLOAD_ERROR), st.one_of(st.none(), codes)),
)


def reference(msg: task_pb2.ExitConditions, outcome: Outcome) -> tuple[int, int]:
    """Batch's rules read straight off the message, one at a time."""
    success = outcome.kind == SUCCESS
    found: task_pb2.ExitOptions | None = None
    if outcome.exit_code is not None and outcome.kind != PRE_PROCESSING_ERROR:
        for m in msg.exit_codes:
            if m.code == outcome.exit_code:
                found = m.exit_options
                break
        if found is None:
            for r in msg.exit_code_ranges:
                if r.start <= outcome.exit_code <= r.end:
                    found = r.exit_options
                    break
    if found is None and not success:
        if outcome.kind == PRE_PROCESSING_ERROR and msg.HasField("pre_processing_error"):
            found = msg.pre_processing_error
        elif outcome.kind == FILE_UPLOAD_ERROR and msg.HasField("file_upload_error"):
            found = msg.file_upload_error
        elif msg.HasField("default"):
            found = msg.default
    job = found.job_action if found is not None else 0
    dep = found.dependency_action if found is not None else 0
    return (job or (NONE if success else TERMINATE), dep or (SATISFY if success else BLOCK))


@settings(max_examples=400, deadline=None)
@given(exit_conditions(), outcomes)
def test_decide_matches_batch_rules(msg: task_pb2.ExitConditions, outcome: Outcome) -> None:
    got = decide(rules_from_proto(msg), outcome)
    assert tuple(got) == reference(msg, outcome)
    assert got.job_action in (NONE, DISABLE, TERMINATE)
    assert got.dependency_action in (SATISFY, BLOCK)
    assert exit_conditions_problems(msg) == []


@settings(max_examples=200, deadline=None)
@given(exit_conditions(), st.integers(7, 100))
def test_unlisted_success_always_takes_the_defaults(msg: task_pb2.ExitConditions, shift: int) -> None:
    # Exit code 0 moved out of every code and range: whatever else is set, a success is a success.
    for m in msg.exit_codes:
        m.code += shift if m.code >= 0 else -shift
    for r in msg.exit_code_ranges:
        if r.start <= 0 <= r.end:
            r.start, r.end = r.end + 1, r.end + 1 + (r.end - r.start)
    assert decide(rules_from_proto(msg), Outcome(SUCCESS, 0)) == SUCCESS_DEFAULTS
