"""Job preparation and release tasks: set each node up for a job, and clean it when the job ends.

A job with a `job_preparation_task` sends it with every assignment of its tasks (`attempts.assign`):
the agent runs it on the node before the job's first task there, once per job and node (it records
the end under its node root), and holds the job's tasks there until it succeeded (`wait_for_success`).
Its runs are reported as task events of kind PREPARATION, applied here, and kept per node in
`JobRec.node_tasks` (stored in the `jobtasks` table). A node where it failed for good takes no more
tasks of the job (`JobRec.prep_failed`, which the scheduler's plan avoids); a task sent there before
that was known comes back (`JobPreparationFailed`) and is requeued, its retries untouched.

When the job ends (terminated, its tasks all complete, its job manager done, deleted), its
`job_release_task` runs on every node that ran the preparation (`RunJobRelease`), without a slot. The
job stays TERMINATING (or DELETING) until every release has reported its end, or its wall clock (15
minutes at most) and a grace have passed, or its node is gone; then it is COMPLETED (or deleted).
Asked again after a server restart, an agent reports the release it ran instead of running it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.agent.v1 import agent_pb2
from shoal.clock import to_timestamp
from shoal.server.domain.records import DEFAULT_PREPARATION_ID, DEFAULT_RELEASE_ID, JobRec, NodeRec
from shoal.v1 import common_pb2, job_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

J = job_pb2
A = agent_pb2
PREPARATION: Final = A.JOB_TASK_KIND_PREPARATION
RELEASE: Final = A.JOB_TASK_KIND_RELEASE
RUNNING: Final = J.PREPARATION_TASK_STATE_RUNNING
COMPLETED: Final = J.PREPARATION_TASK_STATE_COMPLETED
SUCCESS: Final = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILURE: Final = common_pb2.TASK_EXECUTION_RESULT_FAILURE
DEFAULT_RETENTION_SECONDS: Final = 7 * 24 * 3600.0
#: Batch's default and most for a release task's wall clock.
RELEASE_WALL_CLOCK_SECONDS: Final = 15 * 60.0
#: How long past a release's wall clock the server waits for its report before it gives up on it.
RELEASE_GRACE_SECONDS: Final = 60.0
#: The failure code of an attempt an agent did not run: the job's preparation failed on its node.
PREPARATION_FAILED: Final = "JobPreparationFailed"
#: A job in one of these states has ended: a node that ran its preparation owes its release.
ENDED: Final = frozenset({J.JOB_STATE_TERMINATING, J.JOB_STATE_COMPLETED, J.JOB_STATE_DELETING})


def _seconds(d: object) -> float:
    return d.ToTimedelta().total_seconds()  # type: ignore[attr-defined]


def preparation_spec(job: job_pb2.Job) -> agent_pb2.JobTaskSpec:
    """A job's preparation task as the agents run it."""
    prep = job.job_preparation_task
    c = prep.constraints
    spec = A.JobTaskSpec(
        job_id=job.id,
        id=prep.id or DEFAULT_PREPARATION_ID,
        command_line=prep.command_line,
        resource_files=prep.resource_files,
        max_wall_clock_seconds=_seconds(c.max_wall_clock_time) if c.HasField("max_wall_clock_time") else 0.0,
        retention_seconds=_seconds(c.retention_time) if c.HasField("retention_time") else DEFAULT_RETENTION_SECONDS,
        max_task_retry_count=c.max_task_retry_count if c.HasField("max_task_retry_count") else 0,
        wait_for_success=prep.wait_for_success if prep.HasField("wait_for_success") else True,
    )
    spec.environment_settings.extend(job.common_environment_settings)
    spec.environment_settings.extend(prep.environment_settings)
    if prep.HasField("user_identity"):
        spec.user_identity.CopyFrom(prep.user_identity)
    if prep.HasField("container_settings"):
        # (Its registry's password is filled in as it is sent: see `attempts.assign`.)
        spec.container.CopyFrom(prep.container_settings)
    return spec


def release_spec(job: job_pb2.Job) -> agent_pb2.JobTaskSpec:
    """A job's release task as the agents run it (15 minutes at most)."""
    release = job.job_release_task
    wall = RELEASE_WALL_CLOCK_SECONDS
    if release.HasField("max_wall_clock_time"):
        wall = min(wall, _seconds(release.max_wall_clock_time)) or wall
    spec = A.JobTaskSpec(
        job_id=job.id,
        id=release.id or DEFAULT_RELEASE_ID,
        command_line=release.command_line,
        resource_files=release.resource_files,
        max_wall_clock_seconds=wall,
        retention_seconds=(
            _seconds(release.retention_time) if release.HasField("retention_time") else DEFAULT_RETENTION_SECONDS
        ),
    )
    spec.environment_settings.extend(job.common_environment_settings)
    spec.environment_settings.extend(release.environment_settings)
    if release.HasField("user_identity"):
        spec.user_identity.CopyFrom(release.user_identity)
    if release.HasField("container_settings"):
        spec.container.CopyFrom(release.container_settings)
    return spec


