"""1,000,000 stored tasks with dependencies: memory per task, and their dependency state after a restart.

    python -m bench.dependencies store [--tasks 1000000] [--quick] [--no-record]

One server process, a pool without nodes (nothing runs), a job with `uses_task_dependencies`: the
tasks are added in calls of 100,000, each depending on the one before it by id (a chain; the first
on a task never added), so that every one is a tracked dependent, waiting. Reported: the server's
resident memory per stored task (target: within 2 KiB), then the time from a SIGKILL and a new process
on the same data directory to the first answer, and whether `GetJobTaskCounts` says exactly what it
said before (every task waiting on a dependency; the restart rebuilds the index from the stored tasks).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from bench.common import BenchServer, Report, record, should_record
from shoal.v1 import job_pb2, task_pb2

ADD_BATCH = 100_000


def chain_specs(start: int, n: int) -> list[task_pb2.TaskSpec]:
    """Tasks c<start>.. each depending on the one before it (c0 on `missing`, never added)."""
    out = []
    for i in range(start, start + n):
        spec = task_pb2.TaskSpec(id=f"c{i}", command_line="/bin/true")
        spec.depends_on.task_ids.append(f"c{i - 1}" if i else "missing")
        out.append(spec)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dependencies store", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=None, help="stored tasks (default 1,000,000; quick 20,000)")
    p.add_argument("--quick", action="store_true", help="20,000 tasks")
    p.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = p.parse_args(argv)
    n = a.tasks or (20_000 if a.quick else 1_000_000)
    started = time.time()
    table = Report(f"{n:,} stored tasks with dependencies (a chain), no nodes", ["measure", "value", "unit", "target"])
    with tempfile.TemporaryDirectory(prefix="shoal-bench-deps-store-") as tmp:
        server = BenchServer(Path(tmp) / "server", heartbeat_interval=60, heartbeat_timeout=3600, orphan_timeout=3600)
        try:
            server.start()
            gc.collect()
            time.sleep(0.5)
            rss0 = server.rss()
            server.create_pool("store", 0, 1, provider="join")
            job = job_pb2.Job(id="deps", pool_id="store", uses_task_dependencies=True)
            server.jobs.CreateJob(job_pb2.CreateJobRequest(job=job), timeout=60)
            t0 = time.monotonic()
            for start in range(0, n, ADD_BATCH):
                k = min(ADD_BATCH, n - start)
                resp = server.add("deps", chain_specs(start, k), timeout=900)
                bad = [r for r in resp.results if r.status != task_pb2.ADD_TASK_STATUS_SUCCESS]
                if bad:
                    raise RuntimeError(f"{len(bad)} tasks not added: {bad[0]}")
                print(f"stored {start + k:,}/{n:,}", flush=True)
            add_s = time.monotonic() - t0
            time.sleep(1.0)
            rss1 = server.rss()
            before = server.counts("deps")
            table.add(f"adding {n:,} tasks (calls of {ADD_BATCH:,})", f"{add_s:.1f}", "s", "")
            table.add("RSS per stored task with dependencies", f"{(rss1 - rss0) / n / 1024:.2f}", "KiB", "<= 2 KiB")
            table.add("server RSS after storing", f"{rss1 / 2**20:.0f}", "MiB", "")
            server.kill()
            server.spawn()
            t_spawn = server.started_at
            server.connect(600)
            after = server.counts("deps")
            answered = time.monotonic() - t_spawn
            table.add("SIGKILL, new process -> first answer", f"{answered:.2f}", "s", "")
            table.add("server RSS after the restart", f"{server.rss() / 2**20:.0f}", "MiB", "")
            same = (after.active, after.waiting_on_dependencies, after.blocked) == (
                before.active,
                before.waiting_on_dependencies,
                before.blocked,
            )
            table.add(
                "after the restart: active / waiting on dependencies / blocked",
                f"{after.active:,} / {after.waiting_on_dependencies:,} / {after.blocked:,}",
                "tasks",
                "as before" + ("" if same else " (NOT)"),
            )
            if not same or after.waiting_on_dependencies != n:
                raise RuntimeError(f"dependency state changed across the restart: {before} -> {after}")
        finally:
            server.stop()
    table.note("Every task is a tracked dependent, waiting (its chain starts at a task never added).")
    table.print()
    if should_record(a.quick, a.no_record):
        record("Task dependencies stored (bench/deps_store.py)", [table], started)
    return 0
