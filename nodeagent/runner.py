"""Running task attempts: directory, staging, process, wall clock, outputs, events."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock
from shoal.nodeagent import envvars, process, retention
from shoal.nodeagent.config import AgentConfig
from shoal.nodeagent.layout import NodeLayout, working_dir
from shoal.nodeagent.outputs import upload_outputs
from shoal.nodeagent.staging import StagingError, stage_resource_files
from shoal.nodeagent.state import RunningFile, attempt_key
from shoal.nodeagent.storage import StorageClient
from shoal.paths import UnsafePathError
from shoal.v1 import common_pb2

log = logging.getLogger(__name__)

USER_ERROR = common_pb2.ERROR_CATEGORY_USER_ERROR
SERVER_ERROR = common_pb2.ERROR_CATEGORY_SERVER_ERROR
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILURE = common_pb2.TASK_EXECUTION_RESULT_FAILURE
RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING
COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED

AttemptKey = tuple[str, str, int]
FINISHED_MEMORY = 10000


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def failure(category: int, code: str, message: str = "") -> common_pb2.FailureInfo:
    """A FailureInfo."""
    return common_pb2.FailureInfo(category=category, code=code, message=message)  # type: ignore[arg-type]


@dataclass
class Outcome:
    """How an attempt ended."""

    exit_code: int | None = None
    failure_info: common_pb2.FailureInfo | None = None

    @property
    def succeeded(self) -> bool:
        """No failure and exit code 0."""
        return self.failure_info is None and self.exit_code == 0


def outcome_of(result: process.ProcessResult) -> Outcome:
    """The outcome of a process that ran to its end (or was killed past its wall clock)."""
    code = result.exit_code
    if result.timed_out:
        return Outcome(code, failure(SERVER_ERROR, "TaskEnded", "the task exceeded its maximum wall clock time"))
    if code != 0:
        return Outcome(code, failure(USER_ERROR, "FailureExitCode", f"the task exited with exit code {code}"))
    return Outcome(code)


@dataclass
class Attempt:
    """One attempt on this node, from StartTasks to its COMPLETED event."""

    assignment: agent_pb2.TaskAssignment
    start_time: datetime
    task_dir: Path | None
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False
    delete_files: bool = False
    stage: asyncio.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> AttemptKey:
        """(job, task, attempt)."""
        a = self.assignment.attempt
        return (a.job_id, a.task_id, a.attempt)


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
    ) -> None:
        self._config = config
        self._layout = layout
        self._clock = clock
        self._emit = emit
        self._storage = storage
        self._identity = node_identity
        self._running_file = running_file
        self._source_env = dict(os.environ) if source_env is None else source_env
        self._attempts: dict[AttemptKey, Attempt] = {}
        #: (job, task) → its newest attempt on this node.
        self._current: dict[tuple[str, str], Attempt] = {}
        #: Recently completed attempts: a repeated StartTasks for one of them is not run again.
        self._finished: collections.OrderedDict[AttemptKey, None] = collections.OrderedDict()

    # ---- queries -------------------------------------------------------------------------------

    def active_attempts(self) -> list[agent_pb2.AttemptRef]:
        """Attempts that have not reported COMPLETED yet."""
        return [agent_pb2.AttemptRef(job_id=j, task_id=t, attempt=n) for (j, t, n) in self._attempts]

    def running_slots(self) -> int:
        """Task slots taken by active attempts."""
        return sum(max(1, a.assignment.required_slots) for a in self._attempts.values())

    def is_task_active(self, job_id: str, task_id: str) -> bool:
        """True while the task's current attempt on this node has not completed."""
        cur = self._current.get((job_id, task_id))
        return cur is not None and not cur.done.is_set()

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
        self._emit(
            agent_pb2.TaskEvent(
                attempt=ref,
                kind=RUNNING,
                time=timestamp(attempt.start_time),
                start_time=timestamp(attempt.start_time),
                task_root_directory=str(task_dir or ""),
            )
        )
        attempt.task = asyncio.create_task(self._run(attempt, previous), name=f"attempt {key}")

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
        if attempt.stage is not None and not attempt.stage.done():
            attempt.stage.cancel()
        if attempt.proc is not None and attempt.proc.returncode is None:
            await process.kill_group(attempt.proc.pid, self._config.kill_grace_seconds)
        await attempt.done.wait()

    async def delete_task_files(self, job_id: str, task_ids: Iterable[str]) -> None:
        """Remove task directories of tasks not running (all of `workitems/<job>` when `task_ids` is empty)."""
        ids = list(task_ids)
        try:
            job_dir = self._layout.job_dir(job_id)
            if not ids:
                if not any(j == job_id for (j, _t) in self._current):
                    await asyncio.to_thread(shutil.rmtree, job_dir, ignore_errors=True)
                    return
                jobs1 = job_dir / "job-1"
                ids = [p.name for p in jobs1.iterdir()] if jobs1.is_dir() else []
            for task_id in ids:
                if self.is_task_active(job_id, task_id):
                    log.info("not deleting %s/%s: it is running", job_id, task_id)
                    continue
                await asyncio.to_thread(shutil.rmtree, self._layout.task_dir(job_id, task_id), ignore_errors=True)
            retention.remove_if_empty(job_dir)
        except UnsafePathError as e:
            log.warning("DeleteTaskFiles: %s", e)

    async def kill_all(self) -> None:
        """Kill every task process group at once (shutdown)."""
        for attempt in list(self._attempts.values()):
            attempt.killed = True
            if attempt.stage is not None and not attempt.stage.done():
                attempt.stage.cancel()
            if attempt.proc is not None and attempt.proc.returncode is None:
                process.kill_group_now(attempt.proc.pid)
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def sweep(self) -> list[Path]:
        """Delete expired task directories."""
        return retention.sweep(self._layout.workitems, self._clock.now(), self.is_task_active)

    # ---- one attempt -------------------------------------------------------------------------------

    async def _run(self, attempt: Attempt, previous: Attempt | None) -> None:
        outcome = Outcome()
        try:
            if previous is not None and not previous.done.is_set():
                log.info("killing the older attempt %s of the same task", previous.key)
                await self._kill_attempt(previous)
            outcome = await self._execute(attempt)
        except Exception as e:
            log.exception("attempt %s failed inside the agent", attempt.key)
            outcome = Outcome(outcome.exit_code, failure(SERVER_ERROR, "Unknown", f"agent error: {e}"))
        finally:
            self._complete(attempt, outcome)

    async def _execute(self, attempt: Attempt) -> Outcome:
        a = attempt.assignment
        ref = a.attempt
        task_dir = attempt.task_dir
        if task_dir is None:
            return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", "unsafe job or task id"))
        wd = working_dir(task_dir)
        try:
            await asyncio.to_thread(_fresh_task_dir, task_dir)
        except OSError as e:
            return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", str(e)))
        if attempt.killed:
            return self._killed_outcome(None)

        # Resource files.
        if a.resource_files:
            attempt.stage = asyncio.ensure_future(stage_resource_files(a.resource_files, wd, self._storage()))
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
        if attempt.killed:
            return self._killed_outcome(None)

        # The process.
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
        try:
            proc = process.spawn(
                a.command_line, cwd=wd, env=env, stdout=task_dir / "stdout.txt", stderr=task_dir / "stderr.txt"
            )
        except process.LaunchError as e:
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        attempt.proc = proc
        key = attempt_key(*attempt.key)
        self._running_file.add(key, proc.pid)
        try:
            result = await process.wait_with_limit(
                proc,
                clock=self._clock,
                max_wall_clock_seconds=a.max_wall_clock_seconds,
                grace_seconds=self._config.kill_grace_seconds,
            )
        finally:
            self._running_file.remove(key)
        if attempt.killed:
            return self._killed_outcome(result.exit_code)
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
            )
            if err is not None:
                outcome = Outcome(outcome.exit_code, failure(USER_ERROR, "FileUploadMiscError", err))
        return outcome

    @staticmethod
    def _killed_outcome(exit_code: int | None) -> Outcome:
        return Outcome(exit_code, failure(SERVER_ERROR, "TaskEnded", "the task was killed at the server's request"))

    def _complete(self, attempt: Attempt, outcome: Outcome) -> None:
        a = attempt.assignment
        now = self._clock.now()
        task_dir = attempt.task_dir
        if task_dir is not None and task_dir.is_dir():
            if attempt.delete_files:
                shutil.rmtree(task_dir, ignore_errors=True)
                retention.remove_if_empty(task_dir.parent.parent)
            else:
                seconds = a.retention_seconds if a.retention_seconds > 0 else self._config.default_retention_seconds
                with contextlib.suppress(OSError, OverflowError):
                    retention.write_deadline(task_dir, now + timedelta(seconds=seconds))
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
        self._attempts.pop(attempt.key, None)
        self._finished[attempt.key] = None
        if len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        jt = (a.attempt.job_id, a.attempt.task_id)
        if self._current.get(jt) is attempt:
            del self._current[jt]
        attempt.done.set()
        log.info(
            "attempt %s completed: exit %s %s",
            attempt.key,
            outcome.exit_code,
            outcome.failure_info.code if outcome.failure_info else "ok",
        )
        self._emit(event)


def _fresh_task_dir(task_dir: Path) -> None:
    if task_dir.exists():
        shutil.rmtree(task_dir)
    working_dir(task_dir).mkdir(parents=True)
    for name in ("stdout.txt", "stderr.txt"):
        (task_dir / name).touch()
