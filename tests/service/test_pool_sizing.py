"""Pool sizing as Batch has it: one resize at a time, and a leaving node counted until it has left."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.server.domain.ids import key as idkey
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_validation import details

A = agent_pb2
P = pool_pb2


async def get_pool(stubs) -> pool_pb2.Pool:
    return await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))


async def wait_pool(stubs, allocation: int, current: int) -> pool_pb2.Pool:
    async with asyncio.timeout(10):
        while True:
            pool = await get_pool(stubs)
            if (pool.allocation_state, pool.current_nodes) == (allocation, current):
                return pool
            await asyncio.sleep(0.01)


async def test_a_node_leaving_with_a_running_task_counts_until_it_has_left(server, stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join")))
    agent = ScriptedAgent(server, "p", "127.0.2.40")
    await agent.connect()
    await wait_pool(stubs, P.ALLOCATION_STATE_STEADY, 1)
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/j", tasks=[task_pb2.TaskSpec(id="t", command_line="sleep 10")])
    )
    (asg,) = (await agent.expect("start_tasks")).start_tasks.tasks
    await agent.event(asg.attempt, A.TASK_EVENT_KIND_RUNNING)

    resized = await stubs.pools.ResizePool(
        P.ResizePoolRequest(
            name="pools/p", target_nodes=0, node_deallocation_option=P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION
        )
    )
    # The node leaves once its task is done: until then it is in the pool, running it.
    assert resized.allocation_state == P.ALLOCATION_STATE_RESIZING and resized.current_nodes == 1
    await asyncio.sleep(0.05)
    pool = await get_pool(stubs)
    assert (pool.target_nodes, pool.current_nodes, pool.allocation_state) == (0, 1, P.ALLOCATION_STATE_RESIZING)
    (node,) = (await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes
    assert node.state == P.NODE_STATE_LEAVING_POOL and node.running_task_slots == 1

    # One resize at a time, as in Batch.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=2))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(refused.value)[0] == "POOL_RESIZING"
    assert (await get_pool(stubs)).target_nodes == 0

    await agent.event(asg.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    await agent.expect("shutdown")
    assert (await get_pool(stubs)).current_nodes == 1
    # Its agent has exited (what a provider reports): now it is gone, and the resize is over.
    await server.cp.node_gone(idkey(node.id))
    await wait_pool(stubs, P.ALLOCATION_STATE_STEADY, 0)
    # Its files went with it: the completed task's files read as cleaned up.
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stubs.tasks.ReadTaskFile(task_pb2.ReadTaskFileRequest(name="jobs/j/tasks/t", path="stdout.txt")).read()
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert details(gone.value)[0] == "TASK_FILES_CLEANED_UP"
    again = await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=2))
    assert again.target_nodes == 2
    await agent.close()


async def test_a_node_that_never_comes_up_ends_the_resize(server, stubs) -> None:
    """A local node whose agent never registers goes UNKNOWN: the pool is steady again, and may be resized."""
    cp = server.cp
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0)))
    await wait_pool(stubs, P.ALLOCATION_STATE_STEADY, 0)
    # A pool the provider cannot start agents for: the node stays CREATING.
    cp.provider = None
    await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=1))
    await wait_pool(stubs, P.ALLOCATION_STATE_RESIZING, 1)
    (node,) = cp.pools["p"].nodes.values()
    node.last_seen -= 3600
    await cp.check_health(timeout=10)
    assert node.state == P.NODE_STATE_UNKNOWN
    await wait_pool(stubs, P.ALLOCATION_STATE_STEADY, 1)
    await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=0))
