"""ETags (AIP-154): every pool, job and task read carries one, it changes with every change, and an update,
delete, resize, terminate or reactivate that names a stale one is refused (ABORTED ETAG_MISMATCH) and
changes nothing."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_validation import details

A = agent_pb2
P = pool_pb2
J = job_pb2
T = task_pb2


async def refused(call) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert details(e.value)[0] == "ETAG_MISMATCH"


async def test_pool_etags(server, stubs) -> None:
    created = await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0, provider="join")))
    await asyncio.sleep(0.05)  # (its allocation state is settled at the next turn of the loop)
    first = await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert first.etag and len(first.etag) == 16
    assert (await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))).etag == first.etag  # no change, same tag
    assert (await stubs.pools.ListPools(P.ListPoolsRequest())).pools[0].etag == first.etag
    assert created.etag

    resized = await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=2, etag=first.etag))
    assert resized.target_nodes == 2 and resized.etag != first.etag
    # A stale etag: refused, and nothing changes.
    await refused(stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=5, etag=first.etag)))
    await refused(stubs.pools.DeletePool(P.DeletePoolRequest(name="pools/p", etag=first.etag)))
    now = await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert (now.target_nodes, now.state) == (2, P.POOL_STATE_ACTIVE)
    deleted = await stubs.pools.DeletePool(P.DeletePoolRequest(name="pools/p", etag=now.etag))
    assert deleted.state == P.POOL_STATE_DELETING


async def test_job_etags(server, stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0, provider="join")))
    created = await stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p", etag="client-made")))
    got = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))
    assert got.etag == created.etag != "client-made"
    assert (await stubs.jobs.ListJobs(J.ListJobsRequest())).jobs[0].etag == got.etag

    # UpdateJob carries the etag in its job, as AIP-154 has it for an update.
    updated = await stubs.jobs.UpdateJob(
        J.UpdateJobRequest(job=J.Job(name="jobs/j", priority=5, etag=got.etag), update_mask=["priority"])
    )
    assert updated.priority == 5 and updated.etag != got.etag
    await refused(
        stubs.jobs.UpdateJob(
            J.UpdateJobRequest(job=J.Job(name="jobs/j", priority=9, etag=got.etag), update_mask=["priority"])
        )
    )
    await refused(stubs.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/j", etag=got.etag)))
    await refused(stubs.jobs.DeleteJob(J.DeleteJobRequest(name="jobs/j", etag=got.etag)))
    now = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))
    assert (now.priority, now.state, now.etag) == (5, J.JOB_STATE_ACTIVE, updated.etag)
    # Without an etag, unconditional.
    await stubs.jobs.UpdateJob(J.UpdateJobRequest(job=J.Job(name="jobs/j", priority=6), update_mask=["priority"]))
    terminated = await stubs.jobs.TerminateJob(
        J.TerminateJobRequest(name="jobs/j", etag=(await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))).etag)
    )
    assert terminated.state == J.JOB_STATE_COMPLETED
    await stubs.jobs.DeleteJob(J.DeleteJobRequest(name="jobs/j", etag=terminated.etag))


async def get(stubs, task_id: str) -> task_pb2.Task:
    return await stubs.tasks.GetTask(T.GetTaskRequest(name=f"jobs/j/tasks/{task_id}"))


async def test_task_etags(server, stubs) -> None:
    cp = server.cp
    cp.dispatch_ahead = 0
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join")))
    agent = ScriptedAgent(server, "p", "127.0.2.50")
    await agent.connect()
    await stubs.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="j", pool_id="p")))
    watch = stubs.tasks.WatchTasks(T.WatchTasksRequest(parent="jobs/j"))
    initial = await watch.read()
    assert initial.initial_complete and not initial.tasks
    added = await stubs.tasks.AddTask(T.AddTaskRequest(parent="jobs/j", task=T.TaskSpec(id="a", command_line="x")))
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[T.TaskSpec(id="b", command_line="y")]))
    (asg,) = (await agent.expect("start_tasks")).start_tasks.tasks
    assert asg.attempt.task_id == "a"
    placed = await get(stubs, "a")
    assert placed.etag == added.etag  # (placed as it was added)
    listed = {t.spec.id: t for t in (await stubs.tasks.ListTasks(T.ListTasksRequest(parent="jobs/j"))).tasks}
    assert listed["a"].etag == placed.etag

    waiting = await get(stubs, "b")
    assert waiting.state == T.TASK_STATE_ACTIVE and waiting.etag

    await agent.event(asg.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    async with asyncio.timeout(10):
        while (done := await get(stubs, "a")).state != T.TASK_STATE_COMPLETED:
            await asyncio.sleep(0.01)
    assert done.etag != placed.etag
    await refused(stubs.tasks.DeleteTask(T.DeleteTaskRequest(name="jobs/j/tasks/a", etag=placed.etag)))
    # Kept as its stored bytes with the changes appended, or made live again: the same task, the same tag.
    assert cp.task("j", "a").frozen
    cp.task("j", "a").proto.attempt  # noqa: B018 - brings the message back
    assert not cp.task("j", "a").frozen
    assert (await get(stubs, "a")).etag == done.etag

    # Watchers see the etag of each change as it was committed.
    seen: dict[str, str] = {}
    async with asyncio.timeout(10):
        while seen.get("a") != done.etag:
            for t in (await watch.read()).tasks:
                seen[t.spec.id] = t.etag
    watch.cancel()

    # The waiting task has not changed since it was read: its etag holds.
    (asg_b,) = (await agent.expect("start_tasks")).start_tasks.tasks
    assert asg_b.attempt.task_id == "b"
    await refused(stubs.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/b", etag=waiting.etag)))
    await agent.event(asg_b.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=1)
    async with asyncio.timeout(10):
        while (failed := await get(stubs, "b")).state != T.TASK_STATE_COMPLETED:
            await asyncio.sleep(0.01)
    await refused(stubs.tasks.ReactivateTask(T.ReactivateTaskRequest(name="jobs/j/tasks/b", etag=waiting.etag)))
    again = await stubs.tasks.ReactivateTask(T.ReactivateTaskRequest(name="jobs/j/tasks/b", etag=failed.etag))
    assert again.state in (T.TASK_STATE_ACTIVE, T.TASK_STATE_PREPARING) and again.etag != failed.etag
    deleted = await stubs.tasks.DeleteTask(T.DeleteTaskRequest(name="jobs/j/tasks/a", etag=done.etag))
    assert deleted.spec.id == "a"
    await agent.close()
