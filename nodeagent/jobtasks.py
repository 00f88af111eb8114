"""A job's preparation and release tasks on this node: each run once per job, its end kept under the node root.

The preparation task runs before the first attempt of its job that comes with
it (`TaskAssignment.job_preparation`), in `workitems/<job>/job-1/<its id>`
(`jobpreparation` by default); attempts that arrive while it runs wait for the
same run. Its end, success or failure for good, is written to the journal
`volatile/jobtasks.jsonl` before it is reported, so neither a reconnect nor an
agent restart runs it again: an attempt then starts at once (or, after a
failure with `wait_for_success`, ends with `JobPreparationFailed`), and
Register lists the jobs prepared here.

The release task runs when the server asks (`RunJobRelease`), beside the
node's task slots, in `workitems/<job>/job-1/<its id>` (`jobrelease`), killed
at its wall clock (15 minutes unless it says otherwise). Its end is recorded
too: asked again (a server restart), the agent reports the recorded end.

Both report TaskEvents with `job_task` set through the agent's outbox, as
tasks do, so an unacknowledged report goes again at the next Register. Their
processes carry the node root in their environment and their process groups
are in `volatile/running.json` (under `<job>/preparation`, `<job>/release`),
so the watchdog ends them with the agent, as it ends tasks. Their directories
and records go with the job (DeleteTaskFiles of the whole job).

Each runs as the user its identity names (see `shoal.nodeagent.users`; a task-scope auto user means
the pool's: the job's tasks read the preparation's directory, which is readable by every user, mode
0755, as Batch's AZ_BATCH_JOB_PREP_DIR is; the release's is its user's alone).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from google.protobuf import json_format

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock, to_timestamp
from shoal.nodeagent import certificates, envvars, process, safeopen, taskdirs
from shoal.nodeagent.config import AgentConfig
from shoal.nodeagent.containers import ContainerError
from shoal.nodeagent.containertasks import NodeContainers, PreparedContainer, runs_in_container, spawn_in_container
from shoal.nodeagent.journal import Journal
from shoal.nodeagent.layout import NodeLayout, working_dir
from shoal.nodeagent.outcome import FAILURE, SERVER_ERROR, SUCCESS, USER_ERROR, Outcome, ended, failure, outcome_of
from shoal.nodeagent.staging import StagingError, stage_resource_files
from shoal.nodeagent.state import RunningFile
from shoal.nodeagent.storage import StorageClient
from shoal.nodeagent.users import IdentityError, NodeUsers, RunAs
from shoal.paths import UnsafePathError

log = logging.getLogger(__name__)

PREPARATION = agent_pb2.JOB_TASK_KIND_PREPARATION
RELEASE = agent_pb2.JOB_TASK_KIND_RELEASE
#: The directory (and task id) of each when the job names none, as in Batch.
DEFAULT_IDS = {PREPARATION: "jobpreparation", RELEASE: "jobrelease"}
_KIND_NAMES = {PREPARATION: "preparation", RELEASE: "release"}
_KINDS = {name: kind for kind, name in _KIND_NAMES.items()}
#: A release task's wall clock when the server sends none (Batch's default and maximum).
RELEASE_DEFAULT_WALL_CLOCK_SECONDS = 15 * 60.0
JOB_PREPARATION_FAILED = "JobPreparationFailed"


def process_key(job_id: str, kind: agent_pb2.JobTaskKind) -> str:
    """The key of a job's preparation or release process group in running.json."""
    return f"{job_id}/{_KIND_NAMES[kind]}"


def is_process_key(key: str) -> bool:
    """Whether a running.json key is a preparation or release task's (not a task attempt's)."""
    job_id, sep, name = key.partition("/")
    return bool(job_id and sep) and name in _KINDS


def job_preparation_failed() -> Outcome:
    """The outcome of an attempt not run because its job's preparation task failed on this node."""
    return Outcome(None, failure(USER_ERROR, JOB_PREPARATION_FAILED, "the job preparation task failed on this node"))


