"""``shoal up --detach`` and ``shoal down``: a server and its local pool in the background.

``shoal up`` keeps the pid of its process in ``DATA_DIR/shoal-up.pid`` while it runs (in the foreground
or not); ``--detach`` starts the same ``shoal up`` as a child in a session of its own (no terminal, its
output in ``DATA_DIR/shoal-up.log``) and returns once the server answers with the local pool made.
``shoal down`` sends that process SIGTERM (the server then stops its local agents), waits for it to
exit, and ends whatever of its agents still runs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "LOG_FILE",
    "PID_FILE",
    "DaemonError",
    "Started",
    "Stopped",
    "forget",
    "remember",
    "running_pid",
    "start_detached",
    "stop",
]

PID_FILE = "shoal-up.pid"
LOG_FILE = "shoal-up.log"


class DaemonError(Exception):
    """What went wrong starting or stopping the background server, for people."""


def _is_ours(proc: psutil.Process, data_dir: Path) -> bool:
    """Whether ``proc`` is a ``shoal up`` of ``data_dir`` (a pid file can outlive its process, and the pid
    be used again by another)."""
    try:
        cmd = proc.cmdline()
        cwd = proc.cwd()
    except psutil.Error:
        return False
    if "up" not in cmd or "shoal" not in " ".join(cmd):
        return False
    # Its --data-dir, as given (relative to where it started, or absolute).
    given = [a.removeprefix("--data-dir=") for a in cmd if a.startswith("--data-dir=")]
    given += [b for a, b in itertools.pairwise(cmd) if a == "--data-dir"]
    return any((Path(cwd) / g).resolve() == data_dir for g in given)


def _gone(proc: psutil.Process) -> bool:
    """Whether ``proc`` has exited (a zombie has: whoever reaps it, not this process, may never)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for ``procs`` to exit; those still running."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if not _gone(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def running_pid(data_dir: Path) -> int | None:
    """The pid of the ``shoal up`` running on ``data_dir``, or None (a stale pid file is removed)."""
    data_dir = data_dir.resolve()
    path = data_dir / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        alive = not _gone(proc) and _is_ours(proc, data_dir)
    except psutil.Error:
        alive = False
    if not alive:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return pid


def remember(data_dir: Path, pid: int | None = None) -> None:
    """Write the pid file of a ``shoal up`` on ``data_dir`` (this process's, by default)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / PID_FILE).write_text(f"{pid or os.getpid()}\n")


def forget(data_dir: Path, pid: int | None = None) -> None:
    """Remove the pid file, if it is still ``pid``'s (this process's, by default)."""
    path = data_dir / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == (pid or os.getpid()):
            path.unlink()


@dataclass(frozen=True)
class Started:
    """A ``shoal up`` started in the background."""

    pid: int
    address: str
    log: Path


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _answers(data_dir: Path, pid: int, pool_id: str) -> str | None:
    """The server's address once ``pid``'s server answers on it and has made ``pool_id``; None until then."""
    try:
        info = json.loads((data_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("pid") != pid:
        return None  # (a file an earlier server left)
    from ._client import Client
    from .errors import ShoalError

    address = str(info["address"])
    try:
        with Client.connect(address, timeout=5) as client:
            client.pools.get(pool_id)
    except ShoalError:
        return None
    return address


def start_detached(up_args: Sequence[str], data_dir: Path, pool_id: str, *, timeout: float = 60.0) -> Started:
    """Start ``shoal up UP_ARGS`` (which name ``data_dir``) in the background, and return once its server
    answers with ``pool_id`` made. DaemonError (the child stopped) if it does not within ``timeout`` s."""
    data_dir = data_dir.resolve()
    pid = running_pid(data_dir)
    if pid is not None:
        raise DaemonError(
            f"shoal up is already running on {data_dir} (pid {pid}): `shoal down --data-dir {data_dir}` stops it"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / LOG_FILE
    with log.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "shoal.client.cli", "up", *up_args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: no terminal, so no SIGHUP when this one closes, and Ctrl-C here does not reach it.
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    remember(data_dir, child.pid)
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = child.poll()
            if code is not None:
                forget(data_dir, child.pid)
                raise DaemonError(f"shoal up exited with code {code}; the end of {log}:\n{_tail(log)}")
            address = _answers(data_dir, child.pid, pool_id)
            if address is not None:
                return Started(child.pid, address, log)
            if time.monotonic() > deadline:
                raise DaemonError(f"the server did not answer within {timeout:g}s; the end of {log}:\n{_tail(log)}")
            time.sleep(0.1)
    except BaseException:
        # Not started after all (a timeout, Ctrl-C): nothing is left running.
        if child.poll() is None:
            _stop_process(psutil.Process(child.pid), timeout=10)
            child.wait(timeout=10)
        forget(data_dir, child.pid)
        raise


@dataclass(frozen=True)
class Stopped:
    """What ``shoal down`` stopped."""

    pid: int
    """The ``shoal up`` process."""
    agents: int
    """Processes it had started (its agents and what they ran) that were still running when it was asked."""
    killed: bool
    """Whether it had to be killed (it did not exit within the timeout after SIGTERM)."""


def _stop_process(proc: psutil.Process, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; whether it had to be killed."""
    with contextlib.suppress(psutil.Error):
        proc.send_signal(signal.SIGTERM)
    if not _wait_gone([proc], timeout):
        return False
    with contextlib.suppress(psutil.Error):
        proc.kill()
    _wait_gone([proc], 10)
    return True


def stop(data_dir: Path, *, timeout: float = 30.0) -> Stopped | None:
    """Stop the ``shoal up`` running on ``data_dir`` and its local agents; None when none runs."""
    data_dir = data_dir.resolve()
    pid = running_pid(data_dir)
    if pid is None:
        return None
    proc = psutil.Process(pid)
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    killed = _stop_process(proc, timeout)
    # The server stops its agents as it stops (their tasks with them); whatever did not, goes now.
    alive = _wait_gone(children, 10 if not killed else 1)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    for p in _wait_gone(alive, 5):
        with contextlib.suppress(psutil.Error):
            p.kill()
    forget(data_dir, pid)
    return Stopped(pid=pid, agents=len(children), killed=killed)
