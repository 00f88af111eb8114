"""The node's container engine: podman with runc, driven through its command line.

A container task is two engine calls around the usual process: `podman create` (its errors are the
agent's to classify: a bad option is `ContainerInvalidSettings`), then `podman start --attach` as the
task's process, whose output goes to the task's stdout.txt and stderr.txt as any task's does and whose
exit code is the container's. The image is made sure of first (pulled once per node and image, shared by
concurrent tasks; `ContainerInvalidImage` / `ContainerInvalidRegistry` when it cannot be). A container
that outlives its `podman start` (killed, wall clock) is killed; the stopped container stays until the
task's directory goes (retention, DeleteTaskFiles) or the task runs again, as Batch keeps it.

What every container gets: the task's directories mounted at the same paths (`NodeContainers.mounts`:
so its directories, the shared and startup directories and the packages are where the variables say;
not the agent's own files), the task's variables (in a private `--env-file`: never on a command line,
never in the engine's own environment, which runs as root), the task's user (`--user uid:gid`: files it
writes are the task's, as outside a container; no capabilities for a task that is not root, no new
privileges for any), the node's
network (as a task outside a container has; `--network none` in the run options takes it away), and
the task's working directory unless the settings ask for the image's. The engine's configuration is
the agent's own (`containers.conf`: runc, which works with this kind of machine's cgroups, and no
default ulimits, which it would refuse), named by CONTAINERS_CONF in the engine's environment only.

Registry passwords reach the engine in an auth file (mode 0600, removed after the pull), never on a
command line or in a log. A registry on a loopback address is spoken to over plain HTTP, as Docker
treats 127.0.0.0/8 by default.

Every engine call is bounded in time; an engine that hangs is `ContainerMiscError`, not a hung task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from shoal.containers import (
    CONTAINER_INVALID_IMAGE,
    CONTAINER_INVALID_REGISTRY,
    CONTAINER_INVALID_SETTINGS,
    CONTAINER_MISC_ERROR,
    image_name_problem,
    parse_run_options,
    registry_of,
)
from shoal.v1 import common_pb2, pool_pb2

log = logging.getLogger(__name__)

CONTAINERS_CONF: Final = """\
# Written by the Shoal agent: the engine's configuration for its tasks' containers.
[containers]
default_ulimits = []
[engine]
runtime = "runc"
"""
#: Seconds an engine call may take (a pull: `PULL_TIMEOUT`).
CALL_TIMEOUT: Final = 60.0
PULL_TIMEOUT: Final = 600.0
#: How long a killed container may take to be seen stopped.
KILL_WAIT: Final = 15.0
#: Variables of the agent's own environment that stay out of a container (the image has its own).
HOST_ONLY_VARIABLES: Final = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR", "HOSTNAME", "TERM", "SHLVL", "_"}
)
WORKDIR_IMAGE_DEFAULT: Final = common_pb2.CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT


class ContainerError(Exception):
    """The engine could not do what a container task needed; `code` is Batch's failure code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def classify_pull_error(text: str) -> str:
    """Batch's code for what `podman pull` printed when it failed."""
    low = text.lower()
    if any(s in low for s in ("unauthorized", "authentication required", "denied", "invalid username/password")):
        return CONTAINER_INVALID_REGISTRY
    if any(s in low for s in ("manifest unknown", "name unknown", "not found", "image not known", "no such image")):
        return CONTAINER_INVALID_IMAGE
    if any(
        s in low
        for s in ("connection refused", "no such host", "pinging container registry", "i/o timeout", "server gave http")
    ):
        return CONTAINER_INVALID_REGISTRY
    return CONTAINER_INVALID_IMAGE if "invalid reference format" in low else CONTAINER_MISC_ERROR


def classify_create_error(text: str) -> str:
    """Batch's code for what `podman create` printed when it failed."""
    low = text.lower()
    if any(s in low for s in ("unknown flag", "unknown shorthand flag", "invalid argument", "invalid ", "requires")):
        return CONTAINER_INVALID_SETTINGS
    if "image not known" in low:
        return CONTAINER_INVALID_IMAGE
    return CONTAINER_MISC_ERROR


