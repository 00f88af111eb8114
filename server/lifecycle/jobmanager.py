"""The job manager task: created with its job, placed before the job's other tasks, and (by default)
ending the job when it completes.

As in Batch: the task (id `jobmanager` unless the job names it, `Task.job_manager` set) is added with
the job and is the first of its queue; while it waits for a node nothing else of the job is placed
(`controllers.scheduler`), and requeued (its node lost) or retried it goes to the head of the queue
again (`JobRec.queue_first`). With `run_exclusive` (the default) it takes every slot of its node, so
nothing else runs there meanwhile. When it completes and `kill_job_on_completion` holds (the default),
the job terminates with reason `JMComplete`, its running tasks ended. From inside it, as from any
task, `shoal.Client.connect()` reaches the server: the agent puts the server's address in every
task's environment (`SHOAL_ADDRESS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.clock import to_timestamp
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import DEFAULT_JOB_MANAGER_ID, JobRec, PoolRec, TaskRec, task_shape
from shoal.server.domain.wire import new_task_bytes, new_task_tail
from shoal.v1 import job_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

T = task_pb2
#: Appended to a new task's bytes: it is its job's job manager task (a field set, merged on parsing).
_JOB_MANAGER_MARK = T.Task(job_manager=True).SerializeToString()


def job_manager_spec(jm: job_pb2.JobManagerTask, pool: PoolRec | None) -> task_pb2.TaskSpec:
    """The task spec of a job's job manager task. Running exclusively, it needs every slot of a node of
    the pool (all of one, when the pool is unknown)."""
    exclusive = runs_exclusive(jm)
    slots = max(1, jm.required_slots)
    if exclusive and pool is not None:
        slots = max(slots, pool.proto.task_slots_per_node)
    spec = T.TaskSpec(
        id=jm.id or DEFAULT_JOB_MANAGER_ID,
        display_name=jm.display_name,
        command_line=jm.command_line,
        environment_settings=jm.environment_settings,
        resource_files=jm.resource_files,
        output_files=jm.output_files,
        required_slots=slots,
        # (Batch's allowLowPriorityNode, true unless set false.)
        dedicated_nodes_only=jm.HasField("allow_low_priority_node") and not jm.allow_low_priority_node,
        application_package_references=jm.application_package_references,
    )
    if jm.HasField("constraints"):
        spec.constraints.CopyFrom(jm.constraints)
    if jm.HasField("user_identity"):
        spec.user_identity.CopyFrom(jm.user_identity)
    if jm.HasField("container_settings"):
        spec.container_settings.CopyFrom(jm.container_settings)
    return spec


def runs_exclusive(jm: job_pb2.JobManagerTask) -> bool:
    """`run_exclusive`, true unless set false."""
    return jm.run_exclusive if jm.HasField("run_exclusive") else True


def kills_job(jm: job_pb2.JobManagerTask) -> bool:
    """`kill_job_on_completion`, true unless set false."""
    return jm.kill_job_on_completion if jm.HasField("kill_job_on_completion") else True


class JobManagerLifecycle:
    """Creates a job's job manager task and ends the job when it completes."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def job_loaded(self, job: JobRec) -> None:
        """A job was created or read from the store: know its job manager task's key."""
        if job.proto.HasField("job_manager_task"):
            job.jm_key = idkey(job.proto.job_manager_task.id or DEFAULT_JOB_MANAGER_ID)

    def create(self, job: JobRec) -> None:
        """Add the job manager task of a job being created (first in its queue)."""
        if job.jm_key is None:
            return
        spec = job_manager_spec(job.proto.job_manager_task, self.k.pools.get(job.pool_key))
        self.k.meta["task_seq"] += 1
        self.k.mark_meta("task_seq")
        tail = new_task_tail(T.TASK_STATE_ACTIVE, to_timestamp(self.k.clock.now()))
        data = new_task_bytes(f"jobs/{job.proto.id}/tasks/{spec.id}", spec.SerializeToString(), tail)
        t = TaskRec.stored(
            job.key,
            job.jm_key,
            self.k.meta["task_seq"],
            data + _JOB_MANAGER_MARK,
            T.TASK_STATE_ACTIVE,
            shape=task_shape(spec),
        )
        job.tasks[t.key] = t
        job.queue[t.key] = None
        self.k.count(job, t, +1)
        self.k.mark_task(t)
        self.k.waiting_jobs[job.key] = job

    def completed(self, job: JobRec, t: TaskRec) -> None:
        """The job manager task completed: the job ends with it, unless it says otherwise."""
        if t.key != job.jm_key or not kills_job(job.proto.job_manager_task):
            return
        if job.proto.state in (job_pb2.JOB_STATE_ACTIVE, job_pb2.JOB_STATE_DISABLING, job_pb2.JOB_STATE_DISABLED):
            self.k.send_kills(self.k.job_life.terminate_now(job, "JMComplete"))
