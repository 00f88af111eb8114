"""The control plane: the kernel (`shoal.server.lifecycle.kernel`) and its lifecycles, assembled.

Where things are decided and applied, by file:

- `lifecycle/kernel.py`: the records, the flush (group commit), delivery, publishing, state tables.
- `lifecycle/pools.py`, `nodes.py`, `jobs.py`, `tasks.py`, `gangs.py`: one lifecycle each.
- `lifecycle/attempts.py`: a task placed, the reports about it (fenced by attempt), an attempt's end.
- `scheduling/retry.py`: whether an attempt that ended is retried or the task completes.
- `lifecycle/completion.py`: what a completion does next: `scheduling/exit_options.py` decides which
  exit options apply; `lifecycle/dependencies.py` (with `scheduling/dependencies.py`) releases or
  blocks the dependents; the job action and the job's end follow.

This class is what the API and the scheduler call: each method hands the request to the lifecycle
that owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock
from shoal.server.containers.agents import ContainerWelcomes
from shoal.server.containers.credentials import RegistryCredentials
from shoal.server.domain.records import AgentSession, NodeRec, TaskRec
from shoal.server.lifecycle.accounting import Accounting
from shoal.server.lifecycle.allocation import PoolAllocation
from shoal.server.lifecycle.attempts import AttemptLifecycle, note_attempt_length
from shoal.server.lifecycle.autopools import AutoPools
from shoal.server.lifecycle.autoscaling import AutoScaling
from shoal.server.lifecycle.completion import CompletionLifecycle
from shoal.server.lifecycle.dependencies import DependencyLifecycle
from shoal.server.lifecycle.gangs import GangLifecycle
from shoal.server.lifecycle.jobmanager import JobManagerLifecycle
from shoal.server.lifecycle.jobprep import JobPrepLifecycle
from shoal.server.lifecycle.jobs import JobLifecycle
from shoal.server.lifecycle.kernel import (
    COLD_TASK_STATES,
    DEFAULT_DISPATCH_AHEAD,
    DEFAULT_RETENTION_SECONDS,
    LIVE_NODE_STATES,
    LIVE_TASK_STATES,
    SCHEDULABLE_NODE_STATES,
    Kernel,
    Provider,
    Stats,
)
from shoal.server.lifecycle.nodeops import NodeOperations
from shoal.server.lifecycle.nodes import NodeLifecycle
from shoal.server.lifecycle.pools import PoolLifecycle
from shoal.server.lifecycle.preemption import Preemption
from shoal.server.lifecycle.restarts import NodeRestarts
from shoal.server.lifecycle.schedules import ScheduleLifecycle
from shoal.server.lifecycle.tasks import TaskLifecycle
from shoal.server.store.base import Store
from shoal.v1 import common_pb2, job_pb2, pool_pb2, schedule_pb2, task_pb2


class ControlPlane(Kernel):
    """Pools, nodes, jobs and tasks, and the rules for changing them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        heartbeat_interval: float = 1.0,
        dispatch_ahead: int = DEFAULT_DISPATCH_AHEAD,
    ) -> None:
        super().__init__(store, clock, heartbeat_interval=heartbeat_interval, dispatch_ahead=dispatch_ahead)
        self.pool_life = PoolLifecycle(self)
        self.node_life = NodeLifecycle(self)
        self.job_life = JobLifecycle(self)
        self.task_life = TaskLifecycle(self)
        self.attempt_life = AttemptLifecycle(self)
        self.gang_life = GangLifecycle(self)
        self.dependency_life = DependencyLifecycle(self)
        self.jobmanager_life = JobManagerLifecycle(self)
        self.prep_life = JobPrepLifecycle(self)
        self.completion = CompletionLifecycle(self)
        self.node_ops = NodeOperations(self)
        self.allocation = PoolAllocation(self)
        self.restarts = NodeRestarts(self)
        self.autoscale = AutoScaling(self)
        self.preemption = Preemption(self)
        self.accounting = Accounting(self)
        self.autopools = AutoPools(self)
        self.schedules = ScheduleLifecycle(self)
        self.registry_credentials = RegistryCredentials(self)
        ContainerWelcomes(self, self.registry_credentials).install()

    # ------------------------------------------------------------------ pools

    async def create_pool(self, spec: pool_pb2.Pool, request_id: str = "") -> pool_pb2.Pool:
        return await self.pool_life.create_pool(spec, request_id)

    async def resize_pool(
        self,
        pool_id: str,
        target: int,
        option: int = pool_pb2.NODE_DEALLOCATION_OPTION_REQUEUE,
        *,
        etag: str = "",
        target_low_priority: int | None = None,
    ) -> pool_pb2.Pool:
        return await self.pool_life.resize_pool(
            pool_id, target, option, etag=etag, target_low_priority=target_low_priority
        )

    async def delete_pool(self, pool_id: str, *, etag: str = "") -> pool_pb2.Pool:
        return await self.pool_life.delete_pool(pool_id, etag=etag)

    async def update_pool(
        self,
        pool_id: str,
        patch: pool_pb2.Pool,
        paths: Sequence[str],
        *,
        etag: str = "",
        certificate_states: Mapping[str, int] | None = None,
    ) -> pool_pb2.Pool:
        return await self.pool_life.update_pool(pool_id, patch, paths, etag=etag, certificate_states=certificate_states)

    async def remove_nodes(
        self, pool_id: str, node_ids: Sequence[str], option: int, timeout: float | None, *, etag: str = ""
    ) -> pool_pb2.Pool:
        return await self.allocation.remove_nodes(pool_id, node_ids, option, timeout, etag=etag)

    async def stop_pool_resize(self, pool_id: str, *, etag: str = "") -> pool_pb2.Pool:
        return await self.allocation.stop_resize(pool_id, etag=etag)

    async def check_resize_timeouts(self) -> None:
        await self.allocation.check_resize_timeouts()

    async def enable_auto_scale(
        self, pool_id: str, formula: str, interval: float | None, *, etag: str = ""
    ) -> pool_pb2.Pool:
        return await self.autoscale.enable(pool_id, formula, interval, etag=etag)

    async def disable_auto_scale(self, pool_id: str, *, etag: str = "") -> pool_pb2.Pool:
        return await self.autoscale.disable(pool_id, etag=etag)

    def evaluate_auto_scale(self, pool_id: str, formula: str) -> pool_pb2.AutoScaleRun:
        return self.autoscale.dry_run(pool_id, formula)

    async def preempt_node(self, pool_id: str, node_id: str) -> pool_pb2.Node:
        return await self.preemption.preempt_node(pool_id, node_id)

    async def check_elasticity(self) -> None:
        """Autoscale samples and evaluations that are due, and low-priority preemptions and recoveries."""
        await self.preemption.check()
        await self.autoscale.check()

    # ------------------------------------------------------------------ nodes and agents

    async def node_gone(self, node_key: str) -> None:
        await self.node_life.node_gone(node_key)

    async def attach(
        self, reg: agent_pb2.Register, notify: Callable[[AgentSession], None] | None = None
    ) -> AgentSession:
        return await self.node_life.attach(reg, notify)

    def detach(self, session: AgentSession) -> None:
        self.node_life.detach(session)

    def heartbeat(self, session: AgentSession, hb: agent_pb2.Heartbeat) -> None:
        self.node_life.heartbeat(session, hb)

    def touch(self, session: AgentSession) -> None:
        self.node_life.touch(session)

    async def start_task_report(self, session: AgentSession, info: common_pb2.StartTaskInfo) -> None:
        await self.node_life.start_task_report(session, info)

    async def health_report(self, session: AgentSession, report: agent_pb2.NodeHealth) -> None:
        await self.node_life.health_report(session, report)

    async def check_health(self, timeout: float) -> None:
        await self.node_life.check_health(timeout)

    async def save_node_stats(self) -> None:
        await self.node_life.save_node_stats()

    async def disable_node_scheduling(self, pool_id: str, node_id: str, option: int) -> pool_pb2.Node:
        return await self.node_ops.disable_scheduling(pool_id, node_id, option)

    async def enable_node_scheduling(self, pool_id: str, node_id: str) -> pool_pb2.Node:
        return await self.node_ops.enable_scheduling(pool_id, node_id)

    async def reboot_node(self, pool_id: str, node_id: str, option: int) -> pool_pb2.Node:
        return await self.restarts.restart(pool_id, node_id, option, reimage=False)

    async def reimage_node(self, pool_id: str, node_id: str, option: int) -> pool_pb2.Node:
        return await self.restarts.restart(pool_id, node_id, option, reimage=True)

    def pool_node_counts(self, pool_ids: list[str]) -> list[pool_pb2.PoolNodeCounts]:
        return self.node_ops.node_counts(pool_ids)

    # ------------------------------------------------------------------ jobs

    async def create_job(self, spec: job_pb2.Job, request_id: str = "") -> job_pb2.Job:
        return await self.job_life.create_job(spec, request_id)

    async def update_job(
        self, job_id: str, patch: job_pb2.Job, fields: frozenset[str], *, etag: str = ""
    ) -> job_pb2.Job:
        return await self.job_life.update_job(job_id, patch, fields, etag=etag)

    async def disable_job(self, job_id: str, option: int, *, etag: str = "") -> job_pb2.Job:
        return await self.job_life.disable_job(job_id, option, etag=etag)

    async def enable_job(self, job_id: str, *, etag: str = "") -> job_pb2.Job:
        return await self.job_life.enable_job(job_id, etag=etag)

    async def terminate_job(self, job_id: str, reason: str = "", *, etag: str = "") -> job_pb2.Job:
        return await self.job_life.terminate_job(job_id, reason, etag=etag)

    async def delete_job(self, job_id: str, *, etag: str = "") -> job_pb2.Job:
        return await self.job_life.delete_job(job_id, etag=etag)

    def job_counts(self, job_id: str) -> job_pb2.TaskCounts:
        return self.job_life.job_counts(job_id)

    async def check_job_deadlines(self) -> None:
        await self.job_life.check_job_deadlines()

    # ------------------------------------------------------------------ job schedules

    async def create_job_schedule(
        self, spec: schedule_pb2.JobSchedule, request_id: str = ""
    ) -> schedule_pb2.JobSchedule:
        return await self.schedules.create(spec, request_id)

    async def update_job_schedule(
        self, schedule_id: str, patch: schedule_pb2.JobSchedule, fields: frozenset[str], *, etag: str = ""
    ) -> schedule_pb2.JobSchedule:
        return await self.schedules.update(schedule_id, patch, fields, etag=etag)

    async def disable_job_schedule(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        return await self.schedules.disable(schedule_id, etag=etag)

    async def enable_job_schedule(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        return await self.schedules.enable(schedule_id, etag=etag)

    async def terminate_job_schedule(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        return await self.schedules.terminate(schedule_id, etag=etag)

    async def delete_job_schedule(self, schedule_id: str, *, etag: str = "") -> schedule_pb2.JobSchedule:
        return await self.schedules.delete(schedule_id, etag=etag)

    async def run_due_schedules(self) -> None:
        await self.schedules.run_due()

    # ------------------------------------------------------------------ tasks and attempts

    async def add_tasks(self, job_id: str, specs: list[task_pb2.TaskSpec]) -> list[task_pb2.AddTaskResult]:
        return await self.task_life.add_tasks(job_id, specs)

    async def terminate_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        return await self.task_life.terminate_task(job_id, task_id, etag=etag)

    async def delete_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        return await self.task_life.delete_task(job_id, task_id, etag=etag)

    async def reactivate_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        return await self.task_life.reactivate_task(job_id, task_id, etag=etag)

    async def update_task(
        self, job_id: str, task_id: str, constraints: common_pb2.TaskConstraints, *, etag: str = ""
    ) -> task_pb2.Task:
        return await self.task_life.update_task(job_id, task_id, constraints, etag=etag)

    def dependency_state(self, t: TaskRec) -> task_pb2.DependencyState | None:
        """Where task `t` stands as a dependent (None: it waits on nothing)."""
        job = self.jobs.get(t.job_key)
        return self.dependency_life.state_of(job, t) if job is not None else None

    def assign(self, t: TaskRec, nodes: list[NodeRec], attempt: int, slots: int) -> None:
        self.attempt_life.assign(t, nodes, attempt, slots)

    async def task_events(self, session: AgentSession, events: list[agent_pb2.TaskEvent]) -> None:
        await self.attempt_life.task_events(session, events)

    async def task_events_many(self, reports: list[tuple[AgentSession, list[agent_pb2.TaskEvent]]]) -> None:
        await self.attempt_life.task_events_many(reports)


__all__ = [
    "COLD_TASK_STATES",
    "DEFAULT_DISPATCH_AHEAD",
    "DEFAULT_RETENTION_SECONDS",
    "LIVE_NODE_STATES",
    "LIVE_TASK_STATES",
    "SCHEDULABLE_NODE_STATES",
    "ControlPlane",
    "Provider",
    "Stats",
    "note_attempt_length",
]
