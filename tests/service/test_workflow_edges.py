"""Workflow edge cases found by a review: each once left a task or a job stuck, or ended a job wrongly."""

from __future__ import annotations

import asyncio

from shoal.agent.v1 import agent_pb2 as A
from shoal.v1 import job_pb2 as J
from shoal.v1 import pool_pb2
from shoal.v1 import task_pb2 as T
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_dependencies import add, get, task


async def pool(server, stubs, nodes: int, slots: int = 1) -> list[ScriptedAgent]:  # type: ignore[no-untyped-def]
    """A `join` pool of `nodes` scripted agents of `slots` slots each."""
    p = pool_pb2.Pool(id="p", target_nodes=nodes, provider="join", task_slots_per_node=slots)
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=p))
    agents = []
    for i in range(nodes):
        a = ScriptedAgent(server, "p", f"127.0.3.{i + 1}")
        await a.connect()
        agents.append(a)
    return agents


async def first_start(agents: list[ScriptedAgent]):  # type: ignore[no-untyped-def]
    """The agent that gets the first StartTasks, and that message."""

    async def one(a: ScriptedAgent):  # type: ignore[no-untyped-def]
        return a, await a.expect("start_tasks", timeout=5)

    done, pending = await asyncio.wait(
        [asyncio.create_task(one(a)) for a in agents], return_when=asyncio.FIRST_COMPLETED
    )
    for p in pending:
        p.cancel()
    return done.pop().result()


async def test_a_fan_out_released_on_one_node_uses_the_idle_ones(server, stubs) -> None:
    agents = await pool(server, stubs, 2)
    await stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p", uses_task_dependencies=True)))
    await add(stubs, task("a"))
    x, msg = await first_start(agents)
    y = agents[1] if x is agents[0] else agents[0]
    await add(stubs, *[task(f"b{i}", "a") for i in range(4)])
    await x.event(msg.start_tasks.tasks[0].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    got_x = await x.expect("start_tasks", timeout=3)
    got_y = await y.expect("start_tasks", timeout=3)  # the idle node gets dependents too
    assert got_x.start_tasks.tasks and got_y.start_tasks.tasks


async def test_with_fail_a_dependent_added_after_its_parent_failed_fails(server, stubs) -> None:
    agents = await pool(server, stubs, 1)
    await stubs.jobs.CreateJob(
        J.CreateJobRequest(
            job=J.Job(
                id="j", pool_id="p", uses_task_dependencies=True, on_dependency_failure=J.ON_DEPENDENCY_FAILURE_FAIL
            )
        )
    )
    await add(stubs, task("a"))
    msg = await agents[0].expect("start_tasks")
    await agents[0].event(msg.start_tasks.tasks[0].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=1)
    async with asyncio.timeout(5):
        while (await get(stubs, "a")).state != T.TASK_STATE_COMPLETED:
            await asyncio.sleep(0.02)
    await add(stubs, task("b", "a"))
    await asyncio.sleep(0.3)
    b = await get(stubs, "b")
    assert b.state == T.TASK_STATE_COMPLETED


async def test_tasks_ended_by_a_disable_take_no_job_action(server, stubs) -> None:
    agents = await pool(server, stubs, 1)
    await stubs.jobs.CreateJob(
        J.CreateJobRequest(
            job=J.Job(id="j", pool_id="p", on_task_failure=J.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION)
        )
    )
    await add(stubs, task("a"), task("b"))
    await agents[0].expect("start_tasks")
    job = await stubs.jobs.DisableJob(J.DisableJobRequest(name="jobs/j", disable_tasks=J.DISABLE_JOB_OPTION_TERMINATE))
    job = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))
    assert job.state == J.JOB_STATE_DISABLED


async def test_nothing_is_sent_ahead_to_an_exclusive_job_managers_node(server, stubs) -> None:
    agents = await pool(server, stubs, 2, slots=2)
    await stubs.jobs.CreateJob(
        J.CreateJobRequest(job=J.Job(id="j", pool_id="p", job_manager_task=J.JobManagerTask(command_line="sleep 1000")))
    )
    await asyncio.sleep(0.3)
    x = next(a for a in agents if not a.inbox.empty())
    x.inbox.get_nowait()
    y = agents[1] if x is agents[0] else agents[0]
    held_on_x = []
    for chunk in range(4):
        await add(stubs, *[task(f"t{chunk}-{i:02d}") for i in range(4)])
        for _ in range(3):
            try:
                m = await y.expect("start_tasks", timeout=1)
            except TimeoutError:
                break
            for a in m.start_tasks.tasks:
                await y.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
        await asyncio.sleep(0.1)
        while not x.inbox.empty():
            mx = x.inbox.get_nowait()
            held_on_x += [a.attempt.task_id for a in mx.start_tasks.tasks]
    assert not held_on_x


async def test_a_requeued_job_manager_goes_before_released_dependents(server, stubs) -> None:
    agents = await pool(server, stubs, 2, slots=1)
    await stubs.jobs.CreateJob(
        J.CreateJobRequest(
            job=J.Job(
                id="j",
                pool_id="p",
                uses_task_dependencies=True,
                job_manager_task=J.JobManagerTask(command_line="sleep 1000", run_exclusive=False),
            )
        )
    )
    await asyncio.sleep(0.3)
    x = next(a for a in agents if not a.inbox.empty())
    x.inbox.get_nowait()
    y = agents[1] if x is agents[0] else agents[0]
    await add(stubs, task("a"), *[task(f"d{i:03d}", "a") for i in range(100)])
    m = await y.expect("start_tasks", timeout=3)
    assert [t.attempt.task_id for t in m.start_tasks.tasks] == ["a"]
    await y.event(m.start_tasks.tasks[0].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    m = await y.expect("start_tasks", timeout=3)
    # X's agent comes back without the job manager: it is requeued and must be placed again.
    node_id = x.node_id
    await x.close()
    x2 = ScriptedAgent(server, "p", x.ip)
    await x2.connect(node_id)
    jm = await get(stubs, "jobmanager")
    assert jm.execution_info.requeue_count == 1
    m2 = await x2.expect("start_tasks", timeout=3)
    assert m2.start_tasks.tasks[0].attempt.task_id == "jobmanager"
