"""Running task attempts: directory, staging, process, wall clock, outputs, events."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock, to_timestamp
from shoal.nodeagent import certificates, envvars, process, retention, taskdirs
from shoal.nodeagent.config import AgentConfig
from shoal.nodeagent.containers import ContainerError, container_name, container_variables
from shoal.nodeagent.containertasks import NodeContainers, PreparedContainer
from shoal.nodeagent.jobtasks import JobTasks, job_preparation_failed
from shoal.nodeagent.layout import NodeLayout, root_of_task_dir, working_dir
from shoal.nodeagent.outcome import (
    FAILURE,
    SERVER_ERROR,
    SUCCESS,
    USER_ERROR,
    Outcome,
    ended,
    failure,
    outcome_of,
    wall_clock_ended,
)
from shoal.nodeagent.outputs import upload_outputs
from shoal.nodeagent.packages import PACKAGE_ERROR, PackageCache, PackageError
from shoal.nodeagent.staging import StagingError, stage_resource_files
from shoal.nodeagent.state import RunningFile, attempt_key
from shoal.nodeagent.storage import StorageClient
from shoal.nodeagent.usage import Tracked, Usage, UsageSampler
from shoal.nodeagent.users import IdentityError, NodeUsers, RunAs
from shoal.paths import UnsafePathError
from shoal.v1 import common_pb2

log = logging.getLogger(__name__)

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING
COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
COORDINATED = agent_pb2.TASK_EVENT_KIND_COORDINATED

AttemptKey = tuple[str, str, int]
FINISHED_MEMORY = 10000
#: How much longer than its task's wall clock limit a subtask (an instance other than the primary) waits
#: before ending itself: a safety net for a primary that is gone, not the limit (see `_remaining`).
SUBTASK_WALL_CLOCK_MARGIN = 10.0
#: How long a multi-instance container instance waits for its task's shared directory to appear (the
#: primary makes it) before its container is made without it.
SHARED_DIR_WAIT = 30.0
#: A task directory's output files, as Batch names them: the command's stdout and stderr.


timestamp = to_timestamp


@dataclass
class Attempt:
    """One attempt (or one instance of a multi-instance attempt) on this node, up to its COMPLETED event."""

    assignment: agent_pb2.TaskAssignment
    start_time: datetime
    task_dir: Path | None
    #: The process of the current phase (coordination or application command).
    proc: subprocess.Popen[bytes] | None = None
    #: Other process groups that end with the attempt (coordination leftovers, Exec'd commands).
    groups: set[int] = field(default_factory=set)
    #: The environment of its commands, once known (Exec runs inside it).
    env: dict[str, str] | None = None
    killed: bool = False
    delete_files: bool = False
    #: stdout.txt and stderr.txt exist (a command started, or a multi-instance directory was reset).
    outputs_made: bool = False
    stage: asyncio.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    kill_requested: asyncio.Event = field(default_factory=asyncio.Event)
    #: Multi-instance primary: RunApplication arrived.
    run_application: asyncio.Event = field(default_factory=asyncio.Event)
    #: clock.monotonic() when its first process started (the wall clock runs from there).
    first_process_at: float | None = None
    #: What an Exec into this attempt must carry (`SHOAL_EXEC_SECRET` in its environment): the gang's,
    #: from the server, for a multi-instance attempt; one of the agent's own otherwise.
    exec_secret: str = ""
    #: The user its processes run as (None: the agent's own), once known.
    run_as: RunAs | None = None
    #: What its commands used so far (see `shoal.nodeagent.usage`); None until one ran.
    usage: Usage | None = None
    #: How the sampler follows its process tree while it runs.
    tracked: Tracked | None = None
    #: Its container's last word, for an attempt that runs in one.
    container_info: common_pb2.TaskContainerExecutionInfo | None = None
    #: A multi-instance container attempt's instance container (its commands and Exec'd proxies run in it).
    instance_container: str | None = None

    def groups_now(self) -> list[int]:
        """Its process groups now: its command's and the others that end with it."""
        proc = self.proc
        return [proc.pid, *self.groups] if proc is not None else list(self.groups)

    def measured(self, usage: Usage | None) -> None:
        """Fold in what one of its commands (or an Exec'd group) used."""
        if usage is None:
            return
        if self.usage is None:
            self.usage = Usage()
        self.usage.add(usage)

    @property
    def owner(self) -> tuple[int, int] | None:
        """The uid and gid its processes and files have, when not the agent's."""
        return (self.run_as.uid, self.run_as.gid) if self.run_as is not None else None

    @property
    def key(self) -> AttemptKey:
        """(job, task, attempt)."""
        a = self.assignment.attempt
        return (a.job_id, a.task_id, a.attempt)

    @property
    def multi_instance(self) -> agent_pb2.MultiInstance | None:
        """The multi-instance part of the assignment, if any."""
        return self.assignment.multi_instance if self.assignment.HasField("multi_instance") else None

    @cached_property
    def wd(self) -> Path | None:
        """The working directory."""
        return working_dir(self.task_dir) if self.task_dir is not None else None


