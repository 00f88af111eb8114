"""Pure tests: the workflow specs (dependencies, exit conditions, the job's own tasks) convert to the protos the
API expects and back, and JSON in the API's field names reads into them with errors that name the field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.client import (
    DependencyAction,
    DependencyState,
    DependencyStatus,
    ExitCodeMapping,
    ExitCodeRangeMapping,
    ExitConditions,
    ExitOptions,
    InvalidArgument,
    Job,
    JobAction,
    JobConstraints,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    JobState,
    OnDependencyFailure,
    OnTaskFailure,
    OutputFileSpec,
    Pool,
    PreparationAndReleaseTaskStatus,
    PreparationTaskState,
    ResourceFileSpec,
    Task,
    TaskConstraints,
    TaskCounts,
    TaskDependencies,
    TaskIdRange,
    TaskSpec,
)
from shoal.client.json_specs import load_json, parse_message
from shoal.client.types import job_state_to_proto
from shoal.client.workflow_types import (
    disable_job_option_to_proto,
    on_dependency_failure_to_proto,
    on_task_failure_to_proto,
)
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2

# --------------------------------------------------------------------------- strategies

_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_text = st.text(max_size=20)
_seconds = st.builds(timedelta, seconds=st.integers(min_value=1, max_value=10**6))
_env = st.dictionaries(_ids, _text, max_size=3)


@st.composite
def _ranges(draw: st.DrawFn) -> TaskIdRange:
    start = draw(st.integers(min_value=0, max_value=10**12))
    return TaskIdRange(start=start, end=start + draw(st.integers(min_value=0, max_value=10**6)))


_dependencies = st.builds(
    TaskDependencies,
    task_ids=st.lists(_ids, max_size=4).map(tuple),
    task_id_ranges=st.lists(_ranges(), max_size=3).map(tuple),
)
_exit_options = st.builds(
    ExitOptions,
    job_action=st.none() | st.sampled_from(JobAction),
    dependency_action=st.none() | st.sampled_from(DependencyAction),
)


@st.composite
def _code_ranges(draw: st.DrawFn) -> ExitCodeRangeMapping:
    start = draw(st.integers(min_value=-(2**31), max_value=2**31 - 1 - 1000))
    end = start + draw(st.integers(min_value=0, max_value=1000))
    return ExitCodeRangeMapping(start=start, end=end, exit_options=draw(_exit_options))


_exit_conditions = st.builds(
    ExitConditions,
    exit_codes=st.lists(
        st.builds(ExitCodeMapping, code=st.integers(-(2**31), 2**31 - 1), exit_options=_exit_options), max_size=3
    ).map(tuple),
    exit_code_ranges=st.lists(_code_ranges(), max_size=2).map(tuple),
    pre_processing_error=st.none() | _exit_options,
    file_upload_error=st.none() | _exit_options,
    default=st.none() | _exit_options,
)
_constraints = st.builds(
    TaskConstraints,
    max_wall_clock_time=st.none() | _seconds,
    max_task_retry_count=st.none() | st.integers(min_value=-1, max_value=100),
    retention_time=st.none() | _seconds,
)
_resource_files = st.lists(
    st.builds(ResourceFileSpec.from_container, _ids, blob_prefix=_ids, file_path=_ids), max_size=2
).map(tuple)
_task_specs = st.builds(
    TaskSpec,
    id=_ids,
    command_line=_text,
    environment=_env,
    max_wall_clock_time=st.none() | _seconds,
    max_task_retry_count=st.none() | st.integers(min_value=-1, max_value=100),
    required_slots=st.integers(min_value=1, max_value=64),
    depends_on=st.none() | _dependencies,
    exit_conditions=st.none() | _exit_conditions,
)
_job_managers = st.builds(
    JobManagerTask,
    command_line=_text,
    id=st.just("") | _ids,
    display_name=_text,
    resource_files=_resource_files,
    output_files=st.lists(st.builds(OutputFileSpec, file_pattern=_ids, container=_ids), max_size=2).map(tuple),
    environment=_env,
    constraints=st.none() | _constraints,
    kill_job_on_completion=st.booleans(),
    run_exclusive=st.booleans(),
    required_slots=st.integers(min_value=1, max_value=16),
)
_preparations = st.builds(
    JobPreparationTask,
    command_line=_text,
    id=st.just("") | _ids,
    resource_files=_resource_files,
    environment=_env,
    constraints=st.none() | _constraints,
    wait_for_success=st.booleans(),
    rerun_on_node_reboot_after_success=st.booleans(),
)
_releases = st.builds(
    JobReleaseTask,
    command_line=_text,
    id=st.just("") | _ids,
    resource_files=_resource_files,
    environment=_env,
    max_wall_clock_time=st.none() | _seconds,
    retention_time=st.none() | _seconds,
)


# --------------------------------------------------------------------------- round trips


@settings(max_examples=200, deadline=None)
@given(_task_specs)
def test_task_spec_round_trips_through_proto_and_api_json(spec: TaskSpec) -> None:
    msg = spec.to_proto()
    assert TaskSpec.from_proto(msg) == spec
    # The API's JSON (both its spellings) reads back into the same spec.
    assert TaskSpec.from_json(json_format.MessageToDict(msg)) == spec
    assert TaskSpec.from_json(json_format.MessageToDict(msg, preserving_proto_field_name=True)) == spec


@settings(max_examples=100, deadline=None)
@given(_job_managers, _preparations, _releases)
def test_job_tasks_round_trip(manager: JobManagerTask, prep: JobPreparationTask, release: JobReleaseTask) -> None:
    assert JobManagerTask.from_proto(manager.to_proto()) == manager
    assert JobPreparationTask.from_proto(prep.to_proto()) == prep
    assert JobReleaseTask.from_proto(release.to_proto()) == release


def test_unset_options_send_nothing() -> None:
    msg = TaskSpec(id="t", command_line="x").to_proto()
    assert not msg.HasField("depends_on") and not msg.HasField("exit_conditions")
    conditions = ExitConditions(default=ExitOptions()).to_proto()
    assert conditions.HasField("default") and not conditions.HasField("pre_processing_error")
    assert conditions.default.job_action == task_pb2.JOB_ACTION_UNSPECIFIED
    assert conditions.default.dependency_action == task_pb2.DEPENDENCY_ACTION_UNSPECIFIED
    # The job's own tasks say their defaults out loud; read back, unset means the default too.
    manager = job_pb2.JobManagerTask(command_line="m")
    assert JobManagerTask.from_proto(manager) == JobManagerTask(command_line="m")
    assert JobManagerTask(command_line="m").to_proto().HasField("kill_job_on_completion")
    assert JobPreparationTask.from_proto(job_pb2.JobPreparationTask(command_line="p")).wait_for_success
    assert not JobManagerTask(command_line="m").to_proto().HasField("constraints")


def test_dependencies_take_pairs_and_lists_and_refuse_a_bare_string() -> None:
    deps = TaskDependencies.of("a", "B", ranges=[(1, 10), TaskIdRange(start=20, end=20)])
    assert deps == TaskDependencies(
        task_ids=["a", "B"], task_id_ranges=[TaskIdRange(start=1, end=10), TaskIdRange(start=20, end=20)]
    )
    assert deps.task_ids == ("a", "B")
    msg = deps.to_proto()
    assert list(msg.task_ids) == ["a", "B"]
    assert [(r.start, r.end) for r in msg.task_id_ranges] == [(1, 10), (20, 20)]
    with pytest.raises(InvalidArgument) as e:
        TaskDependencies(task_ids="abc")
    assert e.value.field_violations == [("depends_on.task_ids", "a sequence of task ids")]
    with pytest.raises(InvalidArgument) as e:
        TaskIdRange(start=5, end=4)
    assert e.value.reason == "INVALID_TASK_DEPENDENCIES"
    with pytest.raises(InvalidArgument):
        TaskDependencies.of(ranges=[(1, 2, 3)])  # type: ignore[list-item]
    with pytest.raises(dataclasses.FrozenInstanceError):
        deps.task_ids = ()  # type: ignore[misc]


def test_exit_options_take_strings_in_any_spelling() -> None:
    options = ExitOptions(job_action="TERMINATE", dependency_action="Satisfy")  # type: ignore[arg-type]
    assert options == ExitOptions(job_action=JobAction.TERMINATE, dependency_action=DependencyAction.SATISFY)
    assert options.to_proto() == task_pb2.ExitOptions(
        job_action=task_pb2.JOB_ACTION_TERMINATE, dependency_action=task_pb2.DEPENDENCY_ACTION_SATISFY
    )
    with pytest.raises(InvalidArgument) as e:
        ExitOptions(job_action="explode")  # type: ignore[arg-type]
    assert e.value.field_violations == [("job_action", "one of ['disable', 'none', 'terminate']")]
    with pytest.raises(InvalidArgument):
        ExitCodeRangeMapping(start=2, end=1, exit_options=ExitOptions())


def test_job_options_to_proto() -> None:
    assert on_task_failure_to_proto("perform_exit_options_job_action") == (
        job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
    )
    assert on_task_failure_to_proto(OnTaskFailure.NO_ACTION) == job_pb2.ON_TASK_FAILURE_NO_ACTION
    assert on_dependency_failure_to_proto("FAIL") == job_pb2.ON_DEPENDENCY_FAILURE_FAIL
    assert disable_job_option_to_proto("wait") == job_pb2.DISABLE_JOB_OPTION_WAIT
    with pytest.raises(InvalidArgument) as e:
        disable_job_option_to_proto("later")
    assert e.value.field_violations == [("disable_tasks", "one of ['requeue', 'terminate', 'wait']")]
    assert job_state_to_proto("disabled") == job_pb2.JOB_STATE_DISABLED


# --------------------------------------------------------------------------- results


def test_job_from_proto_new_fields() -> None:
    msg = job_pb2.Job(
        name="jobs/j",
        id="j",
        state=job_pb2.JOB_STATE_DISABLED,
        previous_state=job_pb2.JOB_STATE_DISABLING,
        uses_task_dependencies=True,
        on_dependency_failure=job_pb2.ON_DEPENDENCY_FAILURE_FAIL,
        metadata=[common_pb2.MetadataItem(name=n, value=v) for n, v in [("z", "1"), ("a", "2")]],
        job_manager_task=job_pb2.JobManagerTask(command_line="python3 manager.py", kill_job_on_completion=False),
    )
    msg.previous_state_transition_time.FromDatetime(datetime(2024, 5, 6, 7, 8, 9))
    job = Job.from_proto(msg)
    assert job.state == JobState.DISABLED == "disabled" and job.previous_state == "disabling"
    assert job.previous_state_transition_time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert job.uses_task_dependencies
    assert job.on_task_failure == OnTaskFailure.NO_ACTION  # unspecified reads as its meaning
    assert job.on_dependency_failure == OnDependencyFailure.FAIL
    assert list(job.metadata.items()) == [("z", "1"), ("a", "2")]  # order kept
    assert job.job_manager_task == JobManagerTask(command_line="python3 manager.py", kill_job_on_completion=False)
    assert job.job_preparation_task is None and job.job_release_task is None
    assert job.max_parallel_tasks == -1  # unset: unlimited
    msg.max_parallel_tasks = 0
    assert Job.from_proto(msg).max_parallel_tasks == 0
    assert job.constraints == JobConstraints(max_task_retry_count=0)
    assert Pool.from_proto(pool_pb2.Pool(id="p", metadata=msg.metadata)).metadata == {"z": "1", "a": "2"}


def test_task_dependency_state_and_counts() -> None:
    msg = task_pb2.Task(name="jobs/j/tasks/t", spec=task_pb2.TaskSpec(id="t"), job_manager=True)
    task = Task.from_proto(msg)
    assert task.dependency_state is None and task.job_manager
    msg.dependency_state.CopyFrom(
        task_pb2.DependencyState(
            status=task_pb2.DEPENDENCY_STATUS_BLOCKED, task_id="a", reason="TaskFailed", unsatisfied=1
        )
    )
    state = Task.from_proto(msg).dependency_state
    assert state == DependencyState(status=DependencyStatus.BLOCKED, task_id="a", reason="TaskFailed", unsatisfied=1)
    assert state.summary == "blocked by a (TaskFailed)"
    waiting = DependencyState(status=DependencyStatus.WAITING, task_id="7", reason="NotAdded", unsatisfied=3)
    assert waiting.summary == "waiting on 7 (NotAdded, 3 left)"
    assert DependencyState(status=DependencyStatus.WAITING, task_id="b", reason="", unsatisfied=1).summary == (
        "waiting on b"
    )
    assert DependencyState(status=DependencyStatus.SATISFIED, task_id="", reason="", unsatisfied=0).summary == (
        "satisfied"
    )
    counts = TaskCounts.from_proto(job_pb2.TaskCounts(active=5, waiting_on_dependencies=3, blocked=1))
    assert (counts.active, counts.waiting_on_dependencies, counts.blocked, counts.total) == (5, 3, 1, 5)


def test_preparation_and_release_status_from_proto() -> None:
    msg = job_pb2.PreparationAndReleaseTaskStatus(pool_id="p", node_id="n1", node_address="10.0.0.1")
    prep = msg.job_preparation_task_execution_info
    prep.state = job_pb2.PREPARATION_TASK_STATE_COMPLETED
    prep.exit_code = 0
    prep.result = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    prep.task_root_directory = "workitems/j/job-1/jobpreparation"
    status = PreparationAndReleaseTaskStatus.from_proto(msg)
    assert status.release is None
    assert status.preparation is not None
    assert status.preparation.state == PreparationTaskState.COMPLETED
    assert (status.preparation.exit_code, status.preparation.result) == (0, "success")
    assert status.preparation.failure is None and status.preparation.start_time is None
    assert status.preparation.task_root_directory == "workitems/j/job-1/jobpreparation"


# --------------------------------------------------------------------------- JSON in the API's field names


def test_task_spec_from_json_both_spellings() -> None:
    spec = TaskSpec.from_json(
        {
            "id": "b",
            "commandLine": "echo b",
            "constraints": {"max_wall_clock_time": "90s", "maxTaskRetryCount": 2},
            "depends_on": {"task_ids": ["a"], "taskIdRanges": [{"start": "1", "end": 3}]},
            "exitConditions": {
                "exit_codes": [{"code": 3, "exit_options": {"dependency_action": "DEPENDENCY_ACTION_SATISFY"}}],
                "default": {"jobAction": "JOB_ACTION_TERMINATE"},
            },
        }
    )
    assert spec.command_line == "echo b"
    assert spec.max_wall_clock_time == timedelta(seconds=90) and spec.max_task_retry_count == 2
    assert spec.depends_on == TaskDependencies.of("a", ranges=[(1, 3)])
    assert spec.exit_conditions == ExitConditions(
        exit_codes=(ExitCodeMapping(code=3, exit_options=ExitOptions(dependency_action=DependencyAction.SATISFY)),),
        default=ExitOptions(job_action=JobAction.TERMINATE),
    )


@pytest.mark.parametrize(
    ("data", "field", "detail"),
    [
        ({"id": "a", "bogus": 1}, "[2].bogus", 'unknown field "bogus" (known: id, display_name, command_line,'),
        (
            {"id": "a", "exit_conditions": {"exit_codes": [{"code": 1, "exit_options": {"foo": 2}}]}},
            "[2].exit_conditions.exit_codes[0].exit_options.foo",
            'unknown field "foo" (known: job_action, dependency_action)',
        ),
        (
            {"id": "a", "exitConditions": {"default": {"jobAction": "TERMINATE"}}},
            "[2].exitConditions.default.jobAction",
            "Invalid enum value TERMINATE for enum type shoal.v1.JobAction",
        ),
        (
            {"id": "a", "constraints": {"max_wall_clock_time": 10}},
            "[2].constraints.max_wall_clock_time",
            "",
        ),
        ({"id": "a", "required_slots": "x"}, "[2].required_slots", "invalid literal for int()"),
        ({"id": 5}, "[2].id", ""),
        ({"id": "a", "dependsOn": {"taskIds": "a"}}, "[2].dependsOn.taskIds", "must be a list"),
        ({"environment_settings": {"A": "1"}}, "[2].environment_settings", "must be a list"),
        (["not", "an", "object"], "[2]", "a JSON object"),
    ],
)
def test_task_spec_from_json_names_the_bad_field(data: object, field: str, detail: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        TaskSpec.from_json(data, path="[2]")  # type: ignore[arg-type]
    assert e.value.reason == "INVALID_TASK_SPEC"
    [(name, description)] = e.value.field_violations
    assert name == field
    assert description.startswith(detail)
    assert e.value.message in ("invalid shoal.v1.TaskSpec", "[2] must be a JSON object, not list")


def test_parse_message_job_and_bad_json() -> None:
    job = parse_message(
        {"id": "j", "poolId": "p", "onTaskFailure": "ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION"},
        job_pb2.Job,
        path="",
        reason="INVALID_JOB_SPEC",
    )
    assert job.pool_id == "p" and job.on_task_failure == job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
    with pytest.raises(InvalidArgument) as e:
        parse_message({"id": "j", "job_manager_task": {"cmd": "x"}}, job_pb2.Job, path="", reason="INVALID_JOB_SPEC")
    assert e.value.field_violations[0][0] == "job_manager_task.cmd"
    with pytest.raises(InvalidArgument) as e:
        load_json('{"id": "j",\n  "poolId": }', source="job.json", reason="INVALID_JOB_FILE")
    assert e.value.reason == "INVALID_JOB_FILE"
    assert e.value.message == "job.json is not JSON"
    assert e.value.field_violations == [("line 2 column 13", "Expecting value")]


def test_task_spec_from_dict_takes_dependencies_and_exit_conditions() -> None:
    spec = TaskSpec.from_dict(
        {
            "id": "c",
            "command_line": "x",
            "depends_on": {"task_ids": ["a", "b"]},
            "exit_conditions": {"default": {"dependency_action": "DEPENDENCY_ACTION_SATISFY"}},
        }
    )
    assert spec.depends_on == TaskDependencies.of("a", "b")
    assert spec.exit_conditions == ExitConditions(default=ExitOptions(dependency_action=DependencyAction.SATISFY))
    with pytest.raises(InvalidArgument) as e:
        TaskSpec.from_dict({"id": "c", "command_line": "x", "depends_on": {"ids": ["a"]}})
    assert e.value.field_violations[0][0] == "depends_on.ids"


def test_task_constraints_view_of_a_spec() -> None:
    spec = TaskSpec(id="t", command_line="x", max_wall_clock_time=timedelta(seconds=5), max_task_retry_count=0)
    assert spec.constraints == TaskConstraints(max_wall_clock_time=timedelta(seconds=5), max_task_retry_count=0)
    msg = spec.constraints.to_proto()
    assert msg.HasField("max_task_retry_count") and not msg.HasField("retention_time")
    assert TaskConstraints.from_proto(msg) == spec.constraints


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
_task_json = st.fixed_dictionaries(
    {},
    optional={
        "id": _json,
        "commandLine": _json,
        "depends_on": _json | st.fixed_dictionaries({}, optional={"taskIds": _json, "task_id_ranges": _json}),
        "dependsOn": st.fixed_dictionaries(
            {"taskIdRanges": st.lists(st.fixed_dictionaries({"start": st.integers(), "end": st.integers()}))}
        ),
        "exitConditions": _json | st.fixed_dictionaries({}, optional={"default": _json, "exit_codes": _json}),
        "constraints": _json,
    },
) | st.dictionaries(st.text(max_size=8), _json, max_size=2)


@settings(max_examples=300, deadline=None)
@given(_task_json)
def test_any_json_is_a_spec_or_one_named_field_violation(data: dict[str, object]) -> None:
    try:
        TaskSpec.from_json(data, path="[0]")
    except InvalidArgument as e:
        [(name, detail)] = e.field_violations
        assert name.startswith("[0]") and detail
        assert e.reason == "INVALID_TASK_SPEC"


def test_from_json_refuses_what_the_specs_refuse_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as e:
        TaskSpec.from_json({"id": "a", "dependsOn": {"taskIdRanges": [{"start": 5, "end": 4}]}}, path="[3]")
    assert e.value.field_violations == [("[3].depends_on.task_id_ranges.end", "at least start")]
    with pytest.raises(InvalidArgument) as e:
        TaskSpec.from_json({"id": "a", "resourceFiles": [{"filePath": "x"}]})
    assert e.value.reason == "INVALID_TASK_SPEC"
    assert e.value.field_violations[0][0] == "storage_container"
