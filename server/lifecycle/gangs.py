"""Gangs: the instances of a multi-instance (MPI) task, their coordination and their end together."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.clock import to_timestamp
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.server.domain.errors import FailedPrecondition
from shoal.server.domain.records import JobRec, NodeRec, TaskRec
from shoal.server.lifecycle.kernel import SUCCESS
from shoal.v1 import common_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

ts = to_timestamp
T = task_pb2


class GangLifecycle:
    """Multi-instance tasks: their instances' reports and their end."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def check_can_run(self, job: JobRec, specs: list[task_pb2.TaskSpec]) -> None:
        """Reject multi-instance tasks the job's pool could never run (Batch would leave them ACTIVE forever)."""
        violations = []
        pool = self.k.pools.get(job.pool_key)
        for i, spec in enumerate(specs):
            if not spec.HasField("multi_instance_settings"):
                continue
            n = spec.multi_instance_settings.number_of_instances
            field_name = f"tasks[{i}].multi_instance_settings"
            if pool is None:
                violations.append((field_name, f"pool {job.proto.pool_id!r} does not exist"))
            elif not pool.proto.enable_inter_node_communication:
                violations.append((field_name, f"pool {pool.proto.id!r} does not enable inter-node communication"))
            elif n > (size := pool.proto.target_nodes + pool.proto.target_low_priority_nodes) and not (
                pool.proto.enable_auto_scale
            ):
                # (An autoscale pool's size is its formula's to decide: it may grow to fit the gang.)
                violations.append(
                    (
                        f"{field_name}.number_of_instances",
                        f"{n} instances can never run on pool {pool.proto.id!r} of {size} nodes",
                    )
                )
            if len(violations) >= 100:
                break
        if violations:
            reason = (
                "INTER_NODE_COMMUNICATION_NOT_ENABLED"
                if all("inter-node" in d for _, d in violations)
                else "MULTI_INSTANCE_TASK_CANNOT_RUN"
            )
            raise FailedPrecondition(reason, "; ".join(d for _, d in violations), violations)

    def apply_instance_event(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent) -> None:
        """One instance of a multi-instance task reported."""
        i = ev.attempt.instance
        sub = t.proto.subtasks[i]
        if ev.kind == agent_pb2.TASK_EVENT_KIND_RUNNING:
            sub.state = T.SUBTASK_STATE_RUNNING
            sub.start_time.CopyFrom(ev.start_time if ev.HasField("start_time") else ev.time)
            sub.node_info.task_root_directory = ev.task_root_directory
            if ev.HasField("container_info"):
                sub.container_info.CopyFrom(ev.container_info)
            if i == 0:
                self.k.attempt_life.mark_running(t, ev)
            self.k.mark_task(t)
        elif ev.kind == agent_pb2.TASK_EVENT_KIND_COORDINATED:
            t.coordinated = t.coordinated | {i}
            # The coordination command's exit code; `load` rebuilds `coordinated`
            # from RUNNING subtasks that have one, so a restart does not lose it.
            sub.exit_code = 0
            self.k.mark_task(t)
            if len(t.coordinated) == len(t.gang):
                primary = self.k.nodes.get(t.gang[0])
                if primary is not None:
                    ref = self.k.attempt_ref(t)
                    self.k.send_after_commit(
                        primary, agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(attempt=ref))
                    )
        elif ev.kind == agent_pb2.TASK_EVENT_KIND_COMPLETED:
            if i == 0:
                self.k.attempt_life.mark_running(t, ev)
            self.finish_subtask(sub, ev)
            failed = ev.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS
            lost = [nk for nk in t.gang if nk != node.key and not self.connected(nk)]
            if failed and lost:
                # mpiexec fails as soon as a proxy's connection drops, often before
                # the lost node's heartbeat times out: a lost node is a requeue, not
                # a failure of the task.
                self.k.task_life.requeue(t, f"node {lost[0]} of its gang was lost")
                return
            if i == 0:
                # The primary's end is the task's end: the others are stopped.
                if failed:
                    why = (ev.failure_info.code if ev.HasField("failure_info") else "") or "FailureExitCode"
                    if ev.HasField("exit_code"):
                        why += f", exit code {ev.exit_code}"
                    self.end_subtasks(t, f"ended with the primary instance, which failed ({why})")
                else:
                    self.end_subtasks(t, "ended with the primary instance", primary_succeeded=True)
                self.k.attempt_life.complete_attempt(t, node, ev)
            elif ev.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS:
                # Any failed instance fails the whole task (which may then be retried whole).
                self.end_subtasks(t, f"instance {i} failed")
                instance_end = agent_pb2.TaskEvent()
                instance_end.CopyFrom(ev)
                if instance_end.HasField("failure_info"):
                    failure = instance_end.failure_info
                    failure.message = f"instance {i} on {node.proto.id}: {failure.message}"
                self.k.attempt_life.complete_attempt(t, node, instance_end)
            else:
                self.k.mark_task(t)

    def connected(self, node_key: str) -> bool:
        n = self.k.nodes.get(node_key)
        return n is not None and n.connected

    def finish_subtask(self, sub: task_pb2.Subtask, ev: agent_pb2.TaskEvent) -> None:
        if not sub.HasField("start_time"):
            sub.start_time.CopyFrom(ev.start_time if ev.HasField("start_time") else ev.time)
            sub.node_info.task_root_directory = ev.task_root_directory
        sub.state = T.SUBTASK_STATE_COMPLETED
        sub.end_time.CopyFrom(ev.time)
        if ev.HasField("exit_code"):
            sub.exit_code = ev.exit_code
        sub.result = ev.result
        if ev.HasField("failure_info") and ev.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS:
            sub.failure_info.CopyFrom(ev.failure_info)
        if ev.HasField("stats"):
            sub.stats.CopyFrom(ev.stats)
        if ev.HasField("container_info"):
            sub.container_info.CopyFrom(ev.container_info)

    def end_subtasks(self, t: TaskRec, message: str, *, primary_succeeded: bool = False) -> None:
        """Complete every instance still going (its agent is told to stop it): the task's attempt ended,
        because its primary did, an instance failed, or it was terminated or requeued (`message` says which).

        An instance other than the primary whose coordination command succeeded keeps the exit code it
        recorded, its own; any other (the primary, whose command was running, or one still staging or
        coordinating) was ended by Shoal and gets `TERMINATED_EXIT_CODE`, as a terminated task does. After
        a primary that succeeded, an instance that coordinated did its part (a home for the application's
        ranks) and succeeded; otherwise it ended with the task: result FAILURE, failure TaskEnded saying why.
        """
        now = ts(self.k.clock.now())
        for sub in t.proto.subtasks:
            if sub.state == T.SUBTASK_STATE_COMPLETED:
                continue
            coordinated = sub.id != 0 and sub.state == T.SUBTASK_STATE_RUNNING and sub.HasField("exit_code")
            sub.state = T.SUBTASK_STATE_COMPLETED
            sub.end_time.CopyFrom(now)
            if not coordinated:
                sub.exit_code = TERMINATED_EXIT_CODE
            if primary_succeeded and coordinated:
                sub.result = SUCCESS
                sub.ClearField("failure_info")
            else:
                sub.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
                sub.failure_info.CopyFrom(
                    common_pb2.FailureInfo(
                        category=common_pb2.ERROR_CATEGORY_SERVER_ERROR, code="TaskEnded", message=message
                    )
                )
        self.k.mark_task(t)
