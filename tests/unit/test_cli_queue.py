"""`shoal queue`'s rows (client/cli_queue.py), worked out from jobs, tasks and pools built from their
messages: order, elapsed and waiting times, and the reason a task waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shoal.client.cli_queue import queue_entries, short_duration, waiting_reason
from shoal.client.types import Job, Pool, Task
from shoal.v1 import job_pb2, pool_pb2, task_pb2

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _job(job_id: str, *, pool: str = "p", priority: int = 0, state: int = job_pb2.JOB_STATE_ACTIVE, **kw) -> Job:
    return Job.from_proto(
        job_pb2.Job(id=job_id, name=f"jobs/{job_id}", pool_id=pool, priority=priority, state=state, **kw)
    )


def _pool(pool_id: str, nodes: int) -> Pool:
    return Pool.from_proto(pool_pb2.Pool(id=pool_id, name=f"pools/{pool_id}", current_nodes=nodes))


def _task(job_id: str, task_id: str, state: int, *, ago: float, node: str = "", **kw) -> Task:
    msg = task_pb2.Task(name=f"jobs/{job_id}/tasks/{task_id}", state=state, **kw)
    msg.spec.id = task_id
    msg.spec.command_line = f"run {task_id}"
    when = NOW - timedelta(seconds=ago)
    msg.state_transition_time.FromDatetime(when)
    msg.creation_time.FromDatetime(when - timedelta(seconds=1))
    if state == task_pb2.TASK_STATE_RUNNING:
        msg.execution_info.start_time.FromDatetime(when)
    if node:
        msg.node_info.node_id = node
        msg.node_info.pool_id = "p"
    return Task.from_proto(msg)


def test_short_duration() -> None:
    assert short_duration(None) is None
    assert [short_duration(s) for s in (0, 45, 65, 3600 * 3 + 7 * 60, 86400 * 2 + 3600 * 4 + 5)] == [
        "0s",
        "45s",
        "1m05s",
        "3h07m",
        "2d04h",
    ]
    assert short_duration(-3) == "0s"


def test_rows_run_first_then_wait_by_priority_and_age() -> None:
    low, high = _job("low", priority=0), _job("high", priority=10)
    tasks = {
        "low": [
            _task("low", "w-old", task_pb2.TASK_STATE_ACTIVE, ago=300),
            _task("low", "r", task_pb2.TASK_STATE_RUNNING, ago=30, node="n1"),
            _task("low", "done", task_pb2.TASK_STATE_COMPLETED, ago=5),
        ],
        "high": [
            _task("high", "w-new", task_pb2.TASK_STATE_ACTIVE, ago=10),
            _task("high", "prep", task_pb2.TASK_STATE_PREPARING, ago=2, node="n2"),
            _task("high", "r-long", task_pb2.TASK_STATE_RUNNING, ago=600, node="n2"),
        ],
    }
    rows = queue_entries([low, high], tasks, {"p": _pool("p", 2)}, NOW)
    assert [(r.job_id, r.task_id, r.state) for r in rows] == [
        ("high", "r-long", "running"),
        ("low", "r", "running"),
        ("high", "prep", "preparing"),
        ("high", "w-new", "active"),  # the higher-priority job's task waits ahead of an older one
        ("low", "w-old", "active"),
    ]
    by_id = {r.task_id: r for r in rows}
    assert by_id["r-long"].seconds == 600 and by_id["r-long"].node_id == "n2"
    assert by_id["w-old"].seconds == 300 and by_id["w-old"].pool_id == "p" and by_id["w-old"].reason == ""


def test_why_a_task_waits() -> None:
    waiting = _task("j", "t", task_pb2.TASK_STATE_ACTIVE, ago=1)
    job, pool = _job("j"), _pool("p", 1)
    assert waiting_reason(waiting, job, pool, busy_in_job=0) == ""
    assert waiting_reason(waiting, _job("j", state=job_pb2.JOB_STATE_DISABLED), pool, busy_in_job=0) == "JobHeldUser"
    assert waiting_reason(waiting, _job("j", state=job_pb2.JOB_STATE_TERMINATING), pool, busy_in_job=0) == (
        "JobTerminating"
    )
    assert waiting_reason(waiting, job, None, busy_in_job=0) == "NoPool"
    assert waiting_reason(waiting, job, _pool("p", 0), busy_in_job=0) == "NoNodes"
    limited = _job("j", max_parallel_tasks=2)
    assert waiting_reason(waiting, limited, pool, busy_in_job=2) == "JobMaxParallelTasks"
    assert waiting_reason(waiting, limited, pool, busy_in_job=1) == ""
    assert waiting_reason(waiting, limited, pool, busy_in_job=None) == ""
    gang = _task("j", "g", task_pb2.TASK_STATE_ACTIVE, ago=1, waiting_reason="PoolTooSmall: needs 4 nodes, has 2")
    assert waiting_reason(gang, job, pool, busy_in_job=0) == "PoolTooSmall"
    dep = task_pb2.DependencyState(status=task_pb2.DEPENDENCY_STATUS_WAITING, task_id="a", unsatisfied=1)
    assert waiting_reason(_task("j", "d", task_pb2.TASK_STATE_ACTIVE, ago=1, dependency_state=dep), job, pool,
                          busy_in_job=0) == "Dependency"  # fmt: skip
    dep.status = task_pb2.DEPENDENCY_STATUS_BLOCKED
    assert waiting_reason(_task("j", "d", task_pb2.TASK_STATE_ACTIVE, ago=1, dependency_state=dep), job, pool,
                          busy_in_job=0) == "DependencyNeverSatisfied"  # fmt: skip