class JobPrepLifecycle:
    """Preparation runs reported by the agents, and release runs at a job's end."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: Per job key, when (monotonic) the releases asked for are given up on.
        self._release_deadlines: dict[str, float] = {}
        #: Per job key, the nodes whose release was asked for and has not reported its end.
        self._owed: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ loading

    def job_loaded(self, job: JobRec, rows: list[tuple[str, bytes]]) -> None:
        """A job created or read from the store, with its `jobtasks` rows (node key, status)."""
        if job.proto.HasField("job_preparation_task"):
            job.prep_spec = preparation_spec(job.proto)
        for node_key, data in rows:
            status = J.PreparationAndReleaseTaskStatus.FromString(data)
            job.node_tasks[node_key] = status
            self._note_failure(job, node_key, status)
            if status.job_release_task_execution_info.state == RUNNING:
                self._owed.setdefault(job.key, set()).add(node_key)
        if self.releasing(job):
            # Asked again of each agent as it attaches (`attached`); given up on after a wall clock.
            self._release_deadlines[job.key] = self.k.clock.monotonic() + self._release_wait(job)

    # ------------------------------------------------------------------ reports

    def apply_event(self, node: NodeRec, ev: agent_pb2.TaskEvent) -> None:
        """A preparation or release run on `node` reported (fenced by the job: a report about a job that is
        gone, or about a run never asked for, is dropped)."""
        job = self.k.jobs.get(ev.attempt.job_id.lower())
        if job is None or job.prep_spec is None:
            self.k.stats.stale_reports += 1
            return
        status = job.node_tasks.get(node.key)
        if status is None:
            status = job.node_tasks[node.key] = J.PreparationAndReleaseTaskStatus(
                pool_id=node.proto.pool_id, node_id=node.proto.id, node_address=node.proto.ip_address
            )
        info = (
            status.job_preparation_task_execution_info
            if ev.job_task == PREPARATION
            else status.job_release_task_execution_info
        )
        if info.state == COMPLETED and ev.job_task == PREPARATION and ev.kind == A.TASK_EVENT_KIND_RUNNING:
            return  # (a late RUNNING after its end)
        if ev.HasField("start_time"):
            info.start_time.CopyFrom(ev.start_time)
        elif not info.HasField("start_time"):
            info.start_time.CopyFrom(ev.time)
        if ev.task_root_directory:
            info.task_root_directory = ev.task_root_directory
        info.retry_count = ev.retry_count
        if ev.kind == A.TASK_EVENT_KIND_COMPLETED:
            info.state = COMPLETED
            info.end_time.CopyFrom(ev.time)
            if ev.HasField("exit_code"):
                info.exit_code = ev.exit_code
            else:
                info.ClearField("exit_code")
            info.result = ev.result
            if ev.result == SUCCESS:
                info.ClearField("failure_info")
            else:
                info.failure_info.CopyFrom(ev.failure_info)
        else:
            info.state = RUNNING
        self._store(job, node.key)
        if ev.job_task == PREPARATION:
            if self._note_failure(job, node.key, status):
                self.k.kick_scheduler()
            if job.proto.state in ENDED and not status.job_release_task_execution_info.state:
                # A preparation reported after the job ended (its report was still on its way): the node
                # owes a release all the same.
                self._ask_release(job, node)
        elif ev.kind == A.TASK_EVENT_KIND_COMPLETED:
            self._release_ended(job, node.key)

    def preparation_failed(self, job: JobRec, node: NodeRec) -> None:
        """An attempt came back unrun from `node`: the job's preparation failed there for good."""
        job.prep_failed.add(node.key)

    def _note_failure(self, job: JobRec, node_key: str, status: job_pb2.PreparationAndReleaseTaskStatus) -> bool:
        """Whether the preparation failed for good on the node in a way that keeps the job's tasks away."""
        info = status.job_preparation_task_execution_info
        spec = job.prep_spec
        if spec is not None and spec.wait_for_success and info.state == COMPLETED and info.result == FAILURE:
            job.prep_failed.add(node_key)
            return True
        return False

    def _store(self, job: JobRec, node_key: str) -> None:
        status = job.node_tasks[node_key]
        self.k.mark("jobtasks", f"{job.key}/{node_key}", (job.key, status.SerializeToString()))

    # ------------------------------------------------------------------ releases

    def start_releases(self, job: JobRec) -> bool:
        """The job ends: ask every node that ran its preparation to run its release task. True when some
        were asked (the job then waits for them); False when there is nothing to wait for."""
        if not job.proto.HasField("job_release_task"):
            return False
        spec = self._release_spec(job)
        asked = False
        now = to_timestamp(self.k.clock.now())
        for node_key, status in job.node_tasks.items():
            if not status.job_preparation_task_execution_info.state:
                continue
            info = status.job_release_task_execution_info
            node = self.k.nodes.get(node_key)
            if info.state == COMPLETED:
                continue
            if node is None:
                self._give_up(info, now, "the node left its pool before the release task could run")
                self._store(job, node_key)
            else:
                self._ask_release(job, node, spec)
                asked = True
        return asked

    def _ask_release(self, job: JobRec, node: NodeRec, spec: agent_pb2.JobTaskSpec | None = None) -> None:
        """Ask `node` to run the job's release task (once: the agent reports a release it ran again)."""
        if not job.proto.HasField("job_release_task"):
            return
        info = job.node_tasks[node.key].job_release_task_execution_info
        info.state = RUNNING
        info.start_time.CopyFrom(to_timestamp(self.k.clock.now()))
        release = spec if spec is not None else self._release_spec(job)
        self.k.send_after_commit(node, A.ServerMessage(run_job_release=A.RunJobRelease(release=release)))
        self._store(job, node.key)
        self._owed.setdefault(job.key, set()).add(node.key)
        if job.proto.state != J.JOB_STATE_COMPLETED:
            self._release_deadlines[job.key] = self.k.clock.monotonic() + self._release_wait(job)

    def _release_spec(self, job: JobRec) -> agent_pb2.JobTaskSpec:
        """The job's release task as it is sent: its container's registry password filled in."""
        spec = release_spec(job.proto)
        if spec.HasField("container"):
            self.k.registry_credentials.fill(job.proto.account, spec.container)
        return spec

    def attached(self, node: NodeRec) -> None:
        """An agent attached: ask it again for the releases it has not reported (it ran them once at most)."""
        for job_key, owed in self._owed.items():
            job = self.k.jobs.get(job_key)
            if job is not None and node.key in owed:
                spec = self._release_spec(job)
                self.k.send_after_commit(node, A.ServerMessage(run_job_release=A.RunJobRelease(release=spec)))

    def node_reimaged(self, node_key: str) -> None:
        """A node is reimaged: as a new node, it owes no release (its files are gone), it runs every job's
        preparation again, and a preparation that failed there keeps the job's tasks away no more."""
        self.node_gone(node_key)
        for job in self.k.jobs.values():
            job.prep_failed.discard(node_key)
            if job.node_tasks.pop(node_key, None) is not None:
                self.k.delete_row("jobtasks", f"{job.key}/{node_key}")

    def node_gone(self, node_key: str) -> None:
        """A node left its pool: the releases it still owed are given up on."""
        now = to_timestamp(self.k.clock.now())
        for job_key in [k for k, owed in self._owed.items() if node_key in owed]:
            job = self.k.jobs.get(job_key)
            status = job.node_tasks.get(node_key) if job is not None else None
            if job is not None and status is not None:
                self._give_up(status.job_release_task_execution_info, now, "the node left its pool")
                self._store(job, node_key)
                self._release_ended(job, node_key)

    def check_deadlines(self) -> None:
        """Give up on the releases of jobs past their wall clock and grace (their node is silent)."""
        if not self._release_deadlines:
            return
        now_mono = self.k.clock.monotonic()
        now = to_timestamp(self.k.clock.now())
        for job_key, deadline in list(self._release_deadlines.items()):
            job = self.k.jobs.get(job_key)
            if job is None:
                del self._release_deadlines[job_key]
                continue
            if now_mono < deadline:
                continue
            for node_key, status in job.node_tasks.items():
                info = status.job_release_task_execution_info
                if info.state == RUNNING:
                    self._give_up(info, now, "no report of its end within its wall clock")
                    self._store(job, node_key)
            self._release_ended(job)

    def releasing(self, job: JobRec) -> bool:
        """Whether some release of the job has been asked for and has not reported its end."""
        return bool(self._owed.get(job.key))

    def _release_ended(self, job: JobRec, node_key: str | None = None) -> None:
        """A release reported its end (or was given up on): the job ends once none is left."""
        owed = self._owed.get(job.key)
        if owed is not None:
            if node_key is None:
                # (Given up on: every one still owed.)
                owed = {k for k in owed if job.node_tasks[k].job_release_task_execution_info.state == RUNNING}
                self._owed[job.key] = owed
            else:
                owed.discard(node_key)
            if owed:
                return
            del self._owed[job.key]
        self._release_deadlines.pop(job.key, None)
        if job.proto.state == J.JOB_STATE_TERMINATING:
            self.k.job_life.set_state(job, J.JOB_STATE_COMPLETED)
        elif job.proto.state == J.JOB_STATE_DELETING:
            self.k.job_life.remove(job)

    def _release_wait(self, job: JobRec) -> float:
        return release_spec(job.proto).max_wall_clock_seconds + RELEASE_GRACE_SECONDS

    @staticmethod
    def _give_up(info: job_pb2.PreparationTaskExecutionInfo, now: object, why: str) -> None:
        info.state = COMPLETED
        info.end_time.CopyFrom(now)  # type: ignore[arg-type]
        info.result = FAILURE
        info.failure_info.CopyFrom(
            common_pb2.FailureInfo(category=common_pb2.ERROR_CATEGORY_SERVER_ERROR, code="TaskEnded", message=why)
        )

    # ------------------------------------------------------------------ reads

    def statuses(self, job: JobRec) -> list[job_pb2.PreparationAndReleaseTaskStatus]:
        """Per node (removed nodes included), the job's preparation and release runs, by node id."""
        return sorted(job.node_tasks.values(), key=lambda s: (s.pool_id, s.node_id))
