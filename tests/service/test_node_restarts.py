"""RebootNode and ReimageNode on a real server, with scripted agents: the node's state, the Restart the
agent is told (at once, or once its task ends with TASK_COMPLETION), told again to an agent that
reconnects without having restarted (also after a server restart), ended by the Register that names it,
the preparations kept after a reboot, refusals and node counts."""

from __future__ import annotations

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import job_pb2, pool_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import refused
from tests.service.test_node_scheduling import _add, _node, _pool, _started, _task

pytestmark = pytest.mark.timeout(60)

A = agent_pb2
P = pool_pb2


def _name(agent: ScriptedAgent) -> str:
    return f"pools/p/nodes/{agent.node_id}"


async def _come_back(server, agent: ScriptedAgent, restart_id: str) -> ScriptedAgent:
    """The agent restarts: a new process registers as the same node, naming the restart it did."""
    await agent.close()
    again = ScriptedAgent(server, "p", agent.ip)
    again.register_extra = {"restart_id": restart_id}
    await again.connect(agent.node_id)
    return again


async def test_a_reboot_of_an_idle_node_tells_the_agent_and_ends_with_its_register(server, stubs) -> None:
    (a,) = await _pool(server, stubs, 1)
    await stubs.jobs.CreateJob(
        job_pb2.CreateJobRequest(
            job=job_pb2.Job(
                id="keep",
                pool_id="p",
                job_preparation_task=job_pb2.JobPreparationTask(
                    command_line="/bin/true", rerun_on_node_reboot_after_success=False
                ),
            )
        )
    )
    node = await stubs.pools.RebootNode(P.RebootNodeRequest(name=_name(a)))
    assert node.state == P.NODE_STATE_REBOOTING
    counts = (await stubs.pools.ListPoolNodeCounts(P.ListPoolNodeCountsRequest())).pools
    assert (counts[0].dedicated.rebooting, counts[0].dedicated.total) == (1, 1)
    msg = (await a.expect("restart")).restart
    assert msg.restart_id and not msg.reimage and not msg.wait_for_retention and msg.command_id
    assert list(msg.keep_preparations) == ["keep"]
    await refused(
        stubs.pools.ReimageNode(P.ReimageNodeRequest(name=_name(a))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NODE_BEING_REBOOTED",
    )
    # A reconnect of the same process (no restart done): told again, the node stays REBOOTING.
    b = await _come_back(server, a, "")
    assert (await b.expect("restart")).restart.restart_id == msg.restart_id
    assert (await _node(stubs, b)).state == P.NODE_STATE_REBOOTING
    # The new process names the restart: the node is back, IDLE, and takes tasks.
    c = await _come_back(server, b, msg.restart_id)
    assert (await _node(stubs, c)).state == P.NODE_STATE_IDLE
    await _add(stubs, "t0")
    assert (await _started(c)).task_id == "t0"
    await c.close()


async def test_task_completion_tells_the_agent_once_the_task_ended(server, stubs) -> None:
    (a,) = await _pool(server, stubs, 1)
    await _add(stubs, "t0")
    ref = await _started(a)
    node = await stubs.pools.ReimageNode(
        P.ReimageNodeRequest(name=_name(a), option=P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION)
    )
    assert node.state == P.NODE_STATE_REIMAGING and node.running_tasks_count == 1
    with pytest.raises(TimeoutError):
        await a.expect("restart", timeout=0.3)
    await a.event(ref, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.01)
    msg = (await a.expect("restart")).restart
    assert msg.reimage and list(msg.keep_preparations) == []
    t0 = await _task(stubs, "t0")
    assert t0.execution_info.exit_code == 0 and t0.execution_info.requeue_count == 0
    b = await _come_back(server, a, msg.restart_id)
    assert (await _node(stubs, b)).state == P.NODE_STATE_IDLE
    await b.close()


async def test_requeue_and_terminate(server, stubs) -> None:
    a, b = await _pool(server, stubs, 2)
    await _add(stubs, "t0", "t1")
    r0 = await _started(a)
    r1 = await _started(b)
    await stubs.pools.RebootNode(P.RebootNodeRequest(name=_name(a), option=P.NODE_DEALLOCATION_OPTION_REQUEUE))
    assert (await a.expect("kill_tasks")).kill_tasks.attempts[0].task_id == r0.task_id
    await a.expect("restart")
    t = await _task(stubs, r0.task_id)
    assert t.state == 1 and t.execution_info.requeue_count == 1 and t.execution_info.retry_count == 0  # ACTIVE
    await stubs.pools.RebootNode(P.RebootNodeRequest(name=_name(b), option=P.NODE_DEALLOCATION_OPTION_TERMINATE))
    assert (await b.expect("kill_tasks")).kill_tasks.attempts[0].task_id == r1.task_id
    t = await _task(stubs, r1.task_id)
    assert t.state == 4 and t.execution_info.result == 2  # COMPLETED, FAILURE
    for ag in (a, b):
        await ag.close()


async def test_refusals(server, stubs) -> None:
    (a,) = await _pool(server, stubs, 1)
    await refused(
        stubs.pools.RebootNode(P.RebootNodeRequest(name=_name(a), option=99)),  # type: ignore[arg-type]
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_OPTION",
    )
    await refused(
        stubs.pools.RebootNode(P.RebootNodeRequest(name="pools/p/nodes/nope")),
        grpc.StatusCode.NOT_FOUND,
        "NODE_NOT_FOUND",
    )
    assert (await _node(stubs, a)).state == P.NODE_STATE_IDLE
    await a.close()


async def test_a_pending_reboot_is_told_again_after_a_server_restart(tmp_path) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            (a,) = await _pool(server, stubs, 1)
            node_id = a.node_id
            await stubs.pools.RebootNode(P.RebootNodeRequest(name=_name(a)))
            first = (await a.expect("restart")).restart
            await a.close()
    finally:
        await server.stop(stop_agents=True)
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            agent = ScriptedAgent(server, "p", "127.0.2.60")
            await agent.connect(node_id)
            assert (await agent.expect("restart")).restart.restart_id == first.restart_id
            assert (await _node(stubs, agent)).state == P.NODE_STATE_REBOOTING
            back = await _come_back(server, agent, first.restart_id)
            assert (await _node(stubs, back)).state == P.NODE_STATE_IDLE
            await back.close()
    finally:
        await server.stop(stop_agents=True)
