"""Attempts: a task placed on nodes, the agents' reports fenced by attempt, and the end of an attempt
(retried, or the task completes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.agent.v1 import agent_pb2
from shoal.server.domain import wire
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.domain.records import NO_INSTANCES, AgentSession, JobRec, NodeRec, TaskRec
from shoal.server.lifecycle.jobmanager import runs_exclusive
from shoal.server.lifecycle.jobprep import PREPARATION_FAILED
from shoal.server.lifecycle.kernel import (
    ACTIVE,
    COMPLETED,
    DEFAULT_RETENTION_SECONDS,
    EVENT_COMPLETED,
    EVENT_RUNNING,
    LIVE_TASK_STATES,
    PREPARING,
    RUNNING,
    SUCCESS,
)
from shoal.server.scheduling.retry import AttemptOutcome, failure_category, should_retry
from shoal.v1 import common_pb2, job_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

T = task_pb2


def note_attempt_length(job: JobRec, ran: float) -> None:
    """Fold a successful attempt's length into the job's estimate (`run_seconds`), which sets how
    much of its work is sent ahead (`ControlPlane.ahead_depth`).

    Up at once, down slowly: one long attempt makes the estimate at least that long, so that a job
    whose tasks grow longer stops having them queued deep behind one another; shorter ones bring it
    down a fifth of the way each. A failed attempt is not counted: a task failing at its start says
    little about how long the job's tasks run.
    """
    job.run_seconds = ran if not job.runs else max(ran, 0.8 * job.run_seconds + 0.2 * ran)
    job.runs += 1


#: An active job (`job_pb2.JOB_STATE_ACTIVE`).
JOB_ACTIVE: Final = job_pb2.JOB_STATE_ACTIVE


class AttemptLifecycle:
    """Attempts: placing a task, applying the reports about it, ending the attempt."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def assign(self, t: TaskRec, nodes: list[NodeRec], attempt: int, slots: int) -> None:
        """Record that `attempt` of `t` runs on `nodes` (one, or a gang), after the applier re-checked them.

        The StartTasks for each node is queued at once (built in place in the
        node's one message of this flush): it leaves once the flush has
        committed the placement, so a pass that fails half-way leaves no placed
        task without its StartTasks.
        """
        job = self.k.jobs[t.job_key]
        # A task placed for the first time, kept as bytes, has nothing of an earlier attempt to clear:
        # its placement is appended to its bytes (see `wire`), its message read but not kept.
        fresh = t.frozen and t.attempt == 0 and attempt == 1
        proto = t.read() if fresh else t.proto
        spec = proto.spec
        master = nodes[0]
        t.node_key = master.key
        multi = spec.HasField("multi_instance_settings")
        t.gang = tuple(n.key for n in nodes) if multi else ()
        t.coordinated = NO_INSTANCES
        t.attempt = attempt
        tkey = (t.job_key, t.key)
        if job.jm_key is not None and t.key == job.jm_key and runs_exclusive(job.proto.job_manager_task):
            self.k.exclusive_nodes.add(master.key)  # (nothing is sent ahead to it meanwhile)
        for n in nodes:
            n.running[tkey] = slots
        if fresh and not multi:
            # (An unplaced task's next attempt is its first.)
            change = wire.state_change(PREPARING, t.state, self.k.transition_time())
            self.k.change_frozen(t, PREPARING, job, wire.FIRST_ATTEMPT + change + master.placement_change())
        else:
            proto = t.proto  # (live now: a first placement of a multi-instance task was only read)
            proto.attempt = attempt
            if attempt > 1 or proto.HasField("execution_info"):
                # What the previous attempt left (a first attempt has nothing to clear).
                info = proto.execution_info
                for f in ("start_time", "end_time", "exit_code", "failure_info", "result", "container_info"):
                    info.ClearField(f)  # type: ignore[arg-type]
            # (Replaces all of it: the previous attempt's task directory too.)
            proto.node_info.CopyFrom(master.placement_info())
            if multi:
                del proto.subtasks[:]
                for i, n in enumerate(nodes):
                    proto.subtasks.append(
                        T.Subtask(id=i, state=T.SUBTASK_STATE_PREPARING, node_info=n.placement_info())
                    )
            self.k.set_task_state(t, PREPARING, job, proto)
        for n in nodes:
            self.k.refresh_node_activity(n)
        self.k.stats.dispatched += 1
        base = self.k.start_message(master).start_tasks.tasks.add(
            pool_id=master.proto.pool_id, command_line=spec.command_line, required_slots=slots
        )
        if spec.HasField("constraints"):
            c = spec.constraints
            if c.HasField("max_wall_clock_time"):
                base.max_wall_clock_seconds = c.max_wall_clock_time.ToTimedelta().total_seconds()
            base.retention_seconds = (
                c.retention_time.ToTimedelta().total_seconds()
                if c.HasField("retention_time")
                else DEFAULT_RETENTION_SECONDS
            )
        else:
            base.retention_seconds = DEFAULT_RETENTION_SECONDS
        ref = base.attempt
        ref.job_id = job.proto.id
        ref.task_id = spec.id
        ref.attempt = attempt
        common_env = job.proto.common_environment_settings
        if common_env:
            base.environment_settings.extend(common_env)
        if spec.environment_settings:
            base.environment_settings.extend(spec.environment_settings)
        if spec.resource_files:
            base.resource_files.extend(spec.resource_files)
        if spec.output_files:
            base.output_files.extend(spec.output_files)
        if spec.HasField("user_identity"):
            base.user_identity.CopyFrom(spec.user_identity)
        if spec.HasField("container_settings"):
            # (Only a container task pays for this: the registry's password, kept apart, filled in.)
            base.container.CopyFrom(spec.container_settings)
            self.k.registry_credentials.fill(job.proto.account, base.container)
        if spec.application_package_references and self.k.task_packages is not None:
            # (Resolved now, to the versions ACTIVE now: a default version is the one at dispatch.)
            base.packages.extend(
                self.k.task_packages(job.proto.account or DEFAULT_ACCOUNT, spec.application_package_references)
            )
        if job.prep_spec is not None:
            # (Run on the node before the job's first task there: see `jobprep`.)
            base.job_preparation.CopyFrom(job.prep_spec)
            if job.prep_spec.HasField("container"):
                self.k.registry_credentials.fill(job.proto.account, base.job_preparation.container)
        if not multi:
            return
        mis = spec.multi_instance_settings
        shared = f"{master.proto.root_directory}/workitems/{job.proto.id}/job-1/{spec.id}"
        ref = base.attempt
        secret = self.k.exec_secret(ref.job_id, ref.task_id, ref.attempt) if self.k.exec_secret is not None else ""
        for i, n in enumerate(nodes):
            a = base if i == 0 else self.k.start_message(n).start_tasks.tasks.add()
            if i > 0:
                a.CopyFrom(base)
                a.attempt.instance = i
                # The application's own files and outputs belong to the primary only.
                del a.resource_files[:]
                del a.output_files[:]
            a.multi_instance.CopyFrom(
                agent_pb2.MultiInstance(
                    instance_index=i,
                    number_of_instances=len(nodes),
                    host_list=[x.proto.ip_address for x in nodes],
                    agent_addresses=[f"{x.proto.ip_address}:{x.exec_port or x.node_service_port}" for x in nodes],
                    coordination_command_line=mis.coordination_command_line,
                    common_resource_files=mis.common_resource_files,
                    task_shared_dir=shared,
                    exec_secret=secret,
                )
            )

    async def task_events(self, session: AgentSession, events: list[agent_pb2.TaskEvent]) -> None:
        """Apply a batch of reports from a node, commit, then acknowledge them."""
        await self.task_events_many([(session, events)])

    async def task_events_many(self, reports: list[tuple[AgentSession, list[agent_pb2.TaskEvent]]]) -> None:
        """Apply reports from one or more nodes, place work on the room they freed, commit, then acknowledge."""
        now = self.k.clock.monotonic()
        accepted: list[tuple[AgentSession, list[agent_pb2.TaskEvent]]] = []
        nodes: list[NodeRec] = []
        with self.k.one_time():
            for session, events in reports:
                node = self.k.nodes.get(session.node_key)
                if node is None or node.session is not session:
                    continue
                node.last_seen = now
                self.apply_events(node, events)
                accepted.append((session, events))
                nodes.append(node)
            if not nodes:
                return
            if self.k.completions:
                # Dependents these completions release are placed in this very pass.
                self.k.completion.settle()
            # Only these nodes gained room, so a pass over them alone usually
            # suffices; the full pass (O(nodes)) runs when it could not settle things.
            placed = self.k.place_hook(nodes) if self.k.place_hook is not None else -1
        full_pass = placed < 0
        released = self.k.jobs_released
        if released:
            # Dependents released by these reports that the pass over their nodes left: the other nodes.
            full_pass = full_pass or any(j.released for j in released.values())
            released.clear()
        if not full_pass:
            roomy = {n.pool_key for n in nodes if n.task_slots > n.used_slots}
            full_pass = bool(roomy) and any(j.has_queued() for j in self.k.waiting_jobs.values() if j.pool_key in roomy)
        for session, events in accepted:
            if events:
                self.k.ack_after_commit(session, max(e.event_id for e in events))
        await self.k.flush()
        if full_pass:
            self.k.kick_scheduler()

    def apply_events(self, node: NodeRec, events: list[agent_pb2.TaskEvent]) -> None:
        jobs = self.k.jobs
        touched: dict[str, JobRec] = {}
        for ev in events:
            if ev.job_task:
                # A job preparation or release task's run: not an attempt of a task.
                self.k.prep_life.apply_event(node, ev)
                continue
            ref = ev.attempt
            job = jobs.get(ref.job_id.lower())  # (idkey, inlined: this runs once per report)
            t = job.tasks.get(ref.task_id.lower()) if job is not None else None
            if (
                t is None
                or job is None
                # (The state first: a report about a finished task must not bring its message back to life.)
                or t.state not in LIVE_TASK_STATES
                or t.attempt != ref.attempt
                or t.instance_on(node.key) != ref.instance
            ):
                self.k.stats.stale_reports += 1
                if t is not None and ev.HasField("stats"):
                    # (The end of an instance Shoal stopped when its attempt ended still counts.)
                    self.k.accounting.late_report(t, node, ev)
                continue
            touched[job.key] = job
            kind = ev.kind
            if t.gang:
                self.k.gang_life.apply_instance_event(t, node, ev)
            elif kind == EVENT_COMPLETED and ev.result == SUCCESS and t.placed_as_bytes():
                # Most reports: the end is appended to the task's bytes too.
                self.succeed_frozen(t, node, ev, job)
            elif kind == EVENT_COMPLETED:
                # A short attempt's RUNNING may have been folded into its COMPLETED: the attempt
                # ran, so it moves on from RUNNING, in one transition rather than two
                # (_complete_attempt records the start it would have brought).
                self.complete_attempt(t, node, ev, job, folded=t.state == PREPARING)
            elif kind == EVENT_RUNNING:
                self.mark_running(t, ev)
        # (Once per job, after its reports: a job that completes ends with its last task's report.)
        for job in touched.values():
            if not job.reacts or job.proto.state != JOB_ACTIVE:
                # (An active job that reacts is checked by `completion.settle`, after its completions' job
                # actions and job manager: they, not "all tasks complete", say why it ends.)
                self.k.job_life.check_done(job)

    def mark_running(self, t: TaskRec, ev: agent_pb2.TaskEvent) -> None:
        if t.state == PREPARING:
            t.proto.execution_info.start_time.CopyFrom(ev.start_time if ev.HasField("start_time") else ev.time)
            t.proto.node_info.task_root_directory = ev.task_root_directory
            if ev.HasField("container_info"):
                t.proto.execution_info.container_info.CopyFrom(ev.container_info)
            self.k.set_task_state(t, RUNNING)

    def complete_attempt(
        self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent, job: JobRec | None = None, *, folded: bool = False
    ) -> None:
        """The attempt of `t` on `node` ended as `ev` says: record it, free the node, retry or complete.

        `folded`: the attempt's RUNNING was folded into this report (it moves on from RUNNING).
        Runs once per task: each field of `ev` and of the task is read once. (The successful end of an
        attempt placed as bytes goes to `_succeed_frozen` instead: see `_apply_events`.)
        """
        if job is None:
            job = self.k.jobs[t.job_key]
        if ev.result != SUCCESS and ev.failure_info.code == PREPARATION_FAILED:
            # Not run: the job's preparation task failed for good on the node. Elsewhere, then.
            self.k.prep_life.preparation_failed(job, node)
            self.k.task_life.requeue(t, f"its job's preparation task failed on node {node.proto.id}")
            return
        proto = t.proto
        info = proto.execution_info
        ev_time = ev.time
        ev_start = ev.start_time if ev.HasField("start_time") else None
        if not info.HasField("start_time"):
            info.start_time.CopyFrom(ev_start if ev_start is not None else ev_time)
        if ev.task_root_directory:
            proto.node_info.task_root_directory = ev.task_root_directory
        info.end_time.CopyFrom(ev_time)
        if ev.HasField("container_info"):
            info.container_info.CopyFrom(ev.container_info)
        exit_code = ev.exit_code if ev.HasField("exit_code") else None
        if exit_code is not None:
            info.exit_code = exit_code
        else:
            info.ClearField("exit_code")
        succeeded = ev.result == SUCCESS
        code = ""
        if succeeded:
            began = ev_start if ev_start is not None else info.start_time
            note_attempt_length(job, max(0.0, (ev_time.seconds - began.seconds) + (ev_time.nanos - began.nanos) / 1e9))
            info.ClearField("failure_info")
            info.result = SUCCESS
        else:
            code = (ev.failure_info.code if ev.HasField("failure_info") else "") or "FailureExitCode"
            fi = common_pb2.FailureInfo()
            fi.CopyFrom(ev.failure_info)
            fi.code = code
            if not fi.category:
                fi.category = failure_category(code)  # type: ignore[assignment]
            info.failure_info.CopyFrom(fi)
            info.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
        self.k.count_attempt(node, succeeded)
        self.k.accounting.attempt_ended(t, node, ev, job)
        node.recent.append((job.proto.id, proto.spec.id, proto.attempt, exit_code))
        node.recent_changed = True
        self.k.task_life.release_nodes(t, kill_others_than=node.key)
        if not succeeded and should_retry(
            AttemptOutcome(exit_code, code, succeeded), info.retry_count, self.k.task_life.max_retries(t)
        ):
            info.retry_count += 1
            info.last_retry_time.CopyFrom(ev_time)
            self.k.set_task_state(t, ACTIVE, job, proto)
        else:
            self.k.set_task_state(t, COMPLETED, job, proto)
        self.k.accounting.attempt_decided(t, node, job)
        if folded:
            proto.previous_state = RUNNING  # type: ignore[assignment]

    def succeed_frozen(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent, job: JobRec) -> None:
        """`_complete_attempt` of a successful attempt of a task kept as bytes, placed and not yet
        reported RUNNING: nothing of the attempt's end is recorded yet, so it is appended (see `wire`).
        The RUNNING it skipped is folded in, as `_complete_attempt` does."""
        end = ev.time
        start = ev.start_time if ev.HasField("start_time") else end
        exit_code = ev.exit_code if ev.HasField("exit_code") else None
        note_attempt_length(job, max(0.0, (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9))
        self.k.count_attempt(node, True)
        ref = ev.attempt
        # (The task's id as the agent reports it: the one it was sent. Its message is not read here.)
        node.recent.append((job.proto.id, ref.task_id, ref.attempt, exit_code))
        node.recent_changed = True
        self.k.task_life.release_nodes(t, kill_others_than=node.key)
        end_bytes = end.SerializeToString()
        change = wire.ended(
            wire.state_change(COMPLETED, RUNNING, self.k.transition_time()),
            end_bytes if start is end else start.SerializeToString(),
            end_bytes,
            exit_code,
            SUCCESS,
            ev.task_root_directory,
        ) + self.k.accounting.frozen_success(t, node, ev, job)
        if ev.HasField("container_info"):
            change += wire.container_info(ev.container_info.SerializeToString())
        t.result = SUCCESS
        job.succeeded += 1
        self.k.change_frozen(t, COMPLETED, job, change)
