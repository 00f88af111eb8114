"""WatchNodes on a real server: the snapshot, then each node change as committed, and the end with the pool."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.client import NodeChanges
from shoal.v1 import job_pb2, pool_pb2, pool_pb2_grpc, task_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_certificates_client import in_thread

pytestmark = pytest.mark.timeout(60)

P = pool_pb2


async def _until(stream, predicate) -> P.WatchNodesResponse:
    """The next message of the stream that `predicate` accepts."""
    async with asyncio.timeout(10):
        while True:
            msg = await stream.read()
            assert msg is not grpc.aio.EOF, "the stream ended"
            if predicate(msg):
                return msg


def _state_of(node_id: str, state: int):
    return lambda msg: any(n.id == node_id and n.state == state for n in msg.nodes)


async def test_watch_nodes_sees_every_change_then_the_end(server, stubs) -> None:
    await stubs.pools.CreatePool(
        P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    stream = stubs.pools.WatchNodes(P.WatchNodesRequest(parent="pools/p"))
    first = await stream.read()
    assert first.initial and first.initial_complete and not first.nodes
    assert server.cp.node_watch.streams == 1
    agent = ScriptedAgent(server, "p", "127.0.2.95")
    await agent.connect()
    await _until(stream, _state_of(agent.node_id, P.NODE_STATE_IDLE))
    # IDLE -> RUNNING -> IDLE, which the store only writes in passing, reach watchers at once.
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/j", tasks=[task_pb2.TaskSpec(id="t", command_line="/bin/true")])
    )
    msg = await agent.expect("start_tasks")
    ref = msg.start_tasks.tasks[0].attempt
    running = await _until(stream, _state_of(agent.node_id, P.NODE_STATE_RUNNING))
    assert running.nodes[-1].running_tasks_count == 1
    await agent.event(ref, agent_pb2.TASK_EVENT_KIND_RUNNING)
    await agent.event(ref, agent_pb2.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.01)
    await _until(stream, _state_of(agent.node_id, P.NODE_STATE_IDLE))
    await stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=f"pools/p/nodes/{agent.node_id}"))
    offline = await _until(stream, _state_of(agent.node_id, P.NODE_STATE_OFFLINE))
    assert offline.nodes[-1].scheduling_state == P.SCHEDULING_STATE_DISABLED
    # Another account's watch of this pool answers as for a missing pool.
    key = await make_account(server, "watcher")
    async with channel_as(server, "watcher", key) as ch:
        theirs = pool_pb2_grpc.PoolServiceStub(ch).WatchNodes(P.WatchNodesRequest(parent="pools/p"))
        await refused(theirs.read(), grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
    # The pool goes: its node leaves (removed), then the stream ends.
    await stubs.pools.DeletePool(P.DeletePoolRequest(name="pools/p"))
    await _until(stream, _state_of(agent.node_id, P.NODE_STATE_LEAVING_POOL))
    await agent.close()
    removed: list[str] = []
    async with asyncio.timeout(20):
        while True:
            await server.cp.check_health(0.0)
            try:
                msg = await asyncio.wait_for(stream.read(), 0.2)
            except TimeoutError:
                continue
            if msg is grpc.aio.EOF:
                break
            removed += msg.removed_node_ids
    assert removed == [agent.node_id]
    assert server.cp.node_watch.streams == 0


async def test_the_client_watches_nodes(server, stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join")))
    seen: list[NodeChanges] = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch(client) -> None:
        for changes in client.pools.watch_nodes("p", timeout=20):
            seen.append(changes)
            if changes.initial:
                loop.call_soon_threadsafe(subscribed.set)
            if any(n.state.value == "idle" for n in changes.nodes):
                return

    watching = asyncio.ensure_future(in_thread(server, watch))
    await asyncio.wait_for(subscribed.wait(), 10)
    agent = ScriptedAgent(server, "p", "127.0.2.96")
    await agent.connect()
    await asyncio.wait_for(watching, 20)
    assert seen[0].initial and not seen[0].nodes
    assert seen[-1].nodes[-1].id == agent.node_id and not seen[-1].initial
    await agent.close()
