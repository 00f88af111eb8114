"""The agent's watchdog: a task's processes end when their agent dies, before the server runs the task elsewhere.

An agent that is SIGKILLed (or OOM-killed, or crashes) cannot kill its tasks,
and the server requeues them once its heartbeats stop: without help the old
processes would run on beside the new attempt. So every agent starts one
watchdog process (one per agent, nothing per task) that holds the read end of
a pipe whose write end only the agent holds. The kernel closes that end when
the agent dies, however it dies; the watchdog reads EOF and kills what the
agent ran:

- where cgroup v2 is writable (the agent's own cgroup lets it make a child), the
  agent moves itself into a cgroup of its own at start, so every process it
  starts is born in it, also those that `setsid` or daemonize; the watchdog
  writes ``cgroup.kill`` (Linux 5.14+; else it freezes the cgroup and kills
  each member) and removes the cgroup;
- elsewhere, it kills every process whose environment names this node root
  (`SHOAL_NODE_ROOT_DIR`, which every task and start task has), and the whole
  process group of each (`volatile/running.json` lists the tasks' groups).
  Only a task that empties its environment and leaves its process group
  escapes this way.

The watchdog holds `volatile/agent.lock` until it has killed everything, and
an agent takes that lock before anything else: an agent restarted on the
same node root starts, and registers with the server, only after the old
tasks are gone. The lock also keeps a second agent off a node root in use.

The watchdog is also what ends leftovers when the agent exits normally (it
kills its tasks first; whatever they left behind goes with the cgroup).

Run as ``python -m shoal.nodeagent.watchdog --root ROOT --pipe-fd N [--cgroup DIR]``
by `Watchdog.start`; it ignores SIGINT and SIGTERM (a Ctrl-C or a service stop
reaches the agent, which ends its tasks and then its watchdog through the pipe).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from shoal import logs, rootlock
from shoal.nodeagent.layout import NODE_ROOT_ENV

#: (By name: run as ``python -m``, this module's ``__name__`` is ``__main__``.)
log = logging.getLogger("shoal.nodeagent.watchdog")

CGROUP_PREFIX = "shoal-agent-"
#: How long killing may take before the watchdog gives up waiting (it has sent SIGKILL by then).
KILL_WAIT_SECONDS = 5.0


# ---- cgroup v2 -------------------------------------------------------------------------------------


def cgroup2_dir_of_self() -> Path | None:
    """This process's cgroup v2 directory, or None (no cgroup v2 mounted, or not visible)."""
    try:
        own = next(
            line[3:].strip() for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")
        )
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except (OSError, StopIteration):
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] != "cgroup2":
            continue
        fields = left.split()
        mount_root, mount_point = fields[3], fields[4]
        if not (own + "/").startswith(mount_root.rstrip("/") + "/"):
            continue
        rel = own[len(mount_root.rstrip("/")) :].lstrip("/")
        return Path(mount_point) / rel if rel else Path(mount_point)
    return None


def task_cgroup_name(root: Path) -> str:
    """The cgroup of the agent of node root `root` (one per root: a restarted agent finds a leftover).

    The root's device and inode number go into the name with its path: two agents whose roots have
    the same path in different mount namespaces, under one cgroup parent, must not take each other's
    live cgroup for a leftover (and kill it). Raises OSError when `root` does not exist.
    """
    st = os.stat(root)
    identity = f"{root}\0{st.st_dev}\0{st.st_ino}"
    return CGROUP_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:16]


