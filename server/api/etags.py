"""Etags on answers: a resource's message with its etag filled in (see `shoal.server.domain.etags`).

Entity tags (AIP-154) of pools, jobs and tasks, derived from their content when they are read.

An etag is a short hash of the resource serialized deterministically without its `etag` field, so it
changes with every change of the resource and costs nothing until it is read: no version is kept or
written on the way of a task (a task is kept as its stored bytes, whose parsed message is what is
hashed, so bytes with changes appended and the same message serialized again give the same etag).
A request that names an etag (an update, delete, resize, terminate or reactivate) is refused with
ABORTED `ETAG_MISMATCH` when the resource has changed since that etag was read.
"""

from __future__ import annotations

from typing import TypeVar

from shoal.server.domain.etags import Tagged, check_etag, etag_of
from shoal.server.domain.records import TaskRec
from shoal.v1 import job_pb2, pool_pb2, schedule_pb2, task_pb2

M = TypeVar("M", pool_pb2.Pool, job_pb2.Job, task_pb2.Task, schedule_pb2.JobSchedule)


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


__all__ = ["Tagged", "check_etag", "etag_of", "tagged", "task_message"]
