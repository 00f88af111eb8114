"""Jobs: creation, update, termination, deletion, deadlines, and when a job is done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.agent.v1 import agent_pb2
from shoal.clock import to_timestamp
from shoal.server.domain import states
from shoal.server.domain.errors import AlreadyExists, FailedPrecondition
from shoal.server.domain.etags import check_etag
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import JobRec, NodeRec, reacts_to_completions
from shoal.server.lifecycle.kernel import LIVE_TASK_STATES
from shoal.v1 import job_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

ts = to_timestamp
T = task_pb2
J = job_pb2

#: States of a job that is not over: tasks may be added and reactivated, and the job updated.
OPEN_JOB_STATES: Final = frozenset(
    {J.JOB_STATE_ACTIVE, J.JOB_STATE_DISABLING, J.JOB_STATE_DISABLED, J.JOB_STATE_ENABLING}
)
#: The fields UpdateJob may change.
UPDATABLE_JOB_FIELDS: Final = frozenset(
    {
        "priority",
        "constraints",
        "on_all_tasks_complete",
        "on_task_failure",
        "max_parallel_tasks",
        "metadata",
        "auto_pool_specification.keep_alive",
    }
)


def refuse_unless_open(job: JobRec, what: str) -> None:
    """Refuse `what` (e.g. "tasks cannot be added") on a job that is over: terminating, completed or deleted."""
    if job.proto.state not in OPEN_JOB_STATES:
        raise FailedPrecondition(
            "JOB_NOT_ACTIVE", f"job {job.proto.id!r} is {J.JobState.Name(job.proto.state)}: {what}"
        )


class JobLifecycle:
    """Jobs: their states and what ends them."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    async def create_job(self, spec: job_pb2.Job, request_id: str = "") -> job_pb2.Job:
        """Create a job on an existing pool."""
        if request_id and f"job:{request_id}" in self.k.requests:
            return self.k.job(self.k.requests[f"job:{request_id}"]).proto
        rec = self.make_job(spec)
        if request_id:
            self.k.requests[f"job:{request_id}"] = spec.id
            self.k.mark("requests", f"job:{request_id}", spec.id)
        await self.k.flush()
        if rec.has_queued():
            self.k.kick_scheduler()  # (its job manager task)
        return rec.proto

    def make_job(self, spec: job_pb2.Job) -> JobRec:
        """Make the job `spec` describes, in this change (the caller flushes, then kicks the scheduler
        if the job has queued tasks: its job manager task). Refused as CreateJob refuses."""
        k = idkey(spec.id)
        if k in self.k.jobs:
            raise AlreadyExists("JOB_EXISTS", f"job {spec.id!r} already exists")
        # (A job with an auto pool spec: where it runs, decided before anything is made; `autopools`.)
        auto = self.k.autopools.plan(spec)
        pool_id = auto.pool_id if auto is not None else spec.pool_id
        slots = auto.task_slots_per_node if auto is not None else self.k.pool(spec.pool_id).proto.task_slots_per_node
        if spec.HasField("job_manager_task") and spec.job_manager_task.required_slots > slots:
            raise FailedPrecondition(
                "TASK_CANNOT_FIT",
                f"the job manager task needs {spec.job_manager_task.required_slots} slots: no node of pool "
                f"{pool_id!r} has more than {slots}",
                [("job.job_manager_task.required_slots", "more than a node of the pool has")],
            )
        job = J.Job()
        job.CopyFrom(spec)
        # (Its auto pool's registry passwords are kept apart: see `containers.credentials`.)
        self.k.registry_credentials.keep_job(job)
        now = ts(self.k.clock.now())
        job.name = f"jobs/{spec.id}"
        job.state = J.JOB_STATE_ACTIVE
        job.creation_time.CopyFrom(now)
        job.state_transition_time.CopyFrom(now)
        job.execution_info.start_time.CopyFrom(now)
        job.pool_id = job.execution_info.pool_id = pool_id
        if job.on_all_tasks_complete == J.ON_ALL_TASKS_COMPLETE_UNSPECIFIED:
            job.on_all_tasks_complete = J.ON_ALL_TASKS_COMPLETE_NO_ACTION
        self.k.meta["job_seq"] += 1
        self.k.mark_meta("job_seq")
        rec = JobRec(k, self.k.meta["job_seq"], job)
        self.k.jobs[k] = rec
        if auto is not None:
            self.k.autopools.make(auto, rec)
        self.k.dependency_life.job_loaded(rec)
        self.k.jobmanager_life.job_loaded(rec)
        self.k.prep_life.job_loaded(rec, [])
        if job.state == J.JOB_STATE_ACTIVE:
            # (Not for a job completed as it was made, its auto pool refused: nothing of it will run.)
            self.k.jobmanager_life.create(rec)
        self.k.mark("jobs", k, rec)
        return rec

    def set_state(self, job: JobRec, new: int) -> None:
        """Move `job` to state `new` (checked against `states.JOB_TRANSITIONS`), keeping its previous state."""
        old = job.proto.state
        states.check_transition(states.JOB_TRANSITIONS, old, new, f"job {job.key}")
        if old != new:
            now = ts(self.k.clock.now())
            job.proto.previous_state = old
            job.proto.previous_state_transition_time.CopyFrom(job.proto.state_transition_time)
            job.proto.state = new  # type: ignore[assignment]
            job.proto.state_transition_time.CopyFrom(now)
            if new == J.JOB_STATE_COMPLETED:
                job.proto.execution_info.end_time.CopyFrom(now)
        self.k.mark("jobs", job.key, job)
        if new == J.JOB_STATE_COMPLETED and old != new:
            for hook in self.k.job_end_hooks:
                hook(job)

    async def update_job(
        self, job_id: str, patch: job_pb2.Job, fields: frozenset[str], *, etag: str = ""
    ) -> job_pb2.Job:
        """Change the `fields` of the job (among `UPDATABLE_JOB_FIELDS`) to their values in `patch`."""
        job = self.k.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        refuse_unless_open(job, "it cannot be updated")
        proto = job.proto
        if (
            "on_all_tasks_complete" in fields
            and proto.on_all_tasks_complete == J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
            and patch.on_all_tasks_complete != J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
        ):
            raise FailedPrecondition(
                "INVALID_ON_ALL_TASKS_COMPLETE", "on_all_tasks_complete cannot go back from TERMINATE_JOB"
            )
        if "auto_pool_specification.keep_alive" in fields:
            self.k.autopools.check_keep_alive_change(job)
        if "priority" in fields:
            proto.priority = patch.priority
        if "constraints" in fields:
            proto.constraints.CopyFrom(patch.constraints)
        if "on_all_tasks_complete" in fields:
            proto.on_all_tasks_complete = patch.on_all_tasks_complete or J.ON_ALL_TASKS_COMPLETE_NO_ACTION
        if "on_task_failure" in fields:
            proto.on_task_failure = patch.on_task_failure
        if "max_parallel_tasks" in fields:
            if patch.HasField("max_parallel_tasks"):
                proto.max_parallel_tasks = patch.max_parallel_tasks
            else:
                proto.ClearField("max_parallel_tasks")
        if "metadata" in fields:
            del proto.metadata[:]
            proto.metadata.extend(patch.metadata)
        if "auto_pool_specification.keep_alive" in fields:
            proto.auto_pool_specification.keep_alive = patch.auto_pool_specification.keep_alive
        job.reacts = reacts_to_completions(proto)
        self.k.mark("jobs", job.key, job)
        self.check_done(job)
        await self.k.flush()
        self.k.kick_scheduler()
        return proto

    async def disable_job(self, job_id: str, option: int, *, etag: str = "") -> job_pb2.Job:
        """DisableJob: ACTIVE -> DISABLING -> DISABLED; no task of the job is scheduled meanwhile.

        `option` (`DisableJobOption`) says what happens to its running tasks: requeued (the default),
        terminated, or left to finish (WAIT: the job stays DISABLING until they have). A job already
        disabling or disabled is left as it is, as in Batch.
        """
        job = self.k.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        state = job.proto.state
        if state in (J.JOB_STATE_DISABLING, J.JOB_STATE_DISABLED):
            return job.proto
        if state != J.JOB_STATE_ACTIVE:
            raise FailedPrecondition(
                "JOB_NOT_ACTIVE", f"job {job_id!r} is {J.JobState.Name(state)}: only an active job can be disabled"
            )
        self.k.send_kills(self.disable_now(job, option))
        await self.k.flush()
        self.k.kick_scheduler()
        return job.proto

    def disable_now(self, job: JobRec, option: int) -> list[tuple[NodeRec, agent_pb2.AttemptRef]]:
        """Disable `job` in this change; the kills to send with its flush."""
        self.set_state(job, J.JOB_STATE_DISABLING)
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        if option != J.DISABLE_JOB_OPTION_WAIT:
            live = [t for t in job.tasks.values() if t.state in LIVE_TASK_STATES]
            for t in live:
                if option == J.DISABLE_JOB_OPTION_TERMINATE:
                    kills.extend(self.k.task_life.terminate_running(t, "the job was disabled"))
                else:
                    kills.extend(self.k.task_life.requeue_running(t, "the job was disabled"))
        self.check_done(job)
        return kills

    async def enable_job(self, job_id: str, *, etag: str = "") -> job_pb2.Job:
        """EnableJob: DISABLED (or DISABLING) -> ENABLING -> ACTIVE; its tasks are scheduled again."""
        job = self.k.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        state = job.proto.state
        if state == J.JOB_STATE_ACTIVE:
            return job.proto
        if state not in (J.JOB_STATE_DISABLED, J.JOB_STATE_DISABLING):
            raise FailedPrecondition(
                "JOB_NOT_DISABLED", f"job {job_id!r} is {J.JobState.Name(state)}: only a disabled job can be enabled"
            )
        self.set_state(job, J.JOB_STATE_ENABLING)
        # Nothing to wait for: its queued tasks are where they were.
        self.set_state(job, J.JOB_STATE_ACTIVE)
        if job.has_queued():
            self.k.waiting_jobs[job.key] = job
        self.check_done(job)
        await self.k.flush()
        self.k.kick_scheduler()
        return job.proto

    def terminate_now(self, job: JobRec, reason: str) -> list[tuple[NodeRec, agent_pb2.AttemptRef]]:
        kills = []
        self.set_state(job, J.JOB_STATE_TERMINATING)
        job.proto.execution_info.terminate_reason = reason
        for t in job.tasks.values():
            if t.state in LIVE_TASK_STATES:
                kills.extend(self.k.task_life.terminate_running(t, "the job was terminated"))
        # With a release task, COMPLETED once the nodes that ran its preparation have run it (`jobprep`).
        if not self.k.prep_life.start_releases(job):
            self.set_state(job, J.JOB_STATE_COMPLETED)
        return kills

    async def terminate_job(self, job_id: str, reason: str = "", *, etag: str = "") -> job_pb2.Job:
        """End the job's running tasks and complete it; ACTIVE tasks stay ACTIVE and never run."""
        job = self.k.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        if job.proto.state == J.JOB_STATE_DELETING:
            raise FailedPrecondition("JOB_BEING_DELETED", f"job {job_id!r} is being deleted")
        if job.proto.state == J.JOB_STATE_COMPLETED:
            raise FailedPrecondition("JOB_COMPLETED", f"job {job_id!r} is already completed")
        if job.proto.state == J.JOB_STATE_TERMINATING:
            raise FailedPrecondition(
                "JOB_BEING_TERMINATED", f"job {job_id!r} is terminating (its release tasks are running)"
            )
        kills = self.terminate_now(job, reason or "UserTerminate")
        self.k.send_kills(kills)
        await self.k.flush()
        self.k.kick_scheduler()
        return job.proto

    async def delete_job(self, job_id: str, *, etag: str = "") -> job_pb2.Job:
        """Delete the job, its tasks and their directories on every node of its pool. A job with a release
        task is DELETING until its releases have run (`jobprep`), then gone."""
        job = self.k.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        if job.proto.state == J.JOB_STATE_DELETING:
            raise FailedPrecondition("JOB_BEING_DELETED", f"job {job_id!r} is being deleted")
        kills = []
        for t in job.tasks.values():
            if t.state in LIVE_TASK_STATES:
                kills.extend(self.k.task_life.terminate_running(t, "the job was deleted"))
        self.set_state(job, J.JOB_STATE_DELETING)
        self.k.send_kills(kills)
        result = J.Job()
        result.CopyFrom(job.proto)
        if not (self.k.prep_life.start_releases(job) or self.k.prep_life.releasing(job)):
            self.remove(job)
        await self.k.flush()
        self.k.kick_scheduler()
        return result

    def remove(self, job: JobRec) -> None:
        """Forget a deleted job: its rows go with the next flush, then its files on every node of its pool."""
        del self.k.jobs[job.key]
        self.k.delete_row("jobs", job.key)
        for hook in self.k.job_end_hooks:
            hook(job)
        for t in job.tasks.values():
            self.k.forget_task_row(t)
        self.k.delete_tasks_of(job.key)
        for q in job.watchers:
            q.put_nowait(None)
        pool = self.k.pools.get(job.pool_key)
        if pool is not None:
            for n in pool.nodes.values():
                msg = agent_pb2.DeleteTaskFiles(job_id=job.proto.id)
                self.k.send_after_commit(n, agent_pb2.ServerMessage(delete_task_files=msg))

    def check_done(self, job: JobRec) -> None:
        """Move the job on when its tasks say so: a DISABLING job with nothing running is DISABLED; an
        ACTIVE job set to terminate when all its tasks complete terminates once they have."""
        state = job.proto.state
        if state == J.JOB_STATE_DISABLING:
            if job.counts[T.TASK_STATE_PREPARING] + job.counts[T.TASK_STATE_RUNNING] == 0:
                self.set_state(job, J.JOB_STATE_DISABLED)
        elif (
            state == J.JOB_STATE_ACTIVE
            and job.proto.on_all_tasks_complete == J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
            and job.tasks
            and job.counts[T.TASK_STATE_COMPLETED] == len(job.tasks)
        ):
            # Unlike Batch, a job with no tasks yet is not "all complete".
            self.k.send_kills(self.terminate_now(job, "AllTasksComplete"))

    def job_counts(self, job_id: str) -> job_pb2.TaskCounts:
        """Task counts of a job, exact (kept up to date with every change)."""
        job = self.k.job(job_id)
        c = job.counts
        # (Dependents still tracked are ACTIVE: the index lets go of a task once it completes.)
        deps = job.deps.counts() if job.deps is not None else None
        return J.TaskCounts(
            active=c[T.TASK_STATE_ACTIVE],
            running=c[T.TASK_STATE_PREPARING] + c[T.TASK_STATE_RUNNING],
            completed=c[T.TASK_STATE_COMPLETED],
            succeeded=job.succeeded,
            failed=job.failed,
            waiting_on_dependencies=deps.waiting if deps is not None else 0,
            blocked=deps.blocked if deps is not None else 0,
        )

    async def check_job_deadlines(self) -> None:
        """Terminate jobs past their max_wall_clock_time."""
        now = self.k.clock.now()
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        for job in list(self.k.jobs.values()):
            c = job.proto.constraints
            if job.proto.state not in OPEN_JOB_STATES or not c.HasField("max_wall_clock_time"):
                continue
            if now - job.proto.creation_time.ToDatetime(tzinfo=now.tzinfo) > c.max_wall_clock_time.ToTimedelta():
                kills.extend(self.terminate_now(job, "MaxWallClockTimeExpiry"))
        self.k.prep_life.check_deadlines()
        if self.k.has_changes():
            self.k.send_kills(kills)
            await self.k.flush()
