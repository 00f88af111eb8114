"""The node's side of container pools and tasks: its engine, the pool's images, and each command that runs
in a container (tasks, job manager, start, preparation and release tasks alike).

`NodeContainers` is one per agent. At start it finds the engine (`containers.find_engine`) and ends the
containers an earlier agent of this root left running (their tasks were ended with that agent). Each
Welcome tells it the pool's container configuration: it pulls the images then (tasks and the start task
wait for that), and a node of a container pool with no usable engine, or an image it cannot pull, has a
node error (the node is UNUSABLE, so container tasks never land on it). `prepare` turns one command of a
container task into the process to spawn: the image made sure of, the container made, and `podman start
--attach` to run; `finish` ends a container its process left behind. Retention and DeleteTaskFiles
remove the containers of the task directories they remove (`remove_tasks`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal.containers import CONTAINER_MISC_ERROR
from shoal.nodeagent import process
from shoal.nodeagent.containers import (
    ContainerEngine,
    ContainerError,
    ContainerSpec,
    Mount,
    container_name,
    container_variables,
    exec_args,
    find_engine,
    node_label,
    pick_registry,
)
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.process import CODE_PROGRAM_NOT_FOUND
from shoal.v1 import common_pb2, pool_pb2

log = logging.getLogger(__name__)

#: What the engine prints when a container's command is not in its image.
_NOT_FOUND_MARKERS = ("executable file not found", "no such file or directory")


@dataclass
class PreparedContainer:
    """A container made for one command: the process to spawn and how to speak of it."""

    name: str
    argv: list[str]
    env: dict[str, str]


class NodeContainers:
    """The node's container engine and its pool's container configuration (see the module's docstring)."""

    def __init__(self, layout: NodeLayout, publish: Callable[[bool], None]) -> None:
        self._layout = layout
        self._root = layout.root
        self._state_dir = layout.volatile / "containers"
        #: Called when `errors` or `images_ready` changed (with True: tell the server even if they seem not to).
        self._publish = publish
        self.engine: ContainerEngine | None = None
        #: Why there is no engine ("" when there is one).
        self.problem = "the container engine has not been looked for yet"
        #: The pool's container configuration (None: not a container pool).
        self.config: common_pb2.ContainerConfiguration | None = None
        #: The pull of the pool's images under way or last made; None when there is none.
        self.prefetch: asyncio.Future[None] | None = None
        #: Node errors: no engine on a container pool, images that could not be pulled.
        self.errors: list[pool_pb2.NodeError] = []
        self._leaving = False
        self._welcomed = False
        #: The pull of the pool's images since the last Welcome ended (or there was none to make).
        self._pulled = True
        #: A container may exist for this node (one was made, or an earlier agent's was found): only then do
        #: retention sweeps ask the engine (a node that never ran one pays nothing).
        self._made_any = False

    @property
    def images_ready(self) -> bool:
        """The pool's images were pulled (or could not be) since the last Welcome; True for a pool without,
        False before the first Welcome (a Register says so: the pull begins with the Welcome)."""
        return self._welcomed and self._pulled

    @property
    def root(self) -> Path:
        """The node root (container names and labels are its)."""
        return self._root

    @property
    def label(self) -> str:
        """The label of this node's containers."""
        return node_label(self._root)

    @property
    def description(self) -> str:
        """Node.container_engine: the engine found, "" for none."""
        return self.engine.description if self.engine is not None else ""

    async def start(self, task_dir_exists: Callable[[str, str], bool]) -> None:
        """Find the engine; end what an earlier agent of this root left running, and remove the containers
        whose task directories are gone (a reimage, a node root made anew)."""
        self.engine, self.problem = await asyncio.to_thread(find_engine, self._state_dir)
        if self.engine is None:
            log.info("no container tasks on this node: %s", self.problem)
            return
        log.info("container engine: %s", self.engine.description)
        listed = await self._listed()
        running = [c.id for c in listed if c.running]
        if running:
            log.warning("ending %d container(s) left running by a previous agent process", len(running))
            await self._call_quietly(["kill", "--signal", "KILL", *running])
        self._made_any = bool(listed)
        stale = [c.id for c in listed if c.job and not task_dir_exists(c.job, c.task)]
        if stale:
            await self._call_quietly(["rm", "--force", "--ignore", "--time", "0", *stale])

    def leaving(self) -> None:
        """The node leaves its pool: its containers go when the agent stops."""
        self._leaving = True

    async def stop(self) -> None:
        """The agent stops: its tasks' containers end with their tasks (the engine's clients were killed, not
        the containers); a node that leaves its pool removes them all."""
        if self.engine is None:
            return
        listed = await self._listed()
        if self._leaving:
            ids = [c.id for c in listed]
            if ids:
                await self._call_quietly(["rm", "--force", "--ignore", "--time", "0", *ids])
            return
        running = [c.id for c in listed if c.running]
        if running:
            await self._call_quietly(["kill", "--signal", "KILL", *running])

    async def _listed(self) -> list[_Listed]:
        """This node's containers, as the engine lists them."""
        rc, text = await self._call_quietly(["ps", "--all", "--format", "json", "--filter", f"label={self.label}"])
        if rc != 0:
            return []
        try:
            rows = json.loads(text or "[]")
        except ValueError:
            return []
        out = []
        for c in rows if isinstance(rows, list) else []:
            labels = c.get("Labels") or {}
            out.append(
                _Listed(
                    str(c.get("Id", "")),
                    str(labels.get("shoal.job", "")),
                    str(labels.get("shoal.task", "")),
                    str(c.get("State", "")) == "running",
                )
            )
        return [c for c in out if c.id]

    async def _call_quietly(self, args: Sequence[str]) -> tuple[int, str]:
        assert self.engine is not None
        try:
            return await self.engine.call(args)
        except ContainerError as e:
            log.warning("container engine: %s", e.message)
            return -1, ""

    # ---- the pool's configuration -------------------------------------------------------------------

    def welcome(
        self, config: common_pb2.ContainerConfiguration | None, spawn: Callable[..., asyncio.Task[None]]
    ) -> None:
        """The pool's container configuration (at each Welcome): pull its images (in the background;
        tasks and the start task wait for it)."""
        self.config = config
        self._welcomed = True
        self._pulled = True
        if config is None:
            self.prefetch = None
            self._set_errors([])
            return
        if self.engine is None:
            self.prefetch = None
            message = f"this node cannot run the pool's container tasks: {self.problem}"
            self._set_errors([pool_pb2.NodeError(code=CONTAINER_MISC_ERROR, message=message)])
            return
        self._pulled = False
        self.prefetch = spawn(self._prefetch(config))
        self._publish(True)  # (the node is pulling: it takes no task yet)

    async def _prefetch(self, config: common_pb2.ContainerConfiguration) -> None:
        assert self.engine is not None
        errors: list[pool_pb2.NodeError] = []
        try:
            errors = await self.engine.prefetch(config)
        finally:
            if self.config is config:
                self.errors = errors
                self._pulled = True
                for e in errors:
                    log.warning("node error %s: %s", e.code, e.message)
                # (Always told: the node takes tasks from now on, or is unusable.)
                self._publish(True)

    def _set_errors(self, errors: list[pool_pb2.NodeError]) -> None:
        if [(e.code, e.message) for e in errors] != [(e.code, e.message) for e in self.errors]:
            self.errors = errors
            self._publish(False)

    async def wait_for_images(self) -> None:
        """Until the pool's images are pulled (or could not be)."""
        if self.prefetch is not None:
            await asyncio.wait([self.prefetch])

    # ---- one command in a container -----------------------------------------------------------------

    def mounts(self, writable: Sequence[Path], readable: Sequence[Path] = ()) -> list[Mount]:
        """What of the node a task's container reaches, each at its own path: the task's directories
        (`writable`: its directory, a multi-instance task's shared directory, its job's preparation
        directory) and the node's shared directory; read-only, the startup directory, the packages and
        `readable` (the launcher, the cluster CA). Not the rest of the node root: the agent's own files
        (`volatile`, `certs`) and other jobs' directories stay out."""
        out = [Mount(p) for p in (*writable, self._layout.shared)]
        out += [Mount(p, writable=False) for p in (self._layout.startup, self._layout.applications, *readable)]
        seen: set[Path] = set()
        kept = []
        for m in out:
            if m.path not in seen and m.path.exists():
                seen.add(m.path)
                kept.append(m)
        return kept

    async def prepare(
        self,
        settings: common_pb2.TaskContainerSettings,
        *,
        name: str,
        job_id: str,
        task_id: str,
        command: Sequence[str],
        variables: Mapping[str, str],
        working_dir: Path,
        user: tuple[int, int] | None,
        mounts: Sequence[Mount],
        instance: bool = False,
    ) -> PreparedContainer:
        """Make sure of the image and make the container `name` for `command`: the process that runs it.
        An `instance` (of a multi-instance task) gets a container that idles, started now, and `command` is
        Exec'd into it (`exec_command`: so are its later commands). Raises ContainerError (Batch's codes)."""
        engine = self._engine()
        spec = await self._spec(
            engine, settings, name, job_id, task_id, [] if instance else command, variables, working_dir, user, mounts
        )
        if not instance:
            await engine.create(spec)
            return PreparedContainer(name, engine.start_command(name), engine.environment())
        await engine.create_instance(spec)
        argv, env = self.exec_command(name, command, extra={}, working_dir=working_dir, user=user)
        return PreparedContainer(name, argv, env)

    def _engine(self) -> ContainerEngine:
        if self.engine is None:
            raise ContainerError(CONTAINER_MISC_ERROR, f"this node cannot run container tasks: {self.problem}")
        self._made_any = True
        return self.engine

    async def _spec(
        self,
        engine: ContainerEngine,
        settings: common_pb2.TaskContainerSettings,
        name: str,
        job_id: str,
        task_id: str,
        command: Sequence[str],
        variables: Mapping[str, str],
        working_dir: Path,
        user: tuple[int, int] | None,
        mounts: Sequence[Mount],
    ) -> ContainerSpec:
        """The image made sure of (after the pool's images), and the container's specification."""
        await self.wait_for_images()
        config = self.config
        registries = list(config.container_registries) if config is not None else []
        task_registry = settings.registry if settings.HasField("registry") else None
        await engine.ensure_image(settings.image_name, pick_registry(settings.image_name, task_registry, registries))
        labels = {"shoal.node": self.label.partition("=")[2], "shoal.job": job_id, "shoal.task": task_id}
        return ContainerSpec(
            name=name,
            settings=settings,
            variables=variables,
            mounts=mounts,
            working_dir=working_dir,
            user=user,
            command=command,
            labels=labels,
            allow_host=bool(config is not None and config.allow_host_run_options),
        )

    def exec_command(
        self,
        name: str,
        argv: Sequence[str],
        *,
        extra: Mapping[str, str],
        working_dir: Path,
        user: tuple[int, int] | None,
        interactive: bool = False,
    ) -> tuple[list[str], dict[str, str]]:
        """The process (argv, environment) that runs `argv` in the instance container `name`."""
        assert self.engine is not None
        args = exec_args(name, argv, extra=extra, working_dir=working_dir, user=user, interactive=interactive)
        return [self.engine.podman, *args], self.engine.environment()

    def discard(self, name: str) -> None:
        """Remove a container made for an attempt that was killed meanwhile (in the background)."""
        if self.engine is not None:
            task = asyncio.ensure_future(self.engine.remove(name))
            task.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def end_instance(self, name: str) -> None:
        """The instance ended: its container's processes go (the container stays until retention)."""
        if self.engine is not None:
            await self.engine.kill(name)

    async def finish(
        self, name: str, returncode: int, stderr_file: Path, *, ended: bool = False
    ) -> common_pb2.TaskContainerExecutionInfo:
        """After a container's process ended: end the container if it may still run (`ended`: the agent
        ended the process (a kill, the wall clock), or a signal did), and say how it went. A container that
        never started (its command is not in the image) raises ContainerError."""
        info = common_pb2.TaskContainerExecutionInfo(container_id=name)
        if self.engine is None:
            return info
        if ended or returncode < 0:
            await self.engine.kill(name)
        elif returncode not in (125, 126, 127):
            info.state = "exited"  # (the container's own exit code: nothing more to ask the engine)
            return info
        info.state = await self.engine.state(name)
        if info.state == "created":
            tail = _tail(stderr_file)
            code = (
                CODE_PROGRAM_NOT_FOUND if any(m in tail.lower() for m in _NOT_FOUND_MARKERS) else CONTAINER_MISC_ERROR
            )
            info.error = tail.strip().splitlines()[-1][:1000] if tail.strip() else "the container did not start"
            raise ContainerError(code, f"the container did not start: {info.error}")
        return info

    async def remove_tasks(self, tasks: Iterable[tuple[str, str]]) -> None:
        """Remove the containers of these (job, task) pairs, if any (their directories are going)."""
        wanted = set(tasks)
        if self.engine is None or not wanted or not self._made_any:
            return
        ids = [c.id for c in await self._listed() if (c.job, c.task) in wanted]
        if ids:
            await self._call_quietly(["rm", "--force", "--ignore", "--time", "0", *ids])

    async def remove_job(self, job_id: str) -> None:
        """Remove every container of a job on this node (its directory is going)."""
        if self.engine is None or not self._made_any:
            return
        rc, text = await self._call_quietly(
            ["ps", "--all", "--quiet", "--filter", f"label={self.label}", "--filter", f"label=shoal.job={job_id}"]
        )
        if rc == 0 and text.split():
            await self._call_quietly(["rm", "--force", "--ignore", "--time", "0", *text.split()])


@dataclass(frozen=True)
class _Listed:
    """One of the node's containers as `podman ps` lists it."""

    id: str
    job: str
    task: str
    running: bool


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


async def spawn_in_container(
    containers: NodeContainers | None,
    settings: common_pb2.TaskContainerSettings,
    command_line: str,
    *,
    job_id: str,
    task_id: str,
    cwd: Path,
    env: Mapping[str, str],
    explicit: Iterable[str],
    source_env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    append: bool,
    user: tuple[int, int] | None,
    writable: Sequence[Path],
) -> tuple[subprocess.Popen[bytes], PreparedContainer]:
    """Start one command of a start, preparation or release task in its container: the process (`podman
    start --attach`) and its container. Raises ContainerError, or LaunchError for a bad command line."""
    if containers is None:
        raise ContainerError(CONTAINER_MISC_ERROR, "this agent runs no container tasks")
    command = process.split_command(command_line)
    prepared = await containers.prepare(
        settings,
        name=container_name(containers.root, job_id, task_id),
        job_id=job_id,
        task_id=task_id,
        command=command,
        variables=container_variables(env, source_env, explicit),
        working_dir=cwd,
        user=user,
        mounts=containers.mounts(writable),
    )
    proc = process.spawn(
        command_line,
        cwd=cwd,
        env=prepared.env,
        stdout=stdout,
        stderr=stderr,
        append=append,
        argv=prepared.argv,
        owner=user,
    )
    return proc, prepared


def runs_in_container(settings: common_pb2.TaskContainerSettings | None) -> bool:
    """Whether a task's container settings name an image (what makes it a container task)."""
    return settings is not None and bool(settings.image_name)
