"""Why work waits (client/waiting.py): a pure function of task, job, pool and node snapshots."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shoal.client.types import Job, Node, Pool, Task
from shoal.client.waiting import WaitReason, diagnose_job, job_waits, task_waits
from shoal.v1 import job_pb2, pool_pb2, task_pb2

P, J, T = pool_pb2, job_pb2, task_pb2


def pool(
    *, nodes: int = 2, low: int = 0, slots: int = 1, autoscale: bool = False, inter: bool = False, **kw: Any
) -> Pool:
    msg = P.Pool(
        id="p",
        target_nodes=nodes,
        target_low_priority_nodes=low,
        task_slots_per_node=slots,
        enable_auto_scale=autoscale,
        auto_scale_formula="$TargetDedicatedNodes = 1;" if autoscale else "",
        enable_inter_node_communication=inter,
        state=P.POOL_STATE_ACTIVE,
        allocation_state=P.ALLOCATION_STATE_STEADY,
        **kw,
    )
    return Pool.from_proto(msg)


def node(
    i: int = 1,
    state: int = P.NODE_STATE_IDLE,
    *,
    slots: int = 1,
    running: int = 0,
    dedicated: bool = True,
    enabled: bool = True,
) -> Node:
    return Node.from_proto(
        P.Node(
            id=f"n{i}",
            pool_id="p",
            state=state,  # type: ignore[arg-type]
            task_slots=slots,
            running_task_slots=running,
            is_dedicated=dedicated,
            scheduling_state=P.SCHEDULING_STATE_ENABLED if enabled else P.SCHEDULING_STATE_DISABLED,
        )
    )


def job(state: int = J.JOB_STATE_ACTIVE, **kw: Any) -> Job:
    return Job.from_proto(J.Job(id="j", pool_id="p", state=state, **kw))  # type: ignore[arg-type]


def task(
    *,
    slots: int = 1,
    instances: int = 0,
    dedicated: bool = False,
    dep: tuple[int, str, str] | None = None,
    state: int = T.TASK_STATE_ACTIVE,
    waiting_reason: str = "",
    id: str = "t",
) -> Task:
    spec = T.TaskSpec(id=id, command_line="x", required_slots=slots, dedicated_nodes_only=dedicated)
    if instances:
        spec.multi_instance_settings.number_of_instances = instances
    msg = T.Task(name=f"jobs/j/tasks/{id}", spec=spec, state=state, waiting_reason=waiting_reason)  # type: ignore[arg-type]
    if dep is not None:
        msg.dependency_state.CopyFrom(T.DependencyState(status=dep[0], task_id=dep[1], reason=dep[2], unsatisfied=1))  # type: ignore[arg-type]
    return Task.from_proto(msg)


def codes(reasons: list[WaitReason]) -> list[str]:
    return [r.code for r in reasons]


def test_a_task_that_can_start_has_no_reason() -> None:
    assert task_waits(task(), job(), pool(), [node(1), node(2)]) == []
    assert job_waits(job(), pool(), [node(1)]) == []


def test_only_active_tasks_wait() -> None:
    gone = task(state=T.TASK_STATE_RUNNING)
    assert task_waits(gone, job(state=J.JOB_STATE_DISABLED), None, []) == []


def test_missing_job_and_pool() -> None:
    (r,) = task_waits(task(), None, None, [])
    assert (r.code, r.never) == ("JobNotFound", True) and "job j" in r.message
    (r,) = task_waits(task(), job(), None, [])
    assert (r.code, r.never) == ("PoolNotFound", True) and "pool p does not exist" in r.message


def test_a_disabled_job_holds_its_tasks() -> None:
    (r,) = task_waits(task(), job(J.JOB_STATE_DISABLED), pool(), [node()])
    assert r.code == "JobDisabled" and r.never and "shoal job enable j" in r.message


def test_a_terminating_job_starts_nothing_more() -> None:
    (r,) = task_waits(task(), job(J.JOB_STATE_TERMINATING), pool(), [node()])
    assert (r.code, r.never) == ("JobNotActive", True) and "job j is terminating" in r.message


def test_a_job_at_its_max_parallel_tasks() -> None:
    capped = job(max_parallel_tasks=2)
    (r,) = task_waits(task(), capped, pool(), [node(1, running=1), node(2, running=1)], busy=2)
    assert (r.code, r.never) == ("JobMaxParallelTasks", False)
    assert r.message == (
        "job j has 2 task(s) running or preparing and runs at most 2 at once (max_parallel_tasks): "
        "the next starts when fewer run"
    )
    # (A limit lowered under what runs holds its tasks too.)
    assert codes(job_waits(capped, pool(), [node()], busy=3)) == ["JobMaxParallelTasks"]
    # Below the limit, with no limit, or not knowing what runs: not this reason.
    assert task_waits(task(), capped, pool(), [node(1, running=1), node(2)], busy=1) == []
    assert task_waits(task(), job(), pool(), [node(1, running=1), node(2)], busy=50) == []
    assert task_waits(task(), capped, pool(), [node(1, running=1), node(2)]) == []
    # A reason that needs someone comes first; the job's reasons are told once by diagnose_job.
    reasons = task_waits(task(slots=3), capped, pool(slots=2), [node(1, running=1)], busy=2)
    assert codes(reasons) == ["TaskTooBig", "JobMaxParallelTasks"]
    d = diagnose_job(capped, pool(), [node(1, running=1)], [task(id="t1"), task(id="t2")], busy=2)
    assert codes(list(d.job)) == ["JobMaxParallelTasks"] and d.tasks == ()


def test_a_pool_with_no_nodes_and_no_autoscale_never_runs_anything() -> None:
    (r,) = task_waits(task(), job(), pool(nodes=0), [])
    assert (r.code, r.never) == ("PoolEmpty", True) and "shoal pool resize p" in r.message
    (r,) = task_waits(task(), job(), pool(nodes=0, autoscale=True), [])
    assert (r.code, r.never) == ("PoolEmpty", False) and "autoscale" in r.message


def test_nodes_on_their_way_or_broken() -> None:
    (r,) = job_waits(job(), pool(nodes=2), [])
    assert (r.code, r.never) == ("NodesStarting", False)
    (r,) = job_waits(job(), pool(), [node(1, P.NODE_STATE_STARTING), node(2, P.NODE_STATE_START_TASK_FAILED)])
    assert (r.code, r.never) == ("NodesStarting", False)
    assert "1 starting" in r.message and "1 starttaskfailed" in r.message
    (r,) = job_waits(job(), pool(), [node(1, P.NODE_STATE_START_TASK_FAILED), node(2, P.NODE_STATE_UNUSABLE)])
    assert (r.code, r.never) == ("NoUsableNodes", True)
    (r,) = job_waits(job(), pool(), [node(1, enabled=False)])
    assert (r.code, r.never) == ("NoUsableNodes", True) and "1 disabled" in r.message


def test_a_failed_resize() -> None:
    p = pool(nodes=3, resize_errors=[P.ResizeError(code="AllocationTimedout", message="nodes did not come up")])
    (r,) = job_waits(job(), p, [])
    assert (r.code, r.never) == ("PoolResizeFailed", True) and "AllocationTimedout" in r.message


def test_a_task_bigger_than_the_pool() -> None:
    (r,) = task_waits(task(slots=4), job(), pool(slots=2), [node()])
    assert (r.code, r.never) == ("TaskTooBig", True) and "needs 4 slots" in r.message
    (r,) = task_waits(task(instances=3), job(), pool(nodes=2, inter=True), [node(1), node(2)])
    assert (r.code, r.never) == ("PoolTooSmall", True) and "3 nodes at once" in r.message
    (r,) = task_waits(task(instances=2), job(), pool(nodes=2), [node(1), node(2)])
    assert (r.code, r.never) == ("InterNodeDisabled", True)
    # An autoscale pool may grow to fit.
    assert "PoolTooSmall" not in codes(task_waits(task(instances=3), job(), pool(inter=True, autoscale=True), []))


def test_dedicated_only_work_on_a_low_priority_pool() -> None:
    p = pool(nodes=0, low=2)
    nodes = [node(1, dedicated=False), node(2, dedicated=False)]
    (r,) = task_waits(task(dedicated=True), job(), p, nodes)
    assert (r.code, r.never) == ("NoDedicatedNodes", True)
    (r,) = task_waits(task(), job(dedicated_nodes_only=True), p, nodes)
    assert r.code == "NoDedicatedNodes"
    assert task_waits(task(), job(), p, nodes) == []


def test_dependencies() -> None:
    blocked = task(dep=(T.DEPENDENCY_STATUS_BLOCKED, "a", "TaskFailed"))
    (r,) = task_waits(blocked, job(), pool(), [node()])
    assert (r.code, r.never) == ("DependencyFailed", True)
    assert "blocked by a (TaskFailed)" in r.message and "a is reactivated and succeeds" in r.message
    deleted = task(dep=(T.DEPENDENCY_STATUS_BLOCKED, "a", "TaskDeleted"))
    assert "never runs" in task_waits(deleted, job(), pool(), [node()])[0].message
    waiting = task(dep=(T.DEPENDENCY_STATUS_WAITING, "b", ""))
    (r,) = task_waits(waiting, job(), pool(), [node()])
    assert (r.code, r.never, r.message) == ("WaitingOnDependencies", False, "waiting on b")


def test_the_servers_reason_for_a_gang_is_kept() -> None:
    t = task(instances=2, waiting_reason="NodesHeld: needs 2 nodes at once; nodes of pool p are held for it")
    (r,) = task_waits(t, job(), pool(inter=True), [node(1, running=1), node(2)])
    assert (r.code, r.never) == ("NodesHeld", False) and r.message.startswith("needs 2 nodes")


def test_busy_slots() -> None:
    (r,) = task_waits(task(), job(), pool(), [node(1, running=1), node(2, running=1)])
    assert (r.code, r.never) == ("SlotsBusy", False) and "2 of the 2 slots" in r.message
    assert task_waits(task(), job(), pool(), [node(1, running=1), node(2)]) == []


def test_reasons_that_need_someone_come_first() -> None:
    t = task(slots=3, dep=(T.DEPENDENCY_STATUS_WAITING, "b", ""))
    reasons = task_waits(t, job(), pool(slots=2), [node()])
    assert codes(reasons) == ["TaskTooBig", "WaitingOnDependencies"]


def test_diagnose_job_groups_by_code() -> None:
    tasks = [
        task(id="t1", dep=(T.DEPENDENCY_STATUS_BLOCKED, "a", "TaskFailed")),
        task(id="t2", dep=(T.DEPENDENCY_STATUS_BLOCKED, "b", "TaskFailed")),
        task(id="t3", dep=(T.DEPENDENCY_STATUS_WAITING, "t1", "")),
        task(id="t4"),
    ]
    d = diagnose_job(job(), pool(), [node(1, running=1)], tasks)
    assert d.job == () and d.looked_at == 4
    assert [(g.reason.code, g.tasks, g.example) for g in d.tasks] == [
        ("DependencyFailed", 2, "t1"),
        ("SlotsBusy", 1, "t4"),
        ("WaitingOnDependencies", 1, "t3"),
    ]
    # A reason of the job is told once, not per task.
    d = diagnose_job(job(), pool(nodes=0), [], tasks)
    assert codes(list(d.job)) == ["PoolEmpty"]
    assert [g.reason.code for g in d.tasks] == ["DependencyFailed", "WaitingOnDependencies"]


@given(
    nodes=st.integers(1, 8),
    slots=st.integers(1, 4),
    running=st.lists(st.integers(0, 4), min_size=8, max_size=8),
    need=st.integers(1, 4),
)
def test_a_task_that_fits_a_free_slot_never_waits_for_a_reason(
    nodes: int, slots: int, running: list[int], need: int
) -> None:
    """On an active job, a healthy pool whose nodes can hold the task: a reason only when no node has room,
    and never one that needs someone."""
    need = min(need, slots)
    ns = [node(i, P.NODE_STATE_RUNNING, slots=slots, running=min(running[i], slots)) for i in range(nodes)]
    reasons = task_waits(task(slots=need), job(), pool(nodes=nodes, slots=slots), ns)
    room = any(n.task_slots - n.running_task_slots >= need for n in ns)
    assert codes(reasons) == ([] if room else ["SlotsBusy"])
    assert not any(r.never for r in reasons)


@given(
    target=st.integers(0, 6),
    states=st.lists(st.sampled_from(sorted(P.NodeState.values())), max_size=6),
    slots=st.integers(1, 4),
    need=st.integers(1, 6),
    instances=st.integers(0, 8),
)
def test_never_is_told_only_when_no_node_can_ever_take_it(
    target: int, states: list[int], slots: int, need: int, instances: int
) -> None:
    """Whatever the snapshot: a reason that needs someone is told only when the task could not start on the
    pool as it is even with every present node ready, or the pool cannot get ready nodes by itself."""
    p = pool(nodes=target, slots=slots, inter=True)
    ns = [node(i, s, slots=slots) for i, s in enumerate(states)]
    t = task(slots=1 if instances else need, instances=instances)
    reasons = task_waits(t, job(), p, ns)
    fits = (instances or 1) <= max(target, len(ns)) and (instances > 0 or need <= slots)
    ready = any(n.state in ("idle", "running") for n in ns)
    coming = any(
        n.state in ("creating", "starting", "waitingforstarttask", "rebooting", "reimaging", "unknown", "leavingpool",
                    "preempted", "offline", "unspecified")
        for n in ns
    ) or (not ns and target > 0)  # fmt: skip
    if fits and (ready or coming):
        assert not any(r.never for r in reasons), reasons
    if not fits:
        assert any(r.never for r in reasons), reasons


def test_reason_text() -> None:
    assert str(WaitReason("X", "why", True)) == "X: why"
