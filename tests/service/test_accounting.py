"""Accounting on the real in-process server: a task's statistics from its attempts' reports, and the job's
and pool's roll-ups (GetJobStatistics, GetPoolStatistics), across a retry, a deletion and a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.server.app import ShoalServer
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_multi_instance import join_pool, mi_task
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

A = agent_pb2
T = task_pb2
MiB = 1024 * 1024


def stats(cpu: float, peak_mib: int, written: int, wall: float = 1.0) -> common_pb2.TaskStatistics:
    return common_pb2.TaskStatistics(
        wall_clock_seconds=wall,
        user_cpu_seconds=cpu,
        kernel_cpu_seconds=cpu / 10,
        peak_memory_bytes=peak_mib * MiB,
        read_bytes=100,
        write_bytes=written,
        read_ops=1,
        write_ops=2,
    )


async def get(stubs: Stubs, task_id: str) -> task_pb2.Task:
    return await stubs.tasks.GetTask(T.GetTaskRequest(name=f"jobs/j/tasks/{task_id}"))


async def until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.01)
    return result


async def next_assignment(agent: ScriptedAgent) -> agent_pb2.TaskAssignment:
    (assignment,) = (await agent.expect("start_tasks")).start_tasks.tasks
    return assignment


async def run_one(
    stubs: Stubs, agent: ScriptedAgent, spec: T.TaskSpec, outcomes: list[tuple[int, common_pb2.TaskStatistics]]
) -> task_pb2.Task:
    """Add `spec` and end its attempts in turn with (exit code, statistics); the task once completed."""
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[spec]))
    for exit_code, st in outcomes:
        asg = await next_assignment(agent)
        await agent.event(asg.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=exit_code, ran_seconds=0.5, stats=st)

    async def done() -> task_pb2.Task | None:
        t = await get(stubs, spec.id)
        return t if t.state == T.TASK_STATE_COMPLETED else None

    return await until(done)


def sums(*all_stats: common_pb2.TaskStatistics) -> common_pb2.TaskStatistics:
    out = common_pb2.TaskStatistics()
    for s in all_stats:
        for f in ("wall_clock_seconds", "user_cpu_seconds", "kernel_cpu_seconds", "read_bytes", "write_bytes"):
            setattr(out, f, getattr(out, f) + getattr(s, f))
        out.read_ops += s.read_ops
        out.write_ops += s.write_ops
        out.peak_memory_bytes = max(out.peak_memory_bytes, s.peak_memory_bytes)
    return out


def close(a: common_pb2.TaskStatistics, b: common_pb2.TaskStatistics) -> bool:
    return all(abs(getattr(a, f.name) - getattr(b, f.name)) < 1e-6 for f in common_pb2.TaskStatistics.DESCRIPTOR.fields)


async def test_tasks_jobs_and_pools_add_up(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "data")
    agent: ScriptedAgent | None = None
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            await stubs.pools.CreatePool(
                pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
            )
            agent = ScriptedAgent(server, "p", "127.0.2.40")
            await agent.connect()
            await stubs.jobs.CreateJob(
                job_pb2.CreateJobRequest(
                    job=job_pb2.Job(id="j", pool_id="p", constraints=job_pb2.JobConstraints(max_task_retry_count=1))
                )
            )
            s1, s2, s3, s4, s5 = (
                stats(0.5, 10, 1000),
                stats(1.0, 50, 10),
                stats(2.0, 20, 0),
                stats(0.1, 1, 1),
                stats(0.2, 2, 2),
            )
            # A first attempt that succeeds (kept as bytes on the server: its statistics are appended to them).
            a = await run_one(stubs, agent, T.TaskSpec(id="a", command_line="true"), [(0, s1)])
            assert close(a.execution_info.last_attempt_stats, s1)
            assert close(a.stats.totals, s1)
            assert (a.stats.attempts, a.stats.tasks_succeeded, a.stats.tasks_failed, a.stats.task_retries) == (
                1,
                1,
                0,
                0,
            )
            assert a.stats.wait_seconds >= 0
            # Fails, is retried, succeeds.
            b = await run_one(stubs, agent, T.TaskSpec(id="b", command_line="x"), [(3, s2), (0, s3)])
            assert close(b.execution_info.last_attempt_stats, s3)
            assert close(b.stats.totals, sums(s2, s3)) and b.stats.totals.peak_memory_bytes == 50 * MiB
            assert (b.stats.attempts, b.stats.tasks_succeeded, b.stats.tasks_failed, b.stats.task_retries) == (
                2,
                1,
                0,
                1,
            )
            # Fails for good after its retry.
            c = await run_one(stubs, agent, T.TaskSpec(id="c", command_line="x"), [(1, s4), (2, s5)])
            assert (c.stats.attempts, c.stats.tasks_succeeded, c.stats.tasks_failed, c.stats.task_retries) == (
                2,
                0,
                1,
                1,
            )

            everything = sums(s1, s2, s3, s4, s5)
            js = await stubs.jobs.GetJobStatistics(job_pb2.GetJobStatisticsRequest(name="jobs/j"))
            u = js.usage
            assert close(u.totals, everything)
            assert (u.attempts, u.tasks_succeeded, u.tasks_failed, u.task_retries, u.task_requeues) == (5, 2, 1, 2, 0)
            assert u.wait_seconds >= 0 and js.HasField("last_update_time")
            ps = await stubs.pools.GetPoolStatistics(pool_pb2.GetPoolStatisticsRequest(name="pools/p"))
            assert close(ps.usage.totals, everything) and ps.usage.attempts == 5
            node = (await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p"))).nodes[0]
            assert ps.dedicated_node_seconds > 0 and ps.low_priority_node_seconds == 0
            assert ps.dedicated_core_seconds == pytest.approx(ps.dedicated_node_seconds * max(1, node.cores))

            # A deleted task stays counted.
            await stubs.tasks.DeleteTask(T.DeleteTaskRequest(name="jobs/j/tasks/a"))
            js2 = await stubs.jobs.GetJobStatistics(job_pb2.GetJobStatisticsRequest(name="jobs/j"))
            assert close(js2.usage.totals, everything) and js2.usage.attempts == 5

            # Unknown job and pool: NOT_FOUND with the reason the other calls give.
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stubs.jobs.GetJobStatistics(job_pb2.GetJobStatisticsRequest(name="jobs/nope"))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND and details(e.value)[0] == "JOB_NOT_FOUND"
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stubs.pools.GetPoolStatistics(pool_pb2.GetPoolStatisticsRequest(name="pools/nope"))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND and details(e.value)[0] == "POOL_NOT_FOUND"
        await agent.close()
        agent = None
    finally:
        if agent is not None:
            await agent.close()
        await server.stop(stop_agents=True)

    # A clean stop wrote the roll-ups: a restarted server has them.
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            js3 = await stubs.jobs.GetJobStatistics(job_pb2.GetJobStatisticsRequest(name="jobs/j"))
            assert close(js3.usage.totals, everything) and js3.usage.attempts == 5
            ps3 = await stubs.pools.GetPoolStatistics(pool_pb2.GetPoolStatisticsRequest(name="pools/p"))
            assert close(ps3.usage.totals, everything)
            b3 = await get(stubs, "b")
            assert close(b3.stats.totals, sums(s2, s3))
    finally:
        await server.stop(stop_agents=True)


async def test_a_multi_instance_attempt_sums_its_instances(server: ShoalServer, stubs: Stubs) -> None:
    """The primary's end completes the task; the instance Shoal stops then reports later, and still counts."""
    agents = await join_pool(server, stubs, 2)
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 2)]))
    got = {}
    for ag in agents:
        (asg,) = (await ag.expect("start_tasks")).start_tasks.tasks
        got[asg.multi_instance.instance_index] = (ag, asg)
    for ag, asg in got.values():
        await ag.event(asg.attempt, A.TASK_EVENT_KIND_RUNNING)
    for ag, asg in got.values():
        await ag.event(asg.attempt, A.TASK_EVENT_KIND_COORDINATED)
    await got[0][0].expect("run_application")
    primary, other = stats(3.0, 100, 10), stats(1.0, 300, 5)
    await got[0][0].event(got[0][1].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0, stats=primary)

    async def completed() -> task_pb2.Task | None:
        t = await get(stubs, "m")
        return t if t.state == T.TASK_STATE_COMPLETED else None

    t = await until(completed)
    assert close(t.execution_info.last_attempt_stats, primary)
    # The other instance is told to stop; its end comes after the attempt's.
    await got[1][0].expect("kill_tasks")
    for _ in range(2):  # (a repeated report counts once)
        await got[1][0].event(got[1][1].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=143, stats=other)

    async def summed() -> task_pb2.Task | None:
        t = await get(stubs, "m")
        return t if t.execution_info.last_attempt_stats.peak_memory_bytes == 300 * MiB else None

    t = await until(summed)
    await asyncio.sleep(0.2)  # (the repeat, if it counted, would be in by now)
    t = await get(stubs, "m")
    assert close(t.execution_info.last_attempt_stats, sums(primary, other))
    assert close(t.stats.totals, sums(primary, other)) and t.stats.attempts == 1
    js = await stubs.jobs.GetJobStatistics(job_pb2.GetJobStatisticsRequest(name="jobs/j"))
    assert close(js.usage.totals, sums(primary, other)) and js.usage.attempts == 1
    for ag in agents:
        await ag.close()
