"""The dashboard's way in: calls to the server's own public gRPC API, carrying the signed-in account's key.

Nothing is read from the control plane behind the API's back, so a page sees what the account's own client
would see (tenancy, refusals, hidden secrets), and the API's errors come back as HTTP statuses with their
reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from .sessions import Session

#: gRPC status to HTTP status, for what the dashboard reads.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
#: The longest a unary read may take before the page is told so.
CALL_SECONDS = 30.0


class GatewayError(Exception):
    """A call the API refused or could not answer: the HTTP status, the API's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON error a page gets."""
        return {"error": self.message, "reason": self.reason}


def as_json(message: Message) -> dict[str, Any]:
    """A response as the pages read it: proto field names, enums by name, defaults included."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _error(e: grpc.aio.AioRpcError) -> GatewayError:
    reason = ""
    trailing: Any = e.trailing_metadata() or ()
    for k, v in trailing:
        if k == "grpc-status-details-bin" and isinstance(v, bytes):
            from google.rpc import error_details_pb2, status_pb2

            status = status_pb2.Status.FromString(v)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    reason = info.reason
    return GatewayError(_HTTP_STATUS.get(e.code(), 502), reason or e.code().name, e.details() or e.code().name)


class Gateway:
    """A channel to the server's own public API and the calls the dashboard makes on it."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.address = address
        self.credentials = credentials
        self._channel: grpc.aio.Channel | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel (made on first use, on the running loop)."""
        if self._channel is None:
            options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
            if self.credentials is None:
                self._channel = grpc.aio.insecure_channel(self.address, options=options)
            else:
                self._channel = grpc.aio.secure_channel(self.address, self.credentials, options=options)
        return self._channel

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    @staticmethod
    def metadata(session: Session | None) -> list[tuple[str, str]]:
        """The call's credentials: the session's account and key (none on a plaintext server)."""
        if session is None:
            return []
        return [("shoal-account", session.account), ("authorization", f"Bearer {session.key}")]

    async def unary(self, method: Callable[..., Any], request: Message, session: Session | None) -> Message:
        """One call; its refusal as a `GatewayError`."""
        try:
            response: Message = await method(request, metadata=self.metadata(session), timeout=CALL_SECONDS)
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None
        return response

    async def stream(
        self, method: Callable[..., Any], request: Message, session: Session | None
    ) -> AsyncIterator[Message]:
        """A server stream's messages; its refusal as a `GatewayError`. Cancelled when the page leaves."""
        call = method(request, metadata=self.metadata(session))
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None
        finally:
            call.cancel()
