"""Channels from the control plane to the agents' NodeService, for reading files on nodes."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc

from shoal.server.api.errors import ApiError
from shoal.server.domain.records import NodeRec

R = TypeVar("R")

_STATUS_REASONS = {
    grpc.StatusCode.NOT_FOUND: "FILE_NOT_FOUND",
    grpc.StatusCode.INVALID_ARGUMENT: "INVALID_PATH",
}


class NodeChannels:
    """One cached channel per node address."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, node: NodeRec) -> grpc.aio.Channel:
        target = f"{node.proto.ip_address}:{node.node_service_port}"
        ch = self._channels.get(target)
        if ch is None:
            ch = grpc.aio.insecure_channel(target)
            self._channels[target] = ch
        return ch

    async def call(self, awaitable: Awaitable[R]) -> R:
        """Await a NodeService call, turning agent errors into API errors."""
        try:
            return await awaitable
        except grpc.aio.AioRpcError as e:
            raise translate(e) from None

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()


def translate(e: grpc.aio.AioRpcError) -> ApiError:
    """An agent's error as the client should see it."""
    code = e.code()
    if code in _STATUS_REASONS:
        return ApiError(code, _STATUS_REASONS[code], e.details() or "")
    return ApiError(grpc.StatusCode.UNAVAILABLE, "NODE_UNAVAILABLE", f"the node did not answer: {e.details()}")