class TaskRunner:
    """Runs the TaskAssignments of StartTasks and reports TaskEvents through `emit`."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        layout: NodeLayout,
        clock: Clock,
        emit: Callable[[agent_pb2.TaskEvent], None],
        storage: Callable[[], StorageClient | None],
        node_identity: Callable[[], tuple[str, str]],
        running_file: RunningFile,
        source_env: dict[str, str] | None = None,
        users: NodeUsers | None = None,
    ) -> None:
        self._config = config
        #: Who tasks run as (None: always the agent's own user).
        self._users = users
        self._layout = layout
        self._clock = clock
        self._emit = emit
        self._storage = storage
        self._identity = node_identity
        self._running_file = running_file
        self._source_env = dict(os.environ) if source_env is None else source_env
        #: The cluster CA certificate, which attempts use to reach agents over TLS (SHOAL_AGENT_CA_FILE).
        self.agent_ca_file: Path | None = None
        #: Where the agent wrote its fast `shoal-mpi-launch` (`mpilauncher.write_launcher`), if it did.
        self.launcher_dir: Path | None = None
        #: When completed task directories may be deleted.
        self.retention = retention.RetentionJournal(layout.retention_file)
        self._attempts: dict[AttemptKey, Attempt] = {}
        #: (job, task) → its newest attempt on this node.
        self._current: dict[tuple[str, str], Attempt] = {}
        #: The node's task slots (0: no limit). Attempts beyond them wait in `_waiting`, in order.
        self.slots = 0
        self._waiting: collections.deque[tuple[Attempt, Attempt | None]] = collections.deque()
        #: Slots taken by attempts that have started (not those waiting).
        self._busy = 0
        #: Recently completed attempts: a repeated StartTasks for one of them is not run again.
        self._finished: collections.OrderedDict[AttemptKey, None] = collections.OrderedDict()
        #: When the retention sweeper means to run next (POSIX seconds), and what wakes it sooner.
        self._sweep_at = float("inf")
        self._sweep_wake = asyncio.Event()
        #: Samples the running attempts' process trees (memory, Exec'd commands' CPU and I/O).
        self.sampler = UsageSampler(config.usage_sample_seconds)
        #: The node's application packages (None until the agent connects: an attempt with packages then
        #: fails to deploy them).
        self.packages: PackageCache | None = None
        #: The deployment of the pool's packages under way or last made (its result: what failed, "" for
        #: nothing); None when the pool has none. Attempts wait for it before they run.
        self.pool_deploy: asyncio.Future[str] | None = None
        #: The node's container engine and its pool's images (None: an agent without them, as in tests
        #: that embed a runner): a container attempt then fails with ContainerMiscError.
        self.containers: NodeContainers | None = None
        #: The jobs' preparation and release tasks on this node.
        self.job_tasks = JobTasks(
            config=config,
            layout=layout,
            clock=clock,
            emit=emit,
            storage=storage,
            node_identity=node_identity,
            running_file=running_file,
            source_env=self._source_env,
            retain=self.retain,
            users=users,
        )

    # ---- queries -------------------------------------------------------------------------------

    @property
    def source_env(self) -> dict[str, str]:
        """The agent's own environment, which every task's starts from."""
        return self._source_env

    def active_attempts(self) -> list[agent_pb2.AttemptRef]:
        """Attempts that have not reported COMPLETED yet."""
        out = []
        for a in self._attempts.values():
            ref = agent_pb2.AttemptRef()
            ref.CopyFrom(a.assignment.attempt)
            out.append(ref)
        return out

    def running_slots(self) -> int:
        """Task slots taken by attempts that have started."""
        return self._busy

    def active_count(self) -> int:
        """Attempts accepted that have not completed (those waiting for a slot among them)."""
        return len(self._attempts)

    def waiting(self) -> int:
        """Attempts accepted but waiting for a slot."""
        return len(self._waiting)

    def is_task_active(self, job_id: str, task_id: str) -> bool:
        """True while the task's current attempt on this node has not completed."""
        cur = self._current.get((job_id, task_id))
        return cur is not None and not cur.done.is_set()

    def find(self, job_id: str, task_id: str, attempt: int) -> Attempt | None:
        """The active attempt with this key, if any."""
        return self._attempts.get((job_id, task_id, attempt))

    def add_group(self, attempt: Attempt, pgid: int) -> None:
        """A process group (an Exec'd command) that must end with the attempt."""
        attempt.groups.add(pgid)
        self._running_file.add(f"{attempt_key(*attempt.key)}/{pgid}", pgid)

    def remove_group(self, attempt: Attempt, pgid: int) -> None:
        """That process group is gone (what the sampler last saw of it counts for the attempt)."""
        attempt.groups.discard(pgid)
        if attempt.tracked is not None:
            attempt.measured(attempt.tracked.take_exec_usage(pgid))
        self._running_file.remove(f"{attempt_key(*attempt.key)}/{pgid}")

    def run_application(self, ref: agent_pb2.AttemptRef) -> None:
        """Multi-instance: every instance coordinated; the primary may run the application command."""
        attempt = self._attempts.get((ref.job_id, ref.task_id, ref.attempt))
        if attempt is None:
            log.info("RunApplication for %s/%s/%d, which is not active here", ref.job_id, ref.task_id, ref.attempt)
            return
        attempt.run_application.set()

    def attempt_done(self, job_id: str, task_id: str) -> asyncio.Event | None:
        """The completion event of the task's current attempt, if any."""
        cur = self._current.get((job_id, task_id))
        return cur.done if cur is not None else None

    # ---- commands --------------------------------------------------------------------------------

    def start(self, assignment: agent_pb2.TaskAssignment) -> None:
        """Accept one assignment: RUNNING is emitted at once, the rest runs in the background."""
        ref = assignment.attempt
        key = (ref.job_id, ref.task_id, ref.attempt)
        if key in self._attempts or key in self._finished:
            log.info("attempt %s is already active or finished; ignoring the duplicate", key)
            return
        try:
            task_dir: Path | None = self._layout.task_dir(ref.job_id, ref.task_id)
        except UnsafePathError:
            task_dir = None
        attempt = Attempt(assignment=assignment, start_time=self._clock.now(), task_dir=task_dir)
        previous = self._current.get((ref.job_id, ref.task_id))
        self._attempts[key] = attempt
        self._current[(ref.job_id, ref.task_id)] = attempt
        running_previous = previous is not None and not previous.done.is_set()
        if not running_previous and (self._waiting or not self._fits(attempt)):
            # Sent ahead by the server for when a slot frees: it starts (and reports RUNNING) then.
            self._waiting.append((attempt, previous))
            return
        self._launch(attempt, previous)

    def set_slots(self, slots: int) -> None:
        """The node's task slots, as the server says (0: no limit); waiting attempts that now fit start."""
        self.slots = max(0, slots)
        self._launch_waiting()

    @staticmethod
    def _slots_of(attempt: Attempt) -> int:
        return max(1, attempt.assignment.required_slots)

    def _fits(self, attempt: Attempt) -> bool:
        # An attempt that needs more than the node has runs alone rather than never.
        return not self.slots or self._busy == 0 or self._busy + self._slots_of(attempt) <= self.slots

    def _launch(self, attempt: Attempt, previous: Attempt | None) -> None:
        attempt.start_time = self._clock.now()
        self._busy += self._slots_of(attempt)
        attempt.tracked = Tracked(attempt.groups_now, lambda: attempt.groups)
        self.sampler.track(attempt.key, attempt.tracked)
        ref = attempt.assignment.attempt
        self._emit(
            agent_pb2.TaskEvent(
                attempt=ref,
                kind=RUNNING,
                time=timestamp(attempt.start_time),
                start_time=timestamp(attempt.start_time),
                task_root_directory=str(attempt.task_dir or ""),
            )
        )
        attempt.task = asyncio.create_task(self._run(attempt, previous), name=f"attempt {attempt.key}")

    def _launch_waiting(self) -> None:
        """Start waiting attempts, in order, while they fit."""
        while self._waiting and self._fits(self._waiting[0][0]):
            attempt, previous = self._waiting.popleft()
            self._launch(attempt, previous)

    async def kill(self, refs: Iterable[agent_pb2.AttemptRef], delete_files: bool) -> None:
        """Kill these attempts (their COMPLETED is still reported); optionally delete their dirs."""
        waits = []
        for ref in refs:
            attempt = self._attempts.get((ref.job_id, ref.task_id, ref.attempt))
            if attempt is None:
                if delete_files:
                    await self.delete_task_files(ref.job_id, [ref.task_id])
                continue
            attempt.delete_files = attempt.delete_files or delete_files
            waits.append(self._kill_attempt(attempt))
        await asyncio.gather(*waits)

    async def _kill_attempt(self, attempt: Attempt) -> None:
        attempt.killed = True
        attempt.kill_requested.set()
        if self._withdraw(attempt):
            return
        if attempt.stage is not None and not attempt.stage.done():
            attempt.stage.cancel()
        groups = set(attempt.groups)
        if attempt.proc is not None and attempt.proc.returncode is None:
            groups.add(attempt.proc.pid)
        await asyncio.gather(*(process.kill_group(g, self._config.kill_grace_seconds) for g in groups))
        await attempt.done.wait()

    async def delete_task_files(self, job_id: str, task_ids: Iterable[str]) -> None:
        """Remove task directories of tasks not running (all of `workitems/<job>` when `task_ids` is empty)."""
        ids = list(task_ids)
        try:
            job_dir = self._layout.job_dir(job_id)
            if not ids:
                # The job's preparation and release directories go too, and what the agent recorded of them.
                await self.job_tasks.end_job(job_id)
                if not any(j == job_id for (j, _t) in self._current):
                    await asyncio.to_thread(shutil.rmtree, job_dir, ignore_errors=True)
                    if self.containers is not None:
                        await self.containers.remove_job(job_id)
                    return
                jobs1 = job_dir / "job-1"
                ids = [p.name for p in jobs1.iterdir()] if jobs1.is_dir() else []
            for task_id in ids:
                if self.is_task_active(job_id, task_id) or self.job_tasks.is_running(job_id, task_id):
                    log.info("not deleting %s/%s: it is running", job_id, task_id)
                    continue
                await asyncio.to_thread(shutil.rmtree, self._layout.task_dir(job_id, task_id), ignore_errors=True)
                if self.containers is not None:
                    await self.containers.remove_tasks([(job_id, task_id)])
            retention.remove_if_empty(job_dir)
        except UnsafePathError as e:
            log.warning("DeleteTaskFiles: %s", e)

    def _withdraw(self, attempt: Attempt) -> bool:
        """End an attempt that is still waiting for a slot (it never ran); False when it has started."""
        for i, (waiting, _previous) in enumerate(self._waiting):
            if waiting is attempt:
                del self._waiting[i]
                self._complete(attempt, self._killed_outcome(None))
                return True
        return False

    async def kill_all(self) -> None:
        """Kill every task process group at once (shutdown)."""
        while self._waiting:
            attempt, _previous = self._waiting.popleft()
            attempt.killed = True
            self._complete(attempt, self._killed_outcome(None))
        for attempt in list(self._attempts.values()):
            attempt.killed = True
            attempt.kill_requested.set()
            if attempt.stage is not None and not attempt.stage.done():
                attempt.stage.cancel()
            if attempt.proc is not None and attempt.proc.returncode is None:
                process.kill_group_now(attempt.proc.pid)
            for g in attempt.groups:
                process.kill_group_now(g)
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        await self.job_tasks.kill_all()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    async def run_sampler(self) -> None:
        """Sample the running attempts' process trees, for ever (see `shoal.nodeagent.usage`)."""
        await self.sampler.run()

    async def run_sweeper(self, max_wait: float) -> None:
        """Sweep at each earliest retention deadline (at least every `max_wait` seconds), for ever.

        A completion whose deadline comes before the planned sweep wakes it (see `_complete`).
        """
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("retention sweep failed")
            now = self._clock.now().timestamp()
            delay = retention.next_sweep_delay(self.retention.next_deadline(), now, max_wait)
            self._sweep_at = now + delay
            self._sweep_wake.clear()
            waits = {asyncio.ensure_future(self._clock.sleep(delay)), asyncio.ensure_future(self._sweep_wake.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def retain(self, job_id: str, task_id: str, seconds: float) -> None:
        """Keep the directory of `task_id` (a task, or a job's release task) for `seconds` from now."""
        with contextlib.suppress(OverflowError):
            when = self.retention.record(job_id, task_id, self._clock.now() + timedelta(seconds=seconds))
            if when < self._sweep_at:
                self._sweep_wake.set()  # sooner than the sweeper means to wake

    async def sweep(self) -> list[Path]:
        """Delete task directories whose retention passed (not those of tasks running again)."""
        due = self.retention.due(self._clock.now(), self.is_task_active)
        dirs = []
        for job_id, task_id in due:
            with contextlib.suppress(UnsafePathError):
                dirs.append(self._layout.task_dir(job_id, task_id))
        removed = await asyncio.to_thread(retention.remove_task_dirs, dirs) if dirs else []
        if self.containers is not None and due:
            await self.containers.remove_tasks(due)
        self.retention.forget(due)
        return removed

    # ---- one attempt -------------------------------------------------------------------------------

    async def _run(self, attempt: Attempt, previous: Attempt | None) -> None:
        outcome = Outcome()
        try:
            if previous is not None and not previous.done.is_set():
                log.info("killing the older attempt %s of the same task", previous.key)
                await self._kill_attempt(previous)
            if attempt.assignment.HasField("job_preparation"):
                pool = self.pool_deploy
                if pool is not None:
                    # (The preparation task has the pool's packages in its environment too.)
                    await self._until_done_or_killed(attempt, pool)
                held = await self._await_preparation(attempt)
                if held is not None:
                    outcome = held
                    return
            outcome = await self._execute(attempt)
        except Exception as e:
            log.exception("attempt %s failed inside the agent", attempt.key)
            outcome = Outcome(outcome.exit_code, failure(SERVER_ERROR, "Unknown", f"agent error: {e}"))
        finally:
            self._complete(attempt, outcome)

    async def _await_preparation(self, attempt: Attempt) -> Outcome | None:
        """Wait until the job's preparation task lets the attempt run here (None), or the outcome that
        ends the attempt instead: killed meanwhile, or the preparation failed (with wait_for_success)."""
        gate = self.job_tasks.preparation(attempt.assignment.job_preparation)
        if not gate.done():
            kill = asyncio.ensure_future(attempt.kill_requested.wait())
            waits: set[asyncio.Future[Any]] = {gate, kill}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                kill.cancel()
        if attempt.killed:
            return self._killed_outcome(None)
        return None if gate.result() else job_preparation_failed()

    async def _execute(self, attempt: Attempt) -> Outcome:
        try:
            return await self._execute_phases(attempt)
        finally:
            # Whatever the attempt started (coordination services, Exec'd proxies) ends with it.
            for g in list(attempt.groups):
                process.kill_group_now(g)
                self.remove_group(attempt, g)
            if attempt.instance_container is not None and self.containers is not None:
                await self.containers.end_instance(attempt.instance_container)
                if attempt.container_info is not None:
                    attempt.container_info.state = "exited"

    async def _execute_phases(self, attempt: Attempt) -> Outcome:
        a = attempt.assignment
        task_dir = attempt.task_dir
        mi = attempt.multi_instance
        if task_dir is None:
            return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", "unsafe job or task id"))
        wd = attempt.wd
        assert wd is not None
        shared_dir = Path(mi.task_shared_dir) if mi is not None and mi.task_shared_dir else task_dir
        if self._users is not None:
            try:
                attempt.run_as = await self._users.acquire(
                    a.user_identity if a.HasField("user_identity") else None,
                    attempt_key(*attempt.key),
                    shared_dir=mi is not None,
                )
            except IdentityError as e:
                category = SERVER_ERROR if e.server_side else USER_ERROR
                return Outcome(None, failure(category, process.CODE_LAUNCH_FAILED, e.message))
        owner = attempt.owner
        try:
            if shared_dir == task_dir and mi is not None:
                # Other instances (local nodes share one filesystem) may already stage common files here.
                await asyncio.to_thread(taskdirs.reset_task_dir, task_dir, owner)
                attempt.outputs_made = True
            elif not taskdirs.make_task_dir(task_dir, wd, owner):
                # A directory left by an earlier attempt: removing it may take a while.
                await asyncio.to_thread(taskdirs.fresh_task_dir, task_dir, owner)
            certs_dir = None
            if self._layout.certificates.visible(certificates.TASK):
                certs_dir = await asyncio.to_thread(
                    self._layout.certificates.provide, task_dir, certificates.TASK, owner
                )
        except OSError as e:
            return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", str(e)))
        package_env: dict[str, str] | None = None
        if a.packages or self.pool_deploy is not None:
            # (Only for an attempt with packages, or on a node whose pool has some: others pay nothing.)
            deployed = await self._deploy_packages(attempt)
            if isinstance(deployed, Outcome):
                return deployed
            package_env = deployed
        attempt.env = self._environment(attempt, task_dir, wd, shared_dir)
        if package_env:
            attempt.env.update(package_env)
        if certs_dir:
            attempt.env.update(certificates.certificates_env(certs_dir))

        if mi is not None:
            # Common resource files into the shared directory, then the coordination command.
            # Staged from the root of the node the shared directory is on (the primary's), no link followed.
            shared_root = root_of_task_dir(shared_dir, a.attempt.job_id, a.attempt.task_id)
            if shared_root is None and mi.common_resource_files:
                problem = f"the task's shared directory {shared_dir} is not a task directory"
                return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", problem))
            outcome = await self._stage(attempt, mi.common_resource_files, shared_dir, shared_root or task_dir)
            if outcome is not None:
                return outcome
            if mi.coordination_command_line:
                result = await self._run_command(attempt, mi.coordination_command_line, kill_leftovers=False)
                if isinstance(result, Outcome):
                    return result
                if result.returncode == 0:
                    if process.group_alive(result.pgid):
                        # Background services the coordination command started live on with the instance.
                        self.add_group(attempt, result.pgid)
                else:
                    with contextlib.suppress(OSError):
                        os.killpg(result.pgid, signal.SIGKILL)
                    return outcome_of(result)
            self._emit(
                agent_pb2.TaskEvent(
                    attempt=a.attempt,
                    kind=COORDINATED,
                    time=timestamp(self._clock.now()),
                    start_time=timestamp(attempt.start_time),
                    task_root_directory=str(task_dir),
                )
            )
            if mi.instance_index != 0:
                # A subtask stays as a home for MPI proxies until it is killed (or its wall clock ends).
                if not await self._wait_for(attempt, attempt.kill_requested):
                    return wall_clock_ended()
                return self._killed_outcome(None)
            if not await self._wait_for(attempt, attempt.run_application):
                return wall_clock_ended()
            if attempt.killed:
                return self._killed_outcome(None)

        # The task's own resource files and its (application) command.
        outcome = await self._stage(attempt, a.resource_files, wd, self._layout.root)
        if outcome is not None:
            return outcome
        result = await self._run_command(attempt, a.command_line, kill_leftovers=True)
        if isinstance(result, Outcome):
            return result
        outcome = outcome_of(result)

        # Output files.
        if a.output_files:
            err = await upload_outputs(
                a.output_files,
                succeeded=outcome.succeeded,
                wd=wd,
                task_dir=task_dir,
                storage=self._storage(),
                now=self._clock.now(),
                root=self._layout.root,
            )
            if err is not None:
                outcome = Outcome(outcome.exit_code, failure(USER_ERROR, "FileUploadMiscError", err))
        return outcome

    async def _until_done_or_killed(self, attempt: Attempt, work: asyncio.Future[Any]) -> bool:
        """Wait for `work` (not cancelled if the attempt is killed meanwhile: others may share it); False
        when the attempt was killed first."""
        if not work.done():
            kill = asyncio.ensure_future(attempt.kill_requested.wait())
            try:
                await asyncio.wait({work, kill}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                kill.cancel()
        return not attempt.killed

    async def _deploy_packages(self, attempt: Attempt) -> Outcome | dict[str, str]:
        """Wait for the pool's packages, then deploy the attempt's own: their variables, or the outcome
        that ends the attempt (`ApplicationPackageError`, which is not retried, or killed meanwhile)."""
        pool = self.pool_deploy
        if pool is not None:
            if not await self._until_done_or_killed(attempt, pool):
                return self._killed_outcome(None)
            problem = pool.result() if not pool.cancelled() else ""
            if problem:
                message = f"the pool's application packages could not be deployed on this node: {problem}"
                return Outcome(None, failure(USER_ERROR, PACKAGE_ERROR, message))
        wanted = attempt.assignment.packages
        if not wanted:
            return {}
        if self.packages is None:
            return Outcome(None, failure(USER_ERROR, PACKAGE_ERROR, "the agent cannot fetch packages yet"))
        work = asyncio.ensure_future(self.packages.ensure_all(list(wanted)))
        if not await self._until_done_or_killed(attempt, work):
            work.add_done_callback(lambda f: f.cancelled() or f.exception())  # (its end is nobody's now)
            return self._killed_outcome(None)
        try:
            return work.result()
        except PackageError as e:
            return Outcome(None, failure(USER_ERROR, PACKAGE_ERROR, str(e)))

    def _environment(self, attempt: Attempt, task_dir: Path, wd: Path, shared_dir: Path) -> dict[str, str]:
        a = attempt.assignment
        ref = a.attempt
        node_id, pool_id = self._identity()
        env = envvars.task_env(
            self._source_env,
            a.environment_settings,
            layout=self._layout,
            node_id=node_id,
            pool_id=a.pool_id or pool_id,
            job_id=ref.job_id,
            task_id=ref.task_id,
            attempt=ref.attempt,
            task_dir=task_dir,
            working_dir=wd,
        )
        prep = a.job_preparation if a.HasField("job_preparation") else None
        env.update(self.job_tasks.prep_env(ref.job_id, prep))
        run_as = attempt.run_as
        if run_as is not None:
            envvars.set_user(env, run_as, task_dir)
        mi = attempt.multi_instance
        if mi is not None:
            as_root = os.geteuid() == 0 if run_as is None else run_as.is_root
            env.update(
                envvars.multi_instance_env(mi, shared_dir, env.get("PATH", ""), self.launcher_dir, as_root=as_root)
            )
        # Last: a task's own settings cannot replace them.
        attempt.exec_secret = (mi.exec_secret if mi is not None else "") or secrets.token_hex(32)
        env.update(envvars.exec_env(attempt.exec_secret, self.agent_ca_file))
        return env

    async def _stage(
        self, attempt: Attempt, files: Sequence[common_pb2.ResourceFile], into: Path, root: Path
    ) -> Outcome | None:
        """Stage resource files into `into`, below node root `root`; an Outcome when that ended the attempt."""
        if attempt.killed:
            return self._killed_outcome(None)
        if not files:
            return None
        attempt.stage = asyncio.ensure_future(
            stage_resource_files(files, into, self._storage(), root=root, owner=attempt.owner)
        )
        try:
            await attempt.stage
        except asyncio.CancelledError:
            if attempt.killed:
                return self._killed_outcome(None)
            raise
        except StagingError as e:
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        except OSError as e:
            return Outcome(None, failure(USER_ERROR, "ResourceFileWriteFailed", str(e)))
        finally:
            attempt.stage = None
        if attempt.killed:
            return self._killed_outcome(None)
        return None

    def _remaining(self, attempt: Attempt) -> float:
        """Seconds left on the attempt's wall clock; 0 when unlimited."""
        limit = attempt.assignment.max_wall_clock_seconds
        if limit <= 0:
            return 0.0
        if attempt.assignment.multi_instance.instance_index > 0:
            # The primary enforces a multi-instance task's limit and its end ends the others. A
            # subtask that timed itself out first would take down the MPI proxies it hosts, and the
            # application would fail of that (a failed exit) before the primary saw its limit.
            limit += SUBTASK_WALL_CLOCK_MARGIN
        if attempt.first_process_at is None:
            attempt.first_process_at = self._clock.monotonic()
        return max(1e-6, limit - (self._clock.monotonic() - attempt.first_process_at))

    async def _wait_for(self, attempt: Attempt, event: asyncio.Event) -> bool:
        """Wait for `event` (or a kill); False when the wall clock ran out first."""
        remaining = self._remaining(attempt)
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(attempt.kill_requested.wait())}
        timer = asyncio.ensure_future(self._clock.sleep(remaining)) if remaining > 0 else None
        try:
            done, _ = await asyncio.wait(waits | ({timer} if timer else set()), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in waits:
                f.cancel()
            if timer is not None:
                timer.cancel()
        return not (timer is not None and timer in done and not event.is_set() and not attempt.killed)

    async def _run_command(
        self, attempt: Attempt, command_line: str, *, kill_leftovers: bool
    ) -> process.ProcessResult | Outcome:
        """Run one command of the attempt in its working directory; an Outcome when it did not run or was killed."""
        if attempt.killed:
            return self._killed_outcome(None)
        assert attempt.task_dir is not None and attempt.env is not None and attempt.wd is not None
        task_dir = attempt.task_dir
        container: PreparedContainer | None = None
        if attempt.assignment.HasField("container"):
            made = await self._make_container(attempt, command_line)
            if isinstance(made, Outcome):
                return made
            container = made
        remaining = self._remaining(attempt)
        started = time.monotonic()
        try:
            proc = process.spawn(
                command_line,
                cwd=attempt.wd,
                env=container.env if container is not None else attempt.env,
                stdout=task_dir / taskdirs.OUTPUT_FILES[0],
                stderr=task_dir / taskdirs.OUTPUT_FILES[1],
                append=True,
                user=attempt.owner if container is None else None,
                argv=container.argv if container is not None else None,
                owner=attempt.owner,
            )
        except process.LaunchError as e:
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        attempt.outputs_made = True
        attempt.proc = proc
        key = attempt_key(*attempt.key)
        self._running_file.add(key, proc.pid)
        try:
            result = await process.wait_with_limit(
                proc,
                clock=self._clock,
                max_wall_clock_seconds=remaining,
                grace_seconds=self._config.kill_grace_seconds,
                kill_leftovers=kill_leftovers,
                started=started,
            )
        finally:
            self._running_file.remove(key)
            attempt.proc = None
        attempt.measured(result.usage)
        if container is not None and self.containers is not None and attempt.instance_container is None:
            try:
                attempt.container_info = await self.containers.finish(
                    container.name,
                    result.returncode,
                    task_dir / taskdirs.OUTPUT_FILES[1],
                    ended=attempt.killed or result.timed_out,
                )
            except ContainerError as e:
                attempt.container_info = common_pb2.TaskContainerExecutionInfo(
                    container_id=container.name, state="created", error=e.message
                )
                if not attempt.killed:
                    return Outcome(None, failure(USER_ERROR, e.code, e.message))
        if attempt.killed:
            if not kill_leftovers:
                process.kill_group_now(result.pgid)
            return self._killed_outcome(result.exit_code)
        return result

    async def _make_container(self, attempt: Attempt, command_line: str) -> PreparedContainer | Outcome:
        """The process that runs one command of a container attempt (its image pulled if need be): `podman
        start` of the command's container, or for a multi-instance attempt `podman exec` in the instance's
        container (started with its first command); else the outcome that ends the attempt: Batch's
        container failure codes, or killed meanwhile."""
        a = attempt.assignment
        assert attempt.env is not None and attempt.wd is not None
        containers = self.containers
        if containers is None:
            return Outcome(None, failure(USER_ERROR, "ContainerMiscError", "this agent runs no container tasks"))
        try:
            command = process.split_command(command_line)
        except process.LaunchError as e:
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        if attempt.instance_container is not None:
            # (A later command of an instance: Exec'd into the container its first command started.)
            argv, env = containers.exec_command(
                attempt.instance_container, command, extra={}, working_dir=attempt.wd, user=attempt.owner
            )
            return PreparedContainer(attempt.instance_container, argv, env)
        mi = attempt.multi_instance
        ref = a.attempt
        assert attempt.task_dir is not None
        prep = a.job_preparation if a.HasField("job_preparation") else None
        writable = [attempt.task_dir, self.job_tasks.prep_dir(ref.job_id, prep)]
        readable = [Path(self._layout.access.ca_file)] if self._layout.access.ca_file else []
        if mi is not None:
            # (The shared directory, and what `shoal-mpi-launch` needs: itself, the CA of the agents' TLS.)
            shared = Path(mi.task_shared_dir) if mi.task_shared_dir else None
            if shared is not None and not await self._appears(attempt, shared):
                return self._killed_outcome(None)
            writable.append(shared)
            readable += [p for p in (self.launcher_dir, self.agent_ca_file) if p is not None]
        mounts = containers.mounts([p for p in writable if p is not None], readable)
        variables = container_variables(
            attempt.env, self._source_env, [e.name for e in a.environment_settings], instance=mi is not None
        )
        name = container_name(containers.root, ref.job_id, ref.task_id, ref.attempt)
        work = asyncio.ensure_future(
            containers.prepare(
                a.container,
                name=name,
                job_id=ref.job_id,
                task_id=ref.task_id,
                command=command,
                variables=variables,
                working_dir=attempt.wd,
                user=attempt.owner,
                mounts=mounts,
                instance=mi is not None,
            )
        )
        if not await self._until_done_or_killed(attempt, work):

            def orphaned(f: asyncio.Future[PreparedContainer]) -> None:
                # (Its end is nobody's now: a container it still makes goes at once.)
                if not f.cancelled() and f.exception() is None:
                    containers.discard(name)

            work.add_done_callback(orphaned)
            return self._killed_outcome(None)
        try:
            made = work.result()
        except ContainerError as e:
            attempt.container_info = common_pb2.TaskContainerExecutionInfo(error=e.message)
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        if mi is not None:
            attempt.instance_container = name
            attempt.container_info = common_pb2.TaskContainerExecutionInfo(container_id=name, state="running")
        return made

    async def _appears(self, attempt: Attempt, path: Path, within: float = SHARED_DIR_WAIT) -> bool:
        """Wait (bounded) until `path` exists: a subtask's container mounts its task's shared directory, which
        the primary makes when it starts, maybe a moment after the subtask. False when killed meanwhile."""
        deadline = time.monotonic() + within
        while not path.exists() and time.monotonic() < deadline:
            if attempt.killed:
                return False
            await asyncio.sleep(0.02)
        return not attempt.killed

    @staticmethod
    def _killed_outcome(exit_code: int | None) -> Outcome:
        """An attempt killed at the server's request: `TERMINATED_EXIT_CODE` if a process of it had exited
        (`exit_code`, whichever signal ended it), no exit code if none had started."""
        return ended(exit_code, "the task was killed at the server's request")

    def _complete(self, attempt: Attempt, outcome: Outcome) -> None:
        a = attempt.assignment
        now = self._clock.now()
        task_dir = attempt.task_dir
        if task_dir is not None and task_dir.is_dir():
            if attempt.delete_files:
                shutil.rmtree(task_dir, ignore_errors=True)
                retention.remove_if_empty(task_dir.parent.parent)
                self.retention.forget([(a.attempt.job_id, a.attempt.task_id)])
            else:
                if not attempt.outputs_made:
                    # Ended before its command started (staging failed, killed while waiting): the
                    # files are there all the same, empty, for whoever reads them.
                    taskdirs.touch_outputs(task_dir)
                seconds = a.retention_seconds if a.retention_seconds > 0 else self._config.default_retention_seconds
                with contextlib.suppress(OverflowError):
                    when = self.retention.record(a.attempt.job_id, a.attempt.task_id, now + timedelta(seconds=seconds))
                    if when < self._sweep_at:
                        self._sweep_wake.set()  # sooner than the sweeper means to wake
        event = agent_pb2.TaskEvent(
            attempt=a.attempt,
            kind=COMPLETED,
            time=timestamp(now),
            start_time=timestamp(attempt.start_time),
            task_root_directory=str(task_dir or ""),
            result=SUCCESS if outcome.succeeded else FAILURE,
        )
        if outcome.exit_code is not None:
            event.exit_code = outcome.exit_code
        if outcome.failure_info is not None:
            event.failure_info.CopyFrom(outcome.failure_info)
        if attempt.container_info is not None:
            event.container_info.CopyFrom(attempt.container_info)
        tracked = self.sampler.untrack(attempt.key) if attempt.tracked is not None else None
        if attempt.usage is not None:
            if tracked is not None:
                attempt.usage.peak_memory_bytes = max(attempt.usage.peak_memory_bytes, tracked.peak)
            event.stats.CopyFrom(attempt.usage.to_proto())
        self._attempts.pop(attempt.key, None)
        if attempt.run_as is not None and attempt.run_as.per_task and self._users is not None:
            self._users.release(attempt_key(*attempt.key), None if attempt.delete_files else task_dir)
        if attempt.task is not None:
            self._busy -= self._slots_of(attempt)
        self._finished[attempt.key] = None
        if len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        jt = (a.attempt.job_id, a.attempt.task_id)
        if self._current.get(jt) is attempt:
            del self._current[jt]
        attempt.done.set()
        # A success is in the task's record; a line per attempt costs a busy node several percent of its CPU.
        log.log(
            logging.INFO if outcome.failure_info else logging.DEBUG,
            "attempt %s completed: exit %s %s",
            attempt.key,
            outcome.exit_code,
            outcome.failure_info.code if outcome.failure_info else "ok",
        )
        self._emit(event)
        self._launch_waiting()
