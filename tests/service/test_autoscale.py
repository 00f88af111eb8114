"""Autoscale on a real server with real local agents: a pool sized by its formula from its live metrics,
the last run on the pool, dry runs, Batch's preconditions, errors with their position, and the settings
kept across a server restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from shoal.server.app import ShoalServer
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, configured_server
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(120)

P = pool_pb2
T = task_pb2

#: Up to two nodes while tasks wait or run, none otherwise (a formula from Batch's documentation, shortened).
PENDING_FORMULA = """
// Tasks waiting or running in the last sample.
pending = max($PendingTasks.GetSample(1));
$TargetDedicatedNodes = min(2, pending);
$NodeDeallocationOption = taskcompletion;
"""


@pytest.fixture
async def auto_server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    async with configured_server(tmp_path / "data", heartbeat_interval=0.2) as srv:
        yield srv


@pytest.fixture
async def auto(auto_server: ShoalServer) -> AsyncIterator[Stubs]:
    async with server_channel(auto_server) as channel:
        yield Stubs(channel)


def seconds(s: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(s * 1e9))
    return d


async def pool(stubs: Stubs) -> P.Pool:
    return await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))


async def until_pool(stubs: Stubs, pred: Callable[[P.Pool], bool], timeout: float = 40.0) -> P.Pool:
    async with asyncio.timeout(timeout):
        while True:
            p = await pool(stubs)
            if pred(p):
                return p
            await asyncio.sleep(0.05)


async def test_a_pool_scales_from_zero_for_its_tasks_and_back(auto: Stubs) -> None:
    created = await auto.pools.CreatePool(
        P.CreatePoolRequest(
            pool=P.Pool(
                id="p",
                enable_auto_scale=True,
                auto_scale_formula=PENDING_FORMULA,
                auto_scale_evaluation_interval=seconds(5),
            )
        )
    )
    assert created.enable_auto_scale and created.target_nodes == 0
    first = await until_pool(auto, lambda p: p.HasField("auto_scale_run"))
    assert "$TargetDedicatedNodes=0" in first.auto_scale_run.results, first.auto_scale_run
    assert "pending=0" in first.auto_scale_run.results
    assert not first.auto_scale_run.HasField("error")

    await auto.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await auto.tasks.AddTasks(
        T.AddTasksRequest(parent="jobs/j", tasks=[T.TaskSpec(id=f"t{i}", command_line="sleep 1") for i in range(4)])
    )
    grown = await until_pool(auto, lambda p: p.target_nodes == 2)
    assert "$NodeDeallocationOption=taskcompletion" in grown.auto_scale_run.results
    async with asyncio.timeout(60):
        while (await auto.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))).succeeded < 4:
            await asyncio.sleep(0.1)
    # Nothing pending: back to no node.
    shrunk = await until_pool(auto, lambda p: p.target_nodes == 0 and p.current_nodes == 0, timeout=60)
    assert shrunk.allocation_state == P.ALLOCATION_STATE_STEADY


async def test_batch_preconditions_and_dry_runs(auto: Stubs) -> None:
    await auto.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0)))
    await refused(
        auto.pools.EvaluateAutoScale(P.EvaluateAutoScaleRequest(name="pools/p", auto_scale_formula="$x = 1;")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTO_SCALE_NOT_ENABLED",
    )
    # Batch's trick: enable with a formula that changes nothing, then try others.
    enabled = await auto.pools.EnableAutoScale(
        P.EnableAutoScaleRequest(name="pools/p", auto_scale_formula="$TargetDedicatedNodes = $CurrentDedicatedNodes;")
    )
    assert enabled.enable_auto_scale and "$TargetDedicatedNodes=0" in enabled.auto_scale_run.results
    run = await auto.pools.EvaluateAutoScale(
        P.EvaluateAutoScaleRequest(
            name="pools/p",
            auto_scale_formula="$TargetDedicatedNodes = $CurrentDedicatedNodes + 3;\n$TargetLowPriorityNodes = 1;",
        )
    )
    assert not run.HasField("error")
    assert "$TargetDedicatedNodes=3" in run.results and "$TargetLowPriorityNodes=1" in run.results
    assert (await pool(auto)).target_nodes == 0  # a dry run applies nothing

    # Too few samples for what the formula asks: the run fails, with where, and the pool stays.
    failing = await auto.pools.EvaluateAutoScale(
        P.EvaluateAutoScaleRequest(
            name="pools/p",
            auto_scale_formula="a = 2;\n$TargetDedicatedNodes = avg($CPUPercent.GetSample(TimeInterval_Hour, 90));",
        )
    )
    assert failing.error.code == "InsufficientSampleData", failing
    assert ("a", "2") in [(v.name, v.value) for v in failing.error.values]

    # A syntax error is refused with its line and column.
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await auto.pools.EvaluateAutoScale(
            P.EvaluateAutoScaleRequest(name="pools/p", auto_scale_formula="$TargetDedicatedNodes = 1;\nx = (2 + ;")
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(bad.value)[0], details(bad.value)[1]
    assert reason == "INVALID_AUTO_SCALE_FORMULA"
    assert violations[0][0] == "auto_scale_formula" and "Line 2" in violations[0][1], violations

    # An autoscale pool is not resized by hand, and enables are 30 s apart.
    await refused(
        auto.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=2)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTO_SCALE_ENABLED",
    )
    await refused(
        auto.pools.UpdatePool(
            P.UpdatePoolRequest(pool=P.Pool(name="pools/p", target_nodes=2), update_mask={"paths": ["target_nodes"]})
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTO_SCALE_ENABLED",
    )
    await refused(
        auto.pools.EnableAutoScale(P.EnableAutoScaleRequest(name="pools/p", auto_scale_formula="$x = 1;")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "TOO_MANY_ENABLE_AUTO_SCALE_REQUESTS",
    )
    await refused(
        auto.pools.StopPoolResize(P.StopPoolResizeRequest(name="pools/p")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "AUTO_SCALE_ENABLED",
    )
    disabled = await auto.pools.DisableAutoScale(P.DisableAutoScaleRequest(name="pools/p"))
    assert not disabled.enable_auto_scale and disabled.HasField("auto_scale_run")
    resized = await auto.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=0))
    assert resized.target_nodes == 0


async def test_create_checks_the_formula_and_the_targets(auto: Stubs) -> None:
    cases = [
        (P.Pool(id="a", enable_auto_scale=True), "pool.auto_scale_formula"),
        (
            P.Pool(id="b", enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes = ;"),
            "pool.auto_scale_formula",
        ),
        (P.Pool(id="c", enable_auto_scale=True, auto_scale_formula="$CPUPercent = 1;"), "pool.auto_scale_formula"),
        (
            P.Pool(id="d", enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes=1;", target_nodes=2),
            "pool.target_nodes",
        ),
        (
            P.Pool(
                id="e",
                enable_auto_scale=True,
                auto_scale_formula="$TargetDedicatedNodes=1;",
                auto_scale_evaluation_interval=seconds(1),
            ),
            "pool.auto_scale_evaluation_interval",
        ),
        (P.Pool(id="f", auto_scale_formula="$TargetDedicatedNodes=1;"), "pool.auto_scale_formula"),
        (P.Pool(id="g", enable_auto_scale=True, auto_scale_formula="x=1;" * 101), "pool.auto_scale_formula"),
        (P.Pool(id="h", enable_auto_scale=True, auto_scale_formula="x=1;" + " " * 8200), "pool.auto_scale_formula"),
        (
            P.Pool(id="i", provider="join", enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes=1;"),
            "pool.enable_auto_scale",
        ),
    ]
    for spec, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await auto.pools.CreatePool(P.CreatePoolRequest(pool=spec))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, spec
        assert field in [f for f, _ in details(e.value)[1]], (spec, details(e.value))
    assert not (await auto.pools.ListPools(P.ListPoolsRequest())).pools


async def test_autoscale_and_its_last_run_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with configured_server(data, heartbeat_interval=0.2) as srv, server_channel(srv) as ch:
        stubs = Stubs(ch)
        await stubs.pools.CreatePool(
            P.CreatePoolRequest(
                pool=P.Pool(
                    id="p",
                    enable_auto_scale=True,
                    auto_scale_formula="$TargetDedicatedNodes = 0; n = 7;",
                    auto_scale_evaluation_interval=seconds(3600),
                )
            )
        )
        before = await until_pool(stubs, lambda p: p.HasField("auto_scale_run"))
    async with configured_server(data, heartbeat_interval=0.2) as srv, server_channel(srv) as ch:
        after = await pool(Stubs(ch))
        assert after.enable_auto_scale and after.auto_scale_formula == before.auto_scale_formula
        assert after.auto_scale_evaluation_interval.seconds == 3600
        assert "n=7" in after.auto_scale_run.results and after.target_nodes == 0
        # Evaluated again at once after the restart (its schedule is not kept).
        again = await until_pool(
            Stubs(ch),
            lambda p: p.auto_scale_run.timestamp.ToNanoseconds() > before.auto_scale_run.timestamp.ToNanoseconds(),
        )
        assert again.target_nodes == 0 and "n=7" in again.auto_scale_run.results


async def test_a_gang_counts_its_instances_and_the_pool_grows_to_fit_it(auto: Stubs) -> None:
    """`$PendingTasks` counts a multi-instance task's instances, as Batch: the pool grows to hold the gang."""
    await auto.pools.CreatePool(
        P.CreatePoolRequest(
            pool=P.Pool(
                id="p",
                enable_inter_node_communication=True,
                enable_auto_scale=True,
                auto_scale_formula="$TargetDedicatedNodes = min(3, max($PendingTasks.GetSample(1)));",
                auto_scale_evaluation_interval=seconds(5),
            )
        )
    )
    await auto.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await auto.tasks.AddTasks(
        T.AddTasksRequest(
            parent="jobs/j",
            tasks=[
                T.TaskSpec(
                    id="gang",
                    command_line="/bin/true",
                    multi_instance_settings=T.MultiInstanceSettings(number_of_instances=3),
                )
            ],
        )
    )
    await until_pool(auto, lambda p: p.target_nodes == 3)
    async with asyncio.timeout(60):
        while (await auto.tasks.GetTask(T.GetTaskRequest(name="jobs/j/tasks/gang"))).state != T.TASK_STATE_COMPLETED:
            await asyncio.sleep(0.1)


async def test_the_account_node_quota_caps_what_a_formula_asks(auto_server: ShoalServer) -> None:
    key = await make_account(auto_server, "small", max_nodes=2)
    async with channel_as(auto_server, "small", key) as ch:
        stubs = Stubs(ch)
        await stubs.pools.CreatePool(
            P.CreatePoolRequest(
                pool=P.Pool(id="p", enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes = 5;")
            )
        )
        capped = await until_pool(stubs, lambda p: p.HasField("auto_scale_run"))
        assert capped.target_nodes == 2, capped
        assert capped.auto_scale_run.error.code == "AccountNodeQuotaReached"
        assert "$TargetDedicatedNodes=5" in capped.auto_scale_run.results
