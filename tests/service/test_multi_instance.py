"""Multi-instance tasks in the control plane, driven by scripted agents over the real agent protocol."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_validation import details

A = agent_pb2


def mi_task(task_id: str, n: int, retries: int = 0) -> task_pb2.TaskSpec:
    return task_pb2.TaskSpec(
        id=task_id,
        command_line="mpiexec -n 2 app",
        multi_instance_settings=task_pb2.MultiInstanceSettings(
            number_of_instances=n, coordination_command_line="/bin/true"
        ),
        constraints=common_pb2.TaskConstraints(max_task_retry_count=retries),
    )


async def join_pool(server, stubs, n: int, inter_node: bool = True) -> list[ScriptedAgent]:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(id="mpi", target_nodes=n, provider="join", enable_inter_node_communication=inter_node)
        )
    )
    agents = [ScriptedAgent(server, "mpi", f"127.0.2.{i + 1}") for i in range(n)]
    for a in agents:
        await a.connect()
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="mpi")))
    return agents


async def get(stubs, task_id: str) -> task_pb2.Task:
    return await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name=f"jobs/j/tasks/{task_id}"))


async def wait_state(stubs, task_id: str, state: int) -> task_pb2.Task:
    async with asyncio.timeout(10):
        while (t := await get(stubs, task_id)).state != state:
            await asyncio.sleep(0.01)
    return t


async def test_rejected_without_inter_node_communication_or_when_too_big(server, stubs) -> None:
    agents = await join_pool(server, stubs, 2, inter_node=False)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 2)]))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reason, violations = details(e.value)
    assert reason == "INTER_NODE_COMMUNICATION_NOT_ENABLED"
    assert violations[0][0] == "tasks[0].multi_instance_settings"
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(id="small", target_nodes=2, provider="join", enable_inter_node_communication=True)
        )
    )
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="k", pool_id="small")))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/k", tasks=[mi_task("m", 3)]))
    assert details(e.value)[0] == "MULTI_INSTANCE_TASK_CANNOT_RUN"
    assert details(e.value)[1][0][0] == "tasks[0].multi_instance_settings.number_of_instances"
    for a in agents:
        await a.close()


async def test_gang_coordinates_then_primary_runs_and_its_end_ends_all(server, stubs) -> None:
    agents = await join_pool(server, stubs, 3)
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 3)]))
    got = {}
    for a in agents:
        (assignment,) = (await a.expect("start_tasks")).start_tasks.tasks
        got[assignment.multi_instance.instance_index] = (a, assignment)
    assert sorted(got) == [0, 1, 2]
    primary, pa = got[0]
    mi = pa.multi_instance
    assert mi.host_list[0] == primary.ip and len(set(mi.host_list)) == 3
    assert mi.task_shared_dir.endswith("/workitems/j/job-1/m")
    assert list(got[1][1].resource_files) == [] and got[1][1].attempt.instance == 1
    for a, asg in got.values():
        await a.event(asg.attempt, A.TASK_EVENT_KIND_RUNNING)
    t = await wait_state(stubs, "m", task_pb2.TASK_STATE_RUNNING)
    for a, asg in got.values():
        await a.event(asg.attempt, A.TASK_EVENT_KIND_COORDINATED)
    run = await primary.expect("run_application")
    assert run.run_application.attempt.task_id == "m"
    await primary.event(pa.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    for i in (1, 2):
        kill = await got[i][0].expect("kill_tasks")
        assert [(k.task_id, k.instance) for k in kill.kill_tasks.attempts] == [("m", i)]
    t = await wait_state(stubs, "m", task_pb2.TASK_STATE_COMPLETED)
    assert t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    subs = (await stubs.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/m"))).subtasks
    assert [s.id for s in subs] == [0, 1, 2]
    assert all(s.state == task_pb2.SUBTASK_STATE_COMPLETED for s in subs)
    assert {s.node_info.node_id for s in subs} == {a.node_id for a in agents}
    for a in agents:
        await a.close()


async def test_failed_coordination_fails_the_whole_task_and_retries_it_whole(server, stubs) -> None:
    agents = await join_pool(server, stubs, 2)
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 2, retries=1)]))
    first = {}
    for a in agents:
        (asg,) = (await a.expect("start_tasks")).start_tasks.tasks
        first[asg.multi_instance.instance_index] = (a, asg)
    sub_agent, sub_asg = first[1]
    await sub_agent.event(sub_asg.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=5)
    # The primary is told to stop; the task goes back to the queue as a whole and gets a fresh gang.
    kill = await first[0][0].expect("kill_tasks")
    assert kill.kill_tasks.attempts[0].attempt == 1
    second = {}
    for a in agents:
        (asg,) = (await a.expect("start_tasks")).start_tasks.tasks
        second[asg.multi_instance.instance_index] = (a, asg)
        assert asg.attempt.attempt == 2
    t = await get(stubs, "m")
    assert t.execution_info.retry_count == 1
    # A late report from the first attempt is stale and changes nothing.
    await first[0][0].event(first[0][1].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    await second[1][0].event(second[1][1].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=9)
    t = await wait_state(stubs, "m", task_pb2.TASK_STATE_COMPLETED)
    assert t.execution_info.exit_code == 9 and t.execution_info.retry_count == 1
    assert "instance 1" in t.execution_info.failure_info.message
    assert server.cp.stats.stale_reports >= 1
    for a in agents:
        await a.close()


async def test_gang_is_not_starved_by_a_stream_of_ordinary_tasks(server, stubs) -> None:
    agents = await join_pool(server, stubs, 2)
    by_node = {a.node_id: a for a in agents}
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/j", tasks=[task_pb2.TaskSpec(id="o1", command_line="x")])
    )
    o1 = await get(stubs, "o1")
    holder = by_node[o1.node_info.node_id]
    (asg,) = (await holder.expect("start_tasks")).start_tasks.tasks
    # The gang arrives while o1 holds one node, followed by more ordinary work.
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(
            parent="jobs/j",
            tasks=[mi_task("m", 2)] + [task_pb2.TaskSpec(id=f"o{i}", command_line="x") for i in range(2, 6)],
        )
    )
    await asyncio.sleep(0.2)
    t = await get(stubs, "m")
    assert t.state == task_pb2.TASK_STATE_ACTIVE
    # The free node was held for the gang: no ordinary task took it.
    assert (await get(stubs, "o2")).state == task_pb2.TASK_STATE_ACTIVE
    await holder.event(asg.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    for a in agents:
        (g,) = (await a.expect("start_tasks")).start_tasks.tasks
        assert g.attempt.task_id == "m"
    for a in agents:
        await a.close()


async def test_backfill_uses_a_held_node_only_for_work_that_ends_in_time(server, stubs) -> None:
    from google.protobuf import duration_pb2

    def limited(task_id: str, seconds: int | None) -> task_pb2.TaskSpec:
        c = common_pb2.TaskConstraints()
        if seconds is not None:
            c.max_wall_clock_time.CopyFrom(duration_pb2.Duration(seconds=seconds))
        return task_pb2.TaskSpec(id=task_id, command_line="x", constraints=c)

    agents = await join_pool(server, stubs, 2)
    by_node = {a.node_id: a for a in agents}
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=[limited("busy", 600)]))
    busy = await get(stubs, "busy")
    holder = by_node[busy.node_info.node_id]
    (asg,) = (await holder.expect("start_tasks")).start_tasks.tasks
    await holder.event(asg.attempt, A.TASK_EVENT_KIND_RUNNING)
    await wait_state(stubs, "busy", task_pb2.TASK_STATE_RUNNING)
    # The gang must wait for the busy node (up to 600 s by its wall clock); the other node is held.
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(
            parent="jobs/j",
            tasks=[mi_task("m", 2), limited("unbounded", None), limited("long", 3600), limited("short", 5)],
        )
    )
    free_agent = next(a for a in agents if a is not holder)
    (bf,) = (await free_agent.expect("start_tasks")).start_tasks.tasks
    assert bf.attempt.task_id == "short"
    assert (await get(stubs, "unbounded")).state == task_pb2.TASK_STATE_ACTIVE
    assert (await get(stubs, "long")).state == task_pb2.TASK_STATE_ACTIVE
    for a in agents:
        await a.close()
