"""The workflow parts of the client against the fake API on a real in-process gRPC server: the requests it
sends (fields, update masks, options, etags) and the results it reads back. What the server decides from them
is tested with the server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shoal.client import (
    Aborted,
    Client,
    DependencyStatus,
    DisableJobOption,
    ExitConditions,
    ExitOptions,
    FailedPrecondition,
    InvalidArgument,
    JobAction,
    JobConstraints,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    JobState,
    OnDependencyFailure,
    OnTaskFailure,
    PreparationTaskState,
    TaskConstraints,
    TaskDependencies,
    TaskSpec,
)
from shoal.v1 import job_pb2, task_pb2

from .fake_server import FakeServer


def _pool(client: Client) -> None:
    client.pools.create(id="p", target_nodes=2, metadata={"team": "render", "cost": "a1"})


def test_create_job_with_workflow_fields(client: Client, fake: FakeServer) -> None:
    _pool(client)
    assert list(client.pools.get("p").metadata.items()) == [("team", "render"), ("cost", "a1")]
    manager = JobManagerTask(command_line="python3 manager.py", run_exclusive=False)
    prep = JobPreparationTask(command_line="setup.sh", constraints=TaskConstraints(max_task_retry_count=2))
    release = JobReleaseTask(command_line="cleanup.sh", max_wall_clock_time=timedelta(minutes=5))
    job = client.jobs.create(
        id="dag",
        pool_id="p",
        uses_task_dependencies=True,
        on_task_failure="performexitoptionsjobaction",
        on_dependency_failure=OnDependencyFailure.FAIL,
        job_manager_task=manager,
        job_preparation_task=prep,
        job_release_task=release,
        max_parallel_tasks=4,
        metadata={"b": "2", "a": "1"},
    )
    sent = fake.state.jobs["dag"]
    assert sent.on_task_failure == job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
    assert [(m.name, m.value) for m in sent.metadata] == [("b", "2"), ("a", "1")]
    assert sent.job_manager_task.run_exclusive is False and sent.job_manager_task.kill_job_on_completion is True
    assert job.uses_task_dependencies and job.on_task_failure == OnTaskFailure.PERFORM_EXIT_OPTIONS_JOB_ACTION
    assert job.on_dependency_failure == OnDependencyFailure.FAIL
    assert (job.job_manager_task, job.job_preparation_task, job.job_release_task) == (manager, prep, release)
    assert job.max_parallel_tasks == 4 and list(job.metadata) == ["b", "a"]

    # Nothing asked for, nothing sent: the server's defaults apply.
    client.jobs.create(id="plain", pool_id="p")
    plain = fake.state.jobs["plain"]
    assert plain.on_task_failure == job_pb2.ON_TASK_FAILURE_UNSPECIFIED
    assert plain.on_dependency_failure == job_pb2.ON_DEPENDENCY_FAILURE_UNSPECIFIED
    assert not plain.HasField("max_parallel_tasks") and not plain.HasField("job_manager_task")
    assert not plain.uses_task_dependencies and not plain.metadata

    with pytest.raises(InvalidArgument) as e:
        client.jobs.create(id="bad", pool_id="p", on_dependency_failure="explode")
    assert e.value.field_violations == [("on_dependency_failure", "one of ['block', 'fail']")]
    assert "bad" not in fake.state.jobs


def test_create_job_from_json(client: Client, fake: FakeServer) -> None:
    _pool(client)
    job = client.jobs.create_from_json(
        {
            "id": "fromjson",
            "poolId": "p",
            "uses_task_dependencies": True,
            "jobPreparationTask": {"commandLine": "prep.sh", "waitForSuccess": False},
            "metadata": [{"name": "k", "value": "v"}],
        }
    )
    assert job.job_preparation_task == JobPreparationTask(command_line="prep.sh", wait_for_success=False)
    assert job.metadata == {"k": "v"} and job.uses_task_dependencies
    with pytest.raises(InvalidArgument) as e:
        client.jobs.create_from_json({"id": "x", "poolId": "p", "job_manager_task": {"commandline": "m"}})
    assert e.value.reason == "INVALID_JOB_SPEC"
    assert e.value.field_violations[0][0] == "job_manager_task.commandline"
    assert "x" not in fake.state.jobs


def test_update_job_masks_only_what_is_given(client: Client, fake: FakeServer) -> None:
    _pool(client)
    job = client.jobs.create(id="j", pool_id="p", metadata={"old": "1"})
    updated = client.jobs.update(
        "j",
        max_parallel_tasks=-1,
        metadata={},
        constraints=JobConstraints(max_wall_clock_time=timedelta(hours=1), max_task_retry_count=3),
        on_task_failure=OnTaskFailure.PERFORM_EXIT_OPTIONS_JOB_ACTION,
        etag=job.etag,
    )
    [request] = fake.state.update_job_requests
    assert list(request.update_mask) == ["constraints", "on_task_failure", "max_parallel_tasks", "metadata"]
    assert request.job.etag == job.etag and request.job.name == "jobs/j"
    assert request.job.HasField("max_parallel_tasks") and request.job.max_parallel_tasks == -1
    assert updated.metadata == {} and updated.max_parallel_tasks == -1
    assert updated.constraints == JobConstraints(max_wall_clock_time=timedelta(hours=1), max_task_retry_count=3)
    client.jobs.update("j", priority=7, on_all_tasks_complete="terminatejob")
    assert list(fake.state.update_job_requests[-1].update_mask) == ["priority", "on_all_tasks_complete"]
    with pytest.raises(InvalidArgument) as e:
        client.jobs.update("j")
    assert e.value.reason == "EMPTY_UPDATE"
    with pytest.raises(Aborted) as aborted:
        client.jobs.update("j", priority=1, etag=job.etag)  # read before the changes above
    assert aborted.value.reason == "ETAG_MISMATCH"


def test_disable_and_enable(client: Client, fake: FakeServer) -> None:
    _pool(client)
    job = client.jobs.create(id="j", pool_id="p")
    disabled = client.jobs.disable("j", disable_tasks="terminate", etag=job.etag)
    assert disabled.state == JobState.DISABLED and disabled.previous_state == JobState.ACTIVE
    request = fake.state.disable_requests[-1]
    assert request.disable_tasks == job_pb2.DISABLE_JOB_OPTION_TERMINATE and request.etag == job.etag
    with pytest.raises(FailedPrecondition) as e:
        client.jobs.disable("j")
    assert e.value.reason == "JOB_NOT_ACTIVE"
    assert client.jobs.enable("j").state == JobState.ACTIVE
    client.jobs.disable("j")
    assert fake.state.disable_requests[-1].disable_tasks == job_pb2.DISABLE_JOB_OPTION_REQUEUE  # the default, said
    client.jobs.enable("j")
    client.jobs.disable("j", disable_tasks=DisableJobOption.WAIT)
    assert fake.state.disable_requests[-1].disable_tasks == job_pb2.DISABLE_JOB_OPTION_WAIT
    with pytest.raises(InvalidArgument):
        client.jobs.disable("j", disable_tasks="sometimes")
    assert [j.id for j in client.jobs.list(state="disabled")] == ["j"]


def test_prep_release_status_follows_pages(client: Client, fake: FakeServer) -> None:
    _pool(client)
    client.jobs.create(id="plain", pool_id="p")
    with pytest.raises(FailedPrecondition) as e:
        list(client.jobs.prep_release_status("plain"))
    assert e.value.reason == "JOB_PREPARATION_TASK_NOT_SPECIFIED"
    client.jobs.create(id="j", pool_id="p", job_preparation_task=JobPreparationTask(command_line="setup"))
    statuses = []
    for i in range(3):
        status = job_pb2.PreparationAndReleaseTaskStatus(pool_id="p", node_id=f"node-{i}")
        status.job_preparation_task_execution_info.state = job_pb2.PREPARATION_TASK_STATE_COMPLETED
        status.job_preparation_task_execution_info.exit_code = i
        statuses.append(status)
    fake.state.prep_statuses["j"] = statuses
    got = list(client.jobs.prep_release_status("j"))  # the fake answers one per page
    assert [(s.node_id, s.preparation.exit_code if s.preparation else None) for s in got] == [
        ("node-0", 0),
        ("node-1", 1),
        ("node-2", 2),
    ]
    assert all(s.preparation and s.preparation.state == PreparationTaskState.COMPLETED for s in got)
    assert all(s.release is None for s in got)


def test_tasks_with_dependencies_exit_conditions_and_update(client: Client, fake: FakeServer) -> None:
    _pool(client)
    j = client.jobs.create(id="j", pool_id="p", uses_task_dependencies=True).id
    client.tasks.add(j, TaskSpec(id="a", command_line="a"))
    spec = TaskSpec(
        id="b",
        command_line="b",
        depends_on=TaskDependencies.of("a", ranges=[(1, 3)]),
        exit_conditions=ExitConditions(default=ExitOptions(job_action=JobAction.TERMINATE)),
    )
    results = client.tasks.add_many(j, [spec])
    assert [r.ok for r in results] == [True]
    sent = fake.state.tasks[j]["b"].spec
    assert list(sent.depends_on.task_ids) == ["a"] and sent.depends_on.task_id_ranges[0].end == 3
    assert sent.exit_conditions.default.job_action == task_pb2.JOB_ACTION_TERMINATE
    assert client.tasks.get(j, "b").spec == spec

    fake.call(fake.state.set_dependency_state, j, "b", task_pb2.DEPENDENCY_STATUS_WAITING, on="a", unsatisfied=4)
    b = client.tasks.get(j, "b")
    assert b.dependency_state is not None and b.dependency_state.status == DependencyStatus.WAITING
    assert b.dependency_state.summary == "waiting on a (4 left)"
    assert client.tasks.get(j, "a").dependency_state is None
    counts = client.jobs.task_counts(j)
    assert (counts.active, counts.waiting_on_dependencies, counts.blocked) == (2, 1, 0)

    updated = client.tasks.update(
        j, "b", constraints=TaskConstraints(max_wall_clock_time=timedelta(minutes=2)), etag=b.etag
    )
    [request] = fake.state.update_task_requests
    assert list(request.update_mask) == ["constraints"] and request.task.etag == b.etag
    assert request.task.name == "jobs/j/tasks/b"
    assert updated.spec.max_wall_clock_time == timedelta(minutes=2) and updated.spec.max_task_retry_count is None
    # Empty constraints are sent as such (all back to their defaults), not left out.
    client.tasks.update(j, "b", constraints=TaskConstraints())
    assert fake.state.update_task_requests[-1].task.spec.HasField("constraints")
    with pytest.raises(Aborted):
        client.tasks.update(j, "b", constraints=TaskConstraints(), etag=b.etag)
