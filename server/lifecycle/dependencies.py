"""Task dependencies: which tasks of a job wait for which, held out of the queue until they may run.

A job with `uses_task_dependencies` keeps a `DependencyIndex` (`server/scheduling/dependencies.py`,
pure): this module feeds it the job's events (a task added, completed with dependency action SATISFY
or BLOCK, reactivated, deleted) and applies what it answers. A dependent task stays ACTIVE but out of
the job's queue (so the scheduler never sees it) until every task it depends on has satisfied it;
then it joins the queue. A dependent whose parent failed for good is blocked (Batch's behaviour) or,
when the job's `on_dependency_failure` is FAIL, completes at once failed with `DependencyFailed`, and
so do its own dependents.

Nothing of the index is stored: it is rebuilt from the tasks at a restart (`restore`), and from the
ids of deleted tasks that others named (the `tombstones` table), so a blocked task is still blocked,
for the same reason, after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from shoal.server.domain.errors import FailedPrecondition, InvalidInput
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import JobRec, TaskRec, reacts_to_completions
from shoal.server.lifecycle.completion import DEPENDENCY_FAILED
from shoal.server.scheduling.dependencies import (
    BLOCKED,
    READY,
    DependencyIndex,
)
from shoal.server.scheduling.exit_options import DEPENDENCY_ACTION_SATISFY
from shoal.v1 import common_pb2, job_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

T = task_pb2
ACTIVE: Final = T.TASK_STATE_ACTIVE
COMPLETED: Final = T.TASK_STATE_COMPLETED
#: A tombstone's data for a deleted task that had satisfied its dependents (else empty: it blocks them).
SATISFIED_MARK: Final = b"s"


class Tombstone(NamedTuple):
    """The row kept for a deleted task of a job with dependencies (table `tombstones`)."""

    job_key: str
    data: bytes


def depends_on_of(spec: task_pb2.TaskSpec) -> tuple[list[str], list[tuple[int, int]]]:
    """A spec's dependencies as the index takes them: ids as named, ranges as (start, end)."""
    d = spec.depends_on
    return list(d.task_ids), [(r.start, r.end) for r in d.task_id_ranges]


def has_dependencies(spec: task_pb2.TaskSpec) -> bool:
    """Whether `spec` names any task it depends on."""
    return spec.HasField("depends_on") and bool(spec.depends_on.task_ids or spec.depends_on.task_id_ranges)