class JobTaskRecords:
    """`volatile/jobtasks.jsonl`: the COMPLETED event of each job's preparation and release task here.

    A journal (see `shoal.nodeagent.journal`): `{"j": job, "k": "preparation"|"release", "e": event}`
    records an end (the later line wins), `{"j": job}` that the job's records are gone (job deleted).
    """

    def __init__(self, path: Path, *, compact_after: int = 1000) -> None:
        self.path = path
        self._ends: dict[tuple[str, agent_pb2.JobTaskKind], agent_pb2.TaskEvent] = {}
        self._journal = Journal(path, compact_after=compact_after)
        self._load()

    def _load(self) -> None:
        for rec in self._journal.read():
            if not isinstance(rec, dict) or not isinstance(rec.get("j"), str):
                continue
            job_id = rec["j"]
            if "k" not in rec:
                self._drop(job_id)
                continue
            kind = _KINDS.get(str(rec["k"]))
            if kind is None or not isinstance(rec.get("e"), dict):
                continue
            try:
                event = json_format.ParseDict(rec["e"], agent_pb2.TaskEvent(), ignore_unknown_fields=True)
            except json_format.ParseError:
                continue
            self._ends[(job_id, kind)] = event

    def _drop(self, job_id: str) -> bool:
        found = False
        for kind in _KIND_NAMES:
            found = self._ends.pop((job_id, kind), None) is not None or found
        return found

    @staticmethod
    def _line(job_id: str, kind: agent_pb2.JobTaskKind, event: agent_pb2.TaskEvent) -> dict[str, object]:
        return {"j": job_id, "k": _KIND_NAMES[kind], "e": json_format.MessageToDict(event)}

    def _live(self) -> list[object]:
        return [self._line(j, k, e) for (j, k), e in self._ends.items()]

    def get(self, job_id: str, kind: agent_pb2.JobTaskKind) -> agent_pb2.TaskEvent | None:
        """The recorded end of the job's preparation or release task here, if any."""
        return self._ends.get((job_id, kind))

    def put(self, job_id: str, kind: agent_pb2.JobTaskKind, event: agent_pb2.TaskEvent) -> None:
        """Record an end (a copy of `event`, without its event id)."""
        kept = agent_pb2.TaskEvent()
        kept.CopyFrom(event)
        kept.ClearField("event_id")
        self._ends[(job_id, kind)] = kept
        self._journal.append(self._line(job_id, kind, kept), self._live, len(self._ends))

    def forget(self, job_id: str) -> None:
        """Drop the job's records (its directories are gone)."""
        if self._drop(job_id):
            self._journal.append({"j": job_id}, self._live, len(self._ends))

    def forget_preparations(self, keep: set[str]) -> None:
        """Drop the successful preparations recorded for jobs not in `keep` (a reboot: they run again; a
        failed one stays, as its tasks stay away from the node until a reimage)."""
        drop = [j for (j, k), e in self._ends.items() if k == PREPARATION and e.result == SUCCESS and j not in keep]
        for job_id in drop:
            del self._ends[(job_id, PREPARATION)]
        if drop:
            self._journal.rewrite(self._live())

    def jobs(self, kind: agent_pb2.JobTaskKind, *, succeeded: bool = False) -> list[str]:
        """Jobs with a recorded end of this kind (only successful ones with `succeeded`)."""
        return sorted(j for (j, k), e in self._ends.items() if k == kind and (not succeeded or e.result == SUCCESS))

    def close(self) -> None:
        """Close the journal's file descriptor."""
        self._journal.close()


@dataclass(eq=False)
class _Run:
    """One run of a job's preparation or release task, up to its COMPLETED event."""

    spec: agent_pb2.JobTaskSpec
    kind: agent_pb2.JobTaskKind
    #: Its directory's name and its task id in events.
    name: str
    task_dir: Path | None
    start_time: datetime
    #: Resolved when the run ends: whether the job's attempts may run (it succeeded).
    gate: asyncio.Future[bool]
    proc: subprocess.Popen[bytes] | None = None
    stage: asyncio.Future[None] | None = None
    #: Why it is being stopped ('' while it is not).
    stopping: str = ""
    #: Whether a stopped run's end is still recorded and reported (the job ended), or forgotten (the
    #: agent is stopping: a later agent runs it again; the job was deleted: its records go too).
    keep_stopped_end: bool = False
    task: asyncio.Task[None] | None = None
    #: The user it runs as (None: the agent's own), once known.
    run_as: RunAs | None = None

    @property
    def owner(self) -> tuple[int, int] | None:
        """The uid and gid of its processes and files, when not the agent's."""
        return (self.run_as.uid, self.run_as.gid) if self.run_as is not None else None

    @property
    def ref(self) -> agent_pb2.AttemptRef:
        """How its events name it."""
        return agent_pb2.AttemptRef(job_id=self.spec.job_id, task_id=self.name, attempt=1)


