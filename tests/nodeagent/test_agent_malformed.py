"""The agent's NodeService refuses bytes that are not a request: INVALID_ARGUMENT MALFORMED_REQUEST."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.tlshelp import node_channel

GARBAGE = b"\xff\xff\xff\xff"


def _reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return info.reason


async def test_node_service_refuses_garbage(plane_server, run_agent, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    port = plane.registers[0].node_service_port
    async with node_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await ch.unary_unary("/shoal.agent.v1.NodeService/ListFiles")(GARBAGE, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _reason(e.value) == "MALFORMED_REQUEST"
        for call in (
            ch.unary_stream("/shoal.agent.v1.NodeService/ReadFile")(GARBAGE, timeout=10),
            ch.stream_stream("/shoal.agent.v1.NodeService/ExecNode")(iter([GARBAGE]), timeout=10),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in call:
                    pass
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _reason(e.value) == "MALFORMED_REQUEST"
    assert not any(r.exc_info for r in caplog.records)
