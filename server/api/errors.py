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

from shoal.grpcguard import ERROR_DOMAIN, MAX_DETAIL_CHARS  # (one domain and one cut for every refusal)
from shoal.server.domain import errors as domain
from shoal.server.domain.errors import MAX_ECHO_CHARS, shown

assert MAX_ECHO_CHARS == MAX_DETAIL_CHARS

#: UTF-8 bytes of the status message. gRPC percent-encodes it into the `grpc-message` trailer, up to
#: three bytes per byte, and the client refuses trailers past 16 KiB (and some past 8 KiB).
MAX_MESSAGE_BYTES = 512
#: UTF-8 bytes of one field path, one violation description, one ErrorInfo metadata value.
MAX_FIELD_BYTES = 256
MAX_DESCRIPTION_BYTES = 400
MAX_METADATA_VALUE_BYTES = 256
#: Field violations sent at most; the rest are counted in ErrorInfo metadata `omitted_violations`.
MAX_VIOLATIONS = 50
#: Serialized `google.rpc.Status` bytes at most (base64 in the `grpc-status-details-bin` trailer: 4/3 of it).
MAX_STATUS_BYTES = 3072


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` bytes of UTF-8 (on a character boundary), ending in an ellipsis if cut."""
    # (A lone surrogate, say from a file name, becomes '?': protobuf strings must be valid UTF-8.)
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    room = max(0, max_bytes - len(domain.ELLIPSIS.encode()))
    return data[:room].decode("utf-8", "ignore") + domain.ELLIPSIS


@dataclass
class ApiError(Exception):
    """A request that cannot be served, with everything the client needs to know why."""

    code: grpc.StatusCode
    reason: str
    message: str
    field_violations: list[tuple[str, str]] = field(default_factory=list)
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {clip(self.message, MAX_MESSAGE_BYTES)}"

    def to_status(self) -> status_pb2.Status:
        """The `google.rpc.Status` with ErrorInfo (and BadRequest when fields are named).

        Whatever the error holds, the status stays small enough for the client's trailer limits
        (about 5 KiB on the wire): the message, each field path, description and metadata value are
        clipped, at most `MAX_VIOLATIONS` violations are sent, and the whole is cut to `MAX_STATUS_BYTES`;
        violations left out are counted in the ErrorInfo metadata `omitted_violations`.
        """
        metadata = {clip(k, 64): clip(v, MAX_METADATA_VALUE_BYTES) for k, v in list(self.metadata.items())[:8]}
        violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=clip(f, MAX_FIELD_BYTES), description=clip(d, MAX_DESCRIPTION_BYTES)
            )
            for f, d in self.field_violations[:MAX_VIOLATIONS]
        ]
        message = clip(self.message, MAX_MESSAGE_BYTES)
        while True:
            status = self._status(message, metadata, violations)
            if status.ByteSize() <= MAX_STATUS_BYTES or not violations:
                return status
            # Drop violations from the end, at least an eighth at a time, until it fits.
            del violations[-max(1, len(violations) // 8) :]

    def _status(
        self,
        message: str,
        metadata: dict[str, str],
        violations: list[error_details_pb2.BadRequest.FieldViolation],
    ) -> status_pb2.Status:
        omitted = len(self.field_violations) - len(violations)
        if omitted:
            metadata = {**metadata, "omitted_violations": str(omitted)}
        info = error_details_pb2.ErrorInfo(reason=clip(self.reason, 64), domain=ERROR_DOMAIN, metadata=metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        details = [packed]
        if violations:
            packed_bad = any_pb2.Any()
            packed_bad.Pack(error_details_pb2.BadRequest(field_violations=violations))
            details.append(packed_bad)
        return status_pb2.Status(code=_CODE_VALUES[self.code], message=message, details=details)


_CODE_VALUES: dict[grpc.StatusCode, int] = {c: c.value[0] for c in grpc.StatusCode}
assert _CODE_VALUES[grpc.StatusCode.NOT_FOUND] == code_pb2.NOT_FOUND


#: The status of each kind of refusal the control plane makes (`shoal.server.domain.errors`).
REFUSAL_CODES: dict[type[domain.Refused], grpc.StatusCode] = {
    domain.NotFound: grpc.StatusCode.NOT_FOUND,
    domain.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    domain.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    domain.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    domain.Conflict: grpc.StatusCode.ABORTED,
    domain.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    domain.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def from_refusal(e: domain.Refused) -> ApiError:
    """The ApiError a refusal of the control plane is answered with."""
    code = REFUSAL_CODES.get(type(e), grpc.StatusCode.FAILED_PRECONDITION)
    return ApiError(code, e.reason, e.message, list(e.violations), e.metadata)


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


async def abort(context: grpc.aio.ServicerContext, error: ApiError | domain.Refused) -> None:  # type: ignore[type-arg]
    """End the RPC with `error` as a rich status (never returns normally)."""
    if isinstance(error, domain.Refused):
        error = from_refusal(error)
    # grpc-stubs lags grpc.aio here; abort_with_status exists on the aio context.
    await context.abort_with_status(rpc_status.to_status(error.to_status()))  # type: ignore[attr-defined]


def rpc_errors(method):  # type: ignore[no-untyped-def]
    """Decorate an async unary or server-streaming servicer method so that an ApiError, or a refusal of
    the control plane, becomes a rich status."""
    import functools
    import inspect

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self, request, context):  # type: ignore[no-untyped-def]
            try:
                async for item in method(self, request, context):
                    yield item
            except (ApiError, domain.Refused) as e:
                await abort(context, e)

        return stream_wrapper

    @functools.wraps(method)
    async def wrapper(self, request, context):  # type: ignore[no-untyped-def]
        try:
            return await method(self, request, context)
        except (ApiError, domain.Refused) as e:
            await abort(context, e)

    return wrapper


__all__ = [
    "ApiError",
    "abort",
    "already_exists",
    "failed_precondition",
    "from_refusal",
    "invalid",
    "not_found",
    "rpc_errors",
    "shown",
]
