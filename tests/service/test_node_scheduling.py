"""Disabling and enabling a node's scheduling on a real server, with scripted agents: each option's fate for
the running task, OFFLINE once nothing runs, no new task while disabled, refusals, counts and a restart."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import refused

pytestmark = pytest.mark.timeout(60)

A = agent_pb2
P = pool_pb2
REQUEUE = P.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE
TERMINATE = P.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE
TASK_COMPLETION = P.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION


async def _pool(server, stubs: Stubs, nodes: int = 1) -> list[ScriptedAgent]:
    await stubs.pools.CreatePool(
        P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=nodes, task_slots_per_node=1, provider="join"))
    )
    agents = [ScriptedAgent(server, "p", f"127.0.2.{60 + i}") for i in range(nodes)]
    for a in agents:
        await a.connect()
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    return agents


async def _add(stubs: Stubs, *ids: str) -> None:
    specs = [task_pb2.TaskSpec(id=i, command_line="/bin/true") for i in ids]
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=specs))


async def _started(agent: ScriptedAgent) -> agent_pb2.AttemptRef:
    msg = await agent.expect("start_tasks")
    ref = msg.start_tasks.tasks[0].attempt
    await agent.event(ref, A.TASK_EVENT_KIND_RUNNING)
    return ref


async def _node(stubs: Stubs, agent: ScriptedAgent) -> P.Node:
    return await stubs.pools.GetNode(P.GetNodeRequest(name=f"pools/p/nodes/{agent.node_id}"))


async def _task(stubs: Stubs, tid: str) -> task_pb2.Task:
    return await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name=f"jobs/j/tasks/{tid}"))


async def _wait_state(stubs: Stubs, tid: str, state: int) -> task_pb2.Task:
    async with asyncio.timeout(20):
        while (t := await _task(stubs, tid)).state != state:
            await asyncio.sleep(0.02)
    return t


async def test_requeue_moves_the_task_and_the_node_goes_offline(server, stubs) -> None:
    a, b = await _pool(server, stubs, 2)
    node_a = await _node(stubs, a)
    assert node_a.scheduling_state in (P.SCHEDULING_STATE_UNSPECIFIED, P.SCHEDULING_STATE_ENABLED)
    assert node_a.is_dedicated and node_a.allocation_time.seconds and node_a.last_boot_time.seconds
    await _add(stubs, "t0")
    # Whichever node took it is the one disabled.
    busy, other = await _first_start(a, b)
    node = await stubs.pools.DisableNodeScheduling(
        P.DisableNodeSchedulingRequest(name=f"pools/p/nodes/{busy.node_id}", option=REQUEUE)
    )
    assert node.scheduling_state == P.SCHEDULING_STATE_DISABLED and node.state == P.NODE_STATE_OFFLINE
    assert node.running_tasks_count == 0
    kill = await busy.expect("kill_tasks")
    assert kill.kill_tasks.attempts[0].task_id == "t0"
    # The task runs again on the other node, as a requeue (not a retry).
    again = await _started(other)
    assert again.task_id == "t0"
    t0 = await _task(stubs, "t0")
    assert t0.execution_info.retry_count == 0 and t0.execution_info.requeue_count >= 1
    # Nothing new lands on the disabled node, however many tasks wait.
    await _add(stubs, "t1", "t2")
    await other.event(again, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.01)
    nxt = await _started(other)
    with pytest.raises(TimeoutError):
        await busy.expect("start_tasks", timeout=0.3)
    counts = (await stubs.pools.ListPoolNodeCounts(P.ListPoolNodeCountsRequest())).pools
    assert [(c.pool_id, c.dedicated.offline, c.dedicated.running, c.dedicated.total) for c in counts] == [
        ("p", 1, 1, 2)
    ]
    # Enabled again: IDLE, and it takes the waiting task.
    node = await stubs.pools.EnableNodeScheduling(P.EnableNodeSchedulingRequest(name=f"pools/p/nodes/{busy.node_id}"))
    assert node.scheduling_state == P.SCHEDULING_STATE_ENABLED and node.state == P.NODE_STATE_IDLE
    taken = await _started(busy)
    assert {taken.task_id, nxt.task_id} == {"t1", "t2"}
    for ag in (a, b):
        await ag.close()


async def _first_start(a: ScriptedAgent, b: ScriptedAgent) -> tuple[ScriptedAgent, ScriptedAgent]:
    """The agent that was given the first task (marked running), and the other one."""
    ta = asyncio.ensure_future(a.expect("start_tasks", timeout=10))
    tb = asyncio.ensure_future(b.expect("start_tasks", timeout=10))
    done, pending = await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    winner, loser = (a, b) if ta in done else (b, a)
    msg = (ta if ta in done else tb).result()
    await winner.event(msg.start_tasks.tasks[0].attempt, A.TASK_EVENT_KIND_RUNNING)
    return winner, loser


async def test_terminate_and_task_completion(server, stubs) -> None:
    (a,) = await _pool(server, stubs, 1)
    name = f"pools/p/nodes/{a.node_id}"
    await _add(stubs, "t0")
    await _started(a)
    node = await stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=name, option=TERMINATE))
    assert node.state == P.NODE_STATE_OFFLINE
    await a.expect("kill_tasks")
    t0 = await _wait_state(stubs, "t0", task_pb2.TASK_STATE_COMPLETED)
    assert t0.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_FAILURE
    # Refused from the state it is in, and for a node that does not exist.
    await refused(
        stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=name)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE",
    )
    await refused(
        stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=name, option=9)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_OPTION",
    )
    await refused(
        stubs.pools.EnableNodeScheduling(P.EnableNodeSchedulingRequest(name="pools/p/nodes/nope")),
        grpc.StatusCode.NOT_FOUND,
        "NODE_NOT_FOUND",
    )
    await stubs.pools.EnableNodeScheduling(P.EnableNodeSchedulingRequest(name=name))
    await refused(
        stubs.pools.EnableNodeScheduling(P.EnableNodeSchedulingRequest(name=name)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE",
    )
    # TASK_COMPLETION: the task finishes; the node stays RUNNING, disabled, then goes OFFLINE.
    await _add(stubs, "t1")
    ref = await _started(a)
    node = await stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=name, option=TASK_COMPLETION))
    assert node.state == P.NODE_STATE_RUNNING and node.scheduling_state == P.SCHEDULING_STATE_DISABLED
    await _add(stubs, "t2")
    await a.event(ref, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.01)
    t1 = await _wait_state(stubs, "t1", task_pb2.TASK_STATE_COMPLETED)
    assert t1.execution_info.exit_code == 0
    async with asyncio.timeout(10):
        while (await _node(stubs, a)).state != P.NODE_STATE_OFFLINE:
            await asyncio.sleep(0.02)
    assert (await _task(stubs, "t2")).state == task_pb2.TASK_STATE_ACTIVE
    await a.close()


async def test_a_disabled_node_stays_disabled_over_a_restart(tmp_path) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            (a,) = await _pool(server, stubs, 1)
            node_id = a.node_id
            await stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=f"pools/p/nodes/{node_id}"))
            await a.close()
    finally:
        await server.stop(stop_agents=True)
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            agent = ScriptedAgent(server, "p", "127.0.2.60")
            await agent.connect(node_id)
            node = await stubs.pools.GetNode(P.GetNodeRequest(name=f"pools/p/nodes/{node_id}"))
            assert node.scheduling_state == P.SCHEDULING_STATE_DISABLED and node.state == P.NODE_STATE_OFFLINE
            await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j2", pool_id="p")))
            await stubs.tasks.AddTasks(
                task_pb2.AddTasksRequest(parent="jobs/j2", tasks=[task_pb2.TaskSpec(id="x", command_line="/bin/true")])
            )
            with pytest.raises(TimeoutError):
                await agent.expect("start_tasks", timeout=0.5)
            await agent.close()
    finally:
        await server.stop(stop_agents=True)
