"""NodeService.ExecNode: a command, or an interactive shell, on this node (`shoal node exec`, `shoal node shell`).

The control plane relays its caller's stream here once it has checked that the caller may (the pool's
account) and that the first request is `start`; the agent serves it to the server's certificate alone.

Where the command runs: in the node root (SHOAL_NODE_ROOT_DIR, where Batch's node files live), with the
node-level variables every task has (SHOAL_NODE_ROOT_DIR, SHOAL_NODE_SHARED_DIR, SHOAL_NODE_ID,
SHOAL_POOL_ID, ... and their AZ_BATCH_ names), the agent's basic variables (PATH, LANG, ...), the user's
HOME, USER, LOGNAME and SHELL, and the request's environment; the node's own variables win, as for tasks.
An empty argv runs the user's login shell (from the password database; /bin/sh when it has none that runs).

As whom: an agent running as root with task users (`NodeUsers.isolation`) runs the command as the pool's
non-admin auto user (who a task of the default identity runs as), and as root only with `elevated` (root is
Shoal's admin auto user, see `shoal.nodeagent.users`). An agent that cannot switch users (not root, or
started with --no-task-users) runs every command as its own user, `elevated` or not, as it runs every task.

With `tty`: a pseudo-terminal whose slave is the command's stdin, stdout, stderr and controlling terminal
(util-linux `setsid --ctty`; where it is missing, setsid and TIOCSCTTY in the child). Its window size is
`size`, changed by `resize` (TIOCSWINSZ: the kernel sends SIGWINCH to the foreground process group).
Input bytes are written to the master, so Ctrl-C (0x03) is the terminal's to turn into SIGINT; output
comes back as stdout. Without: three pipes, stdout and stderr apart; `stdin_eof`, or the end of the
requests, closes stdin.

Bounds: the command leads a process group of its own, recorded in the agent's running file (a restarted
agent kills what an agent that died left there, and the watchdog kills it meanwhile: its environment
names the node root). The group, with whatever the command left in the background, is killed when the
command exits, when the call ends or is cancelled (the caller went away), and when the agent stops.
At most `MAX_SESSIONS` commands run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import os
import pwd
import shutil
import signal
import struct
import subprocess
import termios
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from shoal import agenterrors
from shoal.nodeagent.envvars import basic_env, node_vars, with_batch_names
from shoal.nodeagent.fileservice import abort, require_server
from shoal.nodeagent.launcher import find_program
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.process import as_user, exit_code_of, kill_group_now, signal_group
from shoal.nodeagent.state import RunningFile
from shoal.nodeagent.users import ROOT, IdentityError, NodeUsers, RunAs
from shoal.v1 import pool_pb2

log = logging.getLogger(__name__)

#: Commands and shells running at once on one node.
MAX_SESSIONS = 32
READ_SIZE = 64 * 1024
#: What is read of a command's outputs after it exited (its background processes are killed by then).
DRAIN_MAX_BYTES = 4 * 1024 * 1024
#: The running file's key of a command's process group: `nodeexec/<pgid>` (never an attempt's key).
RUNNING_KEY_PREFIX = "nodeexec/"
#: TERM under a tty when the request names none.
DEFAULT_TERM = "xterm-256color"
FALLBACK_SHELL = "/bin/sh"
#: How long a killed command may take to be reaped.
REAP_SECONDS = 5.0
#: Where util-linux' setsid is looked for (not the task's PATH: the agent runs it).
_SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"

NodeIdentity = Callable[[], tuple[str, str]]


class NodeExec:
    """Runs ExecNode calls (see the module's docstring); `serve` is the body of NodeService.ExecNode."""

    def __init__(
        self,
        *,
        layout: NodeLayout,
        users: NodeUsers,
        running_file: RunningFile | None,
        identity: NodeIdentity,
        source_env: Mapping[str, str] | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._layout = layout
        self._users = users
        self._running_file = running_file
        #: (node id, pool id), as the agent knows them now.
        self._identity = identity
        self._source_env = dict(os.environ) if source_env is None else dict(source_env)
        self.max_sessions = max_sessions
        #: Process groups of the commands running now.
        self.sessions: set[int] = set()

    async def serve(
        self, requests: AsyncIterator[pool_pb2.ExecNodeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pool_pb2.ExecNodeResponse]:
        """Start the command of the first request (`start`), relay the later ones to it, stream its output
        and end with its exit."""
        await require_server(context)
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("body") != "start":
            message = "the first request must be start"
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, agenterrors.INVALID_EXEC_REQUEST, message)
        assert first is not None
        start = first.start
        if len(self.sessions) >= self.max_sessions:
            message = f"the node runs {self.max_sessions} commands already"
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, agenterrors.TOO_MANY_EXEC_SESSIONS, message)
        try:
            run_as = await self._run_as(start.elevated)
        except IdentityError as e:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, agenterrors.EXEC_USER_UNAVAILABLE, e.message)
        uid = run_as.uid if run_as is not None else os.geteuid()
        shell = login_shell(uid)
        argv = list(start.argv) or [shell]
        env = self._env(start, run_as, shell)
        try:
            proc = launch(argv, env=env, cwd=str(self._layout.root), run_as=run_as, tty=start.tty, size=start.size)
        except ValueError as e:  # a NUL byte in an argument or a variable
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, agenterrors.INVALID_EXEC_REQUEST, str(e))
        except CannotRun as e:
            yield pool_pb2.ExecNodeResponse(stderr=f"shoal: {e}\n".encode())
            yield pool_pb2.ExecNodeResponse(exit=pool_pb2.ExecNodeExit(exit_code=e.exit_code))
            return
        key = f"{RUNNING_KEY_PREFIX}{proc.pgid}"
        self.sessions.add(proc.pgid)
        if self._running_file is not None:
            self._running_file.add(key, proc.pgid)
        who = run_as.name if run_as is not None else "the agent's user"
        log.info("exec on the node as %s%s: %s (pgid %d)", who, " with a tty" if start.tty else "", argv, proc.pgid)
        pump = asyncio.create_task(_pump(requests, proc))
        try:
            async for response in _relay_output(proc):
                yield response
        finally:
            pump.cancel()
            await asyncio.wait([pump])
            await proc.end()
            self.sessions.discard(proc.pgid)
            if self._running_file is not None:
                self._running_file.remove(key)

    async def _run_as(self, elevated: bool) -> RunAs | None:
        """Who the command runs as; None: the agent's own user (no task users on this node)."""
        if not self._users.isolation:
            return None
        if elevated:
            return ROOT
        return await self._users.acquire(None, "nodeexec")

    def _env(self, start: pool_pb2.ExecNodeStart, run_as: RunAs | None, shell: str) -> dict[str, str]:
        node_id, pool_id = self._identity()
        env = basic_env(self._source_env)
        env.pop("TERM", None)  # the agent's terminal is not the caller's
        if run_as is not None:
            env.update(run_as.env)
        env["SHELL"] = shell
        for s in start.environment:
            if s.name and "=" not in s.name:
                env[s.name] = s.value
        env.update(with_batch_names(node_vars(self._layout, node_id, pool_id)))
        if start.tty:
            env.setdefault("TERM", DEFAULT_TERM)
        return env


