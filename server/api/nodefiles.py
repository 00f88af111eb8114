"""Channels from the control plane to the agents' NodeService, for the files on nodes.

Mutual TLS: the server shows its client certificate, and trusts an agent that shows a node
certificate of the cluster CA (checked against the name every node's certificate carries).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal import agenterrors
from shoal.server.api.errors import ApiError
from shoal.server.domain.records import NodeRec
from shoal.tlsconfig import NODE_TLS_NAME, name_options

R = TypeVar("R")

#: What an agent's status means when it carries no reason (an older agent).
_STATUS_REASONS = {
    grpc.StatusCode.NOT_FOUND: agenterrors.FILE_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: agenterrors.INVALID_PATH,
    grpc.StatusCode.PERMISSION_DENIED: agenterrors.FILE_ACCESS_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION: agenterrors.FILE_UNREADABLE,
}
#: How long the control plane waits for an agent to delete a file (a large directory tree takes a while).
DELETE_SECONDS = 120.0
#: The channel options towards agents: a listing as large as an agent answers (see shoal.agenterrors).
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", agenterrors.AGENT_REPLY_MAX_BYTES)]


class NodeChannels:
    """One cached channel per node address."""

    def __init__(self, credentials: grpc.ChannelCredentials) -> None:
        self._credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, node: NodeRec) -> grpc.aio.Channel:
        ip = node.proto.ip_address
        target = f"[{ip}]:{node.node_service_port}" if ":" in ip else f"{ip}:{node.node_service_port}"
        ch = self._channels.get(target)
        if ch is None:
            options = _CHANNEL_OPTIONS + name_options(NODE_TLS_NAME)
            ch = grpc.aio.secure_channel(target, self._credentials, options=options)
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


def agent_reason(e: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason an agent put in its status, or ''."""
    try:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        return ""
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == agenterrors.ERROR_DOMAIN:
                return info.reason
    return ""


def translate(e: grpc.aio.AioRpcError) -> ApiError:
    """An agent's error as the client should see it.

    The agent's file errors (shoal.agenterrors) keep their code and reason (a missing task
    directory reads as TASK_DIRECTORY_NOT_FOUND here; the task API tells a cleaned-up one apart,
    see `TaskServicer._file_error`); an answer too large for the channel (from an agent that does not
    bound its listings) is FAILED_PRECONDITION TOO_MANY_FILES; anything else means the node could not
    serve the call: UNAVAILABLE NODE_UNAVAILABLE.
    """
    code = e.code()
    if code in _STATUS_REASONS:
        reason = agent_reason(e)
        if reason not in agenterrors.REASONS:
            reason = _STATUS_REASONS[code]
        return ApiError(code, reason, e.details() or "")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # An answer larger than this channel takes: an agent without a listing's bounds (an older one).
        return ApiError(
            grpc.StatusCode.FAILED_PRECONDITION,
            agenterrors.TOO_MANY_FILES,
            f"the node's answer is too large ({e.details()}): list a subdirectory, or not recursively",
        )
    return ApiError(grpc.StatusCode.UNAVAILABLE, "NODE_UNAVAILABLE", f"the node did not answer: {e.details()}")
