"""Entity tags (AIP-154) of pools, jobs and tasks, derived from their content when they are read.

An etag is a short hash of the resource serialized deterministically without its `etag` field, so it
changes with every change of the resource and costs nothing until it is read: no version is kept or
written on the way of a task (a task is kept as its stored bytes, whose parsed message is what is
hashed, so bytes with changes appended and the same message serialized again give the same etag).
A request that names an etag (an update, delete, resize, terminate or reactivate) is refused with
`ETAG_MISMATCH` (a Conflict; ABORTED on the wire) when the resource has changed since that etag was read.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias

from shoal.server.domain.errors import Conflict
from shoal.v1 import job_pb2, pool_pb2, schedule_pb2, task_pb2

#: A resource with an etag.
Tagged: TypeAlias = "pool_pb2.Pool | job_pb2.Job | task_pb2.Task | schedule_pb2.JobSchedule"

#: Bytes of hash in an etag (16 hex digits): a stale etag that matches by chance is out of reach.
ETAG_BYTES = 8
#: Characters of a client's etag repeated in a refusal.
SHOWN_ETAG_CHARS = 40


def etag_of(msg: Tagged) -> str:
    """`msg`'s etag: a hash of its content, its own `etag` field left out (and a task's output-only
    fields worked out as it is read, never stored: `waiting_reason`, `dependency_state`)."""
    if msg.etag or (isinstance(msg, task_pb2.Task) and (msg.waiting_reason or msg.HasField("dependency_state"))):
        bare = type(msg)()
        bare.CopyFrom(msg)  # type: ignore[arg-type]
        bare.etag = ""
        if isinstance(bare, task_pb2.Task):
            bare.waiting_reason = ""
            bare.ClearField("dependency_state")
        msg = bare
    return hashlib.blake2b(msg.SerializeToString(deterministic=True), digest_size=ETAG_BYTES).hexdigest()


def check_etag(what: str, current: Tagged, etag: str) -> None:
    """Refuse a request whose `etag` (if it names one) is not `current`'s: it was read before a change."""
    if not etag:
        return
    now = etag_of(current)
    if etag != now:
        shown = repr(etag) if len(etag) <= SHOWN_ETAG_CHARS else repr(etag[:SHOWN_ETAG_CHARS]) + "\u2026"
        raise Conflict(
            "ETAG_MISMATCH",
            f"{what} has changed since etag {shown} was read: read it again and retry",
            metadata={"etag": now},
        )
