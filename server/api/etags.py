"""Entity tags (AIP-154) of pools, jobs and tasks, derived from their content when they are read.

An etag is a short hash of the resource serialized deterministically without its `etag` field, so it
changes with every change of the resource and costs nothing until it is read: no version is kept or
written on the way of a task (a task is kept as its stored bytes, whose parsed message is what is
hashed, so bytes with changes appended and the same message serialized again give the same etag).
A request that names an etag (an update, delete, resize, terminate or reactivate) is refused with
ABORTED `ETAG_MISMATCH` when the resource has changed since that etag was read.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias, TypeVar

import grpc

from shoal.server.api.errors import ApiError, shown
from shoal.server.domain.records import TaskRec
from shoal.v1 import job_pb2, pool_pb2, task_pb2

#: A resource with an etag.
Tagged: TypeAlias = "pool_pb2.Pool | job_pb2.Job | task_pb2.Task"
M = TypeVar("M", pool_pb2.Pool, job_pb2.Job, task_pb2.Task)


#: Bytes of hash in an etag (16 hex digits): a stale etag that matches by chance is out of reach.
ETAG_BYTES = 8


def etag_of(msg: Tagged) -> str:
    """`msg`'s etag: a hash of its content, its own `etag` field left out (and a task's `waiting_reason`,
    which the scheduler tells as it reads, never stored)."""
    if msg.etag or (isinstance(msg, task_pb2.Task) and msg.waiting_reason):
        bare = type(msg)()
        bare.CopyFrom(msg)  # type: ignore[arg-type]
        bare.etag = ""
        if isinstance(bare, task_pb2.Task):
            bare.waiting_reason = ""
        msg = bare
    return hashlib.blake2b(msg.SerializeToString(deterministic=True), digest_size=ETAG_BYTES).hexdigest()


def tagged(msg: M, *, owned: bool = False) -> M:
    """`msg` with its etag filled in, for an answer: a copy, unless `owned` (the caller's own message)."""
    etag = etag_of(msg)
    if not owned:
        out = type(msg)()
        out.CopyFrom(msg)
        msg = out
    msg.etag = etag
    return msg


def task_message(t: TaskRec, waiting_reason: str = "") -> task_pb2.Task:
    """A task's message with its etag, and while it is ACTIVE why it waits (`waiting_reason`, if the
    scheduler said), for an answer (the live message is never changed)."""
    owned = t.frozen  # (`read` parses a task kept as bytes into a message of its own)
    msg = tagged(t.read(), owned=owned)
    if waiting_reason and t.state == task_pb2.TASK_STATE_ACTIVE:
        msg.waiting_reason = waiting_reason
    return msg


def check_etag(what: str, current: Tagged, etag: str) -> None:
    """Refuse a request whose `etag` (if it names one) is not `current`'s: it was read before a change."""
    if not etag:
        return
    now = etag_of(current)
    if etag != now:
        raise ApiError(
            grpc.StatusCode.ABORTED,
            "ETAG_MISMATCH",
            f"{what} has changed since etag {shown(etag)} was read: read it again and retry",
            metadata={"etag": now},
        )
