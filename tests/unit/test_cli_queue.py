"""`shoal queue`'s rows (client/cli_queue.py), worked out from jobs, tasks, pools and nodes built from their
messages: order, elapsed and waiting times, and the reason a task waits (client/waiting.py's: the one
vocabulary that `task wait` and `job counts` use too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shoal.client.cli_queue import QueueEntry, queue_entries, short_duration
from shoal.client.types import Job, Node, Pool, Task
from shoal.v1 import job_pb2, pool_pb2, task_pb2

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _job(job_id: str, *, pool: str = "p", priority: int = 0, state: int = job_pb2.JOB_STATE_ACTIVE, **kw) -> Job:
    return Job.from_proto(
        job_pb2.Job(id=job_id, name=f"jobs/{job_id}", pool_id=pool, priority=priority, state=state, **kw)
    )


def _pool(pool_id: str, nodes: int, *, slots: int = 1) -> Pool:
    return Pool.from_proto(
        pool_pb2.Pool(
            id=pool_id,
            name=f"pools/{pool_id}",
            target_nodes=nodes,
            current_nodes=nodes,
            task_slots_per_node=slots,
            state=pool_pb2.POOL_STATE_ACTIVE,
            allocation_state=pool_pb2.ALLOCATION_STATE_STEADY,
        )
    )


def _nodes(pool_id: str, n: int, *, slots: int = 1, running: int = 0) -> list[Node]:
    return [
        Node.from_proto(
            pool_pb2.Node(
                id=f"{pool_id}-n{i}",
                pool_id=pool_id,
                state=pool_pb2.NODE_STATE_IDLE,
                task_slots=slots,
                running_task_slots=running,
                is_dedicated=True,
                scheduling_state=pool_pb2.SCHEDULING_STATE_ENABLED,
            )
        )
        for i in range(n)
    ]


def _task(job_id: str, task_id: str, state: int, *, ago: float, node: str = "", slots: int = 1, **kw) -> Task:
    msg = task_pb2.Task(name=f"jobs/{job_id}/tasks/{task_id}", state=state, **kw)
    msg.spec.id = task_id
    msg.spec.required_slots = slots
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
    rows = queue_entries([low, high], tasks, {"p": _pool("p", 2, slots=2)}, {"p": _nodes("p", 2, slots=2)}, NOW)
    assert [(r.job_id, r.task_id, r.state) for r in rows] == [
        ("high", "r-long", "running"),
        ("low", "r", "running"),
        ("high", "prep", "preparing"),
        ("high", "w-new", "active"),  # the higher-priority job's task waits ahead of an older one
        ("low", "w-old", "active"),
    ]
    by_id = {r.task_id: r for r in rows}
    assert by_id["r-long"].seconds == 600 and by_id["r-long"].node_id == "n2"
    assert by_id["w-old"].seconds == 300 and by_id["w-old"].pool_id == "p"
    assert (by_id["w-old"].reason, by_id["w-old"].reason_message, by_id["w-old"].stuck) == ("", "", False)
    assert by_id["r-long"].reason == ""  # (a running task waits for nothing)


def _why(
    task: Task, job: Job, pools: dict[str, Pool], nodes: dict[str, list[Node]], *others: Task, busy_read: bool = True
) -> QueueEntry:
    """The queue's row of waiting ``task`` (with ``others`` of its job read too)."""
    rows = queue_entries([job], {job.id: [task, *others]}, pools, nodes, NOW, busy_read=busy_read)
    (row,) = [r for r in rows if r.task_id == task.id]
    return row


