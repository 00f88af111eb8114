"""`InstrumentingRegistrar` on a real grpc.aio server (a stand-in PoolService: what is tested is the
wrapper): calls counted by method and code, and what a servicer logs while handling a call carries the
call's fields, its request's secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from shoal import logs
from shoal.grpcguard import guarded
from shoal.server.observability.rpc import InstrumentingRegistrar, RpcStats
from shoal.v1 import common_pb2, pool_pb2, pool_pb2_grpc

pytestmark = pytest.mark.timeout(30)
log = logging.getLogger("shoal.test.pools")


class Pools(pool_pb2_grpc.PoolServiceServicer):
    async def GetPool(self, request: pool_pb2.GetPoolRequest, context: grpc.aio.ServicerContext) -> pool_pb2.Pool:  # type: ignore[override]
        log.info("looking for it")
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such pool")
        raise AssertionError  # (abort raises)

    async def CreatePool(self, request: pool_pb2.CreatePoolRequest, context: grpc.aio.ServicerContext) -> pool_pb2.Pool:  # type: ignore[override]
        # A servicer that logs a password by mistake: the line shows none.
        log.info("creating with %s", request.pool.container_configuration.container_registries[0].password)
        return pool_pb2.Pool(id=request.pool.id)

    async def ListPools(
        self, request: pool_pb2.ListPoolsRequest, context: grpc.aio.ServicerContext
    ) -> pool_pb2.ListPoolsResponse:  # type: ignore[override]
        raise RuntimeError("a bug")

    async def WatchNodes(  # type: ignore[override]
        self, request: pool_pb2.WatchNodesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pool_pb2.WatchNodesResponse]:
        log.info("watching")
        yield pool_pb2.WatchNodesResponse()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("json", "INFO", stream=out)
    try:
        yield out
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        logs.forget_secrets()


async def test_calls_counted_and_logged_with_their_fields(captured: io.StringIO) -> None:
    stats = RpcStats()
    server = grpc.aio.server()
    pool_pb2_grpc.add_PoolServiceServicer_to_server(Pools(), guarded(InstrumentingRegistrar(server, stats)))  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    md = (("shoal-account", "acme"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pool_pb2_grpc.PoolServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetPool(pool_pb2.GetPoolRequest(name="pools/gone"), metadata=md)
            registry = common_pb2.ContainerRegistry(registry_server="r", user_name="u", password="the-Registry-pw")
            pool = pool_pb2.Pool(
                id="p1", container_configuration=common_pb2.ContainerConfiguration(container_registries=[registry])
            )
            await stub.CreatePool(pool_pb2.CreatePoolRequest(pool=pool, request_id="req-7"), metadata=md)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.ListPools(pool_pb2.ListPoolsRequest(), metadata=md)
            assert e.value.code() == grpc.StatusCode.UNKNOWN
            async for _ in stub.WatchNodes(pool_pb2.WatchNodesRequest(parent="pools/p1"), metadata=md):
                pass
    finally:
        await server.stop(0)
    records = [json.loads(line) for line in captured.getvalue().splitlines()]
    mine = {r["message"]: r for r in records if r["logger"] == "shoal.test.pools"}
    looking = mine["looking for it"]
    assert (looking["method"], looking["account"], looking["resource"]) == (
        "/shoal.v1.PoolService/GetPool",
        "acme",
        "pools/gone",
    )
    creating = mine[f"creating with {logs.REDACTED}"]
    assert creating["request_id"] == "req-7" and creating["method"].endswith("/CreatePool")
    assert mine["watching"]["resource"] == "pools/p1"
    assert "the-Registry-pw" not in captured.getvalue()
    codes = {name.rsplit("/", 1)[1]: dict(m.codes) for name, m in stats.methods.items() if m.started}
    assert codes == {
        "GetPool": {"NOT_FOUND": 1},
        "CreatePool": {"OK": 1},
        "ListPools": {"UNKNOWN": 1},
        "WatchNodes": {"OK": 1},
    }
    families = {f.name: f for f in stats.collect()}
    handling = families["shoal_grpc_server_handling_seconds"]
    counts = {s.labels["grpc_method"]: s.value for s in handling.samples if s.name.endswith("_count")}
    assert counts == {"GetPool": 1, "CreatePool": 1, "ListPools": 1}  # (unary calls only)
