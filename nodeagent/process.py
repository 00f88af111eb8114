"""Launching a command as its own process group, waiting for it without blocking, killing its tree."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from shoal.clock import Clock
from shoal.commandline import split_command_line
from shoal.nodeagent.launcher import LAUNCHER, find_program
from shoal.nodeagent.usage import Usage, reap

log = logging.getLogger(__name__)

CODE_PROGRAM_NOT_FOUND = "CommandProgramNotFound"
CODE_LAUNCH_FAILED = "CommandLaunchFailed"


class LaunchError(Exception):
    """The command could not be started; `code` is the Batch failure code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def split_command(command_line: str) -> list[str]:
    """Split a command line as a POSIX shell would, without expanding anything (the rule the server checks
    each command line by when it is submitted: `shoal.commandline`)."""
    try:
        argv = split_command_line(command_line)
    except ValueError as e:
        raise LaunchError(CODE_LAUNCH_FAILED, f"cannot parse command line: {e}") from e
    if not argv:
        raise LaunchError(CODE_LAUNCH_FAILED, "the command line is empty")
    return argv


def exit_code_of(returncode: int) -> int:
    """A Popen return code as a shell reports it: killed by signal N gives 128+N."""
    return 128 - returncode if returncode < 0 else returncode


_devnull_fd: int | None = None


def _dev_null() -> int:
    """One /dev/null descriptor for every task's stdin (Popen's DEVNULL opens and closes one per process)."""
    global _devnull_fd
    if _devnull_fd is None:
        _devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull_fd


#: This process's user: a command to run as it needs no switch.
_EUID = os.geteuid()


def as_user(
    argv: list[str], user: tuple[int, int], env: Mapping[str, str], cwd: Path
) -> tuple[list[str], dict[str, Any]]:
    """`argv` to run as `user` (uid, gid): the argv to spawn and Popen's extra arguments (see `launcher`).
    Raises LaunchError when the program is not found."""
    if user[0] == _EUID:
        return argv, {}
    path = find_program(argv[0], env, cwd)
    if path is None:
        raise LaunchError(CODE_PROGRAM_NOT_FOUND, f"program not found: {argv[0]!r}")
    return LAUNCHER.wrap(user[0], user[1], path, argv)