def _populated(cgroup: Path) -> bool:
    """Whether a process is in `cgroup` or any cgroup below it (cgroup.events counts descendants)."""
    try:
        for line in (cgroup / "cgroup.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "populated":
                return value.strip() != "0"
    except OSError:
        return False
    return False


def _subtree(cgroup: Path) -> list[Path]:
    """`cgroup` and every cgroup below it, each after all of its children (the order to remove them).

    Iterative: a task may nest cgroups deeper than Python's recursion allows.
    """
    order: list[Path] = []
    stack = [cgroup]
    while stack:
        cg = stack.pop()
        order.append(cg)
        try:
            with os.scandir(cg) as it:
                stack.extend(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    order.reverse()  # parents were met before their children
    return order


def _member_pids(cgroup: Path) -> list[int]:
    """The processes in `cgroup` and below it."""
    pids: list[int] = []
    for cg in _subtree(cgroup):
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(p) for p in (cg / "cgroup.procs").read_text().split())
    return pids


def _remove_subtree(cgroup: Path, deadline: float) -> None:
    """Remove `cgroup` and the cgroups a task made below it, deepest first (a cgroup with children
    cannot be removed); retried until `deadline` while processes are still dying."""
    while True:
        busy = False
        for cg in _subtree(cgroup):
            try:
                cg.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                busy = True
        if not busy or time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def _freeze_and_kill(cgroup: Path, deadline: float) -> None:
    """Kill every process in `cgroup` and below it without cgroup.kill (before Linux 5.14).

    Frozen (the freeze holds the cgroups below too), so that nothing forks while it is emptied;
    passes repeat while a process is left (one may have moved between cgroups while listed).
    """
    with contextlib.suppress(OSError):
        (cgroup / "cgroup.freeze").write_text("1")
    try:
        while True:
            for pid in _member_pids(cgroup):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if not _member_pids(cgroup) or time.monotonic() >= deadline:
                return
            time.sleep(0.01)
    finally:
        with contextlib.suppress(OSError):
            (cgroup / "cgroup.freeze").write_text("0")


def kill_cgroup(cgroup: Path, wait: float = KILL_WAIT_SECONDS, *, use_kill_file: bool = True) -> int:
    """SIGKILL every process in `cgroup` and in the cgroups below it (a task running as the agent's user
    can make those and move into them), wait until it is empty, and remove it with them bottom up;
    returns how many processes it held. `use_kill_file=False` takes the way of kernels without
    cgroup.kill (for tests of it)."""
    if not cgroup.is_dir():
        return 0
    deadline = time.monotonic() + wait
    count = len(_member_pids(cgroup))
    if _populated(cgroup):
        try:
            if not use_kill_file:
                raise OSError("cgroup.kill not used")
            # It kills the processes of the cgroups below too.
            (cgroup / "cgroup.kill").write_text("1")
        except OSError:
            _freeze_and_kill(cgroup, deadline)
    while _populated(cgroup) and time.monotonic() < deadline:
        time.sleep(0.01)
    _remove_subtree(cgroup, deadline)
    return count


def enter_cgroup(cgroup: Path, pid: int) -> None:
    """Move process `pid` (all its threads) into `cgroup`."""
    (cgroup / "cgroup.procs").write_text(str(pid))


#: An empty agent cgroup older than this is a leftover (its agent and watchdog were both killed).
STALE_CGROUP_SECONDS = 60.0


def remove_stale_cgroups(parent: Path, older_than: float = STALE_CGROUP_SECONDS) -> None:
    """Remove empty agent cgroups below `parent` made more than `older_than` seconds ago.

    A live agent is inside its cgroup (not empty); one made moments ago may belong to an agent
    that is about to enter it, hence the age.
    """
    now = time.time()
    for cg in parent.glob(CGROUP_PREFIX + "*"):
        try:
            if now - cg.stat().st_mtime <= older_than or _populated(cg):
                continue
        except OSError:
            continue
        # With any empty cgroups its tasks made inside it.
        _remove_subtree(cg, deadline=0.0)
        if not cg.exists():
            log.info("removed %s, an empty cgroup an earlier agent left", cg)


def make_task_cgroup(root: Path) -> Path | None:
    """A fresh, empty cgroup for the agent of `root` below this process's own, or None where the
    machine does not allow it (cgroup v2 not mounted, or not writable here). A leftover of an
    earlier agent of the same root whose watchdog died too is emptied first."""
    parent = cgroup2_dir_of_self()
    if parent is None or not os.access(parent / "cgroup.procs", os.W_OK):
        return None
    remove_stale_cgroups(parent)
    try:
        cgroup = parent / task_cgroup_name(root)
    except OSError as e:
        log.info("no task cgroup (%s): the watchdog falls back to process groups", e)
        return None
    if cgroup.exists():
        killed = kill_cgroup(cgroup)
        if killed:
            log.warning("killed %d process(es) left in %s by an earlier agent", killed, cgroup)
    try:
        cgroup.mkdir()
    except FileExistsError:
        pass
    except OSError as e:
        log.info("no task cgroup (%s): the watchdog falls back to process groups", e)
        return None
    return cgroup


# ---- without cgroups -----------------------------------------------------------------------------


def kill_by_environment(root: str, running_file: Path, wait: float = KILL_WAIT_SECONDS) -> int:
    """SIGKILL every process whose environment names node root `root`, and the process groups of the
    tasks in `running_file` that still have such a member; returns how many processes were killed."""
    from shoal.nodeagent.state import RunningFile

    me = os.getpid()
    groups = set(RunningFile(running_file).load().values())
    killed = 0
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        victims: list[psutil.Process] = []
        hit_groups: set[int] = set()
        for p in psutil.process_iter():
            if p.pid == me:
                continue
            try:
                if p.environ().get(NODE_ROOT_ENV) != root:
                    continue
                pgid = os.getpgid(p.pid)
            except (psutil.Error, OSError):
                continue
            victims.append(p)
            if pgid in groups:
                hit_groups.add(pgid)
        for g in hit_groups:
            with contextlib.suppress(OSError):
                os.killpg(g, signal.SIGKILL)
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if not victims:
            break
        killed += len(victims)
        # Dead is enough (a zombie waits for whoever reaps it, init at its own pace).
        while any(_alive(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.01)
    return killed


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# ---- the agent's side ----------------------------------------------------------------------------


class RootBusyError(Exception):
    """Another agent (or the watchdog of one that died and is still killing its tasks) holds the node root."""


async def take_root_lock(lock_file: Path, timeout: float) -> int:
    """Take the node root's lock, waiting (up to `timeout`) for an earlier agent's watchdog to finish;
    its descriptor, which the caller keeps open as long as it uses the root. Raises RootBusyError.
    (The local provider waits for the same lock before it deletes a node's root: `shoal.rootlock`.)"""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        try:
            if rootlock.try_lock(fd):
                return fd
        except OSError:
            os.close(fd)
            raise
        if time.monotonic() >= deadline:
            os.close(fd)
            raise RootBusyError(f"the node root is in use by another agent (it holds {lock_file})")
        if not waited:
            log.info("waiting for %s: an earlier agent's watchdog may still be ending its tasks", lock_file)
            waited = True
        await asyncio.sleep(rootlock.POLL_SECONDS)


class Watchdog:
    """The agent's handle on its watchdog process (see the module docstring)."""

    def __init__(
        self,
        *,
        root: Path,
        running_file: Path,
        lock_fd: int,
        write_fd: int,
        proc: subprocess.Popen[bytes],
        cgroup: Path | None,
    ) -> None:
        self._root = root
        self._running_file = running_file
        self._lock_fd = lock_fd
        self._write_fd = write_fd
        self.proc = proc
        #: The cgroup the agent and its tasks are in, or None (process groups only).
        self.cgroup = cgroup
        self.closed = False

    @classmethod
    async def start(cls, *, root: Path, lock_fd: int, running_file: Path, use_cgroup: bool) -> Watchdog:
        """Make the cgroup (where allowed), start the watchdog (which shares the node root's lock,
        `lock_fd`, see `take_root_lock`), and enter the cgroup."""
        cgroup = await asyncio.to_thread(make_task_cgroup, root) if use_cgroup else None
        if cgroup is not None:
            try:
                enter_cgroup(cgroup, os.getpid())
            except OSError as e:
                log.info("cannot enter %s (%s): the watchdog falls back to process groups", cgroup, e)
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
                cgroup = None
        read_fd, write_fd = os.pipe()  # both close-on-exec: no task inherits the write end
        try:
            proc = _spawn(root, running_file, read_fd, lock_fd, cgroup)
        finally:
            os.close(read_fd)
        if cgroup is not None:
            _leave(cgroup, proc.pid)
        log.info(
            "watchdog %d ends this agent's tasks if it dies (%s)",
            proc.pid,
            f"cgroup {cgroup}" if cgroup else "by process group and environment",
        )
        return cls(root=root, running_file=running_file, lock_fd=lock_fd, write_fd=write_fd, proc=proc, cgroup=cgroup)

    def respawn(self) -> None:
        """Start a new watchdog after the last one died (the agent lives on, and so must the guard)."""
        if self.closed:
            return
        read_fd, write_fd = os.pipe()
        try:
            self.proc = _spawn(self._root, self._running_file, read_fd, self._lock_fd, self.cgroup)
        finally:
            os.close(read_fd)
        os.close(self._write_fd)
        self._write_fd = write_fd
        if self.cgroup is not None:
            _leave(self.cgroup, self.proc.pid)
        log.warning("the watchdog had gone: started watchdog %d", self.proc.pid)

    async def close(self, timeout: float = KILL_WAIT_SECONDS + 1.0) -> None:
        """The agent is done (its tasks killed): leave the cgroup, let the watchdog end leftovers and
        exit, and release the lock."""
        self.closed = True
        if self.cgroup is not None:
            try:
                enter_cgroup(self.cgroup.parent, os.getpid())
            except OSError as e:
                # Still inside: the watchdog would kill this process too. It goes when the process exits.
                log.warning("cannot leave %s (%s); the watchdog ends it when this process exits", self.cgroup, e)
                return
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)
        except TimeoutError:
            log.warning("the watchdog did not exit within %.0fs", timeout)


def _leave(cgroup: Path, pid: int) -> None:
    """Move the watchdog, born in the agent's cgroup, out of it: killing the cgroup must not kill it."""
    try:
        enter_cgroup(cgroup.parent, pid)
    except OSError as e:
        # It still kills every task (and itself with them); the next agent of the root removes the cgroup.
        log.warning("cannot move the watchdog out of %s: %s", cgroup, e)


def _spawn(root: Path, running_file: Path, read_fd: int, lock_fd: int, cgroup: Path | None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "shoal.nodeagent.watchdog", "--root", str(root), "--pipe-fd", str(read_fd)]
    argv += ["--running-file", str(running_file)]
    if cgroup is not None:
        argv += ["--cgroup", str(cgroup)]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        # It logs as the agent does (text or JSON lines).
        env={**os.environ, logs.FORMAT_ENV: logs.configured_format()},
        pass_fds=(read_fd, lock_fd),
        # Its own session: a signal to the agent's process group does not reach it.
        start_new_session=True,
    )