def last_line(text: str) -> str:
    """The engine's last non-empty line (its error), shortened."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:1000]


def is_loopback_registry(server: str) -> bool:
    """A registry on this machine's loopback (`127.x.y.z[:port]`, `localhost[:port]`, `[::1]`)."""
    host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def container_name(node_root: Path, job_id: str, task_id: str, attempt: int = 1) -> str:
    """The container of one attempt of a task on this node (an attempt's own: work of a killed attempt
    that is still finishing never touches the next one's)."""
    digest = hashlib.sha256(f"{node_root}\0{job_id}\0{task_id}\0{attempt}".encode()).hexdigest()[:24]
    return f"shoal-{digest}"


def node_label(node_root: Path) -> str:
    """The label every container of this node carries (what a reimage removes)."""
    return "shoal.node=" + hashlib.sha256(str(node_root).encode()).hexdigest()[:24]


def pick_registry(
    image: str,
    task_registry: common_pb2.ContainerRegistry | None,
    pool_registries: Sequence[common_pb2.ContainerRegistry],
) -> common_pb2.ContainerRegistry | None:
    """The registry credentials to pull `image` with: the task's (its password filled in from the pool's
    registry of the same server and user, if it has none), else the pool's registry of the image's
    server; None when the image needs none."""
    server = (task_registry.registry_server if task_registry is not None else "") or registry_of(image)
    if task_registry is not None and (task_registry.registry_server or task_registry.user_name):
        if task_registry.password:
            return task_registry
        for r in pool_registries:
            same_user = not task_registry.user_name or r.user_name == task_registry.user_name
            if r.registry_server.lower() == server.lower() and same_user:
                return r
        return common_pb2.ContainerRegistry(registry_server=server, user_name=task_registry.user_name)
    for r in pool_registries:
        if r.registry_server and r.registry_server.lower() == server.lower():
            return r
    return None


@dataclass(frozen=True)
class Mount:
    """A node path mounted at the same path in a container (never set-user-id programs, never devices)."""

    path: Path
    writable: bool = True

    def option(self) -> str:
        """The `--volume` value."""
        return f"{self.path}:{self.path}:{'rw' if self.writable else 'ro'},nosuid,nodev"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything one container of a task needs, from the agent's side."""

    name: str
    settings: common_pb2.TaskContainerSettings
    #: The variables the container gets (`container_variables`: the agent writes them to a private
    #: file the engine reads, never to a command line or the engine's own environment).
    variables: Mapping[str, str]
    #: What of the node the task may reach: its directories (see `NodeContainers.mounts`).
    mounts: Sequence[Mount]
    working_dir: Path
    user: tuple[int, int] | None
    #: The container's command (after the image's entry point).
    command: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    allow_host: bool = False


def create_args(spec: ContainerSpec, env_file: Path, *, entrypoint: Sequence[str] = ()) -> list[str]:
    """The arguments of `podman create` for `spec`, its variables in `env_file` (pure; raises ContainerError
    for bad settings). `entrypoint`: extra options that replace the image's entry point (an instance's).

    A container of a task that is not root runs with no capabilities and no new privileges: a set-user-id
    program of the image cannot make it root over the node's files it reaches. The agent's labels come
    after the task's options (the last of a key wins), so that a task cannot hide its container from the
    agent's clean-ups."""
    s = spec.settings
    problem = image_name_problem(s.image_name)
    if problem:
        raise ContainerError(CONTAINER_INVALID_SETTINGS, f"image name {s.image_name!r} {problem}")
    options = parse_run_options(s.container_run_options, allow_host=spec.allow_host)
    if options.problem:
        raise ContainerError(CONTAINER_INVALID_SETTINGS, f"container run options: {options.problem}")
    args = ["create", "--name", spec.name, "--pull", "never", "--log-driver", "none"]
    for mount in dict.fromkeys(spec.mounts):
        args += ["--volume", mount.option()]
    args += ["--security-opt", "no-new-privileges"]
    if spec.user is not None:
        args += ["--user", f"{spec.user[0]}:{spec.user[1]}"]
        if spec.user[0] != 0:
            args += ["--cap-drop", "all"]
    if s.working_directory != WORKDIR_IMAGE_DEFAULT:
        args += ["--workdir", str(spec.working_dir)]
    if not any(a in ("--network", "--net") or a.startswith(("--network=", "--net=")) for a in options.args):
        args += ["--network", "host"]
    args += ["--env-file", str(env_file)]
    args += list(options.args)
    for key, value in sorted(spec.labels.items()):
        args += ["--label", f"{key}={value}"]
    args += list(entrypoint)
    args.append(s.image_name)
    args += list(spec.command)
    return args


