"""Why work waits: from snapshots of a task, its job, the job's pool and the pool's nodes, the reasons an
``active`` task has not started, and whether it ever will as things stand.

Pure: no calls, no clock. ``shoal task wait``, ``shoal job counts`` and ``shoal queue`` read the snapshots
and print what this module says: its codes are the CLI's one vocabulary for why work waits. The server
refuses, when a task is added, most tasks that could never run (more slots than a node has, more instances
than its pool's nodes); this finds the ones that became so later (a pool deleted, shrunk or broken, a
dependency failed), and the ordinary waits (nodes starting, slots busy, the job's parallel-task limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .node_types import SchedulingState
from .types import AllocationState, Job, JobState, Node, NodeState, Pool, PoolState, Task, TaskState
from .workflow_types import DependencyStatus

__all__ = ["JobDiagnosis", "ReasonCount", "WaitReason", "diagnose_job", "job_waits", "task_waits"]


@dataclass(frozen=True)
class WaitReason:
    """One reason work waits."""

    code: str
    """A short name (``PoolNotFound``, ``DependencyFailed``, ``NodesStarting``...)."""
    message: str
    """What it means, for people (with what would change it, where something must)."""
    never: bool
    """True when the work will not run unless someone changes something (a pool grown or made, a failed
    task reactivated, a job enabled); False when it runs once what is under way is done."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


#: Node states in which a node takes tasks (when its scheduling is enabled).
_READY = frozenset({NodeState.IDLE, NodeState.RUNNING})
#: Node states on the way to ready.
_COMING = frozenset(
    {NodeState.CREATING, NodeState.STARTING, NodeState.WAITING_FOR_START_TASK, NodeState.REBOOTING, NodeState.REIMAGING}
)
#: Node states that need someone to act (a start task fixed, a node rebooted or removed).
_BROKEN = frozenset({NodeState.START_TASK_FAILED, NodeState.UNUSABLE})


def _pool_id(job: Job) -> str:
    return job.execution_pool_id or job.pool_id


def _takes_tasks(node: Node) -> bool:
    return node.state in _READY and node.scheduling_state == SchedulingState.ENABLED


def _states(nodes: Iterable[Node]) -> str:
    counts: dict[str, int] = {}
    for n in nodes:
        name = "disabled" if n.scheduling_state != SchedulingState.ENABLED and n.state in _READY else str(n.state)
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{c} {s}" for s, c in sorted(counts.items()))


def job_waits(
    job: Job | None, pool: Pool | None, nodes: Sequence[Node], *, job_id: str = "", busy: int | None = None
) -> list[WaitReason]:
    """Why no task of ``job`` can start now, whatever the task: the job, its pool, the pool's nodes, and
    its ``max_parallel_tasks``.

    ``pool``: the job's pool (its auto pool's, for a job with one), None when it does not exist;
    ``nodes``: that pool's nodes; ``busy``: how many of the job's tasks are running or preparing (None
    when not known: the job's parallel-task limit is then not looked at). Empty when tasks can start
    (free slots aside); those that need someone to act first.
    """
    if job is None:
        return [WaitReason("JobNotFound", f"job {job_id} does not exist", True)]
    if job.state in (JobState.DISABLED, JobState.DISABLING):
        return [
            WaitReason(
                "JobDisabled",
                f"job {job.id} is disabled: none of its tasks starts until `shoal job enable {job.id}`",
                True,
            )
        ]
    if job.state not in (JobState.ACTIVE, JobState.ENABLING):
        return [WaitReason("JobNotActive", f"job {job.id} is {job.state}: none of its tasks starts any more", True)]
    if job.scheduling_error is not None:
        return [WaitReason("AutoPoolFailed", f"{job.scheduling_error.code}: {job.scheduling_error.message}", True)]
    pool_id = _pool_id(job)
    if not pool_id:
        return [WaitReason("PoolPending", f"job {job.id}'s auto pool is not made yet", False)]
    if pool is None:
        return [
            WaitReason(
                "PoolNotFound", f"pool {pool_id} does not exist: its tasks wait until a pool of that id is made", True
            )
        ]
    if pool.state == PoolState.DELETING:
        return [WaitReason("PoolDeleting", f"pool {pool_id} is being deleted", True)]
    reasons = _node_waits(pool, nodes)
    if busy is not None and 0 < job.max_parallel_tasks <= busy:
        reasons.append(
            WaitReason(
                "JobMaxParallelTasks",
                f"job {job.id} has {busy} task(s) running or preparing and runs at most "
                f"{job.max_parallel_tasks} at once (max_parallel_tasks): the next starts when fewer run",
                False,
            )
        )
    return sorted(reasons, key=lambda r: not r.never)


