"""What a task attempt's processes used: CPU time, peak memory, I/O, wall time (`TaskEvent.stats`).

Two sources, and what each gives exactly:

- **At the end of each command the agent waits for** (`reap`): when the process has exited (a zombie,
  not reaped yet) the agent reads its ``/proc/<pid>/io``, then reaps it with ``os.wait4``. The kernel
  has folded into both every descendant that was itself waited for (a shell's children, a ``make``'s
  jobs, ``mpiexec``'s local processes): so the user and kernel CPU time (``ru_utime``, ``ru_stime``),
  the bytes read and written (``rchar``, ``wchar``: every byte through read/write system calls, files
  and pipes alike, cached or not, as Slurm's sacct counts them) and the read and write calls
  (``syscr``, ``syscw``) are **exact** for that tree. A descendant that escaped it (daemonized, so
  reaped by init; or still alive when the task was killed) is not in them.
- **Sampled** (`UsageSampler`): every `AgentConfig.usage_sample_seconds`, one pass over ``/proc`` for
  all running attempts at once (nothing per task): the resident memory of each attempt's whole tree
  (its process groups and every descendant, also those in sessions of their own, such as MPI ranks)
  summed at that moment. The peak memory reported is the larger of that sampled peak and
  ``ru_maxrss`` (exact, but the largest single process of the waited tree, not a sum). A task shorter
  than one period has only ``ru_maxrss``. The trees of commands Exec'd into an attempt (MPI proxies
  started through ``shoal-mpi-launch``), which the agent does not reap itself, get their CPU and I/O
  from the last sample before they ended (up to one period short).

Wall time runs from each command's start to its end (summed over the attempt's commands: a
multi-instance task's coordination and application commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shoal.v1 import common_pb2

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: ru_maxrss is in KiB on Linux.
_MAXRSS_UNIT = 1024


@dataclass
class Usage:
    """What one or more processes used (see the module docstring for what is exact and what sampled)."""

    wall_seconds: float = 0.0
    user_seconds: float = 0.0
    kernel_seconds: float = 0.0
    peak_memory_bytes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    read_ops: int = 0
    write_ops: int = 0

    def add(self, other: Usage) -> None:
        """Fold in another command's usage: sums, and the larger peak."""
        self.wall_seconds += other.wall_seconds
        self.user_seconds += other.user_seconds
        self.kernel_seconds += other.kernel_seconds
        self.peak_memory_bytes = max(self.peak_memory_bytes, other.peak_memory_bytes)
        self.read_bytes += other.read_bytes
        self.write_bytes += other.write_bytes
        self.read_ops += other.read_ops
        self.write_ops += other.write_ops

    def to_proto(self) -> common_pb2.TaskStatistics:
        """As reported in `TaskEvent.stats`."""
        return common_pb2.TaskStatistics(
            wall_clock_seconds=self.wall_seconds,
            user_cpu_seconds=self.user_seconds,
            kernel_cpu_seconds=self.kernel_seconds,
            peak_memory_bytes=self.peak_memory_bytes,
            read_bytes=self.read_bytes,
            write_bytes=self.write_bytes,
            read_ops=self.read_ops,
            write_ops=self.write_ops,
        )


def _read_io(pid: int) -> dict[str, int]:
    """``/proc/<pid>/io`` as numbers ({} when it cannot be read: gone, or not ours to read)."""
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            text = f.read()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(b":")
        with contextlib.suppress(ValueError):
            out[name.decode()] = int(value)
    return out


def _exit_usage(pid: int, rusage: object, io: dict[str, int], wall: float) -> Usage:
    return Usage(
        wall_seconds=wall,
        user_seconds=float(getattr(rusage, "ru_utime", 0.0)),
        kernel_seconds=float(getattr(rusage, "ru_stime", 0.0)),
        peak_memory_bytes=int(getattr(rusage, "ru_maxrss", 0)) * _MAXRSS_UNIT,
        read_bytes=io.get("rchar", 0),
        write_bytes=io.get("wchar", 0),
        read_ops=io.get("syscr", 0),
        write_ops=io.get("syscw", 0),
    )


def reap(proc: subprocess.Popen[bytes], started: float) -> tuple[int, Usage]:
    """Reap `proc`, which has exited (or is about to), with its usage; returns its Popen return code.

    `started`: `time.monotonic()` when it was spawned. Blocks until it exits.
    """
    if proc.returncode is not None:
        # Reaped elsewhere already (Popen.poll): nothing exact is left to read.
        return proc.returncode, Usage(wall_seconds=time.monotonic() - started)
    io = _read_io(proc.pid)  # (a zombie still has its counters, its waited descendants' folded in)
    try:
        _pid, status, rusage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        # Someone else reaped it (a stray waitpid): Popen knows the code, or it is lost.
        proc.wait()
        return proc.returncode if proc.returncode is not None else -1, Usage(wall_seconds=time.monotonic() - started)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, _exit_usage(proc.pid, rusage, io, time.monotonic() - started)


