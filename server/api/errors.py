"""gRPC errors with `google.rpc.Status` details: an ErrorInfo reason and BadRequest field violations.

Servicers raise :class:`ApiError`; :func:`abort` turns it into the status the
client sees. Every rejected request carries a machine-readable reason
(``POOL_NOT_FOUND``) in the ``shoal.v1`` domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "shoal.v1"


@dataclass
class ApiError(Exception):
    """A request that cannot be served, with everything the client needs to know why."""

    code: grpc.StatusCode
    reason: str
    message: str
    field_violations: list[tuple[str, str]] = field(default_factory=list)
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    def to_status(self) -> status_pb2.Status:
        """The `google.rpc.Status` with ErrorInfo (and BadRequest when fields are named)."""
        details = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=dict(self.metadata))
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
        if self.field_violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.field_violations
                ]
            )
            packed_bad = any_pb2.Any()
            packed_bad.Pack(bad)
            details.append(packed_bad)
        return status_pb2.Status(code=_CODE_VALUES[self.code], message=self.message, details=details)


_CODE_VALUES: dict[grpc.StatusCode, int] = {c: c.value[0] for c in grpc.StatusCode}
assert _CODE_VALUES[grpc.StatusCode.NOT_FOUND] == code_pb2.NOT_FOUND


def invalid(reason: str, violations: Iterable[tuple[str, str]], message: str | None = None) -> ApiError:
    """INVALID_ARGUMENT naming each bad field."""
    vs = list(violations)
    msg = message or "; ".join(f"{f}: {d}" for f, d in vs) or reason
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, reason, msg, vs)


def not_found(reason: str, message: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, reason, message)


def already_exists(reason: str, message: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, reason, message)


def failed_precondition(reason: str, message: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, reason, message)


async def abort(context: grpc.aio.ServicerContext, error: ApiError) -> None:  # type: ignore[type-arg]
    """End the RPC with `error` as a rich status (never returns normally)."""
    # grpc-stubs lags grpc.aio here; abort_with_status exists on the aio context.
    await context.abort_with_status(rpc_status.to_status(error.to_status()))  # type: ignore[attr-defined]


def rpc_errors(method):  # type: ignore[no-untyped-def]
    """Decorate an async unary or server-streaming servicer method so ApiError becomes a rich status."""
    import functools
    import inspect

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self, request, context):  # type: ignore[no-untyped-def]
            try:
                async for item in method(self, request, context):
                    yield item
            except ApiError as e:
                await abort(context, e)

        return stream_wrapper

    @functools.wraps(method)
    async def wrapper(self, request, context):  # type: ignore[no-untyped-def]
        try:
            return await method(self, request, context)
        except ApiError as e:
            await abort(context, e)

    return wrapper