#: Where an instance container's idle first process is mounted (catatonit in pause mode, static).
PAUSE_PATH: Final = "/.shoal-pause"
#: The standard PATH, after the launcher's directory, that an instance's commands get (the image's own
#: PATH is not known to the agent; a task may set PATH in its environment settings instead).
INSTANCE_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def instance_create_args(spec: ContainerSpec, env_file: Path, pause: str) -> list[str]:
    """`podman create` for a multi-instance task's instance: a container that idles (catatonit `-P`, from
    the node, mounted read-only) so that the coordination command, the application command and the MPI
    proxies Exec'd into the instance all run in it (`exec_args`), its background services living on
    between them."""
    idle = ContainerSpec(
        name=spec.name,
        settings=spec.settings,
        variables=spec.variables,
        mounts=spec.mounts,
        working_dir=spec.working_dir,
        user=spec.user,
        command=["-P"],
        labels=spec.labels,
        allow_host=spec.allow_host,
    )
    return create_args(idle, env_file, entrypoint=["--volume", f"{pause}:{PAUSE_PATH}:ro", "--entrypoint", PAUSE_PATH])


def exec_args(
    name: str,
    argv: Sequence[str],
    *,
    extra: Mapping[str, str],
    working_dir: Path,
    user: tuple[int, int] | None,
    interactive: bool = False,
) -> list[str]:
    """`podman exec` of one command in an instance container (whose variables it has: `create_args`), as
    the task's user, in its working directory; `extra`: variables the Exec's caller adds."""
    args = ["exec"]
    if interactive:
        args.append("--interactive")
    if user is not None:
        args += ["--user", f"{user[0]}:{user[1]}"]
    args += ["--workdir", str(working_dir)]
    for key, value in extra.items():
        args += ["--env", f"{key}={value}"]
    return [*args, name, *argv]


def container_variables(
    env: Mapping[str, str], source_env: Mapping[str, str], explicit: Iterable[str], *, instance: bool = False
) -> dict[str, str]:
    """The variables a task's container gets: those the agent set or changed for the task, and those the
    task's settings name, never the host-only ones unless named. An instance's container also gets a PATH
    with the launcher's directory first (an MPI launcher finds `shoal-mpi-launch` there), then the usual."""
    named = set(explicit)
    out = {}
    for name, value in env.items():
        if name in named or (name not in HOST_ONLY_VARIABLES and source_env.get(name) != value):
            out[name] = value
    if instance and "PATH" not in named and env.get("PATH"):
        out["PATH"] = f"{env['PATH'].split(os.pathsep)[0]}:{INSTANCE_PATH}"
    return out


def env_file_text(variables: Mapping[str, str]) -> str:
    """`variables` as podman's `--env-file` reads them (one NAME=value a line); ContainerError for a value
    that a line cannot hold."""
    lines = []
    for name, value in variables.items():
        if "\n" in value or "\r" in value or "\0" in value or not name or "=" in name or name.startswith("#"):
            raise ContainerError(
                CONTAINER_INVALID_SETTINGS, f"the variable {name!r} cannot be passed into a container (a line break)"
            )
        lines.append(f"{name}={value}\n")
    return "".join(lines)


