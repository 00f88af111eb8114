"""Job preparation and release tasks: a real agent (in-process) against a fake control plane on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.nodeagent import process
from shoal.nodeagent.jobtasks import JobTaskRecords, is_process_key, process_key
from shoal.nodeagent.layout import NODE_ROOT_ENV
from shoal.nodeagent.outbox import Outbox
from shoal.v1 import common_pb2
from tests.nodeagent.conftest import assignment, start_tasks

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING
COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
PREPARATION = agent_pb2.JOB_TASK_KIND_PREPARATION
RELEASE = agent_pb2.JOB_TASK_KIND_RELEASE
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILURE = common_pb2.TASK_EXECUTION_RESULT_FAILURE
USER_ERROR = common_pb2.ERROR_CATEGORY_USER_ERROR
SERVER_ERROR = common_pb2.ERROR_CATEGORY_SERVER_ERROR


def prep(command: str, job_id: str = "j1", **kw) -> agent_pb2.JobTaskSpec:
    kw.setdefault("wait_for_success", True)
    return agent_pb2.JobTaskSpec(job_id=job_id, id="jobpreparation", command_line=command, **kw)


def release(command_id: int, command: str, job_id: str = "j1", **kw) -> agent_pb2.ServerMessage:
    kw.setdefault("max_wall_clock_seconds", 900)
    spec = agent_pb2.JobTaskSpec(job_id=job_id, id="jobrelease", command_line=command, **kw)
    return agent_pb2.ServerMessage(run_job_release=agent_pb2.RunJobRelease(command_id=command_id, release=spec))


def job_events(plane, job_task: int, kind: int, job_id: str = "j1") -> list[agent_pb2.TaskEvent]:
    return [e for e in plane.events() if e.job_task == job_task and e.kind == kind and e.attempt.job_id == job_id]


async def wait_job_events(plane, job_task: int, kind: int, job_id: str = "j1", count: int = 1):
    return await plane.wait_for(
        lambda: (lambda evs: evs if len(evs) >= count else None)(job_events(plane, job_task, kind, job_id))
    )


async def until(pred, timeout: float = 10.0) -> None:
    """Poll a local condition (agent state, files) until it holds, within `timeout`."""

    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


async def test_preparation_runs_once_for_attempts_arriving_together(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    plane_server.storage.put("tools", "setup/data.txt", b"D")
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    node = tmp_path / "node"
    prep_dir = node / "workitems" / "j1" / "job-1" / "jobpreparation"
    spec = prep(
        "sh -c 'echo ran >> $SHOAL_NODE_SHARED_DIR/prep-count; cp setup/data.txt ready;"
        " echo $AZ_BATCH_JOB_PREP_DIR $SHOAL_JOB_PREP_WORKING_DIR $AZ_BATCH_TASK_ID $MODE'",
        resource_files=[common_pb2.ResourceFile(storage_container_name="tools", blob_prefix="setup/")],
        environment_settings=[common_pb2.EnvironmentSetting(name="MODE", value="prep")],
    )
    # The task reads what the preparation left in its working directory.
    cmd = (
        "sh -c 'cat $AZ_BATCH_JOB_PREP_WORKING_DIR/ready; echo \" $SHOAL_JOB_PREP_DIR $AZ_BATCH_JOB_PREP_WORKING_DIR\"'"
    )
    await plane.send(
        start_tasks(1, assignment("a", cmd, job_preparation=spec), assignment("b", cmd, job_preparation=spec))
    )
    a = await plane.wait_event("a", COMPLETED)
    b = await plane.wait_event("b", COMPLETED)
    assert a.result == SUCCESS and b.result == SUCCESS, (a, b)
    assert (node / "shared" / "prep-count").read_text() == "ran\n"
    expected = f"D {prep_dir} {prep_dir / 'wd'}\n"
    for t in ("a", "b"):
        assert (node / "workitems" / "j1" / "job-1" / t / "stdout.txt").read_text() == expected

    # Its RUNNING may have been folded into its COMPLETED (held back while only RUNNINGs were due), as a task's.
    assert len(job_events(plane, PREPARATION, RUNNING)) <= 1
    (done,) = job_events(plane, PREPARATION, COMPLETED)
    assert (done.attempt.job_id, done.attempt.task_id, done.attempt.attempt) == ("j1", "jobpreparation", 1)
    assert done.task_root_directory == str(prep_dir) and 0 < done.start_time.seconds <= done.time.seconds
    assert done.result == SUCCESS and done.exit_code == 0 and done.retry_count == 0
    assert not done.HasField("failure_info")
    assert done.event_id < min(a.event_id, b.event_id)
    # The preparation task itself sees its directories, and its own settings.
    assert (prep_dir / "stdout.txt").read_text() == f"{prep_dir} {prep_dir / 'wd'} jobpreparation prep\n"
    assert agent.runner.job_tasks.prepared_jobs() == ["j1"]

    # A later attempt of the job starts at once: the preparation is not run again.
    await plane.send(start_tasks(2, assignment("c", cmd, job_preparation=spec)))
    c = await plane.wait_event("c", COMPLETED)
    assert c.result == SUCCESS
    assert (node / "shared" / "prep-count").read_text() == "ran\n"
    assert len(job_events(plane, PREPARATION, COMPLETED)) == 1


async def test_failed_preparation_ends_attempts_without_running_them(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    shared = tmp_path / "node" / "shared"
    spec = prep("sh -c 'echo try >> $SHOAL_NODE_SHARED_DIR/tries; exit 7'", max_task_retry_count=2)
    task = "sh -c 'touch $SHOAL_NODE_SHARED_DIR/task-ran'"
    await plane.send(start_tasks(1, assignment("a", task, job_preparation=spec)))
    a = await plane.wait_event("a", COMPLETED)
    assert a.result == FAILURE and not a.HasField("exit_code")
    assert (a.failure_info.category, a.failure_info.code) == (USER_ERROR, "JobPreparationFailed")
    assert "preparation" in a.failure_info.message
    assert not (shared / "task-ran").exists()
    assert not (tmp_path / "node" / "workitems" / "j1" / "job-1" / "a").exists()

    (p,) = job_events(plane, PREPARATION, COMPLETED)
    assert (p.result, p.exit_code, p.retry_count, p.failure_info.code) == (FAILURE, 7, 2, "FailureExitCode")
    assert p.event_id < a.event_id
    assert (shared / "tries").read_text() == "try\n" * 3
    assert agent.runner.job_tasks.prepared_jobs() == []

    # Failed for good: the next attempt of the job ends at once, the preparation is not run again.
    await plane.send(start_tasks(2, assignment("b", task, job_preparation=spec)))
    b = await plane.wait_event("b", COMPLETED)
    assert b.failure_info.code == "JobPreparationFailed"
    assert (shared / "tries").read_text() == "try\n" * 3
    assert len(job_events(plane, PREPARATION, COMPLETED)) == 1

    # Another job is not held by it.
    await plane.send(start_tasks(3, assignment("other", task, job_id="j2")))
    assert (await plane.wait_event("other", COMPLETED)).result == SUCCESS


async def test_without_wait_for_success_attempts_do_not_wait(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    # The preparation runs until the task has run, then fails: the task neither waited for it nor is held by it.
    spec = prep(
        "sh -c 'while [ ! -f $SHOAL_NODE_SHARED_DIR/go ]; do sleep 0.02; done; exit 1'",
        wait_for_success=False,
        max_wall_clock_seconds=60,
    )
    task = "sh -c 'touch $SHOAL_NODE_SHARED_DIR/go; echo $SHOAL_JOB_PREP_DIR'"
    await plane.send(start_tasks(1, assignment("a", task, job_preparation=spec)))
    a = await plane.wait_event("a", COMPLETED)
    assert a.result == SUCCESS
    (p,) = await wait_job_events(plane, PREPARATION, COMPLETED)
    assert p.result == FAILURE and p.exit_code == 1
    prep_dir = tmp_path / "node" / "workitems" / "j1" / "job-1" / "jobpreparation"
    assert (tmp_path / "node" / "workitems" / "j1" / "job-1" / "a" / "stdout.txt").read_text() == f"{prep_dir}\n"
    # It failed: later attempts still run (without waiting), and it is not run again.
    await plane.send(start_tasks(2, assignment("b", task, job_preparation=spec)))
    assert (await plane.wait_event("b", COMPLETED)).result == SUCCESS
    assert len(job_events(plane, PREPARATION, RUNNING)) <= 1
    assert len(job_events(plane, PREPARATION, COMPLETED)) == 1


async def test_preparation_records_survive_an_agent_restart(
    plane_server, run_agent, make_plane, tmp_path: Path
) -> None:
    plane = plane_server.plane
    agent, task = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    shared = tmp_path / "node" / "shared"
    ok = prep("sh -c 'echo ran >> $SHOAL_NODE_SHARED_DIR/ok-count'")
    bad = prep("sh -c 'echo ran >> $SHOAL_NODE_SHARED_DIR/bad-count; exit 2'", job_id="j2")
    await plane.send(
        start_tasks(
            1, assignment("a", "true", job_preparation=ok), assignment("b", "true", job_id="j2", job_preparation=bad)
        )
    )
    await plane.wait_event("a", COMPLETED)
    assert (await plane.wait_event("b", COMPLETED)).failure_info.code == "JobPreparationFailed"
    agent.request_stop("restart")
    assert await asyncio.wait_for(task, 15) == 0

    # A new agent process on the same node root: it lists the prepared job and runs neither preparation again.
    await plane_server.stop()
    plane2 = make_plane()
    await plane_server.start(plane2)
    agent2, _ = await run_agent()
    reg = (await plane2.wait_for(lambda: plane2.registers))[0]
    assert reg.boot_id != plane.registers[0].boot_id
    assert list(reg.prepared_jobs) == ["j1"] and not reg.released_jobs
    cmd = "sh -c 'echo $AZ_BATCH_JOB_PREP_WORKING_DIR'"
    await plane2.send(
        start_tasks(
            1, assignment("c", cmd, job_preparation=ok), assignment("d", "true", job_id="j2", job_preparation=bad)
        )
    )
    c = await plane2.wait_event("c", COMPLETED)
    assert c.result == SUCCESS
    wd = tmp_path / "node" / "workitems" / "j1" / "job-1" / "jobpreparation" / "wd"
    assert (tmp_path / "node" / "workitems" / "j1" / "job-1" / "c" / "stdout.txt").read_text() == f"{wd}\n"
    assert (await plane2.wait_event("d", COMPLETED)).failure_info.code == "JobPreparationFailed"
    assert (shared / "ok-count").read_text() == "ran\n" and (shared / "bad-count").read_text() == "ran\n"
    # The recorded failure is reported again once (the server may not have committed it), nothing runs.
    assert not job_events(plane2, PREPARATION, RUNNING, "j2") and not job_events(plane2, PREPARATION, RUNNING)
    (again,) = job_events(plane2, PREPARATION, COMPLETED, "j2")
    first = job_events(plane, PREPARATION, COMPLETED, "j2")[0]
    assert (again.exit_code, again.time, again.start_time) == (first.exit_code, first.time, first.start_time)
    assert not job_events(plane2, PREPARATION, COMPLETED, "j1")
    assert agent2.runner.job_tasks.prepared_jobs() == ["j1"]


async def test_release_runs_once_and_reports_again(plane_server, run_agent, make_plane, tmp_path: Path) -> None:
    plane = plane_server.plane
    plane.welcome.task_slots = 1
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    node = tmp_path / "node"
    spec = prep("true")
    # A task holds the node's only slot: the release does not need one.
    await plane.send(start_tasks(1, assignment("busy", "sleep 100", job_preparation=spec)))
    await plane.wait_event("busy", RUNNING)
    await wait_job_events(plane, PREPARATION, COMPLETED)
    command = "sh -c 'echo ran >> $SHOAL_NODE_SHARED_DIR/release-count; echo $AZ_BATCH_JOB_PREP_DIR $SHOAL_TASK_ID'"
    await plane.send(release(2, command))
    (done,) = await wait_job_events(plane, RELEASE, COMPLETED)
    await plane.wait_for(lambda: [m for m in plane.messages if m.ack.command_id == 2 or m.commands_acked_up_to == 2])
    release_dir = node / "workitems" / "j1" / "job-1" / "jobrelease"
    assert done.result == SUCCESS and done.exit_code == 0
    assert (done.attempt.job_id, done.attempt.task_id, done.attempt.attempt) == ("j1", "jobrelease", 1)
    assert done.task_root_directory == str(release_dir)
    assert len(job_events(plane, RELEASE, RUNNING)) <= 1
    assert (release_dir / "stdout.txt").read_text() == f"{node / 'workitems/j1/job-1/jobpreparation'} jobrelease\n"
    assert agent.runner.job_tasks.released_jobs() == ["j1"]

    # Asked again (a restarted server): the recorded end is reported again, nothing runs.
    await plane.send(release(3, command))
    first, second = await wait_job_events(plane, RELEASE, COMPLETED, count=2)
    assert second.event_id > first.event_id
    assert (second.time, second.start_time, second.result) == (first.time, first.start_time, first.result)
    assert (node / "shared" / "release-count").read_text() == "ran\n"

    await plane_server.stop()
    plane2 = make_plane()
    await plane_server.start(plane2)
    reg = (await plane2.wait_for(lambda: plane2.registers))[0]
    assert list(reg.released_jobs) == ["j1"] and list(reg.prepared_jobs) == ["j1"]
    assert [r.task_id for r in reg.running] == ["busy"]


async def test_a_release_directory_is_kept_for_its_retention_time(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(release(1, "true", retention_seconds=0.3))
    (done,) = await wait_job_events(plane, RELEASE, COMPLETED)
    assert done.result == SUCCESS
    release_dir = tmp_path / "node" / "workitems" / "j1" / "job-1" / "jobrelease"
    assert agent.runner.retention.deadline("j1", "jobrelease") is not None
    # The sweeper wakes at the deadline and removes it; the record of the release stays.
    await until(lambda: not release_dir.exists())
    assert agent.runner.job_tasks.released_jobs() == ["j1"]


async def test_release_is_killed_at_its_wall_clock(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(release(1, "sh -c 'sleep 100 & sleep 100'", max_wall_clock_seconds=0.5))
    await wait_job_events(plane, RELEASE, RUNNING)
    await until(lambda: process_key("j1", RELEASE) in agent.running_file.load())
    pgid = agent.running_file.load()[process_key("j1", RELEASE)]
    (done,) = await wait_job_events(plane, RELEASE, COMPLETED)
    assert done.result == FAILURE and done.exit_code == TERMINATED_EXIT_CODE
    assert (done.failure_info.category, done.failure_info.code) == (SERVER_ERROR, "TaskEnded")
    await until(lambda: not process.group_alive(pgid))
    assert process_key("j1", RELEASE) not in agent.running_file.load()
    assert agent.runner.job_tasks.released_jobs() == ["j1"]


async def test_release_reports_go_through_the_outbox(plane_server, run_agent, make_plane) -> None:
    plane = make_plane(auto_ack=False)
    await plane_server.stop()
    await plane_server.start(plane)
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(release(1, "true"))
    (done,) = await wait_job_events(plane, RELEASE, COMPLETED)
    assert len(agent.outbox) >= 1

    # Not acknowledged: the next Register carries the release's report again.
    await plane_server.stop()
    plane2 = make_plane(auto_ack=False)
    await plane_server.start(plane2)
    reg = (await plane2.wait_for(lambda: plane2.registers))[0]
    pending = [e for e in reg.pending_events if e.job_task == RELEASE and e.kind == COMPLETED]
    assert [e.event_id for e in pending] == [done.event_id]
    assert list(reg.released_jobs) == ["j1"]
    last = max(e.event_id for e in reg.pending_events)
    await plane2.send(agent_pb2.ServerMessage(events_ack=agent_pb2.EventsAck(up_to_event_id=last)))
    await until(lambda: len(agent.outbox) == 0)


async def test_release_stops_a_preparation_still_running(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    spec = prep("sleep 100")
    await plane.send(start_tasks(1, assignment("a", "true", job_preparation=spec)))
    await wait_job_events(plane, PREPARATION, RUNNING)
    await until(lambda: process_key("j1", PREPARATION) in agent.running_file.load())
    # The prep's processes carry the node root (the watchdog's mark) and are listed in running.json.
    pgid = agent.running_file.load()[process_key("j1", PREPARATION)]
    environ = Path(f"/proc/{pgid}/environ").read_bytes().split(b"\0")
    assert f"{NODE_ROOT_ENV}={tmp_path / 'node'}".encode() in environ, environ

    await plane.send(release(2, "true"))
    (p,) = await wait_job_events(plane, PREPARATION, COMPLETED)
    assert p.failure_info.code == "TaskEnded" and p.result == FAILURE, p
    (r,) = await wait_job_events(plane, RELEASE, COMPLETED)
    assert r.result == SUCCESS and r.event_id > p.event_id, (r, p)
    a = await plane.wait_event("a", COMPLETED)
    assert a.failure_info.code == "JobPreparationFailed", a
    await until(lambda: not process.group_alive(pgid))


async def test_killing_a_waiting_attempt_and_stopping_the_agent(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, task = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(start_tasks(1, assignment("a", "true", job_preparation=prep("sleep 100"))))
    await wait_job_events(plane, PREPARATION, RUNNING)
    await until(lambda: process_key("j1", PREPARATION) in agent.running_file.load())
    pgid = agent.running_file.load()[process_key("j1", PREPARATION)]
    kill = agent_pb2.KillTasks(command_id=2, attempts=[agent_pb2.AttemptRef(job_id="j1", task_id="a", attempt=1)])
    await plane.send(agent_pb2.ServerMessage(kill_tasks=kill))
    a = await plane.wait_event("a", COMPLETED)
    assert a.failure_info.code == "TaskEnded" and not a.HasField("exit_code")
    assert process.group_alive(pgid)  # the preparation goes on for the job's next attempt

    # The agent stops: the preparation dies with it, unrecorded, so a later agent runs it again.
    await plane.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="test")))
    assert await asyncio.wait_for(task, 15) == 0
    await until(lambda: not process.group_alive(pgid))
    assert not job_events(plane, PREPARATION, COMPLETED)
    assert JobTaskRecords(tmp_path / "node" / "volatile" / "jobtasks.jsonl").jobs(PREPARATION) == []


async def test_deleting_the_job_removes_its_preparation_and_release(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    jobs = tmp_path / "node" / "workitems"
    await plane.send(start_tasks(1, assignment("a", "true", job_preparation=prep("true"))))
    await plane.wait_event("a", COMPLETED)
    await plane.send(release(2, "true"))
    await wait_job_events(plane, RELEASE, COMPLETED)
    assert (jobs / "j1/job-1/jobpreparation/wd").is_dir() and (jobs / "j1/job-1/jobrelease/wd").is_dir()
    await plane.send(agent_pb2.ServerMessage(delete_task_files=agent_pb2.DeleteTaskFiles(command_id=3, job_id="j1")))
    await until(lambda: not (jobs / "j1").exists())
    await until(lambda: not agent.runner.job_tasks.released_jobs())
    assert agent.runner.job_tasks.prepared_jobs() == []
    records = JobTaskRecords(tmp_path / "node" / "volatile" / "jobtasks.jsonl")
    assert records.jobs(PREPARATION) == [] and records.jobs(RELEASE) == []


# ---- pieces ----------------------------------------------------------------------------------------


def test_job_task_records(tmp_path: Path) -> None:
    path = tmp_path / "jobtasks.jsonl"
    records = JobTaskRecords(path, compact_after=3)
    ok = agent_pb2.TaskEvent(
        event_id=9,
        attempt=agent_pb2.AttemptRef(job_id="j1", task_id="jobpreparation", attempt=1),
        kind=COMPLETED,
        job_task=PREPARATION,
        result=SUCCESS,
        exit_code=0,
        task_root_directory="/r/workitems/j1/job-1/jobpreparation",
    )
    records.put("j1", PREPARATION, ok)
    bad = agent_pb2.TaskEvent()
    bad.CopyFrom(ok)
    bad.attempt.job_id, bad.result, bad.exit_code = "j2", FAILURE, 3
    records.put("j2", PREPARATION, bad)
    records.put("j2", RELEASE, bad)
    records.forget("j3")  # nothing to forget: nothing written
    records.close()
    with open(path, "a") as f:
        f.write('{"j": "torn", "k": "prep')  # a torn last line is skipped

    again = JobTaskRecords(path, compact_after=3)
    assert again.jobs(PREPARATION, succeeded=True) == ["j1"]
    assert again.jobs(PREPARATION) == ["j1", "j2"] and again.jobs(RELEASE) == ["j2"]
    got = again.get("j1", PREPARATION)
    assert got is not None and got.exit_code == 0 and got.HasField("exit_code") and got.event_id == 0
    assert got.task_root_directory == ok.task_root_directory
    again.forget("j2")
    for _ in range(5):  # compaction keeps only what lives
        again.put("j1", PREPARATION, ok)
    again.close()
    third = JobTaskRecords(path)
    assert third.jobs(PREPARATION) == ["j1"] and third.jobs(RELEASE) == []
    assert len(path.read_text().splitlines()) <= 4
    third.close()


def test_process_keys() -> None:
    assert process_key("j1", PREPARATION) == "j1/preparation" and process_key("j1", RELEASE) == "j1/release"
    assert is_process_key("j1/preparation") and is_process_key("j1/release")
    assert not is_process_key("j1/t/1") and not is_process_key("startup") and not is_process_key("/release")


def test_outbox_tells_a_job_task_from_a_task_of_the_same_name() -> None:
    box = Outbox()
    ref = agent_pb2.AttemptRef(job_id="j", task_id="x", attempt=1)
    box.add(agent_pb2.TaskEvent(attempt=ref, kind=RUNNING, job_task=PREPARATION))
    box.add(agent_pb2.TaskEvent(attempt=ref, kind=COMPLETED))
    # The task's COMPLETED does not fold the preparation's unsent RUNNING away.
    assert [(e.kind, e.job_task) for e in box.pending()] == [(RUNNING, PREPARATION), (COMPLETED, 0)]
