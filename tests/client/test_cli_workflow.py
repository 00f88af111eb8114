"""The workflow commands of the `shoal` CLI through click's CliRunner against the fake API on a real in-process
gRPC server: what they send, what they show, and how they refuse bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from shoal.v1 import job_pb2, task_pb2

from .fake_server import FakeServer

Run = Callable[..., Result]


def _setup(run: Run, *job_args: str) -> None:
    assert run("pool", "create", "p", "--nodes", "2").exit_code == 0
    r = run("job", "create", "j", "--pool", "p", *job_args)
    assert r.exit_code == 0, r.output


def test_job_create_workflow_flags(run: Run, fake: FakeServer) -> None:
    _setup(
        run,
        "--uses-task-dependencies",
        "--on-task-failure", "performexitoptionsjobaction",
        "--on-dependency-failure", "fail",
        "--max-parallel-tasks", "3",
        "--metadata", "owner=ci", "--metadata", "url=http://x/?a=b",
    )  # fmt: skip
    job = fake.state.jobs["j"]
    assert job.uses_task_dependencies and job.max_parallel_tasks == 3
    assert job.on_task_failure == job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
    assert job.on_dependency_failure == job_pb2.ON_DEPENDENCY_FAILURE_FAIL
    assert [(m.name, m.value) for m in job.metadata] == [("owner", "ci"), ("url", "http://x/?a=b")]
    data = json.loads(run("job", "get", "j", "-o", "json").output)
    assert data["on_dependency_failure"] == "fail" and data["metadata"] == {"owner": "ci", "url": "http://x/?a=b"}
    r = run("job", "create", "k", "--pool", "p", "--on-dependency-failure", "explode")
    assert r.exit_code == 2
    r = run("job", "create", "k", "--pool", "p", "--metadata", "novalue")
    assert r.exit_code == 2 and "--metadata" in r.output
    r = run("job", "create", "k")
    assert r.exit_code == 2 and "--pool" in r.output


def test_job_create_json_file(run: Run, fake: FakeServer, tmp_path: Path) -> None:
    run("pool", "create", "p", "--nodes", "1")
    spec = {
        "id": "wf",
        "poolId": "p",
        "usesTaskDependencies": True,
        "on_task_failure": "ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION",
        "jobManagerTask": {"commandLine": "python3 manager.py", "killJobOnCompletion": False},
        "job_preparation_task": {"command_line": "setup.sh", "constraints": {"max_wall_clock_time": "60s"}},
        "jobReleaseTask": {"commandLine": "cleanup.sh", "maxWallClockTime": "300s"},
        "constraints": {"maxTaskRetryCount": 2},
    }
    f = tmp_path / "job.json"
    f.write_text(json.dumps(spec))
    r = run("job", "create", "--json-file", str(f), "-o", "json")
    assert r.exit_code == 0, r.output
    job = fake.state.jobs["wf"]
    assert job.job_manager_task.command_line == "python3 manager.py"
    assert job.job_manager_task.HasField("kill_job_on_completion") and not job.job_manager_task.kill_job_on_completion
    assert job.job_preparation_task.constraints.max_wall_clock_time.seconds == 60
    assert job.job_release_task.max_wall_clock_time.seconds == 300
    assert job.constraints.max_task_retry_count == 2
    shown = json.loads(r.output)[0]
    assert shown["job_manager_task"]["kill_job_on_completion"] is False
    assert shown["job_release_task"]["max_wall_clock_time"] == 300.0

    r = run("job", "create", "--json-file", "-", input=json.dumps({"id": "fromstdin", "pool_id": "p"}))
    assert r.exit_code == 0 and "fromstdin" in fake.state.jobs

    # The file says everything; flags beside it would be ignored, so they are refused.
    r = run("job", "create", "--json-file", str(f), "--priority", "3")
    assert r.exit_code == 2 and "--json-file describes the whole job" in r.output
    r = run("job", "create", "other", "--json-file", str(f))
    assert r.exit_code == 2

    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x",\n "poolId": "p",\n}')
    r = run("job", "create", "--json-file", str(bad))
    assert r.exit_code == 1 and "\n" not in r.stderr.strip()
    assert r.stderr.strip() == (
        f"error: INVALID_ARGUMENT INVALID_JOB_FILE: {bad} is not JSON "
        "[line 3 column 1: Expecting property name enclosed in double quotes]"
    )

    bad.write_text(json.dumps({"id": "x", "poolId": "p", "jobManagerTask": {"commandLine": "m", "exclusive": True}}))
    r = run("job", "create", "--json-file", str(bad))
    assert r.exit_code == 1
    assert r.stderr.startswith(
        f"error: INVALID_ARGUMENT INVALID_JOB_SPEC: {bad}: invalid shoal.v1.Job "
        '[jobManagerTask.exclusive: unknown field "exclusive" (known: id, '
    )
    assert "run_exclusive" in r.stderr
    assert "x" not in fake.state.jobs


def test_job_update(run: Run, fake: FakeServer) -> None:
    _setup(run, "--max-wall-clock", "600", "--max-retries", "2", "--metadata", "a=1")
    r = run("job", "update", "j", "--priority", "9", "--max-parallel-tasks", "-1", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["priority"] == 9
    request = fake.state.update_job_requests[-1]
    assert list(request.update_mask) == ["priority", "max_parallel_tasks"] and not request.job.etag

    # One constraint given: the other is kept as read, and the update is conditional on that read.
    etag = fake.state.jobs["j"].etag
    r = run("job", "update", "j", "--max-task-retry-count", "5")
    assert r.exit_code == 0, r.output
    request = fake.state.update_job_requests[-1]
    assert list(request.update_mask) == ["constraints"] and request.job.etag == etag
    assert request.job.constraints.max_task_retry_count == 5
    assert request.job.constraints.max_wall_clock_time.seconds == 600
    run("job", "update", "j", "--max-wall-clock", "unlimited")
    request = fake.state.update_job_requests[-1]
    assert not request.job.constraints.HasField("max_wall_clock_time")
    assert request.job.constraints.max_task_retry_count == 5

    run(
        "job",
        "update",
        "j",
        "--metadata",
        "b=2",
        "--on-task-failure",
        "noaction",
        "--on-all-tasks-complete",
        "terminatejob",
    )
    request = fake.state.update_job_requests[-1]
    assert list(request.update_mask) == ["on_all_tasks_complete", "on_task_failure", "metadata"]
    assert [(m.name, m.value) for m in request.job.metadata] == [("b", "2")]
    run("job", "update", "j", "--clear-metadata")
    assert list(fake.state.update_job_requests[-1].update_mask) == ["metadata"]
    assert not fake.state.jobs["j"].metadata

    count = len(fake.state.update_job_requests)
    assert run("job", "update", "j").exit_code == 2
    assert run("job", "update", "j", "--max-wall-clock", "soon").exit_code == 2
    assert run("job", "update", "j", "--max-wall-clock", "0").exit_code == 2
    assert run("job", "update", "j", "--metadata", "a=1", "--clear-metadata").exit_code == 2
    assert len(fake.state.update_job_requests) == count


def test_job_disable_enable_and_list_by_state(run: Run, fake: FakeServer) -> None:
    _setup(run)
    r = run("job", "disable", "j", "--disable-tasks", "wait")
    assert r.exit_code == 0 and r.output.strip() == "job j: disabled"
    assert fake.state.disable_requests[-1].disable_tasks == job_pb2.DISABLE_JOB_OPTION_WAIT
    r = run("job", "disable", "j")
    assert r.exit_code == 1 and r.stderr.startswith("error: FAILED_PRECONDITION JOB_NOT_ACTIVE: ")
    assert [j["id"] for j in json.loads(run("job", "list", "--state", "disabled", "-o", "json").output)] == ["j"]
    assert run("job", "enable", "j").output.strip() == "job j: active"
    run("job", "disable", "j")
    assert fake.state.disable_requests[-1].disable_tasks == job_pb2.DISABLE_JOB_OPTION_REQUEUE
    assert run("job", "disable", "j", "--disable-tasks", "later").exit_code == 2


def test_job_prep_status(run: Run, fake: FakeServer, tmp_path: Path) -> None:
    _setup(run)
    r = run("job", "prep-status", "j")
    assert r.exit_code == 1 and "JOB_PREPARATION_TASK_NOT_SPECIFIED" in r.stderr
    f = tmp_path / "job.json"
    f.write_text(json.dumps({"id": "prep", "poolId": "p", "jobPreparationTask": {"commandLine": "setup.sh"}}))
    assert run("job", "create", "--json-file", str(f)).exit_code == 0

    ok = job_pb2.PreparationAndReleaseTaskStatus(pool_id="p", node_id="node-1")
    ok.job_preparation_task_execution_info.state = job_pb2.PREPARATION_TASK_STATE_COMPLETED
    ok.job_preparation_task_execution_info.exit_code = 0
    ok.job_preparation_task_execution_info.result = 1  # success
    ok.job_release_task_execution_info.state = job_pb2.PREPARATION_TASK_STATE_RUNNING
    failed = job_pb2.PreparationAndReleaseTaskStatus(pool_id="p", node_id="node-2")
    info = failed.job_preparation_task_execution_info
    info.state = job_pb2.PREPARATION_TASK_STATE_COMPLETED
    info.exit_code = 3
    info.result = 2  # failure
    info.failure_info.code = "FailureExitCode"
    info.retry_count = 1
    fake.state.prep_statuses["prep"] = [ok, failed]

    r = run("job", "prep-status", "prep")
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines() if "node-" in line}
    assert "success" in lines["node-1"] and "running" in lines["node-1"]
    assert "failure" in lines["node-2"] and "3" in lines["node-2"] and "FailureExitCode" in lines["node-2"]
    data = json.loads(run("job", "prep-status", "prep", "-o", "json").output)
    assert [d["node_id"] for d in data] == ["node-1", "node-2"]
    assert data[0]["release"]["state"] == "running" and data[1]["release"] is None
    assert data[1]["preparation"]["failure"]["code"] == "FailureExitCode"


def test_task_add_with_dependencies(run: Run, fake: FakeServer) -> None:
    _setup(run, "--uses-task-dependencies")
    r = run(
        "task", "add", "j", "merge", "merge.sh", "--depends-on", "a", "--depends-on", "b",
        "--depends-on-range", "1-10", "--depends-on-range", " 20 - 20 ", "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = fake.state.tasks["j"]["merge"].spec.depends_on
    assert list(sent.task_ids) == ["a", "b"]
    assert [(x.start, x.end) for x in sent.task_id_ranges] == [(1, 10), (20, 20)]
    assert json.loads(r.output)[0]["spec"]["depends_on"] == {
        "task_ids": ["a", "b"],
        "task_id_ranges": [{"start": 1, "end": 10}, {"start": 20, "end": 20}],
    }
    assert not fake.state.tasks["j"]["merge"].spec.HasField("exit_conditions")
    run("task", "add", "j", "plain", "true")
    assert not fake.state.tasks["j"]["plain"].spec.HasField("depends_on")
    for bad in ("10-1", "a-b", "5"):
        r = run("task", "add", "j", "x", "true", "--depends-on-range", bad)
        assert r.exit_code == 2 and "--depends-on-range" in r.output
    assert "x" not in fake.state.tasks["j"]
    r = run("task", "add", "j", "onlyid")
    assert r.exit_code == 2 and "COMMAND_LINE" in r.output


def test_task_add_json_file(run: Run, fake: FakeServer, tmp_path: Path) -> None:
    _setup(run, "--uses-task-dependencies")
    one = tmp_path / "one.json"
    one.write_text(
        json.dumps(
            {
                "id": "first",
                "commandLine": "run.sh",
                "exitConditions": {
                    "exitCodes": [{"code": 3, "exitOptions": {"dependencyAction": "DEPENDENCY_ACTION_SATISFY"}}],
                    "default": {"job_action": "JOB_ACTION_TERMINATE"},
                },
            }
        )
    )
    r = run("task", "add", "j", "--json-file", str(one), "-o", "json")
    assert r.exit_code == 0, r.output
    conditions = fake.state.tasks["j"]["first"].spec.exit_conditions
    assert conditions.exit_codes[0].exit_options.dependency_action == task_pb2.DEPENDENCY_ACTION_SATISFY
    assert conditions.default.job_action == task_pb2.JOB_ACTION_TERMINATE
    assert json.loads(r.output)[0]["spec"]["exit_conditions"]["default"]["job_action"] == "terminate"

    many = tmp_path / "many.json"
    many.write_text(
        json.dumps(
            [{"id": str(i), "command_line": f"step {i}"} for i in range(1, 4)]
            + [{"id": "last", "command_line": "x", "depends_on": {"task_id_ranges": [{"start": 1, "end": 3}]}}]
        )
    )
    r = run("task", "add", "j", "--json-file", str(many), "--chunk-size", "2")
    assert r.exit_code == 0, r.output
    assert "added 4 of 4" in r.output
    assert fake.state.add_tasks_requests[-2:] == [2, 2]
    assert fake.state.tasks["j"]["last"].spec.depends_on.task_id_ranges[0].end == 3
    r = run("task", "add", "j", "--json-file", str(many))
    assert r.exit_code == 1 and "1: clienterror TASK_EXISTS" in r.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "ok", "commandLine": "x"}, {"id": "b", "dependsOn": {"taskIds": "a"}}]))
    r = run("task", "add", "j", "--json-file", str(bad))
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"error: INVALID_ARGUMENT INVALID_TASK_SPEC: {bad}: invalid shoal.v1.TaskSpec "
        "[[1].dependsOn.taskIds: must be a list, not a]"
    )
    assert "ok" not in fake.state.tasks["j"]  # nothing of a bad file is added
    bad.write_text("[{]")
    r = run("task", "add", "j", "--json-file", str(bad))
    assert r.exit_code == 1 and "INVALID_TASK_FILE" in r.stderr and "not JSON" in r.stderr
    r = run("task", "add", "j", "t", "x", "--json-file", str(one))
    assert r.exit_code == 2
    r = run("task", "add", "j", "--json-file", str(one), "--depends-on", "a")
    assert r.exit_code == 2


def test_task_list_get_and_counts_show_dependencies(run: Run, fake: FakeServer) -> None:
    _setup(run, "--uses-task-dependencies")
    for tid in ("a", "b", "c"):
        run("task", "add", "j", tid, "true")
    fake.call(fake.state.complete, "j", "a", 1)
    fake.call(
        fake.state.set_dependency_state, "j", "b", task_pb2.DEPENDENCY_STATUS_BLOCKED, on="a", reason="TaskFailed"
    )
    fake.call(
        fake.state.set_dependency_state,
        "j",
        "c",
        task_pb2.DEPENDENCY_STATUS_WAITING,
        on="d",
        reason="NotAdded",
        unsatisfied=2,
    )
    r = run("task", "list", "j")
    assert r.exit_code == 0, r.output
    assert "blocked by a (TaskFailed)" in r.output and "waiting on d (NotAdded, 2 left)" in r.output
    r = run("task", "get", "j", "b")
    assert "dependency_state" in r.output and "blocked by a (TaskFailed)" in r.output
    data = json.loads(run("task", "get", "j", "c", "-o", "json").output)
    assert data["dependency_state"] == {"status": "waiting", "task_id": "d", "reason": "NotAdded", "unsatisfied": 2}
    counts = json.loads(run("job", "counts", "j", "-o", "json").output)
    assert (counts["active"], counts["waiting_on_dependencies"], counts["blocked"]) == (2, 1, 1)
    r = run("job", "counts", "j")
    assert "waiting on dependencies" in r.output and "blocked" in r.output


def test_task_update_keeps_constraints_not_given(run: Run, fake: FakeServer) -> None:
    _setup(run)
    run("task", "add", "j", "t", "true", "--max-wall-clock", "30", "--max-retries", "1")
    etag = fake.state.tasks["j"]["t"].etag
    r = run("task", "update", "j", "t", "--retention", "3600")
    assert r.exit_code == 0, r.output
    [request] = fake.state.update_task_requests
    assert request.task.etag == etag and list(request.update_mask) == ["constraints"]
    c = request.task.spec.constraints
    assert (c.max_wall_clock_time.seconds, c.max_task_retry_count, c.retention_time.seconds) == (30, 1, 3600)
    run("task", "update", "j", "t", "--max-wall-clock", "unlimited", "--max-retries", "-1")
    c = fake.state.update_task_requests[-1].task.spec.constraints
    assert not c.HasField("max_wall_clock_time") and c.max_task_retry_count == -1
    assert run("task", "update", "j", "t").exit_code == 2
