"""Why the control plane refuses a change, in its own terms: the API layer (`server/api/errors.py`) alone
turns these into gRPC statuses.

Each refusal carries a machine-readable reason (``POOL_NOT_FOUND``), a message for people, and, when
fields of the request are at fault, a list of (field path, what is wrong) pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Characters of a client's value a message repeats (`shown`); the rest becomes an ellipsis. (The same
#: as the API's cut on details, `shoal.grpcguard.MAX_DETAIL_CHARS`.)
MAX_ECHO_CHARS = 200
ELLIPSIS = "\u2026"


def shown(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """`repr(value)` for a message, cut to `limit` characters with an ellipsis: a client's value is
    repeated to help, never whole (a 6,000-character name would not fit in the reply's trailers)."""
    text = repr(value)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


class Refused(Exception):
    """A change the control plane will not make. Subclasses say which kind of refusal it is."""

    def __init__(
        self,
        reason: str,
        message: str,
        violations: Sequence[tuple[str, str]] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        #: A machine-readable reason, e.g. ``JOB_NOT_ACTIVE``.
        self.reason = reason
        self.message = message
        #: (field path, what is wrong with it), when fields of the request are at fault.
        self.violations = list(violations)
        #: Extra machine-readable facts (e.g. the current etag).
        self.metadata = dict(metadata or {})


class NotFound(Refused):
    """The resource named does not exist."""


class AlreadyExists(Refused):
    """A resource with that id exists already."""


class FailedPrecondition(Refused):
    """The resource is not in a state that allows the change."""


class InvalidInput(Refused):
    """The request itself is wrong, whatever the state (a field violation says where)."""


class Conflict(Refused):
    """The resource changed since the caller read it (an etag that no longer matches)."""


class Unauthenticated(Refused):
    """The caller did not prove who it is (no credential, or one that does not verify or has expired)."""


class PermissionDenied(Refused):
    """The caller is known, but may not do this."""


def invalid_input(reason: str, violations: Sequence[tuple[str, str]]) -> InvalidInput:
    """An InvalidInput whose message lists the violations."""
    return InvalidInput(reason, "; ".join(f"{f}: {d}" for f, d in violations) or reason, violations)