class DependencyLifecycle:
    """Holds dependent tasks until the tasks they depend on have satisfied them."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: Tasks added already blocked in a job that fails such dependents (see `fail_late`).
        self._late_failures: list[tuple[JobRec, str]] = []

    def job_loaded(self, job: JobRec) -> None:
        """A job was created or read from the store: give it an index if it uses dependencies."""
        job.reacts = reacts_to_completions(job.proto)
        if job.proto.uses_task_dependencies and job.deps is None:
            job.deps = DependencyIndex()

    def admit(self, job: JobRec, specs: list[task_pb2.TaskSpec]) -> DependencyIndex | None:
        """Refuse the request if a task names dependencies on a job without them, or if adding these tasks
        would make a dependency cycle (within the request or with tasks already in the job); else the job's
        index (None: the job has none). Changes nothing."""
        deps = job.deps
        named = [i for i, spec in enumerate(specs) if has_dependencies(spec)]
        if not named:
            return deps
        if deps is None:
            raise FailedPrecondition(
                "TASK_DEPENDENCIES_NOT_ENABLED",
                f"job {job.proto.id!r} does not use task dependencies (set uses_task_dependencies when creating it)",
                [(f"tasks[{i}].depends_on", "the job does not use task dependencies") for i in named[:100]],
            )
        new: dict[str, tuple[list[str], list[tuple[int, int]]]] = {}
        where: dict[str, int] = {}
        for i in named:
            spec = specs[i]
            tk = idkey(spec.id)
            if tk in job.tasks:
                continue  # (answered TASK_EXISTS, not added)
            new[tk] = depends_on_of(spec)
            where[tk] = i
        # Tasks without dependencies added in the same request are parents the cycle may run through.
        for spec in specs:
            tk = idkey(spec.id)
            if tk not in new and tk not in job.tasks:
                new[tk] = ([], [])
        cycle = deps.cycle_among(new)
        if cycle:
            first = next((where[key] for key in cycle if key in where), named[0])
            path = " -> ".join(cycle)
            raise InvalidInput(
                "TASK_DEPENDENCY_CYCLE",
                f"these dependencies make a cycle: {path}",
                [(f"tasks[{first}].depends_on", f"makes a dependency cycle: {path}")],
            )
        return deps

    def added(self, job: JobRec, t: TaskRec, spec: task_pb2.TaskSpec) -> bool:
        """Task `t` was added to a job with dependencies: whether it may be queued (it depends on nothing,
        or on tasks that have all satisfied it already)."""
        deps = job.deps
        assert deps is not None
        self._forget_tombstone(job, t.key)
        deps.task_added(t.key)
        if not has_dependencies(spec):
            return True
        ids, ranges = depends_on_of(spec)
        status = deps.add_dependent(t.key, ids, ranges)
        if status == BLOCKED and job.proto.on_dependency_failure == job_pb2.ON_DEPENDENCY_FAILURE_FAIL:
            self._late_failures.append((job, t.key))  # (failed once it is counted: `fail_late`)
        return status == READY

    def fail_late(self) -> None:
        """Fail the tasks just added (or reactivated) already blocked, in a job whose dependents of a task
        that failed for good fail too (on_dependency_failure FAIL)."""
        late, self._late_failures = self._late_failures, []
        for job, d_key in late:
            view = job.deps.state(d_key) if job.deps is not None else None
            if view is not None and view.status == BLOCKED:
                self._fail_if_asked(
                    job, [d_key], view.task_id, "failed" if view.reason == "TaskFailed" else "was deleted"
                )

    def completed(self, job: JobRec, t: TaskRec, dependency_action: int) -> None:
        """Task `t` completed with `dependency_action`: release the dependents it made ready, or block (or,
        with on_dependency_failure FAIL, fail) those it blocks."""
        deps = job.deps
        assert deps is not None
        deps.remove_dependent(t.key)
        if dependency_action == DEPENDENCY_ACTION_SATISFY:
            for d_key in deps.satisfied(t.key):
                self._release(job, d_key)
        else:
            self._fail_if_asked(job, deps.blocked(t.key), t.proto.spec.id, "failed")

    def reactivated(self, job: JobRec, t: TaskRec) -> None:
        """Task `t` went from COMPLETED back to ACTIVE: its dependents wait for it again; and it waits,
        out of the queue, for what it depends on, if that has not all satisfied it."""
        deps = job.deps
        assert deps is not None
        deps.unblocked(t.key)
        spec = t.proto.spec
        if has_dependencies(spec) and t.key not in deps:
            ids, ranges = depends_on_of(spec)
            status = deps.add_dependent(t.key, ids, ranges)
            if status != READY:
                job.dequeue(t.key)
            if status == BLOCKED and job.proto.on_dependency_failure == job_pb2.ON_DEPENDENCY_FAILURE_FAIL:
                self._late_failures.append((job, t.key))
                self.fail_late()

    def deleted(self, job: JobRec, t: TaskRec) -> None:
        """Task `t` was deleted: the tasks that wait for it are blocked (visibly, and after a restart too),
        or failed with on_dependency_failure FAIL."""
        deps = job.deps
        assert deps is not None
        deps.remove_dependent(t.key)
        blocked = deps.deleted(t.key)
        # What the index keeps of it, the store keeps too: a deletion that blocks, or a satisfaction
        # (final: the tasks it released stay released, and those waiting on others too).
        if deps.remembers_deletion(t.key):
            self.k.mark("tombstones", f"{job.key}/{t.key}", Tombstone(job.key, b""))
        elif deps.has_satisfied(t.key):
            self.k.mark("tombstones", f"{job.key}/{t.key}", Tombstone(job.key, SATISFIED_MARK))
        self._fail_if_asked(job, blocked, t.proto.spec.id, "was deleted")

    def restore(self, job: JobRec, tombstones: list[tuple[str, bytes]]) -> None:
        """Rebuild the index of a job read from the store, and take the tasks it holds out of the queue.

        Every task's spec is read (its dependencies, and what its completion did): only jobs with
        dependencies pay this at a restart."""
        deps = job.deps
        assert deps is not None
        decide = self.k.completion.decision
        perform = job.proto.on_task_failure == job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
        for key, mark in tombstones:
            if mark == SATISFIED_MARK:
                deps.satisfied(key)
            else:
                deps.deleted(key)
        for t in job.tasks.values():
            if t.state == COMPLETED:
                if decide(t, perform).dependency_action == DEPENDENCY_ACTION_SATISFY:
                    deps.satisfied(t.key)
                else:
                    deps.blocked(t.key)
                continue
            deps.task_added(t.key)
            if t.state == ACTIVE:
                spec = t.read().spec
                if has_dependencies(spec):
                    ids, ranges = depends_on_of(spec)
                    deps.add_dependent(t.key, ids, ranges)
        for d_key, t in job.tasks.items():
            if t.state == ACTIVE and d_key in deps and deps.status(d_key) != READY:
                job.dequeue(d_key)

    def state_of(self, job: JobRec, t: TaskRec) -> task_pb2.DependencyState | None:
        """Where `t` stands as a dependent (for reads), or None when it waits on nothing."""
        deps = job.deps
        if deps is None:
            return None
        view = deps.state(t.key)
        if view is None:
            return None
        return T.DependencyState(
            status=view.status,  # type: ignore[arg-type]
            task_id=view.task_id,
            reason=view.reason,
            unsatisfied=view.unsatisfied,
        )

    def _release(self, job: JobRec, d_key: str) -> None:
        t = job.tasks.get(d_key)
        if t is not None and t.state == ACTIVE and d_key not in job.queue and d_key not in job.released:
            job.released[d_key] = None  # (offered before the rest of the queue: see `JobRec.released`)
            self.k.waiting_jobs[job.key] = job
            # The pass over the nodes that reported places what fits there; what it leaves needs the full
            # pass (the other nodes send no report to trigger one): see `AttemptLifecycle.task_events_many`.
            self.k.jobs_released[job.key] = job

    def _fail_if_asked(self, job: JobRec, blocked: list[str], parent_id: str, what: str) -> None:
        """With on_dependency_failure FAIL, complete `blocked` (and, through their own completions, their
        dependents) failed with `DependencyFailed`; else they stay blocked."""
        if not blocked or job.proto.on_dependency_failure != job_pb2.ON_DEPENDENCY_FAILURE_FAIL:
            return
        message = f"task {parent_id!r}, which it depends on, {what}"
        for d_key in blocked:
            t = job.tasks.get(d_key)
            if t is not None and t.state == ACTIVE:
                job.dequeue(d_key)
                self.k.task_life.complete_failed(t, DEPENDENCY_FAILED, message, common_pb2.ERROR_CATEGORY_USER_ERROR)

    def _forget_tombstone(self, job: JobRec, task_key: str) -> None:
        deps = job.deps
        if deps is not None and deps.remembers_deletion(task_key):
            self.k.delete_row("tombstones", f"{job.key}/{task_key}")
