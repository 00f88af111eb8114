"""Low-priority (preemptible) nodes on a real server with real local agents: a pool of both kinds, a
preemption that requeues the running task and wipes the node, the node back as new once the provider has
capacity, counts by kind, resizes of one kind, and refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from shoal.server.app import ShoalServer
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, configured_server
from tests.service.test_accounts import refused

pytestmark = pytest.mark.timeout(90)

P = pool_pb2
T = task_pb2


@pytest.fixture
async def spot_server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    async with configured_server(tmp_path / "data", heartbeat_interval=0.2, spot_recovery_seconds=1.0) as srv:
        yield srv


@pytest.fixture
async def spot(spot_server: ShoalServer) -> AsyncIterator[Stubs]:
    async with server_channel(spot_server) as channel:
        yield Stubs(channel)


async def nodes(stubs: Stubs) -> list[P.Node]:
    return list((await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes)


async def until_nodes(stubs: Stubs, pred: Callable[[list[P.Node]], bool], timeout: float = 30.0) -> list[P.Node]:
    async with asyncio.timeout(timeout):
        while True:
            ns = await nodes(stubs)
            if pred(ns):
                return ns
            await asyncio.sleep(0.05)


async def until_task(stubs: Stubs, pred: Callable[[T.Task], bool], timeout: float = 30.0) -> T.Task:
    async with asyncio.timeout(timeout):
        while True:
            t = await stubs.tasks.GetTask(T.GetTaskRequest(name="jobs/j/tasks/t"))
            if pred(t):
                return t
            await asyncio.sleep(0.05)


def idle(ns: list[P.Node]) -> bool:
    return bool(ns) and all(n.state in (P.NODE_STATE_IDLE, P.NODE_STATE_RUNNING) for n in ns)


async def test_a_preempted_node_requeues_its_task_loses_its_files_and_comes_back_as_new(
    spot_server: ShoalServer, spot: Stubs
) -> None:
    pool = await spot.pools.CreatePool(
        P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0, target_low_priority_nodes=1))
    )
    assert (pool.target_nodes, pool.target_low_priority_nodes) == (0, 1)
    (low,) = await until_nodes(spot, idle)
    assert not low.is_dedicated
    pool = await spot.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert (pool.current_nodes, pool.current_low_priority_nodes) == (0, 1)
    assert pool.allocation_state == P.ALLOCATION_STATE_STEADY

    await spot.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await spot.tasks.AddTasks(
        T.AddTasksRequest(
            parent="jobs/j",
            tasks=[T.TaskSpec(id="t", command_line='sh -c "echo $SHOAL_NODE_IS_DEDICATED > ../kind.txt; sleep 60"')],
        )
    )
    await until_task(spot, lambda t: t.state == T.TASK_STATE_RUNNING)
    root = Path(low.root_directory)
    kind = root / "workitems" / "j" / "job-1" / "t" / "kind.txt"
    async with asyncio.timeout(10):
        while not kind.exists() or not kind.read_text().strip():
            await asyncio.sleep(0.05)
    assert kind.read_text().strip() == "false"

    preempted = await spot.pools.PreemptNode(P.PreemptNodeRequest(name=f"pools/p/nodes/{low.id}"))
    assert preempted.state == P.NODE_STATE_PREEMPTED and preempted.id == low.id
    # Its task goes back to the queue (a requeue, not a retry), with nowhere to run until the node is back.
    t = await until_task(spot, lambda t: t.execution_info.requeue_count == 1)
    assert t.execution_info.retry_count == 0
    counts = (await spot.pools.ListPoolNodeCounts(P.ListPoolNodeCountsRequest())).pools[0]
    assert (counts.low_priority.preempted, counts.low_priority.total, counts.dedicated.total) in ((1, 1, 0),)
    pool = await spot.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert pool.current_low_priority_nodes == 1  # (preempted nodes count, as Batch)
    # Its time in the pool stopped at the preemption.
    before = await spot.pools.GetPoolStatistics(P.GetPoolStatisticsRequest(name="pools/p"))
    await asyncio.sleep(0.2)
    after = await spot.pools.GetPoolStatistics(P.GetPoolStatisticsRequest(name="pools/p"))
    if (await nodes(spot))[0].state == P.NODE_STATE_PREEMPTED:
        assert after.low_priority_node_seconds == before.low_priority_node_seconds > 0
    assert after.dedicated_node_seconds == 0
    await refused(
        spot.pools.PreemptNode(P.PreemptNodeRequest(name=f"pools/p/nodes/{low.id}")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NODE_NOT_PREEMPTIBLE",
    )

    # The node keeps its id and starts again as new: a fresh root; its task runs there again.
    (back,) = await until_nodes(spot, lambda ns: len(ns) == 1 and ns[0].state == P.NODE_STATE_RUNNING, 40)
    assert back.id == low.id and not back.is_dedicated
    t = await until_task(spot, lambda t: t.state == T.TASK_STATE_RUNNING and t.node_info.node_id == low.id)
    assert t.attempt >= 2
    await spot.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/t"))


async def test_dedicated_nodes_cannot_be_preempted_and_kinds_resize_apart(
    spot_server: ShoalServer, spot: Stubs
) -> None:
    await spot.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, target_low_priority_nodes=1)))
    ns = await until_nodes(spot, lambda ns: len(ns) == 2 and idle(ns))
    dedicated = next(n for n in ns if n.is_dedicated)
    await refused(
        spot.pools.PreemptNode(P.PreemptNodeRequest(name=f"pools/p/nodes/{dedicated.id}")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NODE_IS_DEDICATED",
    )
    counts = (await spot.pools.ListPoolNodeCounts(P.ListPoolNodeCountsRequest())).pools[0]
    assert (counts.dedicated.idle, counts.low_priority.idle) == (1, 1)

    # Only the low-priority target changes: the dedicated node stays.
    await spot.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=1, target_low_priority_nodes=0))
    (left,) = await until_nodes(spot, lambda ns: len(ns) == 1)
    assert left.id == dedicated.id
    pool = await spot.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert (pool.target_nodes, pool.target_low_priority_nodes, pool.current_low_priority_nodes) == (1, 0, 0)

    # A resize that leaves the low-priority target out keeps it.
    await until_nodes(spot, idle)
    async with asyncio.timeout(10):
        while (await spot.pools.GetPool(P.GetPoolRequest(name="pools/p"))).allocation_state != (
            P.ALLOCATION_STATE_STEADY
        ):
            await asyncio.sleep(0.05)
    await spot.pools.UpdatePool(
        P.UpdatePoolRequest(
            pool=P.Pool(name="pools/p", target_low_priority_nodes=1),
            update_mask={"paths": ["target_low_priority_nodes"]},
        )
    )
    ns = await until_nodes(spot, lambda ns: len(ns) == 2 and idle(ns))
    assert sorted(n.is_dedicated for n in ns) == [False, True]


async def test_low_priority_targets_are_checked(spot: Stubs) -> None:
    await refused(
        spot.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="j1", provider="join", target_low_priority_nodes=1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_POOL",
    )
    await refused(
        spot.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="j2", target_low_priority_nodes=-1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_POOL",
    )
    await spot.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0)))
    await refused(
        spot.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=0, target_low_priority_nodes=5000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TARGET_NODES",
    )


async def test_a_gang_with_an_instance_on_a_preempted_node_is_requeued_whole(
    spot_server: ShoalServer, spot: Stubs
) -> None:
    await spot.pools.CreatePool(
        P.CreatePoolRequest(
            pool=P.Pool(id="p", target_nodes=1, target_low_priority_nodes=1, enable_inter_node_communication=True)
        )
    )
    ns = await until_nodes(spot, lambda ns: len(ns) == 2 and idle(ns))
    low = next(n for n in ns if not n.is_dedicated)
    dedicated = next(n for n in ns if n.is_dedicated)
    await spot.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await spot.tasks.AddTasks(
        T.AddTasksRequest(
            parent="jobs/j",
            tasks=[
                T.TaskSpec(
                    id="t",
                    command_line="sleep 60",
                    multi_instance_settings=T.MultiInstanceSettings(number_of_instances=2),
                )
            ],
        )
    )
    await until_task(spot, lambda t: t.state == T.TASK_STATE_RUNNING and len(t.subtasks) == 2)
    await spot.pools.PreemptNode(P.PreemptNodeRequest(name=f"pools/p/nodes/{low.id}"))
    t = await until_task(spot, lambda t: t.execution_info.requeue_count == 1)
    assert t.execution_info.retry_count == 0
    # The instance on the dedicated node is stopped too: the node is free again while the gang waits.
    await until_nodes(
        spot, lambda ns: any(n.id == dedicated.id and n.state == P.NODE_STATE_IDLE for n in ns), timeout=20
    )
    # Both nodes back: the gang runs again, whole.
    t = await until_task(spot, lambda t: t.state == T.TASK_STATE_RUNNING and t.attempt >= 2, timeout=40)
    await spot.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/t"))


async def test_dedicated_only_work_keeps_off_real_low_priority_nodes(spot_server: ShoalServer, spot: Stubs) -> None:
    await spot.pools.CreatePool(
        P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0, target_low_priority_nodes=1, task_slots_per_node=2))
    )
    await until_nodes(spot, lambda ns: len(ns) == 1 and idle(ns))
    await spot.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await spot.tasks.AddTasks(
        T.AddTasksRequest(
            parent="jobs/j",
            tasks=[
                T.TaskSpec(id="t", command_line="sleep 30", dedicated_nodes_only=True),
                T.TaskSpec(id="any", command_line="sleep 30"),
            ],
        )
    )
    anywhere = await until_task_named(spot, "any", lambda t: t.state == T.TASK_STATE_RUNNING)
    assert anywhere.node_info.node_id
    assert (await spot.tasks.GetTask(T.GetTaskRequest(name="jobs/j/tasks/t"))).state == T.TASK_STATE_ACTIVE
    # A dedicated node comes: the task runs there.
    await spot.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=1))
    t = await until_task(spot, lambda t: t.state == T.TASK_STATE_RUNNING)
    dedicated = [n.id for n in await nodes(spot) if n.is_dedicated]
    assert [t.node_info.node_id] == dedicated
    await spot.jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/j"))


async def until_task_named(stubs: Stubs, task_id: str, pred: Callable[[T.Task], bool]) -> T.Task:
    async with asyncio.timeout(30):
        while True:
            t = await stubs.tasks.GetTask(T.GetTaskRequest(name=f"jobs/j/tasks/{task_id}"))
            if pred(t):
                return t
            await asyncio.sleep(0.05)


async def test_work_survives_random_preemptions_each_task_completing_once(tmp_path: Path) -> None:
    """A preemption rate that takes a node every few seconds: every task completes exactly once, some
    after requeues, none counted as a retry."""
    async with (
        configured_server(
            tmp_path / "data",
            heartbeat_interval=0.2,
            spot_preemption_rate=1800.0,  # each node about every 2 s
            spot_recovery_seconds=0.5,
            spot_seed=7,
        ) as srv,
        server_channel(srv) as ch,
    ):
        stubs = Stubs(ch)
        await stubs.pools.CreatePool(
            P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, target_low_priority_nodes=2))
        )
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
        n = 12
        await stubs.tasks.AddTasks(
            T.AddTasksRequest(parent="jobs/j", tasks=[T.TaskSpec(id=f"t{i}", command_line="sleep 1") for i in range(n)])
        )
        async with asyncio.timeout(80):
            while True:
                counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
                if counts.completed == n:
                    break
                await asyncio.sleep(0.1)
        assert (counts.succeeded, counts.failed) == (n, 0)
        tasks = (await stubs.tasks.ListTasks(T.ListTasksRequest(parent="jobs/j"))).tasks
        assert all(t.execution_info.retry_count == 0 and t.execution_info.exit_code == 0 for t in tasks)
        # Preempted nodes stay listed (and come back): the pool still has its three.
        assert len(srv.cp.nodes) == 3
        assert srv.cp.stats.requeues >= 1, "no task was cut short: the rate did not bite"