@dataclass
class ContainerEngine:
    """podman on this node, with the agent's configuration."""

    podman: str
    #: The agent's directory for the engine: its containers.conf and short-lived auth files.
    state_dir: Path
    #: What `podman --version` said, and the runtime (Node.container_engine).
    description: str = ""
    _pulls: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    @property
    def conf_file(self) -> Path:
        """The engine configuration the agent's calls use."""
        return self.state_dir / "containers.conf"

    def environment(self) -> dict[str, str]:
        """The environment of every engine call: the agent's own, and its configuration. Never a task's: the
        engine runs as root, and a task's LD_PRELOAD or CONTAINERS_* would be obeyed by it."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.conf_file)
        env.setdefault("PATH", os.defpath)
        return env

    async def call(self, args: Sequence[str], *, timeout: float = CALL_TIMEOUT) -> tuple[int, str]:
        """Run `podman ARGS`: (exit code, what it printed on stderr, else stdout); ContainerMiscError when
        it cannot be started or takes longer than `timeout`. Cancelled, the call ends its process."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.podman,
                *args,
                stdin=subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.environment(),
                start_new_session=True,
            )
        except OSError as e:
            raise ContainerError(CONTAINER_MISC_ERROR, f"cannot run the container engine: {e}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
            raise ContainerError(
                CONTAINER_MISC_ERROR, f"the container engine did not answer within {timeout:g}s ({args[0]})"
            ) from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            raise
        rc = proc.returncode if proc.returncode is not None else -1
        text = err.decode(errors="replace") or out.decode(errors="replace")
        return rc, text if rc else out.decode(errors="replace")

    # ---- images ------------------------------------------------------------------------------------

    async def ensure_image(self, image: str, registry: common_pb2.ContainerRegistry | None) -> None:
        """Make sure `image` is on the node, pulling it once however many tasks want it at once."""
        rc, _ = await self.call(["image", "exists", image])
        if rc == 0:
            return
        pending = self._pulls.get(image)
        if pending is None:
            pending = asyncio.ensure_future(self._pull(image, registry))
            self._pulls[image] = pending
            pending.add_done_callback(lambda _f: self._pulls.pop(image, None))
        await asyncio.shield(pending)

    async def _pull(self, image: str, registry: common_pb2.ContainerRegistry | None) -> None:
        args = ["pull", "--quiet"]
        server = (registry.registry_server if registry is not None else "") or registry_of(image)
        if server and is_loopback_registry(server):
            args.append("--tls-verify=false")
        with self._auth_file(registry, server) as auth:
            if auth is not None:
                args += ["--authfile", str(auth)]
            rc, text = await self.call([*args, image], timeout=PULL_TIMEOUT)
        if rc != 0:
            message = last_line(text) or f"podman pull exited {rc}"
            raise ContainerError(classify_pull_error(text), f"cannot pull image {image!r}: {message}")
        log.info("pulled image %s", image)

    @contextlib.contextmanager
    def _auth_file(self, registry: common_pb2.ContainerRegistry | None, server: str) -> Iterator[Path | None]:
        """A private auth file with the registry's credentials for one pull (None: no credentials)."""
        if registry is None or not registry.user_name or not server:
            yield None
            return
        token = base64.b64encode(f"{registry.user_name}:{registry.password}".encode()).decode()
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="auth-", suffix=".json", dir=self.state_dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"auths": {server: {"auth": token}}}, f)
            yield Path(name)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    async def prefetch(self, config: common_pb2.ContainerConfiguration) -> list[pool_pb2.NodeError]:
        """Pull a pool's images (at join, reboot, reimage): a node error for each that cannot be pulled."""
        errors: list[pool_pb2.NodeError] = []

        async def one(image: str) -> None:
            try:
                await self.ensure_image(image, pick_registry(image, None, config.container_registries))
            except ContainerError as e:
                errors.append(pool_pb2.NodeError(code=e.code, message=e.message))
            except Exception as e:  # (a full disk, say: a node error all the same, never a node stuck pulling)
                log.exception("pulling %s failed inside the agent", image)
                errors.append(pool_pb2.NodeError(code=CONTAINER_MISC_ERROR, message=f"cannot pull {image!r}: {e}"))

        await asyncio.gather(*(one(i) for i in dict.fromkeys(config.container_image_names)))
        return errors

    # ---- containers --------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> None:
        """Make the task's container (replacing one of the same name): ContainerError when the engine
        refuses it."""
        with self._env_file(spec.variables) as env_file:
            await self._create(spec, create_args(spec, env_file))

    async def create_instance(self, spec: ContainerSpec) -> None:
        """Make and start a multi-instance task's idle instance container (`instance_create_args`)."""
        pause = shutil.which("catatonit") or "/usr/libexec/podman/catatonit"
        if not os.path.isfile(pause):
            raise ContainerError(CONTAINER_MISC_ERROR, "multi-instance container tasks need catatonit on the node")
        with self._env_file(spec.variables) as env_file:
            await self._create(spec, instance_create_args(spec, env_file, pause))
        rc, text = await self.call(["start", spec.name])
        if rc != 0:
            raise ContainerError(CONTAINER_MISC_ERROR, f"cannot start the container: {last_line(text)}")

    async def _create(self, spec: ContainerSpec, args: list[str]) -> None:
        await self.remove(spec.name)
        rc, text = await self.call(args)
        if rc != 0:
            raise ContainerError(classify_create_error(text), f"cannot create the container: {last_line(text)}")

    @contextlib.contextmanager
    def _env_file(self, variables: Mapping[str, str]) -> Iterator[Path]:
        """A container's variables in a file of the agent's own (mode 0600, in its private directory),
        removed once the engine has read it."""
        text = env_file_text(variables)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="env-", dir=self.state_dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            yield Path(name)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    def start_command(self, name: str) -> list[str]:
        """The task's process: start the container and stay attached to it (its output, its exit code)."""
        return [self.podman, "start", "--attach", name]

    async def state(self, name: str) -> str:
        """The container's state (`created`, `running`, `exited`, ...), "" when there is none."""
        rc, text = await self.call(["container", "inspect", "--format", "{{.State.Status}}", name])
        return text.strip() if rc == 0 else ""

    async def kill(self, name: str) -> None:
        """End the container's processes now (a killed task, its wall clock), and wait until the engine
        has seen them end; it stays, stopped."""
        with contextlib.suppress(ContainerError):
            rc, _ = await self.call(["kill", "--signal", "KILL", name])
            if rc == 0:
                await self.call(["wait", name], timeout=KILL_WAIT)

    async def remove(self, name: str) -> None:
        """Remove the container, running or not (no error when there is none)."""
        with contextlib.suppress(ContainerError):
            await self.call(["rm", "--force", "--ignore", "--time", "0", name])

    async def remove_all(self, label: str) -> None:
        """Remove every container with `label` (a reimaged node's, a new agent's leftovers)."""
        with contextlib.suppress(ContainerError):
            rc, text = await self.call(["ps", "--all", "--quiet", "--filter", f"label={label}"])
            ids = text.split() if rc == 0 else []
            if ids:
                await self.call(["rm", "--force", "--ignore", "--time", "0", *ids])