class JobTasks:
    """Runs the preparation and release tasks of jobs on this node and reports them through `emit`."""

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
        source_env: dict[str, str],
        retain: Callable[[str, str, float], None] | None = None,
        users: NodeUsers | None = None,
    ) -> None:
        self._config = config
        self._users = users
        #: The node's container engine (set by the agent): preparation and release tasks may run in containers.
        self.containers: NodeContainers | None = None
        self._layout = layout
        self._clock = clock
        self._emit = emit
        self._storage = storage
        self._identity = node_identity
        self._running_file = running_file
        self._source_env = source_env
        #: Keeps a directory (job id, task id: its name) for that many seconds, then lets it go (the
        #: retention journal of the task runner): a release task's directory, its `retention_seconds`.
        self._retain = retain
        self.records = JobTaskRecords(layout.job_tasks_file)
        self._runs: dict[tuple[str, agent_pb2.JobTaskKind], _Run] = {}
        #: Jobs whose recorded preparation end this agent process reported (a failure recorded by an
        #: earlier process is reported again once: the server may not have committed it).
        self._reported: set[str] = set()

    # ---- queries -------------------------------------------------------------------------------

    def prepared_jobs(self) -> list[str]:
        """Jobs whose preparation task succeeded on this node (for Register)."""
        return self.records.jobs(PREPARATION, succeeded=True)

    def released_jobs(self) -> list[str]:
        """Jobs whose release task ran to its end on this node (for Register)."""
        return self.records.jobs(RELEASE)

    def is_running(self, job_id: str, name: str) -> bool:
        """Whether directory `workitems/<job>/job-1/<name>` belongs to a preparation or release run under way."""
        return any(j == job_id and run.name == name for (j, _k), run in self._runs.items())

    def prep_env(self, job_id: str, spec: agent_pb2.JobTaskSpec | None) -> dict[str, str]:
        """`SHOAL_JOB_PREP_DIR` and the rest for an attempt of the job: from its assignment's `spec`, else
        from the preparation run here, if any."""
        prep_dir = self._prep_dir(job_id, spec)
        return envvars.job_prep_vars(prep_dir) if prep_dir is not None else {}

    def prep_dir(self, job_id: str, spec: agent_pb2.JobTaskSpec | None) -> Path | None:
        """The directory of the job's preparation task on this node (None: it has none)."""
        return self._prep_dir(job_id, spec)

    def _prep_dir(self, job_id: str, spec: agent_pb2.JobTaskSpec | None) -> Path | None:
        if spec is not None:
            return self._task_dir(job_id, spec.id or DEFAULT_IDS[PREPARATION])
        run = self._runs.get((job_id, PREPARATION))
        if run is not None:
            return run.task_dir
        rec = self.records.get(job_id, PREPARATION)
        return Path(rec.task_root_directory) if rec is not None and rec.task_root_directory else None

    def _task_dir(self, job_id: str, name: str) -> Path | None:
        try:
            return self._layout.task_dir(job_id, name)
        except UnsafePathError:
            return None

    # ---- commands ------------------------------------------------------------------------------

    def preparation(self, spec: agent_pb2.JobTaskSpec) -> asyncio.Future[bool]:
        """Make sure the job's preparation task runs here once; the future says when an attempt of the job
        may start (True) or must end with `JobPreparationFailed` (False).

        Without `wait_for_success` the attempt starts at once, the preparation running beside it if it
        has not run yet.
        """
        job_id = spec.job_id
        rec = self.records.get(job_id, PREPARATION)
        if rec is not None:
            succeeded = rec.result == SUCCESS
            if not succeeded and job_id not in self._reported:
                self._reported.add(job_id)
                self._emit(_copy(rec))
            return _resolved(succeeded or not spec.wait_for_success)
        run = self._runs.get((job_id, PREPARATION)) or self._start(spec, PREPARATION)
        if not spec.wait_for_success:
            return _resolved(True)
        return run.gate

    def run_release(self, spec: agent_pb2.JobTaskSpec) -> None:
        """Run the job's release task here (the job ended), once: if it already ran, report its recorded
        end again; if it runs now, its end is reported when it comes. A preparation task still running is
        stopped first (its end reported as TaskEnded)."""
        job_id = spec.job_id
        rec = self.records.get(job_id, RELEASE)
        if rec is not None:
            self._emit(_copy(rec))
            return
        if (job_id, RELEASE) in self._runs:
            return
        prep = self._runs.get((job_id, PREPARATION))
        if prep is not None:
            self._mark_stopping(prep, "the job ended before its preparation task did", keep_end=True)
        self._start(spec, RELEASE, after=prep)

    async def end_job(self, job_id: str) -> None:
        """The job was deleted: stop its preparation task, let a release under way finish, forget both."""
        runs = [run for (j, _k), run in self._runs.items() if j == job_id]
        for run in runs:
            if run.kind == PREPARATION:
                self._mark_stopping(run, "the job was deleted", keep_end=False)
                await self._kill(run)
        tasks = {run.task for run in runs if run.task is not None}
        if tasks:
            await asyncio.wait(tasks)
        self.records.forget(job_id)
        self._reported.discard(job_id)

    async def kill_all(self) -> None:
        """The agent stops: kill every run at once; their ends are neither recorded nor reported."""
        for run in list(self._runs.values()):
            self._mark_stopping(run, "the node agent stopped", keep_end=False)
            if run.proc is not None and run.proc.returncode is None:
                process.kill_group_now(run.proc.pid)
        tasks = {run.task for run in self._runs.values() if run.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def close(self) -> None:
        """Close the records' journal."""
        self.records.close()

    # ---- one run -------------------------------------------------------------------------------

    def _start(self, spec: agent_pb2.JobTaskSpec, kind: agent_pb2.JobTaskKind, *, after: _Run | None = None) -> _Run:
        name = spec.id or DEFAULT_IDS[kind]
        run = _Run(
            spec=spec,
            kind=kind,
            name=name,
            task_dir=self._task_dir(spec.job_id, name),
            start_time=self._clock.now(),
            gate=asyncio.get_running_loop().create_future(),
        )
        self._runs[(spec.job_id, kind)] = run
        run.task = asyncio.create_task(self._run(run, after), name=f"{_KIND_NAMES[kind]} of job {spec.job_id}")
        return run

    def _mark_stopping(self, run: _Run, reason: str, *, keep_end: bool) -> None:
        if run.stopping:
            return
        run.stopping = reason
        run.keep_stopped_end = keep_end
        if run.stage is not None and not run.stage.done():
            run.stage.cancel()

    async def _kill(self, run: _Run) -> None:
        if run.proc is not None and run.proc.returncode is None:
            await process.kill_group(run.proc.pid, self._config.kill_grace_seconds)

    def _event(self, run: _Run, kind: agent_pb2.TaskEventKind) -> agent_pb2.TaskEvent:
        return agent_pb2.TaskEvent(
            attempt=run.ref,
            kind=kind,
            job_task=run.kind,
            time=to_timestamp(self._clock.now()),
            start_time=to_timestamp(run.start_time),
            task_root_directory=str(run.task_dir or ""),
        )

    async def _run(self, run: _Run, after: _Run | None) -> None:
        outcome, retries = Outcome(), 0
        try:
            if after is not None and after.task is not None:
                # The release follows the end of a preparation it stopped.
                await self._kill(after)
                await asyncio.wait({after.task})
            run.start_time = self._clock.now()
            self._emit(self._event(run, agent_pb2.TASK_EVENT_KIND_RUNNING))
            outcome, retries = await self._execute(run)
        except asyncio.CancelledError:
            self._mark_stopping(run, "cancelled", keep_end=False)
            raise
        except Exception as e:
            log.exception("the %s task of job %s failed inside the agent", _KIND_NAMES[run.kind], run.spec.job_id)
            outcome = Outcome(outcome.exit_code, failure(SERVER_ERROR, "Unknown", f"agent error: {e}"))
        finally:
            self._finish(run, outcome, retries)

    def _finish(self, run: _Run, outcome: Outcome, retries: int) -> None:
        job_id = run.spec.job_id
        if self._runs.get((job_id, run.kind)) is run:
            del self._runs[(job_id, run.kind)]
        keep = not run.stopping or run.keep_stopped_end
        if keep:
            event = self._event(run, agent_pb2.TASK_EVENT_KIND_COMPLETED)
            event.result = SUCCESS if outcome.succeeded else FAILURE
            if outcome.exit_code is not None:
                event.exit_code = outcome.exit_code
            if outcome.failure_info is not None:
                event.failure_info.CopyFrom(outcome.failure_info)
            event.retry_count = retries
            # Recorded before it is reported: a report the server committed is never run again.
            self.records.put(job_id, run.kind, event)
            if run.kind == PREPARATION:
                self._reported.add(job_id)
            elif self._retain is not None and run.spec.retention_seconds > 0:
                self._retain(job_id, run.spec.id or DEFAULT_IDS[RELEASE], run.spec.retention_seconds)
            log.log(
                logging.INFO if outcome.succeeded else logging.WARNING,
                "%s task of job %s ended: exit %s %s",
                _KIND_NAMES[run.kind],
                job_id,
                outcome.exit_code,
                outcome.failure_info.code if outcome.failure_info else "ok",
            )
            self._emit(event)
        if not run.gate.done():
            run.gate.set_result(keep and outcome.succeeded)

    async def _execute(self, run: _Run) -> tuple[Outcome, int]:
        """Directory, resource files, then the command (a preparation retried after nonzero exits);
        the outcome and the retries it took."""
        spec = run.spec
        if run.task_dir is None:
            return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", "unsafe job or task id")), 0
        wd = working_dir(run.task_dir)
        if self._users is not None:
            try:
                run.run_as = await self._users.acquire(
                    spec.user_identity if spec.HasField("user_identity") else None,
                    process_key(spec.job_id, run.kind),
                    shared_dir=True,
                )
            except IdentityError as e:
                category = SERVER_ERROR if e.server_side else USER_ERROR
                return Outcome(None, failure(category, process.CODE_LAUNCH_FAILED, e.message)), 0
        # A release task named as the preparation task shares its directory rather than wiping it.
        fresh = not (run.kind == RELEASE and run.task_dir == self._prep_dir(spec.job_id, None))
        mode = 0o755 if run.kind == PREPARATION else 0o700
        try:
            await asyncio.to_thread(
                _fresh_dir, self._layout.root, run.task_dir, fresh=fresh, owner=run.owner, mode=mode
            )
            certs_dir = None
            if self._layout.certificates.visible(certificates.TASK):
                certs_dir = await asyncio.to_thread(
                    self._layout.certificates.provide, run.task_dir, certificates.TASK, run.owner
                )
        except (OSError, UnsafePathError) as e:
            return Outcome(None, failure(USER_ERROR, "ResourceDirectoryCreateFailed", str(e))), 0
        env = self._environment(run, wd)
        env.update(certificates.certificates_env(certs_dir))
        outcome = await self._stage(run, wd)
        if outcome is not None:
            await asyncio.to_thread(taskdirs.touch_outputs, run.task_dir)
            return outcome, 0
        limit = spec.max_task_retry_count if run.kind == PREPARATION else 0
        wall_clock = spec.max_wall_clock_seconds
        if run.kind == RELEASE and wall_clock <= 0:
            wall_clock = RELEASE_DEFAULT_WALL_CLOCK_SECONDS
        retries = 0
        while True:
            outcome = await self._command(run, env, wd, wall_clock)
            if not outcome.failed_exit or run.stopping or 0 <= limit <= retries:
                return outcome, retries
            retries += 1
            log.info("the preparation task of job %s exited with %s; retry %d", spec.job_id, outcome.exit_code, retries)

    def _environment(self, run: _Run, wd: Path) -> dict[str, str]:
        assert run.task_dir is not None
        node_id, pool_id = self._identity()
        env = envvars.task_env(
            self._source_env,
            run.spec.environment_settings,
            layout=self._layout,
            node_id=node_id,
            pool_id=pool_id,
            job_id=run.spec.job_id,
            task_id=run.name,
            attempt=1,
            task_dir=run.task_dir,
            working_dir=wd,
        )
        prep_dir = run.task_dir if run.kind == PREPARATION else self._prep_dir(run.spec.job_id, None)
        if prep_dir is not None:
            env.update(envvars.job_prep_vars(prep_dir))
        if run.run_as is not None:
            envvars.set_user(env, run.run_as, run.task_dir)
        return env

    async def _stage(self, run: _Run, wd: Path) -> Outcome | None:
        """Stage the resource files into `wd`; an Outcome when that ended the run."""
        if run.stopping:
            return ended(None, run.stopping)
        if not run.spec.resource_files:
            return None
        run.stage = asyncio.ensure_future(
            stage_resource_files(run.spec.resource_files, wd, self._storage(), root=self._layout.root, owner=run.owner)
        )
        try:
            await run.stage
        except asyncio.CancelledError:
            if run.stopping:
                return ended(None, run.stopping)
            raise
        except StagingError as e:
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        except OSError as e:
            return Outcome(None, failure(USER_ERROR, "ResourceFileWriteFailed", str(e)))
        finally:
            run.stage = None
        return ended(None, run.stopping) if run.stopping else None

    async def _command(self, run: _Run, env: dict[str, str], wd: Path, wall_clock: float) -> Outcome:
        """One run of the command line, its output appended to the directory's stdout.txt and stderr.txt."""
        if run.stopping:
            return ended(None, run.stopping)
        assert run.task_dir is not None
        settings = run.spec.container if run.spec.HasField("container") else None
        made: PreparedContainer | None = None
        try:
            if runs_in_container(settings):
                assert settings is not None
                proc, made = await spawn_in_container(
                    self.containers,
                    settings,
                    run.spec.command_line,
                    job_id=run.spec.job_id,
                    task_id=run.name,
                    cwd=wd,
                    env=env,
                    explicit=[e.name for e in run.spec.environment_settings],
                    source_env=self._source_env,
                    stdout=run.task_dir / taskdirs.OUTPUT_FILES[0],
                    stderr=run.task_dir / taskdirs.OUTPUT_FILES[1],
                    append=True,
                    user=run.owner,
                    writable=[p for p in (run.task_dir, self._prep_dir(run.spec.job_id, None)) if p is not None],
                )
            else:
                proc = process.spawn(
                    run.spec.command_line,
                    cwd=wd,
                    env=env,
                    stdout=run.task_dir / taskdirs.OUTPUT_FILES[0],
                    stderr=run.task_dir / taskdirs.OUTPUT_FILES[1],
                    append=True,
                    user=run.owner,
                )
        except (process.LaunchError, ContainerError) as e:
            await asyncio.to_thread(taskdirs.touch_outputs, run.task_dir)
            return Outcome(None, failure(USER_ERROR, e.code, e.message))
        run.proc = proc
        key = process_key(run.spec.job_id, run.kind)
        self._running_file.add(key, proc.pid)
        try:
            result = await process.wait_with_limit(
                proc,
                clock=self._clock,
                max_wall_clock_seconds=wall_clock,
                grace_seconds=self._config.kill_grace_seconds,
                kill_leftovers=True,
            )
        finally:
            self._running_file.remove(key)
            run.proc = None
        if made is not None and self.containers is not None:
            try:
                stderr = run.task_dir / taskdirs.OUTPUT_FILES[1]
                await self.containers.finish(
                    made.name, result.returncode, stderr, ended=bool(run.stopping) or result.timed_out
                )
            except ContainerError as e:
                if not run.stopping:
                    return Outcome(None, failure(USER_ERROR, e.code, e.message))
        if run.stopping:
            return ended(result.exit_code, run.stopping)
        return outcome_of(result)


def _copy(event: agent_pb2.TaskEvent) -> agent_pb2.TaskEvent:
    out = agent_pb2.TaskEvent()
    out.CopyFrom(event)
    out.ClearField("event_id")
    return out


def _resolved(value: bool) -> asyncio.Future[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def _fresh_dir(
    root: Path, task_dir: Path, *, fresh: bool, owner: tuple[int, int] | None = None, mode: int = 0o700
) -> None:
    """Make `task_dir` (below node root `root`) and its wd/, replacing what an earlier run left when `fresh`;
    with `owner` (uid, gid), both are that user's, of mode `mode`.

    Every directory from the root down is opened without following a symlink: a task of the job may have
    put one anywhere below `workitems/<job>`.
    """
    parent_rel, name = safeopen.split_parent(task_dir.relative_to(root).as_posix())
    parent_fd = safeopen.makedirs_beneath(root, parent_rel)
    try:
        if fresh:
            try:
                st = os.lstat(name, dir_fd=parent_fd)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=parent_fd)
                else:
                    os.unlink(name, dir_fd=parent_fd)
        task_fd = safeopen.makedirs_beneath(parent_fd, name)
        try:
            wd_fd = safeopen.makedirs_beneath(task_fd, "wd")
            try:
                if owner is not None:
                    # (Through the descriptors, child first: see `ownership`.)
                    for fd in (wd_fd, task_fd):
                        os.fchown(fd, *owner)
                        os.fchmod(fd, mode)
            finally:
                os.close(wd_fd)
        finally:
            os.close(task_fd)
    finally:
        os.close(parent_fd)
