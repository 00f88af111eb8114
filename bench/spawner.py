"""The multi-process raw ceiling of the throughput bench: several processes spawning at once.

One Python process spawning with threads (`subprocess.Popen`, the throughput bench's first ceiling)
is held back by the interpreter: on a 2-core machine several processes, each spawning with
`os.posix_spawn` and reaping with `os.waitpid`, start 2-3 times more processes per second. This
module is both sides of that measurement:

- `multi_raw_run` (the bench) starts `procs` workers, waits until each is ready (the interpreter's
  start is not timed), tells them all to go at once and times them until the last one is done;
- `python -m bench.spawner` (a worker) spawns its share of the tasks, `parallel` in flight, each
  with stdout/stderr to a file pair of its own and stdin from /dev/null, as the Popen ceiling does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO

#: The configurations a ceiling is the best of: (processes, tasks in flight in each).
DEFAULT_SPAWNERS: tuple[tuple[int, int], ...] = ((2, 2), (4, 1))


@dataclass(frozen=True)
class MultiRawRun:
    """The best of several multi-process spawning runs of the same tasks."""

    #: Wall seconds of the best run (from "go" to the last worker done).
    seconds: float
    #: Its configuration: (processes, in flight in each).
    procs: int
    parallel: int
    #: Every configuration tried: ((processes, in flight), tasks per second).
    tried: tuple[tuple[tuple[int, int], float], ...]


def parse_spawners(text: str) -> tuple[tuple[int, int], ...]:
    """`"2x2,4x1"` -> ((2, 2), (4, 1))."""
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        procs, _, parallel = part.strip().partition("x")
        out.append((int(procs), int(parallel or "1")))
    return tuple(out)


def spawn_all(argv: Sequence[str], indices: Sequence[int], parallel: int, workdir: Path) -> int:
    """Run `argv` once per index, `parallel` at a time; the number that failed."""
    exe = shutil.which(argv[0]) or argv[0]
    env = dict(os.environ)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    running = 0
    failed = 0
    it = iter(indices)
    more = True
    while more or running:
        while more and running < parallel:
            i = next(it, None)
            if i is None:
                more = False
                break
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(workdir / f"{i}.out"), flags, 0o644),
                (os.POSIX_SPAWN_OPEN, 2, str(workdir / f"{i}.err"), flags, 0o644),
            ]
            os.posix_spawn(exe, list(argv), env, file_actions=actions)
            running += 1
        if running:
            _, status = os.waitpid(-1, 0)
            running -= 1
            failed += os.waitstatus_to_exitcode(status) != 0
    return failed


def multi_raw_run(
    command: str, n: int, workdir: Path, spawners: Sequence[tuple[int, int]] = DEFAULT_SPAWNERS
) -> MultiRawRun:
    """The `n` commands spawned by each configuration of `spawners` in turn; the fastest run."""
    tried: list[tuple[tuple[int, int], float]] = []
    best: tuple[float, int, int] | None = None
    for k, (procs, parallel) in enumerate(spawners):
        seconds = _one_run(command, n, procs, parallel, workdir / f"mp{k}")
        tried.append(((procs, parallel), n / seconds))
        if best is None or seconds < best[0]:
            best = (seconds, procs, parallel)
    assert best is not None
    return MultiRawRun(best[0], best[1], best[2], tuple(tried))


def _one_run(command: str, n: int, procs: int, parallel: int, workdir: Path) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    workers = []
    for w in range(procs):
        share = ",".join(map(str, range(w, n, procs)))
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.spawner", str(parallel), str(workdir), command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=REPO,
                text=True,
            )
        )
        assert workers[-1].stdin is not None
        workers[-1].stdin.write(share + "\n")
        workers[-1].stdin.flush()
    try:
        for p in workers:  # each one warmed up and waiting for "go"
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a spawner did not start")
        t0 = time.monotonic()
        for p in workers:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        failed = 0
        for p in workers:
            assert p.stdout is not None
            line = p.stdout.readline().split()
            if not line or line[0] != "done":
                raise RuntimeError("a spawner failed")
            failed += int(line[1])
        seconds = time.monotonic() - t0
    finally:
        for p in workers:
            if p.poll() is None:
                p.kill()
            p.wait()
    if failed:
        raise RuntimeError(f"raw multi-process spawn: {failed} of {n} failed")
    return seconds


def main() -> int:
    """Worker: `python -m bench.spawner PARALLEL WORKDIR COMMAND`, its task indices on the first line of stdin,
    then "go"; prints "ready" when warmed up and "done FAILED" when its tasks have all exited."""
    parallel, workdir, command = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    argv = shlex.split(command)
    line = sys.stdin.readline().strip()
    indices = [int(x) for x in line.split(",")] if line else []
    warm = workdir / f"warm-{os.getpid()}"
    warm.mkdir(parents=True, exist_ok=True)
    spawn_all(argv, range(20), parallel, warm)  # page cache, the first spawn's costs; not timed
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    failed = spawn_all(argv, indices, parallel, workdir)
    print(f"done {failed}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
