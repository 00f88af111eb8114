"""A pool's fill type (SPREAD, PACK; changed by UpdatePool) and dedicated-only placement, on a real server with
scripted agents.

Pools cannot make low-priority nodes yet from these tests: a node is made low-priority by setting its record's
`is_dedicated` false through the kernel once it has joined (`_make_low_priority`), as the provider will when it
makes one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import field_mask_pb2

from shoal.agent.v1 import agent_pb2
from shoal.client import InvalidArgument, JobManagerTask, NodeFillType, TaskSpec
from shoal.client.cli import cli
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import credentials
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import refused
from tests.service.test_certificates_client import in_thread
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

P = pool_pb2
PACK = P.NODE_FILL_TYPE_PACK
SPREAD = P.NODE_FILL_TYPE_SPREAD


async def _pool(
    server, stubs: Stubs, *, nodes: int = 2, slots: int = 4, fill: int = 0, inter_node: bool = False
) -> list[ScriptedAgent]:
    """A `join` pool "p" of `nodes` scripted agents with `slots` slots each, every node IDLE."""
    pool = P.Pool(
        id="p",
        target_nodes=nodes,
        task_slots_per_node=slots,
        provider="join",
        enable_inter_node_communication=inter_node,
    )
    pool.task_scheduling_policy.node_fill_type = fill  # type: ignore[assignment]
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=pool))
    agents = [ScriptedAgent(server, "p", f"127.0.2.{80 + i}") for i in range(nodes)]
    for a in agents:
        await a.connect()
    async with asyncio.timeout(20):
        while True:
            listed = (await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes
            if len(listed) == nodes and all(n.state == P.NODE_STATE_IDLE for n in listed):
                break
            await asyncio.sleep(0.02)
    return agents


async def _make_low_priority(server, agent: ScriptedAgent) -> None:
    """Make `agent`'s node a low-priority one, as a provider that makes such nodes would have made it."""
    node = server.cp.node("p", agent.node_id)
    node.proto.is_dedicated = False
    server.cp.mark("nodes", node.key, node)
    await server.cp.flush()


async def _job(stubs: Stubs, job_id: str, **fields: object) -> None:
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id="p", **fields)))  # type: ignore[arg-type]


async def _add(stubs: Stubs, job_id: str, *ids: str, **fields: object) -> None:
    specs = [task_pb2.TaskSpec(id=i, command_line="/bin/true", **fields) for i in ids]  # type: ignore[arg-type]
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=specs))


async def _task(stubs: Stubs, job_id: str, tid: str) -> task_pb2.Task:
    return await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name=f"jobs/{job_id}/tasks/{tid}"))


async def _placed(stubs: Stubs, job_id: str, *ids: str) -> dict[str, str]:
    """Once every task of `ids` is placed, the node each went to."""
    async with asyncio.timeout(20):
        while True:
            tasks = [await _task(stubs, job_id, i) for i in ids]
            if all(t.state != task_pb2.TASK_STATE_ACTIVE for t in tasks):
                return {t.spec.id: t.node_info.node_id for t in tasks}
            await asyncio.sleep(0.02)


async def _finish(agent: ScriptedAgent, count: int) -> None:
    """Complete the first `count` tasks `agent` was given (they may come in several StartTasks)."""
    done = 0
    while done < count:
        start = await agent.expect("start_tasks")
        for assignment in start.start_tasks.tasks[: count - done]:
            await agent.event(assignment.attempt, agent_pb2.TASK_EVENT_KIND_COMPLETED)
            done += 1


async def _close(agents: list[ScriptedAgent]) -> None:
    for a in agents:
        await a.close()


# ---------------------------------------------------------------- fill type


async def test_pack_fills_nodes_one_at_a_time(server, stubs) -> None:
    agents = await _pool(server, stubs, fill=PACK)
    assert (await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))).task_scheduling_policy.node_fill_type == PACK
    await _job(stubs, "j")
    await _add(stubs, "j", "a0", "a1", "a2")
    first = await _placed(stubs, "j", "a0", "a1", "a2")
    assert len(set(first.values())) == 1, first
    # The next task still fits the node in use: it goes there, not to the idle node.
    await _add(stubs, "j", "a3")
    (used,) = set(first.values())
    assert (await _placed(stubs, "j", "a3")) == {"a3": used}
    # That node is full now: the next tasks open the other node, and fill it.
    await _add(stubs, "j", "b0", "b1", "b2", "b3")
    second = await _placed(stubs, "j", "b0", "b1", "b2", "b3")
    assert len(set(second.values())) == 1 and used not in second.values(), second
    await _close(agents)