def login_shell(uid: int) -> str:
    """The login shell of `uid` from the password database, or /bin/sh (none, or one that does not run)."""
    try:
        shell = pwd.getpwuid(uid).pw_shell
    except KeyError:
        return FALLBACK_SHELL
    if not shell or os.path.basename(shell) in ("nologin", "false") or not os.access(shell, os.X_OK):
        return FALLBACK_SHELL
    return shell


class CannotRun(Exception):
    """The command cannot be started (as a shell says: 127 not found, 126 cannot run)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def set_window_size(fd: int, size: pool_pb2.TerminalSize) -> None:
    """The terminal's rows and columns (0 leaves it unset); the foreground process group gets SIGWINCH."""
    rows, columns = min(size.rows, 0xFFFF), min(size.columns, 0xFFFF)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _ctty_prefix() -> list[str]:
    """`setsid --ctty` (a new session whose controlling terminal is stdin), or [] where it is missing."""
    found = shutil.which("setsid", path=_SYSTEM_PATH)
    return [found, "--ctty"] if found else []


@functools.cache
def _default_signals_prefix() -> list[str]:
    """`env --default-signal=INT,QUIT --` (coreutils 8.31 and later), or [] where it is missing: the default
    dispositions of the signals a terminal sends, for an agent started with them ignored (a shell's
    background job is), which would otherwise hand that on and make Ctrl-C and Ctrl-\\ do nothing. (Not
    a preexec function: the agent has threads, and Python's signal calls belong to the main thread.)"""
    found = shutil.which("env", path=_SYSTEM_PATH)
    if found is None:
        return []
    try:
        subprocess.run([found, "--default-signal=INT,QUIT", "--", "true"], check=True, capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    return [found, "--default-signal=INT,QUIT", "--"]


def _take_ctty() -> None:  # pragma: no cover - runs in the child, only where setsid(1) is missing
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class Process:
    """A command started by `launch`: the process, its group, and the agent's ends of its stdio."""

    popen: subprocess.Popen[bytes]
    pgid: int
    #: The pseudo-terminal's master (tty), else None.
    master: int | None
    #: The write end of its stdin pipe (no tty); None once closed.
    stdin: int | None
    #: The read ends of its outputs, each with whether it is stderr.
    outputs: list[tuple[int, bool]] = field(default_factory=list)
    _closed: bool = False

    @property
    def input_fd(self) -> int | None:
        """Where input bytes go: the master, or the stdin pipe."""
        return self.master if self.master is not None else self.stdin

    def close_stdin(self) -> None:
        """No more input: the stdin pipe is closed; under a tty the terminal's end-of-file character (^D)
        is typed (which ends the input of a program reading lines)."""
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")
        elif self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def send_signal(self, sig: int) -> None:
        """`sig` to the command's process group, and under a tty to the terminal's foreground process group
        too (a job the shell runs), as Ctrl-C would reach it."""
        if not 0 < sig < signal.NSIG:
            return
        signal_group(self.pgid, sig)
        if self.master is not None:
            with contextlib.suppress(OSError):
                foreground = os.tcgetpgrp(self.master)
                if foreground > 1 and foreground != self.pgid:
                    signal_group(foreground, sig)

    async def end(self) -> None:
        """Kill what is left of the process group, close the agent's ends, reap the command."""
        if self._closed:
            return
        self._closed = True
        kill_group_now(self.pgid)
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)  # not yet in a group of its own (setsid to come)
        fds = [fd for fd, _ in self.outputs]
        if self.master is None and self.stdin is not None:
            fds.append(self.stdin)
        for fd in set(fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin = None
        if self.popen.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                await asyncio.wait_for(asyncio.to_thread(self.popen.wait, REAP_SECONDS), REAP_SECONDS + 1)


def launch(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    run_as: RunAs | None,
    tty: bool,
    size: pool_pb2.TerminalSize,
) -> Process:
    """Start `argv` as `run_as` (None: as the agent) in a session and process group of its own.

    Raises CannotRun (program not found), ValueError (a NUL byte), OSError.
    """
    cmd: list[str] = list(argv)
    extra: dict[str, Any] = {}
    if find_program(argv[0], env, Path(cwd)) is None:
        raise CannotRun(f"{argv[0]}: command not found", 127)
    if run_as is not None:
        cmd, extra = as_user(cmd, (run_as.uid, run_as.gid), env, Path(cwd))
    cmd = _default_signals_prefix() + cmd
    if tty:
        return _launch_tty(cmd, extra, env=env, cwd=cwd, run_as=run_as, size=size)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        popen = subprocess.Popen(
            cmd,
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            cwd=cwd,
            env=env,
            start_new_session=True,
            **extra,
        )
    except BaseException:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    for fd in (in_w, out_r, err_r):
        os.set_blocking(fd, False)
    return Process(popen, popen.pid, None, in_w, [(out_r, False), (err_r, True)])


def _launch_tty(
    cmd: list[str],
    extra: dict[str, Any],
    *,
    env: dict[str, str],
    cwd: str,
    run_as: RunAs | None,
    size: pool_pb2.TerminalSize,
) -> Process:
    master, slave = os.openpty()
    try:
        set_window_size(master, size)
        if run_as is not None and not run_as.is_root:
            os.fchown(slave, run_as.uid, run_as.gid)  # the user's terminal, as login(1) makes it
        prefix = _ctty_prefix()
        popen = subprocess.Popen(
            prefix + cmd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            # setsid(1) makes the session (it forks first if it leads a group: it must not lead one).
            start_new_session=not prefix,
            preexec_fn=None if prefix else _take_ctty,
            **extra,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    return Process(popen, popen.pid, master, None, [(master, False)])


def _read(fd: int) -> bytes | None:
    """What `fd` has now: bytes, b'' at its end (EIO: a terminal nobody holds any more), None: nothing yet."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _when_ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool = False) -> asyncio.Future[None]:
    """A future done once `fd` is readable (or writable). The watch ends when it fires; whoever gives up
    waiting ends it with `_unwatch` (at once: the descriptor may be closed and its number reused next)."""
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        _unwatch(loop, fd, write=write)
        if not fut.done():
            fut.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, ready)
    return fut


def _unwatch(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool = False) -> None:
    (loop.remove_writer if write else loop.remove_reader)(fd)


async def _exited(pid: int) -> None:
    """Return once process `pid` has exited, without reaping it (so its pid, the group's id, stays its own)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            await asyncio.sleep(0.05)
        return
    loop = asyncio.get_running_loop()
    try:
        await _when_ready(loop, pidfd)
    finally:
        _unwatch(loop, pidfd)
        os.close(pidfd)


def _output(data: bytes, is_err: bool) -> pool_pb2.ExecNodeResponse:
    return pool_pb2.ExecNodeResponse(stderr=data) if is_err else pool_pb2.ExecNodeResponse(stdout=data)


async def _relay_output(proc: Process) -> AsyncIterator[pool_pb2.ExecNodeResponse]:
    """The command's output as it comes (read only as fast as the caller takes it), then its exit."""
    loop = asyncio.get_running_loop()
    exited = asyncio.ensure_future(_exited(proc.popen.pid))
    open_fds = dict(proc.outputs)
    waiting: dict[int, asyncio.Future[None]] = {}
    try:
        while open_fds and not exited.done():
            for fd in open_fds:
                if fd not in waiting:
                    waiting[fd] = _when_ready(loop, fd)
            await asyncio.wait([exited, *waiting.values()], return_when=asyncio.FIRST_COMPLETED)
            for fd in [fd for fd, fut in waiting.items() if fut.done()]:
                del waiting[fd]
                data = _read(fd)
                if data is None:
                    continue
                if not data:
                    del open_fds[fd]
                    continue
                yield _output(data, open_fds[fd])
        await exited
        # The command is gone (not reaped yet: its group id cannot be reused): what it left in the
        # background goes too, then what it wrote before it ended is passed on.
        kill_group_now(proc.pgid)
        for fd, is_err in open_fds.items():
            drained = 0
            while drained < DRAIN_MAX_BYTES and (data := _read(fd)):
                drained += len(data)
                yield _output(data, is_err)
        returncode = proc.popen.wait()  # (it has exited: no wait)
    finally:
        for fd, fut in waiting.items():
            _unwatch(loop, fd)
            fut.cancel()
        exited.cancel()
    sig = -returncode if returncode < 0 else 0
    yield pool_pb2.ExecNodeResponse(exit=pool_pb2.ExecNodeExit(exit_code=exit_code_of(returncode), signal=sig))


async def _write(fd: int, data: bytes) -> bool:
    """All of `data` to `fd` (waiting while it is full); False once the command closed its end."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            try:
                await _when_ready(loop, fd, write=True)
            finally:
                _unwatch(loop, fd, write=True)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.EIO, errno.EBADF):
                log.warning("cannot write to an exec'd command: %s", e)
            return False
    return True


async def _pump(requests: AsyncIterator[pool_pb2.ExecNodeRequest], proc: Process) -> None:
    """The caller's later requests, to the command: input, its end, window sizes and signals."""
    accepting = True
    try:
        async for req in requests:
            body = req.WhichOneof("body")
            if body == "stdin" and accepting:
                fd = proc.input_fd
                if fd is not None:
                    accepting = await _write(fd, req.stdin)
            elif body == "stdin_eof":
                proc.close_stdin()
            elif body == "resize" and proc.master is not None:
                with contextlib.suppress(OSError):
                    set_window_size(proc.master, req.resize)
            elif body == "signal":
                proc.send_signal(req.signal)
    except (grpc.aio.AioRpcError, grpc.RpcError, OSError):
        return
    # The caller sends nothing more: a command reading pipes sees the end of its input.
    if proc.master is None and proc.stdin is not None:
        proc.close_stdin()
