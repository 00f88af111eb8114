"""The job manager task through the real in-process server, with a scripted agent."""

from __future__ import annotations

import asyncio

from shoal.agent.v1 import agent_pb2
from shoal.v1 import job_pb2, task_pb2
from tests.service.test_dependencies import add, counts, get, setup, started, task

A = agent_pb2
T = task_pb2
J = job_pb2


async def job(stubs) -> J.Job:  # type: ignore[no-untyped-def]
    return await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))


async def test_it_is_created_with_the_job_goes_first_alone_and_ends_the_job(server, stubs) -> None:
    jm = J.JobManagerTask(command_line="python -m adder", environment_settings=[{"name": "N", "value": "3"}])
    agent = await setup(server, stubs, slots=2, job_manager_task=jm)
    t = await get(stubs, "jobmanager")
    assert t.job_manager and t.spec.command_line == "python -m adder" and t.spec.required_slots == 2
    (a,) = await started(agent)
    assert a.attempt.task_id == "jobmanager" and a.required_slots == 2  # (run_exclusive: the whole node)
    assert [(e.name, e.value) for e in a.environment_settings] == [("N", "3")]
    await agent.event(a.attempt, A.TASK_EVENT_KIND_RUNNING)
    # What it adds waits for room: the node is its own.
    await add(stubs, task("w1"), task("w2"))
    await asyncio.sleep(0.05)
    assert (await counts(stubs)).running == 1
    await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)
    async with asyncio.timeout(10):
        while (j := await job(stubs)).state != J.JOB_STATE_COMPLETED:
            await asyncio.sleep(0.01)
    assert j.execution_info.terminate_reason == "JMComplete"


async def test_it_goes_before_tasks_added_with_the_job_and_first_again_when_requeued(server, stubs) -> None:
    jm = J.JobManagerTask(id="boss", command_line="true", run_exclusive=False, kill_job_on_completion=False)
    agent = await setup(server, stubs, slots=1, job_manager_task=jm)
    await add(stubs, task("a"), task("b"))
    (first,) = await started(agent)
    assert first.attempt.task_id == "boss" and first.required_slots == 1
    # Disabling requeues it; enabled again, it goes first again.
    await stubs.jobs.DisableJob(J.DisableJobRequest(name="jobs/j"))
    await agent.expect("kill_tasks")
    await stubs.jobs.EnableJob(J.EnableJobRequest(name="jobs/j"))
    assigned = await started(agent)
    assert assigned[0].attempt.task_id == "boss" and assigned[0].attempt.attempt == 2
    await agent.event(assigned[0].attempt, A.TASK_EVENT_KIND_COMPLETED)
    (nxt,) = await started(agent)
    assert nxt.attempt.task_id == "a"
    # Not killing the job: it goes on.
    assert (await job(stubs)).state == J.JOB_STATE_ACTIVE


async def test_its_end_says_why_the_job_ended_even_when_it_was_the_last_task(server, stubs) -> None:
    jm = J.JobManagerTask(command_line="true")
    agent = await setup(
        server, stubs, slots=1, job_manager_task=jm, on_all_tasks_complete=J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
    )
    (a,) = await started(agent)
    await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)
    async with asyncio.timeout(10):
        while (j := await job(stubs)).state != J.JOB_STATE_COMPLETED:
            await asyncio.sleep(0.01)
    assert j.execution_info.terminate_reason == "JMComplete"
