"""Pure tests: specs convert to the protos the API expects, and results back."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shoal.client import (
    InvalidArgument,
    Job,
    JobState,
    Node,
    NodeState,
    OutputFileSpec,
    Pool,
    ResourceFileSpec,
    StartTaskSpec,
    Task,
    TaskSpec,
    TaskState,
)
from shoal.client.types import node_state_to_proto, task_state_to_proto
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2


def test_task_spec_minimal_leaves_constraints_unset() -> None:
    msg = TaskSpec(id="t1", command_line="echo hi").to_proto()
    assert msg.id == "t1"
    assert msg.command_line == "echo hi"
    assert msg.required_slots == 1
    assert not msg.HasField("constraints")
    assert list(msg.environment_settings) == []


def test_task_spec_full_round_trip() -> None:
    spec = TaskSpec(
        id="t2",
        command_line="/bin/sh -c 'cat in/a.txt'",
        environment={"A": "1", "B": "two"},
        resource_files=(
            ResourceFileSpec.from_container("inputs", blob_prefix="data/", file_path="in"),
            ResourceFileSpec.from_url("https://example.com/x.bin", file_path="x.bin", file_mode="0755"),
        ),
        output_files=(
            OutputFileSpec(file_pattern="out/*.txt", container="outputs", path="t2/", upload_condition="completion"),
        ),
        max_wall_clock_time=timedelta(seconds=90, milliseconds=500),
        max_task_retry_count=0,
        retention_time=timedelta(hours=1),
        required_slots=2,
        display_name="two",
    )
    msg = spec.to_proto()
    assert [(e.name, e.value) for e in msg.environment_settings] == [("A", "1"), ("B", "two")]
    assert msg.resource_files[0].storage_container_name == "inputs"
    assert msg.resource_files[0].blob_prefix == "data/"
    assert msg.resource_files[0].file_path == "in"
    assert msg.resource_files[1].http_url == "https://example.com/x.bin"
    assert msg.resource_files[1].file_mode == "0755"
    assert msg.output_files[0].upload_condition == common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION
    assert msg.output_files[0].container_name == "outputs"
    assert msg.constraints.max_wall_clock_time.seconds == 90
    assert msg.constraints.max_wall_clock_time.nanos == 500_000_000
    # Zero retries is explicit (optional field present), not "use the job's value".
    assert msg.constraints.HasField("max_task_retry_count")
    assert msg.constraints.max_task_retry_count == 0
    assert msg.constraints.retention_time.seconds == 3600
    assert msg.required_slots == 2
    assert TaskSpec.from_proto(msg) == spec


def test_retry_count_none_means_job_default() -> None:
    msg = TaskSpec(id="t", command_line="x", max_wall_clock_time=timedelta(seconds=1)).to_proto()
    assert not msg.constraints.HasField("max_task_retry_count")
    assert TaskSpec.from_proto(msg).max_task_retry_count is None


def test_specs_are_frozen_and_keyword_only() -> None:
    spec = TaskSpec(id="t", command_line="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.id = "u"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TaskSpec("t", "x")  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"storage_container": "c", "http_url": "http://x", "file_path": "f"},
        {"http_url": "http://x"},
    ],
)
def test_resource_file_needs_exactly_one_source(kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as e:
        ResourceFileSpec(**kwargs)
    assert e.value.reason == "INVALID_RESOURCE_FILE"
    assert e.value.field_violations


def test_output_file_condition_validated() -> None:
    with pytest.raises(InvalidArgument):
        OutputFileSpec(file_pattern="*", container="c", upload_condition="sometimes")
    for cond, value in [
        ("success", common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_SUCCESS),
        ("failure", common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE),
        ("completion", common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION),
    ]:
        assert (
            OutputFileSpec(file_pattern="*", container="c", upload_condition=cond).to_proto().upload_condition == value
        )


def test_start_task_defaults_wait_for_success() -> None:
    msg = StartTaskSpec(command_line="python3 -c pass", environment={"X": "y"}).to_proto()
    assert msg.wait_for_success is True
    assert msg.max_task_retry_count == 0
    assert msg.environment_settings[0].name == "X"
    assert StartTaskSpec.from_proto(msg) == StartTaskSpec(command_line="python3 -c pass", environment={"X": "y"})


def test_task_spec_from_dict() -> None:
    spec = TaskSpec.from_dict(
        {
            "id": "a",
            "command_line": "echo",
            "environment": {"N": 1},
            "max_wall_clock_time": 2.5,
            "max_task_retry_count": 3,
            "resource_files": [{"storage_container": "in", "file_path": "d"}],
            "output_files": [{"file_pattern": "*.out", "container": "out"}],
        }
    )
    assert spec.environment == {"N": "1"}
    assert spec.max_wall_clock_time == timedelta(seconds=2.5)
    assert spec.max_task_retry_count == 3
    assert spec.resource_files[0].storage_container == "in"
    assert spec.output_files[0].upload_condition == "success"
    with pytest.raises(InvalidArgument) as e:
        TaskSpec.from_dict({"id": "a", "command_line": "x", "bogus": 1})
    assert e.value.field_violations == [("bogus", "unknown field")]
    with pytest.raises(InvalidArgument):
        TaskSpec.from_dict({"id": "a"})


def test_task_from_proto() -> None:
    msg = task_pb2.Task(
        name="jobs/j1/tasks/t1",
        spec=task_pb2.TaskSpec(id="t1", command_line="false"),
        state=task_pb2.TASK_STATE_COMPLETED,
        previous_state=task_pb2.TASK_STATE_RUNNING,
        attempt=2,
    )
    ex = msg.execution_info
    ex.start_time.FromDatetime(datetime(2024, 1, 2, 3, 4, 5))
    ex.end_time.FromDatetime(datetime(2024, 1, 2, 3, 4, 6))
    ex.exit_code = 3
    ex.retry_count = 1
    ex.requeue_count = 2
    ex.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
    ex.failure_info.category = common_pb2.ERROR_CATEGORY_USER_ERROR
    ex.failure_info.code = "FailureExitCode"
    msg.node_info.node_id = "node-2"
    task = Task.from_proto(msg)
    assert task.id == "t1" and task.job_id == "j1"
    assert task.state == TaskState.COMPLETED == "completed"
    assert task.previous_state == "running"
    assert task.start_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert task.exit_code == 3
    assert task.retry_count == 1 and task.requeue_count == 2
    assert task.result == "failure" and task.failed and not task.succeeded
    assert task.failure is not None and task.failure.code == "FailureExitCode"
    assert task.failure.category == "usererror"
    assert (task.failure_code, task.failure_category) == ("FailureExitCode", "usererror")
    assert task.node_id == "node-2"
    assert task.proto is msg
    assert task.command_line == "false"


def test_task_exit_code_zero_is_not_none() -> None:
    msg = task_pb2.Task(name="jobs/j/tasks/t", spec=task_pb2.TaskSpec(id="t"))
    assert Task.from_proto(msg).exit_code is None
    msg.execution_info.exit_code = 0
    assert Task.from_proto(msg).exit_code == 0
    assert Task.from_proto(msg).failure is None
    assert Task.from_proto(msg).failure_code is None
    assert Task.from_proto(msg).start_time is None


def test_pool_job_node_from_proto() -> None:
    p = pool_pb2.Pool(
        name="pools/p",
        id="p",
        target_nodes=3,
        current_nodes=1,
        state=pool_pb2.POOL_STATE_ACTIVE,
        allocation_state=pool_pb2.ALLOCATION_STATE_RESIZING,
        start_task=common_pb2.StartTask(command_line="setup", wait_for_success=True),
    )
    pool = Pool.from_proto(p)
    assert pool.state == "active" and pool.allocation_state == "resizing"
    assert pool.start_task is not None and pool.start_task.command_line == "setup"
    assert Pool.from_proto(pool_pb2.Pool(id="q")).start_task is None

    j = job_pb2.Job(name="jobs/j", id="j", pool_id="p", state=job_pb2.JOB_STATE_TERMINATING)
    j.constraints.max_wall_clock_time.FromTimedelta(timedelta(minutes=5))
    j.on_all_tasks_complete = job_pb2.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
    job = Job.from_proto(j)
    assert job.state == JobState.TERMINATING
    assert job.max_wall_clock_time == timedelta(minutes=5)
    assert job.on_all_tasks_complete == "terminatejob"

    n = pool_pb2.Node(name="pools/p/nodes/n", id="n", state=pool_pb2.NODE_STATE_START_TASK_FAILED)
    n.start_task_info.exit_code = 1
    n.start_task_info.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
    node = Node.from_proto(n)
    assert node.state == NodeState.START_TASK_FAILED == "starttaskfailed"
    assert node.start_task_info is not None and node.start_task_info.exit_code == 1
    assert node.metrics_address == ""
    assert Node.from_proto(pool_pb2.Node(id="n", metrics_address="127.0.0.1:9101")).metrics_address == "127.0.0.1:9101"


def test_state_filters_to_proto() -> None:
    assert task_state_to_proto("completed") == task_pb2.TASK_STATE_COMPLETED
    assert task_state_to_proto(TaskState.ACTIVE) == task_pb2.TASK_STATE_ACTIVE
    assert node_state_to_proto("idle") == pool_pb2.NODE_STATE_IDLE
    assert node_state_to_proto("start_task_failed") == pool_pb2.NODE_STATE_START_TASK_FAILED
    with pytest.raises(InvalidArgument):
        task_state_to_proto("sleeping")


def test_multi_instance_round_trip() -> None:
    from shoal.client import MultiInstanceSettings, Subtask

    spec = TaskSpec(
        id="mpi",
        command_line="mpiexec -n 4 python3 app.py",
        multi_instance_settings=MultiInstanceSettings(
            number_of_instances=2,
            coordination_command_line="/bin/true",
            common_resource_files=(ResourceFileSpec.from_container("apps", blob_prefix="mpi/"),),
        ),
    )
    msg = spec.to_proto()
    assert msg.multi_instance_settings.number_of_instances == 2
    assert msg.multi_instance_settings.common_resource_files[0].storage_container_name == "apps"
    assert TaskSpec.from_proto(msg) == spec
    assert not TaskSpec(id="x", command_line="y").to_proto().HasField("multi_instance_settings")
    assert TaskSpec.from_dict(
        {"id": "m", "command_line": "x", "multi_instance_settings": {"number_of_instances": 3}}
    ).multi_instance_settings == MultiInstanceSettings(number_of_instances=3)

    task = task_pb2.Task(name="jobs/j/tasks/mpi", spec=msg)
    sub = task.subtasks.add(id=1, state=task_pb2.SUBTASK_STATE_COMPLETED)
    sub.node_info.node_id = "node-2"
    sub.exit_code = 0
    sub.result = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    [st] = Task.from_proto(task).subtasks
    assert st == Subtask(
        id=1,
        state="completed",
        pool_id="",
        node_id="node-2",
        node_address="",
        start_time=None,
        end_time=None,
        exit_code=0,
        failure=None,
        result="success",
    )


def test_task_waiting_reason() -> None:
    msg = task_pb2.Task(name="jobs/j/tasks/t", spec=task_pb2.TaskSpec(id="t"), state=task_pb2.TASK_STATE_ACTIVE)
    assert Task.from_proto(msg).waiting_reason == ""
    msg.waiting_reason = "PoolTooSmall: needs 4 nodes at once"
    assert Task.from_proto(msg).waiting_reason == "PoolTooSmall: needs 4 nodes at once"
