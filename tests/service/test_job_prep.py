"""Job preparation and release tasks through the real in-process server, with scripted agents."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.server.app import ShoalServer
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_dependencies import add, started, task

A = agent_pb2
T = task_pb2
J = job_pb2
PREP, RELEASE = A.JOB_TASK_KIND_PREPARATION, A.JOB_TASK_KIND_RELEASE


async def two_nodes(server: ShoalServer, stubs: Stubs, **job: object) -> list[ScriptedAgent]:
    """A `join` pool of two one-slot nodes and job `j` on it."""
    pool = pool_pb2.Pool(id="p", target_nodes=2, provider="join")
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    agents = [ScriptedAgent(server, "p", f"127.0.4.{i + 1}") for i in range(2)]
    for a in agents:
        await a.connect()
    await stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p", **job)))  # type: ignore[arg-type]
    return agents


def prep_job() -> dict[str, object]:
    """A job's preparation and release tasks (and common environment), as CreateJob fields."""
    return {
        "job_preparation_task": J.JobPreparationTask(
            command_line="setup", environment_settings=[{"name": "P", "value": "1"}]
        ),
        "common_environment_settings": [{"name": "C", "value": "2"}],
        "job_release_task": J.JobReleaseTask(command_line="cleanup"),
    }


def prep_ref(job_id: str = "j", task_id: str = "jobpreparation") -> agent_pb2.AttemptRef:
    return A.AttemptRef(job_id=job_id, task_id=task_id, attempt=1)


async def statuses(stubs: Stubs) -> list[J.PreparationAndReleaseTaskStatus]:
    resp = await stubs.jobs.ListPreparationAndReleaseTaskStatus(
        J.ListPreparationAndReleaseTaskStatusRequest(name="jobs/j")
    )
    return list(resp.statuses)


async def job_state(stubs: Stubs) -> int:
    return (await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))).state


