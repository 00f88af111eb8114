"""The scheduler's full pass records and commits its placements a chunk at a time."""

from __future__ import annotations

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.server.controllers import scheduler
from shoal.server.domain.records import AgentSession
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent


async def test_a_large_pass_goes_out_in_committed_chunks_each_task_once(server, stubs, monkeypatch) -> None:
    monkeypatch.setattr(scheduler, "APPLY_CHUNK", 4)
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=10, provider="join"))
    )
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(12)]
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=specs))
    commits_before = server.cp.store.transactions  # type: ignore[attr-defined]
    # The node joins after the tasks were added: the scheduler loop's full pass places them.
    agent = ScriptedAgent(server, "p", "127.0.2.1")
    await agent.connect()
    seen: list[str] = []
    messages = 0
    while len(seen) < 10:
        msg = await agent.expect("start_tasks")
        messages += 1
        seen += [a.attempt.task_id for a in msg.start_tasks.tasks]
    # Ten slots: ten tasks, each once, in queue order, in chunks of four (4 + 4 + 2).
    assert seen == [f"t{i}" for i in range(10)]
    assert messages == 3
    assert server.cp.store.transactions - commits_before >= 3  # type: ignore[attr-defined]
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    assert (counts.running, counts.active) == (10, 2)
    await agent.close()


@pytest.mark.parametrize("chunk", [1, 1000])
async def test_every_chunk_size_places_the_same(server, stubs, monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(scheduler, "APPLY_CHUNK", chunk)
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=3, provider="join"))
    )
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(5)]
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=specs))
    agent = ScriptedAgent(server, "p", "127.0.2.1")
    await agent.connect()
    seen: list[str] = []
    while len(seen) < 3:
        seen += [a.attempt.task_id for a in (await agent.expect("start_tasks")).start_tasks.tasks]
    assert seen == ["t0", "t1", "t2"]
    await agent.close()


async def test_work_queued_for_an_agent_that_registered_again_is_not_sent(server, stubs) -> None:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.1")
    welcome = await agent.connect()
    cp = server.cp
    node = cp.nodes[welcome.node_id.lower()]
    old = node.session
    stale = agent_pb2.ServerMessage()
    stale.start_tasks.tasks.add(command_line="/bin/true").attempt.task_id = "stale"
    kill = agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(attempts=[agent_pb2.AttemptRef(task_id="gone")]))
    fresh = AgentSession(node.key, "boot-2")
    node.session = fresh  # as `attach` does when the agent registers again
    cp._deliver([(node, stale, old), (node, kill, old)])
    # The StartTasks made for the old registration is dropped; the kill still goes (harmless if unknown).
    sent = fresh.drain()
    assert [m.WhichOneof("body") for m in sent if m is not None] == []  # held until Welcome
    fresh.send(agent_pb2.ServerMessage(welcome=agent_pb2.Welcome(node_id=welcome.node_id)))
    assert [m.WhichOneof("body") for m in fresh.drain() if m is not None] == ["welcome", "kill_tasks"]
    node.session = old
    await agent.close()