def find_engine(state_dir: Path, podman: str | None = None) -> tuple[ContainerEngine | None, str]:
    """The node's engine, or None and why there is none. Blocking (a thread at the agent's start): it
    runs `podman --version` and checks that runc is there; only root drives it (tasks' users, mounts)."""
    setting = os.environ.get("SHOAL_CONTAINER_ENGINE", "")
    if setting == "none":
        return None, "container tasks are turned off on this node (SHOAL_CONTAINER_ENGINE=none)"
    path = podman or setting or shutil.which("podman")
    if not path:
        return None, "no container engine: podman is not installed on this node"
    if os.geteuid() != 0:
        return None, "the agent does not run as root: it drives the container engine only as root"
    runc = shutil.which("runc")
    if runc is None:
        return None, "podman is installed but runc is not (the runtime Shoal uses)"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"podman does not answer: {e}"
    if done.returncode != 0:
        return None, f"podman --version failed: {last_line(done.stderr)}"
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in [*state_dir.glob("auth-*.json"), *state_dir.glob("env-*")]:
        # (Left by an agent killed in the middle of a pull or a create: a password, a task's variables.)
        stale.unlink(missing_ok=True)
    conf = state_dir / "containers.conf"
    if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return ContainerEngine(path, state_dir, description=f"{done.stdout.strip()}, runc"), ""
