"""The scheduler looks only at jobs with queued tasks, and still sees every one of them."""

from __future__ import annotations

from shoal.agent.v1 import agent_pb2
from shoal.server.controllers.scheduler import queued_jobs
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent

A = agent_pb2


async def test_jobs_leave_and_rejoin_the_waiting_set(server, stubs) -> None:
    cp = server.cp
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.7")
    await agent.connect()
    for j in ("a", "b", "c"):
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=j, pool_id="p")))
        await stubs.tasks.AddTasks(
            task_pb2.AddTasksRequest(parent=f"jobs/{j}", tasks=[task_pb2.TaskSpec(id="t", command_line="true")])
        )
    ran = []
    for _ in range(3):
        start = await agent.expect("start_tasks")
        for a in start.start_tasks.tasks:
            ran.append(a.attempt.job_id)
            await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)
    assert sorted(ran) == ["a", "b", "c"]
    assert queued_jobs(cp) == [] and cp.waiting_jobs == {}
    # A job that gets work again is seen again; a deleted one is forgotten.
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/b", tasks=[task_pb2.TaskSpec(id="again", command_line="true")])
    )
    start = await agent.expect("start_tasks")
    assert [(a.attempt.job_id, a.attempt.task_id) for a in start.start_tasks.tasks] == [("b", "again")]
    # The node is busy: a task of "c" waits, until "c" is deleted.
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/c", tasks=[task_pb2.TaskSpec(id="waits", command_line="true")])
    )
    assert [j.proto.id for j in queued_jobs(cp)] == ["c"]
    await stubs.jobs.DeleteJob(job_pb2.DeleteJobRequest(name="jobs/c"))
    assert queued_jobs(cp) == [] and "c" not in cp.waiting_jobs
    await agent.close()