async def until(check, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def test_the_preparation_goes_with_each_assignment_and_its_runs_are_listed(server, stubs) -> None:
    agents = await two_nodes(server, stubs, **prep_job())
    await add(stubs, task("a"))
    got = None
    async with asyncio.timeout(10):
        while got is None:
            for agent in agents:
                if not agent.inbox.empty():
                    msg = agent.inbox.get_nowait()
                    if msg.WhichOneof("body") == "start_tasks":
                        got = (agent, msg.start_tasks.tasks[0])
            await asyncio.sleep(0.01)
    agent, assignment = got
    prep = assignment.job_preparation
    assert (prep.job_id, prep.id, prep.command_line, prep.wait_for_success) == ("j", "jobpreparation", "setup", True)
    assert [(e.name, e.value) for e in prep.environment_settings] == [("C", "2"), ("P", "1")]
    await agent.event(prep_ref(), A.TASK_EVENT_KIND_RUNNING, job_task=PREP)
    await agent.event(prep_ref(), A.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=PREP)
    await agent.event(assignment.attempt, A.TASK_EVENT_KIND_COMPLETED)

    async def listed() -> bool:
        s = await statuses(stubs)
        return len(s) == 1 and s[0].job_preparation_task_execution_info.state == J.PREPARATION_TASK_STATE_COMPLETED

    await until(listed)
    (status,) = await statuses(stubs)
    info = status.job_preparation_task_execution_info
    assert status.node_id == agent.node_id and info.exit_code == 0
    assert info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS


async def test_a_node_where_the_preparation_failed_takes_no_more_of_the_job(server, stubs) -> None:
    agents = await two_nodes(server, stubs, **prep_job())
    await add(stubs, task("a"), task("b"))
    first = [await started(a) for a in agents]
    bad, good = agents
    (on_bad,) = first[0]
    await bad.event(prep_ref(), A.TASK_EVENT_KIND_COMPLETED, exit_code=1, job_task=PREP)
    # The attempt sent there comes back unrun; it runs elsewhere, its retries untouched.
    await bad.event(on_bad.attempt, A.TASK_EVENT_KIND_COMPLETED, failure="JobPreparationFailed")
    (on_good,) = first[1]
    await good.event(on_good.attempt, A.TASK_EVENT_KIND_COMPLETED)
    (again,) = await started(good)
    assert again.attempt.task_id == on_bad.attempt.task_id and again.attempt.attempt == 2
    t = await stubs.tasks.GetTask(T.GetTaskRequest(name=f"jobs/j/tasks/{again.attempt.task_id}"))
    assert t.execution_info.retry_count == 0 and t.execution_info.requeue_count == 1
    # The bad node stays free and gets nothing of the job.
    await asyncio.sleep(0.1)
    while not bad.inbox.empty():
        assert bad.inbox.get_nowait().WhichOneof("body") == "events_ack"


async def test_releases_run_where_the_preparation_ran_and_the_job_waits_for_them(server, stubs) -> None:
    agents = await two_nodes(server, stubs, **prep_job())
    await add(stubs, task("a"))
    runner = None
    async with asyncio.timeout(10):
        while runner is None:
            for agent in agents:
                if not agent.inbox.empty() and agent.inbox.get_nowait().WhichOneof("body") == "start_tasks":
                    runner = agent
            await asyncio.sleep(0.01)
    await runner.event(prep_ref(), A.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=PREP)
    terminated = await stubs.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/j"))
    assert terminated.state == J.JOB_STATE_TERMINATING
    await runner.expect("kill_tasks")  # (task "a", still running)
    release = (await runner.expect("run_job_release")).run_job_release.release
    assert (release.id, release.command_line, release.max_wall_clock_seconds) == ("jobrelease", "cleanup", 900.0)
    other = agents[1] if runner is agents[0] else agents[0]
    assert all(m.WhichOneof("body") != "run_job_release" for m in list(other.inbox._queue))  # type: ignore[attr-defined]
    await runner.event(prep_ref(task_id="jobrelease"), A.TASK_EVENT_KIND_RUNNING, job_task=RELEASE)
    assert await job_state(stubs) == J.JOB_STATE_TERMINATING
    await runner.event(prep_ref(task_id="jobrelease"), A.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=RELEASE)

    async def completed() -> bool:
        return await job_state(stubs) == J.JOB_STATE_COMPLETED

    await until(completed)
    (status,) = await statuses(stubs)
    assert status.job_release_task_execution_info.state == J.PREPARATION_TASK_STATE_COMPLETED


async def test_a_release_owed_is_asked_again_after_a_restart(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            pool = pool_pb2.Pool(id="p", target_nodes=1, provider="join")
            await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
            agent = ScriptedAgent(server, "p", "127.0.4.9")
            await agent.connect()
            await stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p", **prep_job())))  # type: ignore[arg-type]
            await add(stubs, task("a"))
            (a,) = await started(agent)
            await agent.event(prep_ref(), A.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=PREP)
            await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)

            async def a_completed() -> bool:
                t = await stubs.tasks.GetTask(T.GetTaskRequest(name="jobs/j/tasks/a"))
                return t.state == T.TASK_STATE_COMPLETED

            await until(a_completed)  # (else the terminate kills it first)
            await stubs.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/j"))
            await agent.expect("run_job_release")
            node_id = agent.node_id
            await agent.close()
    finally:
        await server.stop(stop_agents=True)
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            assert await job_state(stubs) == J.JOB_STATE_TERMINATING
            again = ScriptedAgent(server, "p", "127.0.4.9")
            await again.connect(node_id)
            await again.expect("run_job_release")
            await again.event(
                prep_ref(task_id="jobrelease"), A.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=RELEASE
            )

            async def completed() -> bool:
                return await job_state(stubs) == J.JOB_STATE_COMPLETED

            await until(completed)
            await again.close()
    finally:
        await server.stop(stop_agents=True)