# ---- sampling ------------------------------------------------------------------------------------


@dataclass
class _Stat:
    ppid: int
    pgrp: int
    rss: int
    #: Its own CPU and that of the children it reaped, in seconds.
    cpu_user: float
    cpu_kernel: float


def _read_stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # After the command name (which may hold spaces and parentheses): state ppid pgrp ...
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        if fields[0] in (b"Z", b"X"):
            return None
        ticks = float(_TICKS)
        return _Stat(
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            rss=int(fields[21]) * _PAGE,
            cpu_user=(int(fields[11]) + int(fields[13])) / ticks,
            cpu_kernel=(int(fields[12]) + int(fields[14])) / ticks,
        )
    except (IndexError, ValueError):
        return None


class Tracked:
    """One attempt (or one instance) as the sampler follows it."""

    __slots__ = ("exec_usage", "groups", "peak", "unreaped")

    def __init__(self, groups: Callable[[], Iterable[int]], unreaped: Callable[[], Iterable[int]]) -> None:
        #: The process groups of the attempt now (its command's, its Exec'd commands').
        self.groups = groups
        #: Those of its groups whose leader the agent does not reap itself (Exec'd commands).
        self.unreaped = unreaped
        #: The largest resident memory of its whole tree seen at one sample, in bytes.
        self.peak = 0
        #: Per unreaped group: its tree's CPU and I/O at the last sample (see `take_exec_usage`).
        self.exec_usage: dict[int, Usage] = {}

    def take_exec_usage(self, pgid: int) -> Usage | None:
        """What the Exec'd group `pgid` had used at the last sample (it has ended), once."""
        return self.exec_usage.pop(pgid, None)


class UsageSampler:
    """Samples every tracked attempt's process tree in one pass over /proc, every `interval` seconds.

    Runs only while something is tracked; per attempt it costs a dictionary entry.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._tracked: dict[object, Tracked] = {}
        self._wake = asyncio.Event()

    def track(self, key: object, tracked: Tracked) -> None:
        """Follow `tracked` until `untrack(key)`."""
        self._tracked[key] = tracked
        if len(self._tracked) == 1:
            self._wake.set()

    def untrack(self, key: object) -> Tracked | None:
        """Stop following `key`; what was sampled of it."""
        return self._tracked.pop(key, None)

    async def run(self) -> None:
        """Sample for ever (a task of the agent's)."""
        if self.interval <= 0:
            return
        while True:
            if not self._tracked:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self.interval)
            try:
                self.sample()
            except Exception:
                log.exception("sampling the tasks' processes failed")

    def sample(self) -> None:
        """One pass: every process on the machine, attributed to the attempt whose tree it is in."""
        if not self._tracked:
            return
        owner: dict[int, Tracked] = {}
        exec_of: dict[int, tuple[Tracked, int]] = {}
        for t in self._tracked.values():
            for g in t.groups():
                owner[g] = t
            for g in t.unreaped():
                exec_of[g] = (t, g)
        stats: dict[int, _Stat] = {}
        for entry in os.scandir("/proc"):
            name = entry.name
            if name.isdigit():
                s = _read_stat(int(name))
                if s is not None:
                    stats[int(name)] = s
        # Each process's attempt: by its group, else its nearest ancestor's (a rank in its own session).
        memo: dict[int, int] = {}  # pid -> the tracked group it belongs to (0: none)

        def group_of(pid: int) -> int:
            chain = []
            g = 0
            while pid > 1:
                if pid in memo:
                    g = memo[pid]
                    break
                s = stats.get(pid)
                if s is None:
                    break
                chain.append(pid)
                if s.pgrp in owner:
                    g = s.pgrp
                    break
                pid = s.ppid
            for p in chain:
                memo[p] = g
            return g

        rss: dict[int, int] = {}
        exec_now: dict[tuple[int, int], Usage] = {}
        for pid, s in stats.items():
            g = group_of(pid)
            if not g:
                continue
            t = owner[g]
            rss[id(t)] = rss.get(id(t), 0) + s.rss
            if g in exec_of:
                u = exec_now.setdefault((id(t), g), Usage())
                u.user_seconds += s.cpu_user
                u.kernel_seconds += s.cpu_kernel
                io = _read_io(pid)
                u.read_bytes += io.get("rchar", 0)
                u.write_bytes += io.get("wchar", 0)
                u.read_ops += io.get("syscr", 0)
                u.write_ops += io.get("syscw", 0)
                u.peak_memory_bytes += s.rss
        for t in self._tracked.values():
            t.peak = max(t.peak, rss.get(id(t), 0))
        for (_tid, g), u in exec_now.items():
            exec_of[g][0].exec_usage[g] = u
