"""What follows when a task completes, beyond its own record: the consequences fan out from here.

A task's final outcome is decided where its attempt ends (`attempts.py`, with `scheduling/retry.py`:
retried, or completed) or where Shoal ends it (`tasks.py`: terminated, failed for a dependency). The
kernel hands every completion of a job that reacts to completions (`JobRec.reacts`) to `settle`,
which runs before the next placement pass and the next commit, so that the consequences share the
completion's commit:

- the exit options that apply to the outcome (`scheduling/exit_options.py`, pure);
- the dependents it releases or blocks (`dependencies.py`);
- the job action of those options, when the job's `on_task_failure` asks for it: the job is disabled
  (its running tasks requeued) or terminated with reason `TaskFailed`;
- whether the job is now done (`jobs.py`).

A consequence may complete more tasks (dependents failed with `DependencyFailed`): `settle` runs until
nothing more follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.server.domain.records import JobRec, TaskRec
from shoal.server.scheduling.exit_options import (
    DEPENDENCY_ACTION_BLOCK,
    FAILURE_DEFAULTS,
    JOB_ACTION_DISABLE,
    JOB_ACTION_NONE,
    JOB_ACTION_TERMINATE,
    SUCCESS_DEFAULTS,
    ExitDecision,
    decide,
    outcome_of,
    rules_from_proto,
)
from shoal.v1 import common_pb2, job_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

COMPLETED: Final = task_pb2.TASK_STATE_COMPLETED
SUCCESS: Final = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
PERFORM_JOB_ACTION: Final = job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
#: The failure code of a task completed because a task it depends on failed (on_dependency_failure FAIL:
#: see `lifecycle.dependencies`).
DEPENDENCY_FAILED: Final = "DependencyFailed"
NO_JOB_ACTION_BLOCK: Final = ExitDecision(JOB_ACTION_NONE, DEPENDENCY_ACTION_BLOCK)


class CompletionLifecycle:
    """Applies the consequences of the completions the kernel collected."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def decision(self, t: TaskRec, perform: bool) -> ExitDecision:
        """The exit options that apply to completed task `t`'s outcome (`perform`: its job performs job
        actions, so a failure's must be known exactly). A task without exit conditions (its shape says so,
        without reading it) takes Batch's defaults for its result; a task failed because a task it depends
        on failed (`DependencyFailed`) blocks its own dependents and does nothing to the job (the failure
        that caused it did what it does)."""
        has_rules = t.shape().exit_conditions
        succeeded = t.result == SUCCESS
        if not has_rules and (succeeded or not perform):
            return SUCCESS_DEFAULTS if succeeded else FAILURE_DEFAULTS
        proto = t.read()
        info = proto.execution_info
        if not succeeded and info.failure_info.code == DEPENDENCY_FAILED:
            return NO_JOB_ACTION_BLOCK
        if not has_rules:
            return FAILURE_DEFAULTS
        outcome = outcome_of(
            succeeded=succeeded,
            exit_code=info.exit_code if info.HasField("exit_code") else None,
            failure_code=info.failure_info.code,
        )
        return decide(rules_from_proto(proto.spec.exit_conditions), outcome)

    def settle(self) -> None:
        """Apply the consequences of every completion collected so far, and of those they cause."""
        k = self.k
        while k.completions:
            done = k.completions
            k.completions = []
            touched: dict[str, JobRec] = {}
            for t in done:
                job = k.jobs.get(t.job_key)
                if job is None or job.tasks.get(t.key) is not t or t.state != COMPLETED:
                    continue  # deleted, or reactivated since
                perform = job.proto.on_task_failure == PERFORM_JOB_ACTION
                decision = self.decision(t, perform)
                if job.deps is not None:
                    k.dependency_life.completed(job, t, decision.dependency_action)
                if perform and t not in k.ended_by_shoal:
                    # (A task Shoal ended, by a terminate, a disable, a deletion, takes no job action: the
                    # user's request said what happens to the job.)
                    self._job_action(job, decision.job_action)
                if t.key == job.jm_key:
                    k.jobmanager_life.completed(job, t)
                touched[job.key] = job
            for job in touched.values():
                k.job_life.check_done(job)
        k.ended_by_shoal.clear()

    def _job_action(self, job: JobRec, action: int) -> None:
        """Disable or terminate `job`, as a task's exit options say (when it is still active)."""
        state = job.proto.state
        if action == JOB_ACTION_TERMINATE and state in (
            job_pb2.JOB_STATE_ACTIVE,
            job_pb2.JOB_STATE_DISABLING,
            job_pb2.JOB_STATE_DISABLED,
        ):
            self.k.send_kills(self.k.job_life.terminate_now(job, "TaskFailed"))
        elif action == JOB_ACTION_DISABLE and state == job_pb2.JOB_STATE_ACTIVE:
            self.k.send_kills(self.k.job_life.disable_now(job, job_pb2.DISABLE_JOB_OPTION_REQUEUE))
