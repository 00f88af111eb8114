"""Tasks: adding them, user operations (terminate, delete, reactivate), requeue and the end Shoal gives
them; their restore at start-up."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.clock import to_timestamp
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.server.domain.errors import FailedPrecondition
from shoal.server.domain.etags import check_etag
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import (
    DEFAULT_JOB_MANAGER_ID,
    DEFAULT_PREPARATION_ID,
    DEFAULT_RELEASE_ID,
    NO_INSTANCES,
    TAG_HAS_ATTEMPT,
    JobRec,
    NodeRec,
    TaskRec,
    task_shape,
)
from shoal.server.domain.wire import new_task_bytes, new_task_tail
from shoal.server.lifecycle.jobmanager import runs_exclusive
from shoal.server.lifecycle.jobs import refuse_unless_open
from shoal.server.lifecycle.kernel import ACTIVE, LIVE_TASK_STATES, NODE_LEAVING, RESTARTING_NODE_STATES, SUCCESS
from shoal.server.store.base import StoredRow
from shoal.v1 import common_pb2, job_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")
ts = to_timestamp
T = task_pb2


def job_task_ids(job: job_pb2.Job) -> dict[str, tuple[str, str]]:
    """The ids a job's preparation and release tasks take (no task of the job may have them), with the
    reason a task that has one is refused and what the id is."""
    out: dict[str, tuple[str, str]] = {}
    if job.HasField("job_manager_task"):
        # (Added with the job; the id stays the job manager's even once it is deleted.)
        key = idkey(job.job_manager_task.id or DEFAULT_JOB_MANAGER_ID)
        out[key] = ("TASK_ID_SAME_AS_JOB_MANAGER_TASK", "job manager task")
    if job.HasField("job_preparation_task"):
        key = idkey(job.job_preparation_task.id or DEFAULT_PREPARATION_ID)
        out[key] = ("TASK_ID_SAME_AS_JOB_PREPARATION_TASK", "job preparation task")
    if job.HasField("job_release_task"):
        key = idkey(job.job_release_task.id or DEFAULT_RELEASE_ID)
        out[key] = ("TASK_ID_SAME_AS_JOB_RELEASE_TASK", "job release task")
    return out


class TaskLifecycle:
    """Tasks outside their attempts: added, terminated, deleted, reactivated, requeued."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    async def add_tasks(self, job_id: str, specs: list[task_pb2.TaskSpec]) -> list[task_pb2.AddTaskResult]:
        """Add validated task specs; an id that exists already gets a TASK_EXISTS result."""
        job = self.k.job(job_id)
        refuse_unless_open(job, "tasks cannot be added")
        self.k.gang_life.check_can_run(job, specs)
        self.check_slots(job, specs)
        # (Refuses dependencies the job does not take, or that would make a cycle, before anything is added.)
        deps = self.k.dependency_life.admit(job, specs)
        # Each task is made as its stored bytes (it is kept so until placed): no message per task.
        tail = new_task_tail(T.TASK_STATE_ACTIVE, ts(self.k.clock.now()))
        prefix = f"jobs/{job.proto.id}/tasks/"
        results = []
        reserved = job_task_ids(job.proto)
        for spec in specs:
            tk = idkey(spec.id)
            if tk in reserved:
                reason, what = reserved[tk]
                results.append(
                    T.AddTaskResult(
                        task_id=spec.id,
                        status=T.ADD_TASK_STATUS_CLIENT_ERROR,
                        error_reason=reason,
                        error_message=f"task id {spec.id!r} is the id of the job's {what}",
                    )
                )
                continue
            if tk in job.tasks:
                results.append(
                    T.AddTaskResult(
                        task_id=spec.id,
                        status=T.ADD_TASK_STATUS_CLIENT_ERROR,
                        error_reason="TASK_EXISTS",
                        error_message=f"task {spec.id!r} already exists in job {job.proto.id!r}",
                    )
                )
                continue
            self.k.meta["task_seq"] += 1
            data = new_task_bytes(prefix + spec.id, spec.SerializeToString(), tail)
            t = TaskRec.stored(job.key, tk, self.k.meta["task_seq"], data, T.TASK_STATE_ACTIVE, shape=task_shape(spec))
            job.tasks[tk] = t
            if deps is None or self.k.dependency_life.added(job, t, spec):
                job.queue[tk] = None
            self.k.count(job, t, +1)
            self.k.mark_task(t)
            results.append(T.AddTaskResult(task_id=spec.id, status=T.ADD_TASK_STATUS_SUCCESS))
        self.k.mark_meta("task_seq")
        if deps is not None:
            self.k.dependency_life.fail_late()
        if job.has_queued():
            self.k.waiting_jobs[job.key] = job
        if self.k.place_hook is not None:
            self.k.place_hook(None)
        await self.k.flush()
        self.k.kick_scheduler()
        return results

    def check_slots(self, job: JobRec, specs: list[task_pb2.TaskSpec]) -> None:
        """Refuse tasks needing more slots than a node of the job's pool has: they could never run (Batch
        would leave them ACTIVE forever). A job whose pool does not exist yet takes them."""
        pool = self.k.pools.get(job.pool_key)
        if pool is None:
            return
        have = pool.proto.task_slots_per_node
        violations = [
            (
                f"tasks[{i}].required_slots",
                f"{spec.required_slots} slots: no node of pool {pool.proto.id!r} has more than {have}",
            )
            for i, spec in enumerate(specs)
            if spec.required_slots > have and not spec.HasField("multi_instance_settings")
        ]
        if violations:
            raise FailedPrecondition("TASK_CANNOT_FIT", "; ".join(d for _, d in violations[:5]), violations[:100])

    async def update_task(
        self, job_id: str, task_id: str, constraints: common_pb2.TaskConstraints, *, etag: str = ""
    ) -> task_pb2.Task:
        """Replace a task's constraints (all Batch lets change). An attempt under way keeps the wall clock
        it started with; the retry count and retention apply from now on."""
        t = self.k.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        refuse_unless_open(self.k.jobs[t.job_key], "its tasks cannot be updated")
        if t.state == T.TASK_STATE_COMPLETED:
            raise FailedPrecondition("TASK_COMPLETED", f"task {task_id!r} is completed")
        proto = t.proto
        proto.spec.constraints.CopyFrom(constraints)
        t.reshape(task_shape(proto.spec))
        self.k.mark_task(t)
        await self.k.flush()
        self.k.kick_scheduler()
        return t.read()

    def max_retries(self, t: TaskRec) -> int:
        c = t.proto.spec.constraints
        if c.HasField("max_task_retry_count"):
            return c.max_task_retry_count
        return self.k.jobs[t.job_key].proto.constraints.max_task_retry_count

    def release_nodes(self, t: TaskRec, *, kill_others_than: str | None = None) -> None:
        """Free every node the current attempt holds.

        For a multi-instance task, the instances still alive on the other nodes
        (all but `kill_others_than`, the node that reported the end) are told to
        stop once this change is committed.
        """
        if t.gang:
            used = t.gang
            job_id = self.k.jobs[t.job_key].proto.id
            for i, nk in enumerate(t.gang):
                n = self.k.nodes.get(nk)
                if n is not None and nk != kill_others_than and n.running.get(t.tkey) is not None:
                    ref = agent_pb2.AttemptRef(job_id=job_id, task_id=t.proto.spec.id, attempt=t.attempt, instance=i)
                    self.k.send_after_commit(n, agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(attempts=[ref])))
            t.gang = ()
        elif t.node_key is not None:
            used = (t.node_key,)
        else:
            return
        t.node_key = None
        t.coordinated = NO_INSTANCES
        tkey = (t.job_key, t.key)
        exclusive = self.k.exclusive_nodes
        if exclusive:
            exclusive.difference_update(used)
        for nk in used:
            n = self.k.nodes.get(nk)
            if n is None:
                continue
            n.running.pop(tkey, None)
            self.k.refresh_node_activity(n)
            if n.state == NODE_LEAVING and n.internal.get("wait_for_tasks") and not n.running:
                n.internal["wait_for_tasks"] = False
                # Only once the end of its last task is committed.
                self.k.dismiss_after_commit(n)
            elif not n.running and n.state in RESTARTING_NODE_STATES:
                self.k.restarts.tasks_done(n)

    def requeue(self, t: TaskRec, reason: str) -> None:
        self.k.accounting.requeued(t)
        if t.gang:
            self.k.gang_life.end_subtasks(t, f"requeued: {reason}")
        self.release_nodes(t)
        info = t.proto.execution_info
        info.requeue_count += 1
        info.last_requeue_time.CopyFrom(ts(self.k.clock.now()))
        self.k.stats.requeues += 1
        self.k.set_task_state(t, T.TASK_STATE_ACTIVE)
        job = self.k.jobs[t.job_key]
        if job.proto.state == job_pb2.JOB_STATE_DISABLING:
            self.k.job_life.check_done(job)  # (its last running task gone: DISABLED)
        log.info("requeued %s/%s (attempt %d): %s", t.job_key, t.key, t.attempt, reason)

    def requeue_running(self, t: TaskRec, reason: str) -> list[tuple[NodeRec, agent_pb2.AttemptRef]]:
        """Stop the attempt under way and put the task back in the queue; the kill to send (a gang's
        instances are told to stop by the requeue itself)."""
        node = self.k.nodes.get(t.node_key) if t.node_key and not t.gang else None
        ref = self.k.attempt_ref(t)
        self.requeue(t, reason)
        return [(node, ref)] if node is not None else []

    def complete_terminated(self, t: TaskRec, message: str) -> None:
        """Complete `t` as ended by Shoal (TaskEnded): terminated, its job ended, its node removed.

        A task ended while on a node gets `TERMINATED_EXIT_CODE`, Batch's exit code for a task it
        terminated (its processes were killed, they did not exit by themselves); one ended while waiting
        for a node has no exit code (nothing of it ran since it was last queued).
        """
        if self.k.jobs[t.job_key].reacts:
            self.k.ended_by_shoal.add(t)  # (its completion takes no job action: see `completion`)
        self.complete_failed(t, "TaskEnded", message, common_pb2.ERROR_CATEGORY_SERVER_ERROR)

    def complete_failed(self, t: TaskRec, code: str, message: str, category: int) -> None:
        """Complete `t` as failed for a reason of Shoal's (`code`), not an exit of its own program: ended
        (see `complete_terminated`), or never run because a task it depends on failed."""
        on_node = t.state in LIVE_TASK_STATES
        self.release_nodes(t)
        info = t.proto.execution_info
        now = ts(self.k.clock.now())
        if not info.HasField("start_time"):
            info.start_time.CopyFrom(now)
        info.end_time.CopyFrom(now)
        if on_node:
            info.exit_code = TERMINATED_EXIT_CODE
        else:
            info.ClearField("exit_code")
        info.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
        info.failure_info.CopyFrom(common_pb2.FailureInfo(category=category, code=code, message=message))  # type: ignore[arg-type]
        self.k.set_task_state(t, T.TASK_STATE_COMPLETED)
        self.k.accounting.attempt_decided(t, None, self.k.jobs[t.job_key])

    def terminate_running(self, t: TaskRec, message: str) -> list[tuple[NodeRec, agent_pb2.AttemptRef]]:
        if t.gang:
            # Releasing the gang tells every instance to stop, after the commit.
            self.k.gang_life.end_subtasks(t, message)
            self.complete_terminated(t, message)
            return []
        node = self.k.nodes.get(t.node_key) if t.node_key else None
        ref = self.k.attempt_ref(t)
        self.complete_terminated(t, message)
        return [(node, ref)] if node is not None else []

    async def terminate_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        """Complete a task now; a running attempt is killed."""
        t = self.k.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        if t.state == T.TASK_STATE_COMPLETED:
            raise FailedPrecondition("TASK_COMPLETED", f"task {task_id!r} is already completed")
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        if t.state == T.TASK_STATE_ACTIVE:
            self.complete_terminated(t, "terminated by the user")
        else:
            kills = self.terminate_running(t, "terminated by the user")
        self.k.job_life.check_done(self.k.jobs[t.job_key])
        self.k.send_kills(kills)
        await self.k.flush()
        self.k.kick_scheduler()
        return t.read()

    async def delete_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        """Delete a task; a running attempt is killed and its directory removed."""
        t = self.k.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        job = self.k.jobs[t.job_key]
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        node_id = t.proto.node_info.node_id
        # Every node that holds a directory of it: each instance of a gang has one.
        holders = [s.node_info.node_id for s in t.proto.subtasks if s.node_info.node_id]
        if t.state in LIVE_TASK_STATES:
            kills = self.terminate_running(t, "deleted")
        self.k.count(job, t, -1)
        job.dequeue(t.key)
        del job.tasks[t.key]
        if job.deps is not None:
            self.k.dependency_life.deleted(job, t)
        self.k.forget_task_row(t)
        self.k.delete_row("tasks", f"{job.key}/{t.key}")
        self.k.job_life.check_done(job)
        self.k.send_kills(kills, delete_files=True)
        await self.k.flush()
        for holder in holders or ([node_id] if node_id and not kills else []):
            n = self.k.nodes.get(idkey(holder))
            if n is not None and n.session is not None:
                n.session.send(
                    agent_pb2.ServerMessage(
                        delete_task_files=agent_pb2.DeleteTaskFiles(
                            command_id=n.session.command_id(), job_id=job.proto.id, task_ids=[t.proto.spec.id]
                        )
                    )
                )
        self.k.kick_scheduler()
        return t.read()

    async def reactivate_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        """Put a failed, completed task back in the queue with its retry count reset."""
        t = self.k.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        job = self.k.jobs[t.job_key]
        refuse_unless_open(job, "its tasks cannot be reactivated")
        info = t.proto.execution_info
        if t.state != T.TASK_STATE_COMPLETED or info.result != common_pb2.TASK_EXECUTION_RESULT_FAILURE:
            raise FailedPrecondition(
                "TASK_NOT_FAILED", f"only a completed task that failed can be reactivated; {task_id!r} did not fail"
            )
        self.k.count(job, t, -1)
        requeues = info.requeue_count
        info.Clear()
        info.requeue_count = requeues
        self.k.count(job, t, +1)
        self.k.set_task_state(t, T.TASK_STATE_ACTIVE)
        if job.deps is not None:
            # Its dependents blocked by its failure wait again; and it may itself wait on others.
            self.k.dependency_life.reactivated(job, t)
        await self.k.flush()
        self.k.kick_scheduler()
        return t.read()

    def load_rows(self, rows: list[StoredRow]) -> None:
        """Tasks from their rows. A million of them is the normal case, so this loop is kept tight:
        a queued or completed task is not even parsed when its row's tag says its state and result."""
        job_rec: JobRec | None = None
        parent = None
        cut = 0
        live = LIVE_TASK_STATES
        stored = TaskRec.stored
        has_attempt = TAG_HAS_ATTEMPT
        # The job's indexes, looked up when the job changes (rows come job by job), not per row.
        tasks: dict[str, TaskRec] = {}
        queue: dict[str, None] = {}
        counts: dict[int, int] = {}
        for key, data, row_parent, seq, tag in rows:
            if row_parent != parent:
                parent, job_rec, cut = row_parent, self.k.jobs.get(row_parent), len(row_parent) + 1
                if job_rec is not None:
                    tasks, queue, counts = job_rec.tasks, job_rec.queue, job_rec.counts
            if job_rec is None:
                continue
            tk = key[cut:]
            # (untag, inlined: once per row.)
            state = tag & 0xFF
            if state and state not in live and tag & has_attempt:
                result = tag >> 8 & 0x7F
                tasks[tk] = stored(parent, tk, seq, data, state, result, tag >> 16)
                counts[state] += 1
                if state == ACTIVE:
                    queue[tk] = None
                elif result == SUCCESS:
                    job_rec.succeeded += 1
                else:
                    job_rec.failed += 1
                continue
            # Running (the server needs its placement), or a row written before tags existed.
            task = T.Task.FromString(data)
            if task.state in live:
                trec = TaskRec(parent, tk, seq, task)
            else:
                # Kept as the stored bytes until someone needs it (see TaskRec). Its row is written again
                # (same bytes, full tag) with the flush that ends the load, so that it is not parsed at the
                # next restart.
                trec = stored(parent, tk, seq, data, int(task.state), int(task.execution_info.result), task.attempt)
                self.k.mark_task(trec)
            job_rec.tasks[tk] = trec
            self.k.count(job_rec, trec, +1, task)
            if trec.state == T.TASK_STATE_ACTIVE:
                job_rec.queue[tk] = None
            elif trec.state in live:
                if task.subtasks:
                    gang = tuple(idkey(s.node_info.node_id) for s in task.subtasks)
                else:
                    gang = (idkey(task.node_info.node_id),)
                if any(nk not in self.k.nodes for nk in gang):
                    self.requeue(trec, "node no longer exists")
                    continue
                trec.node_key = gang[0]
                if job_rec.jm_key == tk and runs_exclusive(job_rec.proto.job_manager_task):
                    self.k.exclusive_nodes.add(gang[0])
                trec.gang = gang if task.subtasks else ()
                trec.coordinated = frozenset(
                    s.id for s in task.subtasks if s.state == T.SUBTASK_STATE_RUNNING and s.HasField("exit_code")
                )
                for nk in gang:
                    self.k.nodes[nk].running[trec.tkey] = (
                        self.k.nodes[nk].proto.task_slots if task.subtasks else max(1, task.spec.required_slots)
                    )