def _node_waits(pool: Pool, nodes: Sequence[Node]) -> list[WaitReason]:
    if any(_takes_tasks(n) for n in nodes):
        return []
    target = pool.target_nodes + pool.target_low_priority_nodes
    if not nodes:
        if pool.autoscale is not None:
            return [
                WaitReason(
                    "PoolEmpty",
                    f"pool {pool.id} has no nodes now; its autoscale formula decides when it gets some",
                    False,
                )
            ]
        if target == 0:
            return [
                WaitReason(
                    "PoolEmpty",
                    f"pool {pool.id} has no nodes and a target of 0: `shoal pool resize {pool.id} "
                    "--nodes N` gives it some",
                    True,
                )
            ]
        if pool.resize_errors and pool.allocation_state == AllocationState.STEADY:
            errors = "; ".join(f"{e.code}: {e.message}" for e in pool.resize_errors)
            return [WaitReason("PoolResizeFailed", f"pool {pool.id} has none of its {target} nodes: {errors}", True)]
        return [WaitReason("NodesStarting", f"pool {pool.id} has none of its {target} nodes yet", False)]
    if all(n.state in _BROKEN or (n.scheduling_state != SchedulingState.ENABLED) for n in nodes) and not any(
        n.state in _COMING for n in nodes
    ):
        return [
            WaitReason(
                "NoUsableNodes",
                f"no node of pool {pool.id} takes tasks ({_states(nodes)}): fix or replace "
                "them (`shoal node list`, `shoal node reboot`, `shoal node enable`)",
                True,
            )
        ]
    return [WaitReason("NodesStarting", f"no node of pool {pool.id} takes tasks yet ({_states(nodes)})", False)]


def task_waits(
    task: Task, job: Job | None, pool: Pool | None, nodes: Sequence[Node], *, busy: int | None = None
) -> list[WaitReason]:
    """Why ``task`` (active) has not started, those that need someone to act first; empty when nothing
    holds it but its turn. ``job``, ``pool``, ``nodes`` and ``busy`` as for :func:`job_waits`."""
    if task.state != TaskState.ACTIVE:
        return []
    reasons: list[WaitReason] = []
    dep = task.dependency_state
    if dep is not None and dep.status == DependencyStatus.BLOCKED:
        reasons.append(
            WaitReason(
                "DependencyFailed",
                f"{dep.summary}: it runs only once {dep.task_id or 'that task'} is reactivated and succeeds"
                if dep.reason != "TaskDeleted"
                else f"{dep.summary}: it never runs (delete or terminate it)",
                True,
            )
        )
    reasons += job_waits(job, pool, nodes, job_id=task.job_id, busy=busy)
    if pool is not None and job is not None:
        reasons += _fit(task, job, pool, nodes)
    if task.waiting_reason:
        code, _, message = task.waiting_reason.partition(": ")
        if code not in {r.code for r in reasons}:
            reasons.append(WaitReason(code, message or code, False))
    if dep is not None and dep.status == DependencyStatus.WAITING:
        reasons.append(WaitReason("WaitingOnDependencies", dep.summary, False))
    if not reasons and pool is not None:
        reasons += _busy(task, pool, nodes)
    # Those that need someone first, in the order found.
    return sorted(reasons, key=lambda r: not r.never)