def spawn(
    command_line: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    append: bool = False,
    user: tuple[int, int] | None = None,
    argv: list[str] | None = None,
    owner: tuple[int, int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command_line` (or `argv`, already split) without a shell in a new session (so its own process
    group), as `user` (uid, gid) when given.

    stdout and stderr go straight to the files (the user's, or `owner`'s for a process that runs as the
    agent for a user: a container's). Raises LaunchError.
    """
    argv = list(argv) if argv is not None else split_command(command_line)
    owner = user or owner
    extra: dict[str, Any] = {}
    if user is not None:
        argv, extra = as_user(argv, user, env, cwd)
    # O_NOFOLLOW: an earlier command of the task (a coordination command, a start task's last try)
    # may have put a symlink where the output goes; the agent never writes through one.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        out_fd = os.open(stdout, flags, 0o660)
    except OSError as e:
        raise LaunchError(CODE_LAUNCH_FAILED, f"cannot open {stdout.name}: {e.strerror or e}") from e
    try:
        try:
            err_fd = os.open(stderr, flags, 0o660)
        except OSError as e:
            raise LaunchError(CODE_LAUNCH_FAILED, f"cannot open {stderr.name}: {e.strerror or e}") from e
        try:
            if owner is not None:
                os.fchown(out_fd, *owner)
                os.fchown(err_fd, *owner)
            return subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=_dev_null(),
                stdout=out_fd,
                stderr=err_fd,
                start_new_session=True,
                close_fds=True,
                **extra,
            )
        except FileNotFoundError as e:
            raise LaunchError(CODE_PROGRAM_NOT_FOUND, f"program not found: {argv[0]!r}") from e
        except OSError as e:
            raise LaunchError(CODE_LAUNCH_FAILED, f"cannot start {argv[0]!r}: {e.strerror or e}") from e
        finally:
            os.close(err_fd)
    finally:
        os.close(out_fd)


async def wait_process(proc: subprocess.Popen[bytes]) -> int:
    """Wait for `proc` to exit without blocking the event loop; returns its Popen return code.

    Uses a pidfd watched by the event loop where available, else a thread.
    """
    rc = proc.poll()
    if rc is not None:
        return rc
    if not await _exited(proc):
        return await asyncio.to_thread(proc.wait)
    return proc.wait()


async def wait_measured(proc: subprocess.Popen[bytes], started: float) -> tuple[int, Usage]:
    """`wait_process`, and what the process and the descendants it waited for used (`usage.reap`);
    `started`: `time.monotonic()` when it was spawned."""
    if proc.returncode is None and not await _exited(proc):
        return await asyncio.to_thread(reap, proc, started)
    return reap(proc, started)


async def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Wait until `proc` has exited (a zombie: the caller reaps it); False at once where there are no
    pidfds (the caller then waits in a thread)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return False
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def _ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, _ready)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return True


def _live_members(pgid: int) -> bool | None:
    """Whether /proc shows a member of `pgid` that is not a zombie; None when /proc cannot tell."""
    try:
        pids = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces): state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def group_alive(pgid: int) -> bool:
    """True while a process that is not a zombie is left in process group `pgid`.

    Zombies are ignored: killed members reparented to init are reaped by it at its own pace.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    live = _live_members(pgid)
    return True if live is None else live


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("no permission to signal process group %d", pgid)
        return False
    return True


def group_tree(pgid: int) -> list[psutil.Process]:
    """Every process in group `pgid` and every descendant of one, even one that left the group.

    MPI proxies put each rank in a session of its own (setsid), so a rank is not in
    its proxy's group; it is still the proxy's child, and must die with the task.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []  # the common case after a task exits: nothing left, no scan needed
    except PermissionError:
        pass
    members = []
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(p.pid) == pgid:
                members.append(p)
    seen = {p.pid: p for p in members}
    for p in members:
        with contextlib.suppress(psutil.Error):
            for c in p.children(recursive=True):
                seen.setdefault(c.pid, c)
    return list(seen.values())


def _signal_tree(pgid: int, procs: list[psutil.Process], sig: int) -> None:
    signal_group(pgid, sig)
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError):
            p.send_signal(sig)


def _tree_alive(pgid: int, procs: list[psutil.Process]) -> bool:
    if group_alive(pgid):
        return True
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


async def kill_group(pgid: int, grace_seconds: float = 2.0) -> None:
    """SIGTERM the whole process group (and its members' descendants), then SIGKILL what is left.

    The grace is real time (it is about the OS, not policy), polled every 20 ms.
    """
    procs = group_tree(pgid)
    if not signal_group(pgid, signal.SIGTERM) and not procs:
        return
    _signal_tree(pgid, procs, signal.SIGTERM)
    # Wake up stopped processes so that they see SIGTERM.
    _signal_tree(pgid, procs, signal.SIGCONT)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not _tree_alive(pgid, procs):
            return
        await asyncio.sleep(0.02)
    _signal_tree(pgid, procs, signal.SIGKILL)


def kill_group_now(pgid: int) -> None:
    """SIGKILL a whole process group, and its members' descendants, at once (shutdown, orphans)."""
    with contextlib.suppress(Exception):
        _signal_tree(pgid, group_tree(pgid), signal.SIGKILL)


@dataclass
class ProcessResult:
    """How a process ended."""

    returncode: int
    timed_out: bool
    #: The process group it led.
    pgid: int = 0
    #: What it (and the descendants it waited for) used: see `shoal.nodeagent.usage`.
    usage: Usage | None = None

    @property
    def exit_code(self) -> int:
        """The exit code as a shell reports it."""
        return exit_code_of(self.returncode)


async def wait_with_limit(
    proc: subprocess.Popen[bytes],
    *,
    clock: Clock,
    max_wall_clock_seconds: float = 0.0,
    grace_seconds: float = 2.0,
    kill_leftovers: bool = True,
    started: float | None = None,
) -> ProcessResult:
    """Wait for `proc`; past `max_wall_clock_seconds` (on `clock`; 0 = unlimited) kill its whole group.

    With `kill_leftovers`, processes still in the group after the leader exited are killed too.
    The result carries what the process used (`started`: `time.monotonic()` at its spawn; now if not
    given).
    """
    pgid = proc.pid
    timed_out = False
    started = time.monotonic() if started is None else started
    if max_wall_clock_seconds > 0:
        waiter = asyncio.ensure_future(wait_measured(proc, started))
        timer = asyncio.ensure_future(clock.sleep(max_wall_clock_seconds))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not waiter.done():
            timed_out = True
            log.info("process group %d exceeded its wall clock limit of %ss", pgid, max_wall_clock_seconds)
            await kill_group(pgid, grace_seconds)
        try:
            rc, usage = await waiter
        except asyncio.CancelledError:
            waiter.cancel()
            raise
    else:
        # No limit: no task and no timer of its own (one less of each per task on a busy node).
        rc, usage = await wait_measured(proc, started)
    if kill_leftovers:
        # Whatever the task left running in its group (and below it) goes with it.
        kill_group_now(pgid)
    return ProcessResult(returncode=rc, timed_out=timed_out, pgid=pgid, usage=usage)
