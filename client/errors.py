"""The exception hierarchy of the Shoal client.

Every failed call raises a :class:`ShoalError` subclass carrying the gRPC status
code, the machine-readable ``reason`` from the server's ``ErrorInfo`` (for
example ``POOL_NOT_FOUND``) and, for bad input, the field violations::

    try:
        client.pools.get("nope")
    except shoal.client.NotFound as e:
        print(e.reason)          # POOL_NOT_FOUND
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ShoalError",
    "TaskFilesCleanedUp",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
]


class ShoalError(Exception):
    """Base of every error the Shoal client raises."""

    code: grpc.StatusCode
    """The gRPC status code of the failed call."""
    reason: str
    """The ``ErrorInfo`` reason (``POOL_NOT_FOUND``, ...), or ``""`` when the server sent none."""
    message: str
    """The human-readable message."""
    field_violations: list[tuple[str, str]]
    """``(field, description)`` for every invalid field the server named."""
    metadata: dict[str, str]
    """The ``ErrorInfo`` metadata."""

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        field_violations: list[tuple[str, str]] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.reason = reason
        self.field_violations = list(field_violations or [])
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        head = f"{self.reason}: {self.message}" if self.reason else self.message
        if self.field_violations:
            fields = "; ".join(f"{f}: {d}" for f, d in self.field_violations)
            if fields not in head:
                head = f"{head} ({fields})"
        return head


class NotFound(ShoalError):
    """The named resource does not exist (``NOT_FOUND``)."""

    default_code = grpc.StatusCode.NOT_FOUND


class TaskFilesCleanedUp(NotFound):
    """A completed task's files are gone from its node (``TASK_FILES_CLEANED_UP``, Batch's
    ``TaskFilesCleanedup``): its retention time ran out, or they were deleted."""


class AlreadyExists(ShoalError):
    """A resource with that id exists already (``ALREADY_EXISTS``)."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(ShoalError, ValueError):
    """The request was malformed; :attr:`field_violations` names each bad field."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ShoalError):
    """The resource is not in a state that allows the operation (``FAILED_PRECONDITION``)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ShoalError):
    """The call was refused because of a concurrent change (``ABORTED``): with reason ``ETAG_MISMATCH``,
    the resource changed since the etag sent was read; read it again and retry."""

    default_code = grpc.StatusCode.ABORTED


class Unavailable(ShoalError, ConnectionError):
    """The server cannot be reached (``UNAVAILABLE``)."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ShoalError, TimeoutError):
    """A call or a wait did not finish within its timeout."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ShoalError):
    """The call was cancelled."""

    default_code = grpc.StatusCode.CANCELLED


class PermissionDenied(ShoalError):
    """The caller may not do this (``PERMISSION_DENIED``)."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ShoalError):
    """The caller's credentials are missing or wrong (``UNAUTHENTICATED``)."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class QuotaExceeded(ShoalError):
    """The account would go past one of its quotas (``RESOURCE_EXHAUSTED``; the reason says which)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


_BY_CODE: dict[grpc.StatusCode, type[ShoalError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


#: Reasons with a class of their own (a subclass of the class of their code).
_BY_REASON: dict[str, type[ShoalError]] = {
    "TASK_FILES_CLEANED_UP": TaskFilesCleanedUp,
    # (RESOURCE_EXHAUSTED is also a message too large for the channel: only these reasons are quotas.)
    "POOL_QUOTA_REACHED": QuotaExceeded,
    "NODE_QUOTA_REACHED": QuotaExceeded,
    "ACTIVE_JOB_QUOTA_REACHED": QuotaExceeded,
}


def from_rpc_error(error: grpc.RpcError) -> ShoalError:
    """Turn a failed gRPC call into the matching :class:`ShoalError` subclass.

    Reads the ``google.rpc.Status`` in the trailing metadata for the
    ``ErrorInfo`` reason and ``BadRequest`` field violations.
    """
    code_fn = getattr(error, "code", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_fn = getattr(error, "details", None)
    message = (details_fn() if callable(details_fn) else None) or str(code.name)
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    status = None
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        status = None
    if status is not None:
        if status.message:
            message = status.message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = reason or info.reason
                metadata.update(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    base = _BY_CODE.get(code, ShoalError)
    cls = _BY_REASON.get(reason, base)
    if not issubclass(cls, base):
        cls = base  # (a reason's class only refines its code's)
    return cls(message, code=code, reason=reason, field_violations=violations, metadata=metadata)