def _fit(task: Task, job: Job, pool: Pool, nodes: Sequence[Node]) -> list[WaitReason]:
    """Reasons of the task's own shape: more slots, instances or dedicated nodes than the pool can have."""
    spec = task.spec
    multi = spec.multi_instance_settings
    if multi is None:
        if spec.required_slots > pool.task_slots_per_node:
            return [
                WaitReason(
                    "TaskTooBig",
                    f"it needs {spec.required_slots} slots and the nodes of pool {pool.id} have "
                    f"{pool.task_slots_per_node}: it never runs there",
                    True,
                )
            ]
        instances = 1
    else:
        if not pool.enable_inter_node_communication:
            return [
                WaitReason(
                    "InterNodeDisabled",
                    f"a multi-instance task needs inter-node communication, which pool {pool.id} does not enable",
                    True,
                )
            ]
        instances = multi.number_of_instances
    dedicated = spec.dedicated_nodes_only or job.dedicated_nodes_only
    if pool.autoscale is not None:
        # (The formula decides the pool's size: it may yet grow to fit.)
        return []
    most = pool.target_nodes if dedicated else pool.target_nodes + pool.target_low_priority_nodes
    have = len([n for n in nodes if n.is_dedicated or not dedicated])
    can = max(most, have)
    kind = "dedicated " if dedicated else ""
    if can == 0 and dedicated and pool.target_low_priority_nodes:
        return [
            WaitReason(
                "NoDedicatedNodes",
                f"it runs on dedicated nodes only and pool {pool.id} has only low-priority "
                f"ones: `shoal pool resize {pool.id} --nodes N` gives it dedicated ones",
                True,
            )
        ]
    if instances > can > 0:
        return [
            WaitReason(
                "PoolTooSmall",
                f"it needs {instances} {kind}nodes at once and pool {pool.id} has a target of "
                f"{can}: it runs only if the pool grows",
                True,
            )
        ]
    return []


def _busy(task: Task, pool: Pool, nodes: Sequence[Node]) -> list[WaitReason]:
    """Waiting for a slot: every node that takes tasks has too few free slots for it."""
    need = 1 if task.spec.multi_instance_settings is not None else task.spec.required_slots
    ready = [n for n in nodes if _takes_tasks(n)]
    if ready and all(n.task_slots - n.running_task_slots < need for n in ready):
        used = sum(n.running_task_slots for n in ready)
        slots = sum(n.task_slots for n in ready)
        return [
            WaitReason(
                "SlotsBusy",
                f"{used} of the {slots} slots of pool {pool.id} are taken: it starts as they free up",
                False,
            )
        ]
    return []


@dataclass(frozen=True)
class ReasonCount:
    """One kind of reason across a job's waiting tasks."""

    reason: WaitReason
    """The reason of the first task found with this code."""
    tasks: int
    """How many of the tasks looked at wait for a reason of this code."""
    example: str
    """That first task's id."""


@dataclass(frozen=True)
class JobDiagnosis:
    """Why a job's active tasks wait."""

    job: tuple[WaitReason, ...]
    """Reasons of the job, its pool and nodes (every task waits for these)."""
    tasks: tuple[ReasonCount, ...]
    """Reasons of the tasks themselves, by code, those that need someone first, then the most common."""
    looked_at: int
    """How many active tasks were looked at."""


def diagnose_job(
    job: Job | None, pool: Pool | None, nodes: Sequence[Node], active: Iterable[Task], *, busy: int | None = None
) -> JobDiagnosis:
    """Why the ``active`` tasks of ``job`` wait: the job's reasons once, and the tasks' own by code
    (``busy`` as for :func:`job_waits`)."""
    shared = job_waits(job, pool, nodes, busy=busy)
    shared_codes = {r.code for r in shared}
    first: dict[str, tuple[WaitReason, str]] = {}
    counts: dict[str, int] = {}
    looked_at = 0
    for t in active:
        looked_at += 1
        for r in task_waits(t, job, pool, nodes, busy=busy):
            if r.code in shared_codes:
                continue
            first.setdefault(r.code, (r, t.id))
            counts[r.code] = counts.get(r.code, 0) + 1
    grouped = [ReasonCount(first[c][0], n, first[c][1]) for c, n in counts.items()]
    grouped.sort(key=lambda g: (not g.reason.never, -g.tasks, g.reason.code))
    return JobDiagnosis(tuple(shared), tuple(grouped), looked_at)
