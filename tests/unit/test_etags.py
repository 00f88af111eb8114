"""Etags are hashes of what a resource holds, not of what is told beside it."""

from __future__ import annotations

from shoal.server.api.etags import etag_of, tagged
from shoal.v1 import task_pb2


def test_a_tasks_waiting_reason_does_not_change_its_etag() -> None:
    task = task_pb2.Task(name="jobs/j/tasks/t", state=task_pb2.TASK_STATE_ACTIVE)
    told = task_pb2.Task()
    told.CopyFrom(task)
    told.waiting_reason = "PoolTooSmall: needs 4 nodes at once"
    assert etag_of(told) == etag_of(task)
    assert tagged(told).etag == etag_of(task)


def test_an_etag_changes_with_the_content_and_not_with_itself() -> None:
    task = task_pb2.Task(name="jobs/j/tasks/t", state=task_pb2.TASK_STATE_ACTIVE)
    first = etag_of(task)
    assert etag_of(tagged(task)) == first
    task.state = task_pb2.TASK_STATE_RUNNING
    assert etag_of(task) != first
