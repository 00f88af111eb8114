"""End-to-end throughput of trivial tasks through a real server and real local agents, against raw spawning.

    python -m bench.throughput [--quick] [-n N] [--rounds R] [--profile] [--no-record]

For each pool shape (2 nodes x 2 slots, 4 x 1) and each command (`/bin/true`,
`sleep 0.01`): one job, one bulk AddTasks of N tasks, clock from just before
the AddTasks call to the arrival (over WatchTasks) of the last COMPLETED task.
Two raw ceilings, both the same N commands with stdout/stderr to files, 4 in
flight, in the same run: "raw Popen", spawned from this Python process's threads
with `subprocess.Popen`; and "raw multi-process", the best of a few sets of
processes spawning at once with `os.posix_spawn` (bench/spawner.py; one Python
process spawning with threads is held back by its interpreter). Raw and Shoal
runs alternate for R rounds per shape (the machine is shared and its speed moves
by 2x within seconds); the results are the medians of the ratios to each.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.common import (
    BenchServer,
    Profiler,
    Report,
    file_create_cost_us,
    fmt,
    median,
    print_lines,
    profile_markdown,
    record,
    should_record,
)
from bench.spawner import DEFAULT_SPAWNERS, multi_raw_run, parse_spawners
from shoal.v1 import task_pb2

COMMANDS = {"true": "/bin/true", "sleep10ms": "sleep 0.01"}
SHAPES = [(2, 2), (4, 1)]
PARALLEL = 4


@dataclass
class Run:
    seconds: float
    completed: int
    failed: int
    add_seconds: float


class Watcher(threading.Thread):
    """Follows WatchTasks of a job and notes when `n` tasks are COMPLETED."""

    def __init__(self, server: BenchServer, job_id: str, n: int) -> None:
        super().__init__(daemon=True)
        self.stream = server.tasks.WatchTasks(task_pb2.WatchTasksRequest(parent=f"jobs/{job_id}"))
        self.n = n
        self.ready = threading.Event()
        self.done = threading.Event()
        self.completed: set[str] = set()
        self.failed = 0
        self.last_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for msg in self.stream:
                if msg.initial_complete:
                    self.ready.set()
                for t in msg.tasks:
                    if t.state == task_pb2.TASK_STATE_COMPLETED and t.spec.id not in self.completed:
                        self.completed.add(t.spec.id)
                        if t.execution_info.result != 1:  # TASK_EXECUTION_RESULT_SUCCESS
                            self.failed += 1
                if len(self.completed) >= self.n:
                    self.last_at = time.monotonic()
                    self.done.set()
                    self.stream.cancel()
                    return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        except BaseException as e:
            self.error = e
        finally:
            self.ready.set()
            self.done.set()


def shoal_run(server: BenchServer, pool_id: str, job_id: str, command: str, n: int, timeout: float) -> Run:
    server.create_job(job_id, pool_id)
    watcher = Watcher(server, job_id, n)
    watcher.start()
    watcher.ready.wait(30)
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line=command) for i in range(n)]
    t0 = time.monotonic()
    server.add(job_id, specs)
    t_add = time.monotonic() - t0
    if not watcher.done.wait(timeout):
        watcher.stream.cancel()
        raise TimeoutError(f"{job_id}: only {len(watcher.completed)}/{n} tasks completed in {timeout}s")
    if watcher.error is not None:
        raise RuntimeError(f"watch failed: {watcher.error}")
    return Run(watcher.last_at - t0, len(watcher.completed), watcher.failed, t_add)


@dataclass
class RawRun:
    """A raw spawning run: wall seconds, and CPU seconds of the spawning process and of its children."""

    seconds: float
    spawner_cpu: float
    children_cpu: float


def raw_run(command: str, n: int, parallel: int, workdir: Path) -> RawRun:
    """N processes spawned with subprocess.Popen, `parallel` in flight, stdout/stderr to files."""
    argv = shlex.split(command)
    workdir.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> int:
        with open(workdir / f"{i}.out", "wb") as out, open(workdir / f"{i}.err", "wb") as err:
            return subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL).wait()

    with ThreadPoolExecutor(parallel) as ex:  # warm-up (page cache, thread start), not timed
        list(ex.map(one, range(min(n, 200))))
    t0 = time.monotonic()
    cpu0 = os.times()
    with ThreadPoolExecutor(parallel) as ex:
        codes = list(ex.map(one, range(n)))
    cpu1 = os.times()
    dt = time.monotonic() - t0
    if any(codes):
        raise RuntimeError(f"raw spawn: {sum(1 for c in codes if c)} of {n} failed")
    return RawRun(
        dt,
        (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=100")
    ap.add_argument("-n", type=int, default=0, help="tasks per run (default 2000, quick 100)")
    ap.add_argument("--commands", default="true,sleep10ms", help="subset of: " + ",".join(COMMANDS))
    ap.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="raw/Shoal pairs per shape and command, alternating (default 3, quick 1); the median ratio is the result",
    )
    ap.add_argument(
        "--dir",
        default="",
        help="where the server, its nodes and the raw runs keep their files (default: the system temporary "
        "directory, $TMPDIR); both sides use it, and its cost of creating a file is reported",
    )
    ap.add_argument(
        "--dispatch-ahead", type=int, default=None, help="the server's --dispatch-ahead (default: the server's)"
    )
    ap.add_argument(
        "--spawners",
        default="",
        help="the multi-process ceiling is the best of these PROCSxIN_FLIGHT (default 2x2,4x1: 4 in flight in all, "
        "as the Popen ceiling and the pools' slots; quick: 2x2)",
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the server during the Shoal runs")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = ap.parse_args(argv)
    n = a.n or (100 if a.quick else 2000)
    rounds = a.rounds or (1 if a.quick else 3)
    spawners = parse_spawners(a.spawners) if a.spawners else DEFAULT_SPAWNERS[: 1 if a.quick else None]
    multi_label = "raw multi-process, best of " + "/".join(f"{p}x{k}" for p, k in spawners)
    started = time.monotonic()
    report = Report(
        f"Throughput: {n} trivial tasks, bulk add to last completion",
        ["command", "runner", "seconds", "tasks/s", "ratio to raw", "add call s", "failed", "ratio to multi-process"],
    )
    extra: list[str] = []
    base = Path(a.dir or tempfile.gettempdir())
    create_us = file_create_cost_us(base)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-tp-", dir=base) as tmp:
        root = Path(tmp)
        # Reachable by other users (mkdtemp makes it 0700): a root agent then runs the tasks as the pool's
        # user, as it does by default, and that is what is measured.
        root.chmod(0o755)
        server = BenchServer(
            root / "server", heartbeat_interval=1.0, heartbeat_timeout=30, dispatch_ahead=a.dispatch_ahead
        )
        prof: Profiler | None = None
        agent_profs: list[Profiler] = []
        try:
            server.start()
            for nodes, slots in SHAPES:
                server.create_pool(f"p{nodes}x{slots}", nodes, slots)
            for nodes, slots in SHAPES:
                server.wait_nodes(f"p{nodes}x{slots}", nodes)
            if a.profile:
                prof = Profiler(server.pid, root / "throughput.pyspy.txt")
                agent_profs = [Profiler(pid, root / f"agent-{pid}.pyspy.txt") for pid in server.children_pids()]
            for name in a.commands.split(","):
                command = COMMANDS[name]
                for nodes, slots in SHAPES:
                    pool = f"p{nodes}x{slots}"
                    ratios = []
                    multi_ratios = []
                    for r in range(rounds):
                        raw = raw_run(command, n, PARALLEL, root / f"raw-{name}-{nodes}-{r}")
                        raw_rate = n / raw.seconds
                        report.add(
                            command,
                            f"raw Popen, {PARALLEL} in flight",
                            f"{raw.seconds:.2f}",
                            fmt(raw_rate),
                            "1.00",
                            "",
                            "",
                            "",
                        )
                        multi = multi_raw_run(command, n, root / f"multi-{name}-{nodes}-{r}", spawners)
                        multi_rate = n / multi.seconds
                        report.add(
                            command,
                            f"{multi_label} ({multi.procs}x{multi.parallel} won)",
                            f"{multi.seconds:.2f}",
                            fmt(multi_rate),
                            f"{multi_rate / raw_rate:.2f}",
                            "",
                            "",
                            "1.00",
                        )
                        server0 = server.cpu_split()
                        agents0 = server.agents_cpu_split()
                        own0 = time.process_time()
                        run = shoal_run(server, pool, f"{name}-{pool}-{r}", command, n, timeout=max(120.0, n * 0.2))
                        server1 = server.cpu_split()
                        agents1 = server.agents_cpu_split()
                        own_cpu = time.process_time() - own0
                        s_user, s_sys = (b - a for a, b in zip(server0, server1, strict=True))
                        a_user, a_sys, tasks_cpu = (b - a for a, b in zip(agents0, agents1, strict=True))
                        cpu, agents_cpu = s_user + s_sys, a_user + a_sys
                        rate = n / run.seconds
                        ratios.append(rate / raw_rate)
                        multi_ratios.append(rate / multi_rate)
                        report.add(
                            command,
                            f"shoal {nodes} nodes x {slots} slots",
                            f"{run.seconds:.2f}",
                            fmt(rate),
                            f"{rate / raw_rate:.2f}",
                            f"{run.add_seconds:.3f}",
                            str(run.failed),
                            f"{rate / multi_rate:.2f}",
                        )
                        ms = 1000 / n
                        report.note(
                            f"{command} on {pool}, round {r + 1}: server process CPU {cpu:.2f} s = "
                            f"{ms * cpu:.2f} ms per task (user {ms * s_user:.2f}, system {ms * s_sys:.2f}); "
                            f"agents {ms * agents_cpu:.2f} ms per task (user {ms * a_user:.2f}, system "
                            f"{ms * a_sys:.2f}); the task processes {ms * tasks_cpu:.2f} ms; "
                            f"this bench process (AddTasks, WatchTasks) {ms * own_cpu:.2f} ms per task. "
                            f"Raw run before it: the spawning process {ms * raw.spawner_cpu:.2f} ms per task, "
                            f"the task processes {ms * raw.children_cpu:.2f} ms"
                        )
                    report.note(
                        f"{command} on {pool}: median ratio to raw over {rounds} round(s) **{median(ratios):.2f}** "
                        f"(each: {', '.join(f'{x:.2f}' for x in ratios)}); to the multi-process raw ceiling "
                        f"**{median(multi_ratios):.2f}** (each: {', '.join(f'{x:.2f}' for x in multi_ratios)})"
                    )
            if prof is not None:
                prof.stop()
                for p in agent_profs:
                    p.stop()
                extra = profile_markdown("server process, throughput runs (all shapes and commands)", prof)
                extra += ["", *profile_markdown(f"the {len(agent_profs)} agent processes, same runs", agent_profs)]
        finally:
            for p in [*agent_profs, *([prof] if prof else [])]:
                p.stop()
            server.stop()
    report.note(
        "Shoal time: from just before the one AddTasks call to the WatchTasks message that completes the last task."
    )
    report.note(
        "raw: subprocess.Popen from 4 threads of one process, stdout/stderr to a file pair per task, "
        "after an untimed warm-up of 200 spawns; measured just before each Shoal run (its ratio is to that one). "
        "Raw and Shoal runs alternate, so that both see the same load on a shared machine."
    )
    report.note(
        f"raw multi-process: {', '.join(f'{p} processes x {k} in flight' for p, k in spawners)}, each process "
        "spawning with os.posix_spawn and reaping with os.waitpid, stdout/stderr to a file pair per task, stdin "
        "/dev/null, after an untimed warm-up of 20 spawns in each; timed from the signal to go to the last one "
        "done; the fastest of them (its tasks/s and ratio to the Popen ceiling in the table). Measured after the "
        "Popen ceiling, just before each Shoal run; the last column is Shoal's ratio to it."
    )
    report.note(
        f"Files in {base}: creating one cost {create_us:.0f} µs of system CPU at the start of this run "
        "(raw spawning creates 2 per task; a Shoal agent creates the task directory, wd/, stdout.txt and "
        "stderr.txt, as Batch's layout has it)."
    )
    report.note("Bar (issue 3): /bin/true end to end >= 0.5 x the raw ceiling.")
    report.extra_md = extra
    report.print()
    print_lines(extra)
    if should_record(a.quick, a.no_record):
        record("Throughput (bench/throughput.py)", [report], started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