# ---- the watchdog process --------------------------------------------------------------------------


def watch(pipe_fd: int, root: str, running_file: Path, cgroup: Path | None) -> int:
    """Wait for EOF on `pipe_fd` (the agent is gone), then kill what it ran; returns how many processes."""
    while True:
        try:
            if not os.read(pipe_fd, 4096):
                break
        except InterruptedError:
            continue
    killed = kill_cgroup(cgroup) if cgroup is not None else kill_by_environment(root, running_file)
    return killed + kill_containers(Path(root))


def kill_containers(root: Path, timeout: float = 30.0) -> int:
    """Kill the running containers of the node root's tasks: they live in the engine's own cgroups, beyond
    the agent's, and outlive it. Only where the agent drove an engine (its configuration is there)."""
    conf = root / "volatile" / "containers" / "containers.conf"
    podman = shutil.which("podman")
    if not conf.is_file() or podman is None:
        return 0
    from shoal.nodeagent.containers import node_label  # (only here: the watchdog starts light)

    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    try:
        listed = subprocess.run(
            [podman, "ps", "--quiet", "--filter", f"label={node_label(root)}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        ids = listed.stdout.split() if listed.returncode == 0 else []
        if ids:
            subprocess.run(
                [podman, "kill", "--signal", "KILL", *ids], capture_output=True, env=env, timeout=timeout, check=False
            )
            # (Until the engine has seen them end: the next agent on this root starts after that.)
            subprocess.run([podman, "wait", *ids], capture_output=True, env=env, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("could not end the node's containers: %s", e)
        return 0
    return len(ids)


def main(argv: list[str] | None = None) -> int:
    """The watchdog process's entry point."""
    p = argparse.ArgumentParser(prog="python -m shoal.nodeagent.watchdog")
    p.add_argument("--root", required=True)
    p.add_argument("--pipe-fd", type=int, required=True)
    p.add_argument("--running-file", type=Path, required=True)
    p.add_argument("--cgroup", type=Path, default=None)
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        logs.configure(level="INFO")
    except logs.BadLogFormat:
        logs.configure("text", "INFO")  # (the agent checked it: this one must not die of it)
    killed = watch(args.pipe_fd, args.root, args.running_file, args.cgroup)
    if killed:
        log.warning("the agent of %s is gone: killed %d process(es) it left", args.root, killed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