def test_why_a_task_waits_in_the_words_of_task_wait_and_job_counts() -> None:
    waiting = _task("j", "t", task_pb2.TASK_STATE_ACTIVE, ago=1)
    job, pools, nodes = _job("j"), {"p": _pool("p", 1)}, {"p": _nodes("p", 1)}
    assert _why(waiting, job, pools, nodes).reason == ""
    row = _why(waiting, _job("j", state=job_pb2.JOB_STATE_DISABLED), pools, nodes)
    assert (row.reason, row.stuck) == ("JobDisabled", True) and "shoal job enable j" in row.reason_message
    row = _why(waiting, _job("j", state=job_pb2.JOB_STATE_TERMINATING), pools, nodes)
    assert (row.reason, row.stuck) == ("JobNotActive", True) and "terminating" in row.reason_message
    row = _why(waiting, job, {}, {})
    assert (row.reason, row.reason_message) == (
        "PoolNotFound",
        "pool p does not exist: its tasks wait until a pool of that id is made",
    )
    assert _why(waiting, job, {"p": _pool("p", 0)}, {"p": []}).reason == "PoolEmpty"
    assert _why(waiting, job, {"p": _pool("p", 2)}, {"p": []}).reason == "NodesStarting"
    busy_nodes = {"p": _nodes("p", 1, running=1)}
    running = _task("j", "r", task_pb2.TASK_STATE_RUNNING, ago=5, node="p-n0")
    assert _why(waiting, job, pools, busy_nodes, running).reason == "SlotsBusy"
    gang = _task("j", "g", task_pb2.TASK_STATE_ACTIVE, ago=1, waiting_reason="NodesHeld: needs 2 nodes at once")
    row = _why(gang, job, pools, nodes)
    assert (row.reason, row.reason_message, row.stuck) == ("NodesHeld", "needs 2 nodes at once", False)
    dep = task_pb2.DependencyState(status=task_pb2.DEPENDENCY_STATUS_WAITING, task_id="a", unsatisfied=1)
    assert _why(_task("j", "d", task_pb2.TASK_STATE_ACTIVE, ago=1, dependency_state=dep), job, pools,
                nodes).reason == "WaitingOnDependencies"  # fmt: skip
    dep.status = task_pb2.DEPENDENCY_STATUS_BLOCKED
    dep.reason = "TaskFailed"
    assert _why(_task("j", "d", task_pb2.TASK_STATE_ACTIVE, ago=1, dependency_state=dep), job, pools,
                nodes).reason == "DependencyFailed"  # fmt: skip


def test_a_job_at_its_max_parallel_tasks() -> None:
    limited = _job("j", max_parallel_tasks=2)
    pools, nodes = {"p": _pool("p", 4)}, {"p": _nodes("p", 4)}
    w = _task("j", "w", task_pb2.TASK_STATE_ACTIVE, ago=1)
    r1 = _task("j", "r1", task_pb2.TASK_STATE_RUNNING, ago=9, node="p-n0")
    r2 = _task("j", "r2", task_pb2.TASK_STATE_PREPARING, ago=3, node="p-n1")
    row = _why(w, limited, pools, nodes, r1, r2)
    assert (row.reason, row.stuck) == ("JobMaxParallelTasks", False) and "at most 2 at once" in row.reason_message
    assert _why(w, limited, pools, nodes, r1).reason == ""
    # Without the job's running tasks read, the limit is not told.
    assert _why(w, limited, pools, nodes, r1, r2, busy_read=False).reason == ""


def test_the_reason_shown_is_the_one_that_needs_someone() -> None:
    """A task too big for its pool that also waits on a dependency: the reason column shows the stuck one."""
    dep = task_pb2.DependencyState(status=task_pb2.DEPENDENCY_STATUS_WAITING, task_id="a", unsatisfied=1)
    big = _task("j", "big", task_pb2.TASK_STATE_ACTIVE, ago=1, slots=4, dependency_state=dep)
    row = _why(big, _job("j"), {"p": _pool("p", 1, slots=2)}, {"p": _nodes("p", 1, slots=2)})
    assert (row.reason, row.stuck) == ("TaskTooBig", True)


def test_each_job_is_judged_on_its_own_pool_and_nodes() -> None:
    jobs = [_job("a", pool="full"), _job("b", pool="empty"), _job("c", pool="gone")]
    tasks = {j: [_task(j, "t", task_pb2.TASK_STATE_ACTIVE, ago=1)] for j in ("a", "b", "c")}
    pools = {"full": _pool("full", 1), "empty": _pool("empty", 0)}
    rows = queue_entries(jobs, tasks, pools, {"full": _nodes("full", 1), "empty": []}, NOW)
    assert sorted((r.job_id, r.pool_id, r.reason) for r in rows) == [
        ("a", "full", ""),
        ("b", "empty", "PoolEmpty"),
        ("c", "gone", "PoolNotFound"),
    ]
