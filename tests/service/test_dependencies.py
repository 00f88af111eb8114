"""Task dependencies and exit options through the real in-process server, with a scripted agent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.server.app import ShoalServer
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_validation import details

A = agent_pb2
T = task_pb2
J = job_pb2
WAITING, BLOCKED, SATISFIED = T.DEPENDENCY_STATUS_WAITING, T.DEPENDENCY_STATUS_BLOCKED, T.DEPENDENCY_STATUS_SATISFIED


async def setup(server: ShoalServer, stubs: Stubs, *, slots: int = 1, **job: object) -> ScriptedAgent:
    """A `join` pool of one node (`slots` slots) driven by a scripted agent, and job `j` on it."""
    pool = pool_pb2.Pool(id="p", target_nodes=1, provider="join", task_slots_per_node=slots)
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    agent = ScriptedAgent(server, "p", "127.0.3.1")
    await agent.connect()
    await stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p", **job)))  # type: ignore[arg-type]
    return agent


def task(tid: str, *after: str, ranges: tuple[tuple[int, int], ...] = (), **kw: object) -> T.TaskSpec:
    spec = T.TaskSpec(id=tid, command_line="true", **kw)  # type: ignore[arg-type]
    if after or ranges:
        spec.depends_on.task_ids.extend(after)
        for start, end in ranges:
            spec.depends_on.task_id_ranges.add(start=start, end=end)
    return spec


async def add(stubs: Stubs, *specs: T.TaskSpec) -> None:
    resp = await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=list(specs)))
    assert all(r.status == T.ADD_TASK_STATUS_SUCCESS for r in resp.results), resp


async def get(stubs: Stubs, tid: str) -> T.Task:
    return await stubs.tasks.GetTask(T.GetTaskRequest(name=f"jobs/j/tasks/{tid}"))


async def started(agent: ScriptedAgent) -> list[agent_pb2.TaskAssignment]:
    return list((await agent.expect("start_tasks")).start_tasks.tasks)


async def run(agent: ScriptedAgent, exit_code: int = 0) -> str:
    """Run the tasks of the next StartTasks the agent is given to their end with `exit_code`; their ids,
    joined with commas (more than one once the job's tasks are known to be short: work is sent ahead)."""
    ids = []
    for a in await started(agent):
        await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=exit_code)
        ids.append(a.attempt.task_id)
    return ",".join(ids)


async def wait_for(stubs: Stubs, tid: str, check) -> T.Task:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(10):
        while not check(t := await get(stubs, tid)):
            await asyncio.sleep(0.01)
    return t


async def counts(stubs: Stubs) -> J.TaskCounts:
    return await stubs.jobs.GetJobTaskCounts(J.GetJobTaskCountsRequest(name="jobs/j"))


async def test_dependencies_need_the_job_to_use_them_and_nothing_is_added(server, stubs) -> None:
    await setup(server, stubs)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[task("a"), task("b", "a")]))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reason, violations = details(e.value)
    assert reason == "TASK_DEPENDENCIES_NOT_ENABLED" and violations[0][0] == "tasks[1].depends_on"
    assert (await counts(stubs)).active == 0


async def test_cycles_are_refused_within_a_request_and_with_tasks_already_there(server, stubs) -> None:
    await setup(server, stubs, uses_task_dependencies=True)
    for specs in ([task("a", "b"), task("b", "a")], [task("s", "s")], [task("x", ranges=((1, 3),)), task("2", "x")]):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=specs))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(e.value)[0] == "TASK_DEPENDENCY_CYCLE"
    assert (await counts(stubs)).active == 0
    await add(stubs, task("c", "d"))  # d does not exist yet: c waits for it
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await add(stubs, task("d", "c"))
    assert details(e.value)[0] == "TASK_DEPENDENCY_CYCLE"
    assert (await counts(stubs)).active == 1


async def test_a_dependent_waits_unseen_by_the_scheduler_then_runs_when_released(server, stubs) -> None:
    agent = await setup(server, stubs, uses_task_dependencies=True)
    await add(stubs, task("b", "a"), task("c", "b"))
    b = await get(stubs, "b")
    assert b.dependency_state.status == WAITING and b.dependency_state.task_id == "a"
    assert b.dependency_state.reason == "NotAdded"
    c = await counts(stubs)
    assert (c.active, c.waiting_on_dependencies, c.blocked) == (2, 2, 0)
    await add(stubs, task("a"))
    assert await run(agent) == "a"
    assert await run(agent) == "b"
    assert await run(agent) == "c"
    await wait_for(stubs, "c", lambda t: t.state == T.TASK_STATE_COMPLETED)
    c = await counts(stubs)
    assert (c.succeeded, c.waiting_on_dependencies, c.blocked) == (3, 0, 0)


async def test_ranges_match_integer_ids_and_leading_zeros(server, stubs) -> None:
    agent = await setup(server, stubs, uses_task_dependencies=True)
    await add(stubs, task("sum", ranges=((1, 3),)), task("01"), task("2"), task("0003"), task("4x"))
    messages: list[set[str]] = []
    while not any("sum" in m for m in messages):
        messages.append(set((await run(agent)).split(",")))
    # "sum" came after its parents (01, 2, 0003 are 1..3) had been run to their end; "4x" is no integer.
    *before, last = messages
    assert "sum" in last and {"01", "2", "0003"} <= set().union(*before)