async def test_spread_spreads(server, stubs) -> None:
    agents = await _pool(server, stubs)  # (the default fill type)
    pool = await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert pool.task_scheduling_policy.node_fill_type in (P.NODE_FILL_TYPE_UNSPECIFIED, SPREAD)
    await _job(stubs, "j")
    await _add(stubs, "j", "t0", "t1", "t2", "t3")
    nodes = await _placed(stubs, "j", "t0", "t1", "t2", "t3")
    assert sorted(list(nodes.values()).count(a.node_id) for a in agents) == [2, 2], nodes
    await _close(agents)


async def test_update_pool_changes_the_fill_type_for_the_next_placements(server, stubs) -> None:
    agents = await _pool(server, stubs, fill=SPREAD)
    await _job(stubs, "j")
    await _add(stubs, "j", "s0", "s1")
    spread = await _placed(stubs, "j", "s0", "s1")
    assert len(set(spread.values())) == 2, spread
    patch = P.Pool(name="pools/p")
    patch.task_scheduling_policy.node_fill_type = PACK
    updated = await stubs.pools.UpdatePool(
        P.UpdatePoolRequest(pool=patch, update_mask=field_mask_pb2.FieldMask(paths=["task_scheduling_policy"]))
    )
    assert updated.task_scheduling_policy.node_fill_type == PACK
    # Both nodes have one task and 3 free slots: packed, the next three fill one node (ties go by node id).
    await _add(stubs, "j", "p0", "p1", "p2")
    packed = await _placed(stubs, "j", "p0", "p1", "p2")
    assert len(set(packed.values())) == 1, packed
    # An unknown fill type is refused, naming the field; the pool keeps its own.
    patch.task_scheduling_policy.node_fill_type = 9  # type: ignore[assignment]
    e = await refused(
        stubs.pools.UpdatePool(
            P.UpdatePoolRequest(pool=patch, update_mask=field_mask_pb2.FieldMask(paths=["task_scheduling_policy"]))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_POOL",
    )
    assert [f for f, _ in details(e)[1]] == ["pool.task_scheduling_policy.node_fill_type"]
    pool = await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))
    assert pool.task_scheduling_policy.node_fill_type == PACK
    await _close(agents)


async def test_create_pool_refuses_an_unknown_fill_type(server, stubs) -> None:
    pool = P.Pool(id="bad", target_nodes=0, provider="join")
    pool.task_scheduling_policy.node_fill_type = 7  # type: ignore[assignment]
    e = await refused(
        stubs.pools.CreatePool(P.CreatePoolRequest(pool=pool)), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_POOL"
    )
    assert [f for f, _ in details(e)[1]] == ["pool.task_scheduling_policy.node_fill_type"]
    assert not (await stubs.pools.ListPools(P.ListPoolsRequest())).pools


# ---------------------------------------------------------------- dedicated only


async def test_dedicated_only_work_never_lands_on_a_low_priority_node(server, stubs) -> None:
    low, dedicated = await _pool(server, stubs, slots=2)
    await _make_low_priority(server, low)
    assert not (await stubs.pools.GetNode(P.GetNodeRequest(name=f"pools/p/nodes/{low.node_id}"))).is_dedicated
    # A job whose tasks all need dedicated nodes, and a task that asks for them itself in an ordinary job.
    await _job(stubs, "d", dedicated_nodes_only=True)
    await _add(stubs, "d", "d0", "d1", "d2")
    placed = await _placed(stubs, "d", "d0", "d1")
    assert set(placed.values()) == {dedicated.node_id}, placed
    await _job(stubs, "o")
    await _add(stubs, "o", "own", dedicated_nodes_only=True)
    await _add(stubs, "o", "any0", "any1")
    # The ordinary tasks take the low-priority node's slots; the dedicated-only ones wait for the dedicated node.
    assert set((await _placed(stubs, "o", "any0", "any1")).values()) == {low.node_id}
    assert (await _task(stubs, "d", "d2")).state == task_pb2.TASK_STATE_ACTIVE
    assert (await _task(stubs, "o", "own")).state == task_pb2.TASK_STATE_ACTIVE
    # Slots free on the low-priority node: still nothing for them there.
    await _finish(low, 2)
    await _add(stubs, "o", "any2")
    assert (await _placed(stubs, "o", "any2")) == {"any2": low.node_id}
    assert (await _task(stubs, "d", "d2")).state == task_pb2.TASK_STATE_ACTIVE
    assert (await _task(stubs, "o", "own")).state == task_pb2.TASK_STATE_ACTIVE
    # The dedicated node frees its slots: they go there.
    await _finish(dedicated, 2)
    later = await _placed(stubs, "d", "d2") | await _placed(stubs, "o", "own")
    assert set(later.values()) == {dedicated.node_id}, later
    await _close([low, dedicated])


