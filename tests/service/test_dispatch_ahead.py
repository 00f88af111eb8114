"""Dispatch ahead: a busy node gets work for when a slot frees, for jobs of short tasks only."""

from __future__ import annotations

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.server.controlplane import DEFAULT_DISPATCH_AHEAD
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent

A = agent_pb2


async def one_slot_pool(server, stubs) -> tuple[ScriptedAgent, agent_pb2.Welcome]:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.1")
    welcome = await agent.connect()
    return agent, welcome


async def add(stubs, job_id: str, n: int) -> None:
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id="p")))
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(n)]
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=specs))


async def run_one(agent: ScriptedAgent, ran_seconds: float) -> list[str]:
    """Take the next StartTasks, finish its first assignment; the ids it carried."""
    msg = await agent.expect("start_tasks")
    first = msg.start_tasks.tasks[0].attempt
    await agent.event(first, A.TASK_EVENT_KIND_RUNNING)
    await agent.event(first, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=ran_seconds)
    return [a.attempt.task_id for a in msg.start_tasks.tasks]


async def test_short_tasks_are_sent_ahead_to_a_busy_node(server, stubs) -> None:
    agent, welcome = await one_slot_pool(server, stubs)
    assert welcome.task_slots == 1  # the agent holds what does not fit
    await add(stubs, "j", 10)
    # Until the job is known to be short, one assignment per slot.
    assert await run_one(agent, 0.05) == ["t0"]
    assert await run_one(agent, 0.05) == ["t1"]
    assert await run_one(agent, 0.05) == ["t2"]
    # Three 50 ms attempts seen: the slot's next task and two more (100 ms of them) to wait on the node.
    assert server.cp.dispatch_ahead == DEFAULT_DISPATCH_AHEAD
    sent = await run_one(agent, 0.05)
    assert sent == ["t3", "t4", "t5"]
    t4 = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/t4"))
    assert t4.state == task_pb2.TASK_STATE_PREPARING  # placed, waiting on the node for its slot
    node = (await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p"))).nodes[0]
    assert node.running_task_slots == 1  # what waits does not count as running
    await agent.close()


@pytest.mark.parametrize(
    ("cap", "ran_seconds", "waiting"),
    [
        (DEFAULT_DISPATCH_AHEAD, 0.01, 10),  # 10 ms attempts: ten of them (100 ms) wait behind the running one
        (4, 0.001, 4),  # 1 ms attempts would want a hundred waiting; the cap keeps it to four
    ],
)
async def test_depth_follows_the_attempts_length_up_to_the_cap(
    server, stubs, cap: int, ran_seconds: float, waiting: int
) -> None:
    server.cp.dispatch_ahead = cap
    agent, _ = await one_slot_pool(server, stubs)
    await add(stubs, "j", 40)
    for i in range(3):
        assert await run_one(agent, ran_seconds) == [f"t{i}"]
    assert await run_one(agent, ran_seconds) == [f"t{i}" for i in range(3, 4 + waiting)]
    await agent.close()


async def test_a_longer_job_does_not_queue_as_deep_as_the_short_one_in_front(server, stubs) -> None:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    for job_id, priority, ran in (("fast", 100, 0.01), ("slower", 0, 0.5)):
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id="p", priority=priority)))
        job = server.cp.job(job_id)
        job.runs, job.run_seconds = 3, ran  # as if three attempts of each had been seen
    for job_id in ("fast", "slower"):
        specs = [
            task_pb2.TaskSpec(id=f"{job_id}{i}", command_line="/bin/true") for i in range(3 if job_id == "fast" else 12)
        ]
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=specs))
    agent = ScriptedAgent(server, "p", "127.0.2.1")
    await agent.connect()
    msg = await agent.expect("start_tasks")
    # 10 ms attempts in front: ten may wait. The two left of that job go; 0.5 s ones would wait
    # seconds behind each other, so none of the slower job's follow at that depth.
    assert [a.attempt.task_id for a in msg.start_tasks.tasks] == ["fast0", "fast1", "fast2"]
    await agent.close()


async def test_failed_attempts_do_not_make_a_job_short(server, stubs) -> None:
    agent, _ = await one_slot_pool(server, stubs)
    await add(stubs, "j", 8)
    for i in range(5):
        msg = await agent.expect("start_tasks")
        assert [a.attempt.task_id for a in msg.start_tasks.tasks] == [f"t{i}"]
        ref = msg.start_tasks.tasks[0].attempt
        await agent.event(ref, A.TASK_EVENT_KIND_RUNNING)
        await agent.event(ref, A.TASK_EVENT_KIND_COMPLETED, exit_code=1, ran_seconds=0.001)
    await agent.close()


def test_one_long_attempt_raises_the_estimate_at_once_and_short_ones_lower_it_slowly() -> None:
    from shoal.server.controlplane import note_attempt_length
    from shoal.server.domain.records import JobRec

    job = JobRec("j", 1, job_pb2.Job(id="j", pool_id="p"))
    for _ in range(3):
        note_attempt_length(job, 0.01)
    assert job.runs == 3 and job.run_seconds == pytest.approx(0.01)
    note_attempt_length(job, 0.5)
    assert job.run_seconds == pytest.approx(0.5)
    note_attempt_length(job, 0.01)
    assert job.run_seconds == pytest.approx(0.8 * 0.5 + 0.2 * 0.01)


async def test_long_tasks_are_not_sent_ahead(server, stubs) -> None:
    agent, _ = await one_slot_pool(server, stubs)
    await add(stubs, "long", 8)
    for i in range(6):
        assert await run_one(agent, 5.0) == [f"t{i}"]
    await agent.close()


async def test_no_dispatch_ahead_when_turned_off(server, stubs) -> None:
    server.cp.dispatch_ahead = 0
    agent, _ = await one_slot_pool(server, stubs)
    await add(stubs, "j", 8)
    for i in range(6):
        assert await run_one(agent, 0.0) == [f"t{i}"]
    await agent.close()


async def test_restart_keeps_counts_and_queue_from_row_tags(tmp_path) -> None:
    """Queued and completed tasks come back from their rows' tags without being parsed, counts intact."""
    from shoal.server.app import ServerConfig, ShoalServer

    config = ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False)
    srv = ShoalServer(config)
    await srv.start()
    cp = srv.cp
    await cp.create_pool(pool_pb2.Pool(id="p", target_nodes=0, provider="join"))
    await cp.create_job(job_pb2.Job(id="j", pool_id="p"))
    await cp.add_tasks("j", [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(5)])
    await cp.terminate_task("j", "t1")  # completed, failed
    await srv.stop(stop_agents=True)
    again = ShoalServer(config)
    await again.start()
    try:
        counts = again.cp.job_counts("j")
        assert (counts.active, counts.completed, counts.failed, counts.succeeded) == (4, 1, 1, 0)
        assert list(again.cp.job("j").queue) == ["t0", "t2", "t3", "t4"]
        t1 = again.cp.task("j", "t1")
        assert t1.frozen and t1.read().execution_info.failure_info.code == "TaskEnded"
    finally:
        await again.stop(stop_agents=True)
