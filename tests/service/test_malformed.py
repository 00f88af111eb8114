"""Bytes that are not a request message: INVALID_ARGUMENT MALFORMED_REQUEST, and one log line, not a traceback each."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from shoal.grpcguard import RefusalLog
from tests.channels import server_channel
from tests.service.test_validation import details
from tests.tlshelp import agent_channel

#: Not a protobuf message: wire type 7 does not exist.
GARBAGE = b"\xff\xff\xff\xff"


def not_utf8(field_number: int) -> bytes:
    """A string field holding two bytes that are not UTF-8 (proto3 strings must be)."""
    return bytes([field_number << 3 | 2, 2, 0xFF, 0xFE])


def _assert_malformed(err: grpc.aio.AioRpcError) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert details(err)[0] == "MALFORMED_REQUEST"


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        ("/shoal.v1.PoolService/ListPools", GARBAGE),
        ("/shoal.v1.PoolService/ListPools", not_utf8(2)),
        ("/shoal.v1.PoolService/CreatePool", GARBAGE),
        ("/shoal.v1.JobService/GetJob", GARBAGE),
        ("/shoal.v1.JobService/GetJob", not_utf8(1)),
        ("/shoal.v1.TaskService/AddTasks", GARBAGE),
        ("/shoal.v1.TaskService/AddTasks", not_utf8(1)),
        ("/shoal.v1.StorageService/CreateContainer", not_utf8(1)),
        ("/grpc.health.v1.Health/Check", GARBAGE),
    ],
)
async def test_unary_methods_refuse_garbage(server, method: str, payload: bytes) -> None:
    async with server_channel(server) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await channel.unary_unary(method)(payload, timeout=10)
    _assert_malformed(e.value)


@pytest.mark.parametrize(
    "method",
    ["/shoal.v1.TaskService/WatchTasks", "/shoal.v1.TaskService/ReadTaskFile", "/shoal.v1.StorageService/DownloadBlob"],
)
async def test_server_streaming_methods_refuse_garbage(server, method: str) -> None:
    async with server_channel(server) as channel:
        call = channel.unary_stream(method)(GARBAGE, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in call:
                pass
    _assert_malformed(e.value)


async def test_upload_refuses_a_garbage_message_after_a_good_one_and_keeps_nothing(server, stubs) -> None:
    from shoal.v1 import storage_pb2

    await stubs.storage.CreateContainer(storage_pb2.CreateContainerRequest(id="box"))
    first = storage_pb2.UploadBlobRequest(container="box", blob_name="b", data=b"x").SerializeToString()
    async with server_channel(server) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await channel.stream_unary("/shoal.v1.StorageService/UploadBlob")(iter([first, GARBAGE]), timeout=10)
    _assert_malformed(e.value)
    listed = await stubs.storage.ListBlobs(storage_pb2.ListBlobsRequest(container="box"))
    assert list(listed.blobs) == []


@pytest.mark.parametrize("method", ["/shoal.agent.v1.AgentService/Connect", "/shoal.agent.v1.AgentService/ConnectMany"])
async def test_agent_streams_refuse_garbage(server, method: str) -> None:
    async with agent_channel(server) as channel:
        call = channel.stream_stream(method)(iter([GARBAGE]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in call:
                pass
    _assert_malformed(e.value)


async def test_a_hundred_garbage_requests_log_one_line_and_no_traceback(server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with server_channel(server) as channel:
        calls = [channel.unary_unary("/shoal.v1.PoolService/ListPools")(GARBAGE, timeout=10) for _ in range(50)]
        calls += [channel.unary_unary("/shoal.v1.TaskService/AddTasks")(not_utf8(1), timeout=10) for _ in range(50)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results)
    for r in results:
        _assert_malformed(r)  # type: ignore[arg-type]
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1, [r.getMessage() for r in loud]
    assert not any(r.exc_info for r in caplog.records)


def test_refusal_log_writes_one_line_per_interval_with_the_count(caplog) -> None:
    now = [100.0]
    refusals = RefusalLog(interval=60.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="shoal.grpc")
    for _ in range(10):
        refusals.refused("/m", "bad")
    now[0] += 61
    refusals.refused("/m", "bad")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "refused 10 malformed request(s)" in lines[1]
    assert refusals.total == 11


async def test_reflection_and_health_answer_through_the_guard(server) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with server_channel(server) as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = set()
        async for reply in call:
            names = {s.name for s in reply.list_services_response.service}
            break
        assert {"shoal.v1.PoolService", "shoal.v1.TaskService", "shoal.v1.JoinService"} <= names
        # The agents' service is on the agent port (mutual TLS), not here.
        assert "shoal.agent.v1.AgentService" not in names
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