async def test_a_job_manager_that_may_not_use_low_priority_nodes(server, stubs) -> None:
    # node-1 (the first in node order, where an exclusive job manager would go) is low-priority.
    low, dedicated = await _pool(server, stubs, slots=1)
    await _make_low_priority(server, low)
    jm = job_pb2.JobManagerTask(command_line="/bin/true", allow_low_priority_node=False)
    await _job(stubs, "m", job_manager_task=jm)
    assert (await _placed(stubs, "m", "jobmanager")) == {"jobmanager": dedicated.node_id}
    assert (
        await stubs.jobs.GetJob(job_pb2.GetJobRequest(name="jobs/m"))
    ).job_manager_task.allow_low_priority_node is False
    await _close([low, dedicated])


async def test_a_dedicated_only_gang_says_why_it_waits(server, stubs) -> None:
    low, dedicated = await _pool(server, stubs, slots=1, inter_node=True)
    await _make_low_priority(server, low)
    await _job(stubs, "g")
    mpi = task_pb2.MultiInstanceSettings(number_of_instances=2)
    await _add(stubs, "g", "gang", multi_instance_settings=mpi, dedicated_nodes_only=True)
    async with asyncio.timeout(20):
        while not (t := await _task(stubs, "g", "gang")).waiting_reason:
            await asyncio.sleep(0.02)
    assert t.state == task_pb2.TASK_STATE_ACTIVE
    assert t.waiting_reason.startswith("TooFewDedicatedNodes: needs 2 nodes at once on dedicated nodes"), t
    # It holds nothing: ordinary work still runs on both nodes.
    await _add(stubs, "g", "o0", "o1")
    assert set((await _placed(stubs, "g", "o0", "o1")).values()) == {low.node_id, dedicated.node_id}
    await _close([low, dedicated])


# ---------------------------------------------------------------- the Python client and the CLI


async def test_the_client_sets_and_shows_the_knobs(server, stubs) -> None:
    def scenario(client: Any) -> None:
        pool = client.pools.create(id="p", provider="join", node_fill_type="pack")
        assert pool.node_fill_type == NodeFillType.PACK
        assert client.pools.create(id="q", provider="join").node_fill_type == NodeFillType.SPREAD
        assert client.pools.update("p", node_fill_type="spread").node_fill_type == NodeFillType.SPREAD
        assert client.pools.get("p").node_fill_type == "spread"
        with pytest.raises(InvalidArgument) as e:
            client.pools.update("p", node_fill_type="fullest")
        assert [f for f, _ in e.value.field_violations] == ["pool.task_scheduling_policy.node_fill_type"]
        jm = JobManagerTask(command_line="/bin/true", allow_low_priority_node=False)
        job = client.jobs.create(id="j", pool_id="p", dedicated_nodes_only=True, job_manager_task=jm)
        assert job.dedicated_nodes_only and job.job_manager_task.allow_low_priority_node is False
        assert client.jobs.create(id="k", pool_id="p").job_manager_task is None
        task = client.tasks.add("k", TaskSpec(id="t", command_line="/bin/true", dedicated_nodes_only=True))
        assert task.spec.dedicated_nodes_only and client.tasks.get("k", "t").spec.dedicated_nodes_only
        assert TaskSpec.from_dict({"id": "x", "command_line": "y", "dedicated_nodes_only": True}).dedicated_nodes_only

    await in_thread(server, scenario)


async def test_the_cli_sets_and_shows_the_knobs(server, stubs, tmp_path: Path) -> None:
    creds = credentials(server.data_dir)
    args = ["--address", server.address, "--account", creds["account"], "--key", creds["key"]]
    if creds.get("ca_cert"):
        ca = tmp_path / "ca.pem"
        ca.write_text(creds["ca_cert"])
        args += ["--ca-cert", str(ca)]

    def scenario(_: Any) -> None:
        runner = CliRunner()

        def run(*more: str, code: int = 0) -> str:
            result = runner.invoke(cli, [*args, *more], catch_exceptions=False)
            assert result.exit_code == code, result.output
            return result.output

        run("pool", "create", "p", "--nodes", "0", "--provider", "join", "--fill-type", "pack")
        assert json.loads(run("pool", "show", "p", "-o", "json"))["node_fill_type"] == "pack"
        run("pool", "update", "p", "--fill-type", "spread")
        assert json.loads(run("pool", "get", "p", "-o", "json"))["node_fill_type"] == "spread"
        assert "spread" in run("pool", "show", "p")
        assert "pack" in run("pool", "create", "q", "--nodes", "0", "--provider", "join", "--fill-type", "PACK", code=2)
        run("job", "create", "j", "--pool", "p", "--dedicated-nodes-only")
        assert json.loads(run("job", "get", "j", "-o", "json"))["dedicated_nodes_only"] is True
        run("task", "add", "j", "t", "/bin/true", "--dedicated-nodes-only")
        assert json.loads(run("task", "get", "j", "t", "-o", "json"))["spec"]["dedicated_nodes_only"] is True

    await in_thread(server, scenario)
