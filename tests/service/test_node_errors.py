"""Node errors and UNUSABLE on a real server, with scripted agents: errors in a Register or a NodeHealth
make the node UNUSABLE (its task requeued, none lands there), errors gone bring it back; a failed start
task shows as a node error; an UNUSABLE node can be rebooted; counts."""

from __future__ import annotations

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2, job_pb2, pool_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_node_scheduling import _add, _node, _pool, _started, _task

pytestmark = pytest.mark.timeout(60)

A = agent_pb2
P = pool_pb2
DISK_FULL = P.NodeError(
    code="DiskFull", message="no space", error_details=[common_pb2.MetadataItem(name="free_bytes", value="1")]
)


async def _state(stubs, agent: ScriptedAgent, state: int) -> P.Node:
    import asyncio

    async with asyncio.timeout(10):
        while (n := await _node(stubs, agent)).state != state:
            await asyncio.sleep(0.02)
    return n


async def test_errors_reported_make_the_node_unusable_until_they_go(server, stubs) -> None:
    a, b = await _pool(server, stubs, 2)
    await _add(stubs, "t0")
    ref = await _started(a)
    await a._out.put(A.AgentMessage(node_health=A.NodeHealth(errors=[DISK_FULL])))
    node = await _state(stubs, a, P.NODE_STATE_UNUSABLE)
    assert [(e.code, e.message) for e in node.errors] == [("DiskFull", "no space")]
    assert (await a.expect("kill_tasks")).kill_tasks.attempts[0].task_id == ref.task_id
    # Its task runs on the other node; nothing new lands on the unusable one.
    assert (await _started(b)).task_id == "t0"
    t0 = await _task(stubs, "t0")
    assert t0.execution_info.requeue_count == 1 and t0.execution_info.retry_count == 0
    counts = (await stubs.pools.ListPoolNodeCounts(P.ListPoolNodeCountsRequest())).pools
    assert counts[0].dedicated.unusable == 1
    await _add(stubs, "t1")
    with pytest.raises(TimeoutError):
        await a.expect("start_tasks", timeout=0.3)
    # The cause went away: the node is usable again, without errors, and takes the waiting task.
    await a._out.put(A.AgentMessage(node_health=A.NodeHealth()))
    assert (await _started(a)).task_id == "t1"
    node = await _state(stubs, a, P.NODE_STATE_RUNNING)
    assert list(node.errors) == []
    for ag in (a, b):
        await ag.close()


async def test_errors_in_the_register_and_a_reboot_of_an_unusable_node(server, stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join")))
    a = ScriptedAgent(server, "p", "127.0.2.70")
    a.register_extra = {"errors": [DISK_FULL]}
    await a.connect()
    node = await _state(stubs, a, P.NODE_STATE_UNUSABLE)
    assert [e.code for e in node.errors] == ["DiskFull"]
    node = await stubs.pools.RebootNode(P.RebootNodeRequest(name=f"pools/p/nodes/{a.node_id}"))
    assert node.state == P.NODE_STATE_REBOOTING
    restart = (await a.expect("restart")).restart
    await a.close()
    b = ScriptedAgent(server, "p", "127.0.2.70")
    b.register_extra = {"restart_id": restart.restart_id}
    await b.connect(a.node_id)
    node = await _state(stubs, b, P.NODE_STATE_IDLE)
    assert list(node.errors) == []
    await b.close()


async def test_a_failed_start_task_shows_as_a_node_error(server, stubs) -> None:
    start = common_pb2.StartTask(command_line="/bin/false", wait_for_success=True)
    await stubs.pools.CreatePool(
        P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join", start_task=start))
    )
    a = ScriptedAgent(server, "p", "127.0.2.71")
    await a.connect()
    info = common_pb2.StartTaskInfo(
        state=common_pb2.START_TASK_STATE_COMPLETED,
        result=common_pb2.TASK_EXECUTION_RESULT_FAILURE,
        exit_code=1,
        failure_info=common_pb2.FailureInfo(code="FailureExitCode", message="exit code 1"),
    )
    await a._out.put(A.AgentMessage(start_task=A.StartTaskReport(info=info)))
    node = await _state(stubs, a, P.NODE_STATE_START_TASK_FAILED)
    assert [(e.code, {d.name: d.value for d in e.error_details}) for e in node.errors] == [
        ("FailureExitCode", {"exit_code": "1"})
    ]
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await a.close()
