"""RemoveNodes, StopPoolResize and the resize timeout on a real server (scripted and real local agents)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import duration_pb2

from shoal.clock import ManualClock
from shoal.server.app import ServerConfig, ShoalServer
from shoal.v1 import pool_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

P = pool_pb2


async def _pool(stubs: Stubs, **kw: object) -> P.Pool:
    return await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))


async def test_remove_nodes_takes_exactly_those(server, stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=3, provider="join")))
    agents = [ScriptedAgent(server, "p", f"127.0.2.{70 + i}") for i in range(3)]
    for a in agents:
        await a.connect()
    async with asyncio.timeout(10):
        while (await _pool(stubs)).allocation_state != P.ALLOCATION_STATE_STEADY:
            await asyncio.sleep(0.01)
    gone = agents[1].node_id
    pool = await stubs.pools.RemoveNodes(
        P.RemoveNodesRequest(name="pools/p", node_ids=[gone.upper()], resize_timeout=duration_pb2.Duration(seconds=60))
    )
    assert pool.target_nodes == 2 and pool.resize_timeout.seconds == 60
    nodes = {n.id: n.state for n in (await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes}
    assert nodes[gone] == P.NODE_STATE_LEAVING_POOL
    assert [s for i, s in nodes.items() if i != gone] == [P.NODE_STATE_IDLE, P.NODE_STATE_IDLE]
    await agents[1].expect("shutdown")
    # Bad requests name their field; a resize under way is refused; nothing changes.
    for ids, field in (
        ([], "node_ids"),
        (["nope"], "node_ids[0]"),
        ([agents[0].node_id, agents[0].node_id], "node_ids[1]"),
        ([f"n{i}" for i in range(101)], "node_ids"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stubs.pools.RemoveNodes(P.RemoveNodesRequest(name="pools/p", node_ids=ids))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT or (
            e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and details(e.value)[0] == "POOL_RESIZING"
        ), e.value
        if e.value.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert field in [f for f, _ in details(e.value)[1]]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.pools.RemoveNodes(
            P.RemoveNodesRequest(
                name="pools/p", node_ids=[agents[0].node_id], resize_timeout=duration_pb2.Duration(seconds=1)
            )
        )
    assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert (await _pool(stubs)).target_nodes == 2
    for a in agents:
        await a.close()


async def test_stop_resize_keeps_what_is_made(server, stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=2, provider="join")))
    agents = [ScriptedAgent(server, "p", f"127.0.2.{80 + i}") for i in range(2)]
    for a in agents:
        await a.connect()
    await refused(
        stubs.pools.StopPoolResize(P.StopPoolResizeRequest(name="pools/p")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_NOT_RESIZING",
    )
    # A shrink under way: one node leaving, and still there until its agent is gone.
    await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=1))
    assert (await _pool(stubs)).allocation_state == P.ALLOCATION_STATE_RESIZING
    stopped = await stubs.pools.StopPoolResize(P.StopPoolResizeRequest(name="pools/p"))
    assert stopped.allocation_state == P.ALLOCATION_STATE_STOPPING and stopped.target_nodes == 1
    (err,) = stopped.resize_errors
    assert err.code == "ResizeStopped"
    await refused(
        stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=3)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_RESIZING",
    )
    # Nothing is rolled back: the leaving node leaves; then the pool is steady.
    nodes = (await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes
    (leaving,) = [n.id for n in nodes if n.state == P.NODE_STATE_LEAVING_POOL]
    for a in agents:
        if a.node_id == leaving:
            await a.close()
    async with asyncio.timeout(20):
        while (pool := await _pool(stubs)).allocation_state != P.ALLOCATION_STATE_STEADY:
            await server.cp.check_health(0.0)
            await asyncio.sleep(0.02)
    assert pool.current_nodes == 1 and [e.code for e in pool.resize_errors] == ["ResizeStopped"]
    # The next resize clears the errors.
    resized = await stubs.pools.ResizePool(P.ResizePoolRequest(name="pools/p", target_nodes=1))
    assert not resized.resize_errors
    for a in agents:
        if a.node_id != leaving:
            await a.close()


async def test_a_resize_past_its_timeout_gives_up_the_nodes_not_up(tmp_path) -> None:
    clock = ManualClock(datetime.now(UTC))
    server = ShoalServer(
        ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False, clock=clock)
    )
    await server.start()
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            await refused(
                stubs.pools.CreatePool(
                    P.CreatePoolRequest(pool=P.Pool(id="p", resize_timeout=duration_pb2.Duration(seconds=2)))
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_POOL",
            )
            await stubs.pools.CreatePool(
                P.CreatePoolRequest(
                    pool=P.Pool(id="p", target_nodes=2, resize_timeout=duration_pb2.Duration(seconds=30))
                )
            )
            assert (await _pool(stubs)).allocation_state == P.ALLOCATION_STATE_RESIZING
            await server.cp.check_resize_timeouts()
            assert not (await _pool(stubs)).resize_errors  # not yet
            clock.advance(31)
            await server.cp.check_resize_timeouts()
            pool = await _pool(stubs)
            (err,) = pool.resize_errors
            assert err.code == "AllocationTimedout"
            assert pool.allocation_state in (P.ALLOCATION_STATE_STOPPING, P.ALLOCATION_STATE_STEADY)
            assert pool.target_nodes == 0
            nodes = (await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes
            assert all(n.state == P.NODE_STATE_LEAVING_POOL for n in nodes)
    finally:
        await server.stop(stop_agents=True)