async def test_a_failed_parent_blocks_until_reactivated_and_successful(server, stubs) -> None:
    agent = await setup(server, stubs, uses_task_dependencies=True)
    await add(stubs, task("a"), task("b", "a"))
    assert await run(agent, exit_code=1) == "a"
    b = await wait_for(stubs, "b", lambda t: t.dependency_state.status == BLOCKED)
    assert (b.dependency_state.task_id, b.dependency_state.reason) == ("a", "TaskFailed")
    assert (await counts(stubs)).blocked == 1
    await stubs.tasks.ReactivateTask(T.ReactivateTaskRequest(name="jobs/j/tasks/a"))
    assert (await get(stubs, "b")).dependency_state.status == WAITING
    assert await run(agent) == "a"
    assert await run(agent) == "b"


async def test_with_fail_the_dependents_fail_at_once_transitively_and_the_job_can_end(server, stubs) -> None:
    agent = await setup(
        server,
        stubs,
        uses_task_dependencies=True,
        on_dependency_failure=J.ON_DEPENDENCY_FAILURE_FAIL,
        on_all_tasks_complete=J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB,
    )
    await add(stubs, task("a"), task("b", "a"), task("c", "b"), task("d", "c"))
    assert await run(agent, exit_code=2) == "a"
    for tid in "bcd":
        t = await wait_for(stubs, tid, lambda t: t.state == T.TASK_STATE_COMPLETED)
        assert t.execution_info.failure_info.code == "DependencyFailed"
        assert not t.execution_info.HasField("exit_code")
    job = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))
    assert job.state == J.JOB_STATE_COMPLETED and job.execution_info.terminate_reason == "AllTasksComplete"


async def test_exit_options_satisfy_a_failure_and_terminate_the_job(server, stubs) -> None:
    agent = await setup(
        server,
        stubs,
        slots=2,
        uses_task_dependencies=True,
        on_task_failure=J.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION,
    )
    satisfy_3 = T.ExitConditions(
        exit_codes=[
            T.ExitCodeMapping(
                code=3,
                exit_options=T.ExitOptions(job_action=T.JOB_ACTION_NONE, dependency_action=T.DEPENDENCY_ACTION_SATISFY),
            )
        ]
    )
    await add(stubs, task("a", exit_conditions=satisfy_3), task("b", "a"))
    assert await run(agent, exit_code=3) == "a"
    # The failure satisfied b, and the job goes on (job action NONE).
    (b,) = await started(agent)
    assert b.attempt.task_id == "b"
    await add(stubs, task("long"))
    (long,) = await started(agent)
    await agent.event(b.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=7)  # default: TERMINATE
    job = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))
    async with asyncio.timeout(10):
        while job.state != J.JOB_STATE_COMPLETED:
            await asyncio.sleep(0.01)
            job = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))
    assert job.execution_info.terminate_reason == "TaskFailed"
    kill = await agent.expect("kill_tasks")
    assert [r.task_id for r in kill.kill_tasks.attempts] == [long.attempt.task_id]


async def test_a_job_action_on_a_job_that_does_not_perform_them_is_refused(server, stubs) -> None:
    await setup(server, stubs)
    cond = T.ExitConditions(default=T.ExitOptions(job_action=T.JOB_ACTION_DISABLE))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await add(stubs, task("a", exit_conditions=cond))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(e.value)[1][0][0] == "tasks[0].exit_conditions.default.job_action"


async def test_a_deleted_parent_blocks_visibly_and_after_a_restart(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            agent = await setup(server, stubs, uses_task_dependencies=True)
            await add(stubs, task("a"), task("gone"), task("b", "a", "gone"))
            (a,) = await started(agent)
            await stubs.tasks.DeleteTask(T.DeleteTaskRequest(name="jobs/j/tasks/gone"))
            await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)
            b = await wait_for(stubs, "b", lambda t: t.dependency_state.unsatisfied == 1)
            assert (b.dependency_state.status, b.dependency_state.task_id) == (BLOCKED, "gone")
            assert b.dependency_state.reason == "TaskDeleted"
            await agent.close()
    finally:
        await server.stop(stop_agents=True)
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            b = await get(stubs, "b")
            assert (b.dependency_state.status, b.dependency_state.task_id) == (BLOCKED, "gone")
            assert b.dependency_state.reason == "TaskDeleted" and b.dependency_state.unsatisfied == 1
            assert (await counts(stubs)).blocked == 1
            # Added again, it is waited for again, and its success releases b.
            await add(stubs, task("gone"))
            assert (await get(stubs, "b")).dependency_state.status == WAITING
    finally:
        await server.stop(stop_agents=True)


async def test_a_task_needing_more_slots_than_a_node_has_is_refused(server, stubs) -> None:
    await setup(server, stubs, slots=2)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await add(stubs, task("ok", required_slots=2), task("big", required_slots=3))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reason, violations = details(e.value)
    assert reason == "TASK_CANNOT_FIT" and violations[0][0] == "tasks[1].required_slots"
    assert (await counts(stubs)).active == 0
