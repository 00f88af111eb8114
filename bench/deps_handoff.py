"""Dependency hand-off on an idle pool: a parent's completion to its dependent's start, with a real agent.

    python -m bench.dependencies handoff [--quick] [-n N] [--slots S] [--profile] [--no-record]

One real server process, one real local agent (1 node x 2 slots by default,
idle), a job with `uses_task_dependencies`. One AddTasks call adds a chain of
N + 1 tasks (`/bin/true`), t0 <- t1 <- ... <- tN, each depending on the one
before; nothing else runs. For each of the N links, two clocks:

- agent-stamped: the child's execution_info.start_time minus the parent's
  end_time, both written by the same agent on the same machine clock;
- observed: arrival of the WatchTasks message showing the child dispatched
  (PREPARING) or completed, minus that showing the parent COMPLETED (0 when
  one message shows both: the server commits the completion and the
  dependent's placement together).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import BenchServer, Profiler, Report, fmt, pct, print_lines, profile_markdown, record, should_record
from bench.latency import TaskWatcher, ts_seconds
from shoal.v1 import job_pb2, task_pb2

S = task_pb2
SUCCESS = 1  # TASK_EXECUTION_RESULT_SUCCESS


def chain_specs(prefix: str, n: int, command: str) -> list[task_pb2.TaskSpec]:
    """`prefix0` <- `prefix1` <- ... <- `prefix{n - 1}`, each depending on the one before."""
    out = [task_pb2.TaskSpec(id=f"{prefix}0", command_line=command)]
    for i in range(1, n):
        out.append(
            task_pb2.TaskSpec(
                id=f"{prefix}{i}",
                command_line=command,
                depends_on=task_pb2.TaskDependencies(task_ids=[f"{prefix}{i - 1}"]),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dependencies handoff", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 links")
    ap.add_argument("-n", type=int, default=0, help="links measured (default 300, quick 20); the chain has N + 1 tasks")
    ap.add_argument("--slots", type=int, default=2, help="task slots of the one node (default 2)")
    ap.add_argument("--command", default="/bin/true")
    ap.add_argument("--profile", action="store_true", help="py-spy the server during the chain")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = ap.parse_args(argv)
    n = a.n or (20 if a.quick else 300)
    started = time.monotonic()
    links: dict[str, list[float]] = {
        k: []
        for k in (
            "parent end -> child start (agent stamps)",
            "parent COMPLETED seen -> child PREPARING seen (watch)",
            "parent COMPLETED seen -> child COMPLETED seen (watch)",
        )
    }
    extra: list[str] = []
    chain_s = 0.0
    early: list[str] = []
    failed: list[str] = []
    same_message = 0
    with tempfile.TemporaryDirectory(prefix="shoal-bench-dep-") as tmp:
        root = Path(tmp)
        server = BenchServer(root / "server", heartbeat_interval=1.0, heartbeat_timeout=30)
        prof: Profiler | None = None
        try:
            server.start()
            server.create_pool("dep", 1, a.slots)
            server.wait_nodes("dep", 1)
            server.jobs.CreateJob(
                job_pb2.CreateJobRequest(job=job_pb2.Job(id="dep", pool_id="dep", uses_task_dependencies=True)),
                timeout=60,
            )
            w = TaskWatcher(server, "dep")
            w.start()
            w.ready.wait(30)
            # Warm-up (not counted): a short chain, as the latency bench's first tasks.
            warm = chain_specs("w", 3, a.command)
            warm_done = w.expect("w2")
            server.add("dep", warm, timeout=30)
            if not warm_done.wait(30):
                raise TimeoutError(f"the warm-up chain did not complete: {w.error}")
            time.sleep(0.5)
            if a.profile:
                prof = Profiler(server.pid, root / "handoff.pyspy.txt")
            specs = chain_specs("t", n + 1, a.command)
            last = w.expect(f"t{n}")
            wall0 = time.time()
            server.add("dep", specs, timeout=60)
            if not last.wait(max(60.0, n * 0.5)) or f"t{n}" not in w.final:
                raise TimeoutError(f"the chain did not complete ({len(w.final)} tasks seen COMPLETED): {w.error}")
            chain_s = time.time() - wall0
            w.stream.cancel()
            if prof is not None:
                prof.stop()
                extra = profile_markdown("hand-off chain", prof)
        finally:
            if prof is not None:
                prof.stop()
            server.stop()
    for i in range(n + 1):
        t = w.final[f"t{i}"]
        if t.execution_info.result != SUCCESS:
            failed.append(t.spec.id)
    for i in range(1, n + 1):
        parent, child = w.final[f"t{i - 1}"], w.final[f"t{i}"]
        p_seen, c_seen = w.seen[f"t{i - 1}"], w.seen[f"t{i}"]
        p_end = ts_seconds(parent.execution_info.end_time)
        handoff = ts_seconds(child.execution_info.start_time) - p_end
        if handoff < 0:
            early.append(f"t{i} started {-1000 * handoff:.2f} ms before t{i - 1} ended")
        links["parent end -> child start (agent stamps)"].append(handoff)
        p_done = p_seen[S.TASK_STATE_COMPLETED]
        if S.TASK_STATE_PREPARING in c_seen:
            links["parent COMPLETED seen -> child PREPARING seen (watch)"].append(
                c_seen[S.TASK_STATE_PREPARING] - p_done
            )
            same_message += c_seen[S.TASK_STATE_PREPARING] == p_done
        links["parent COMPLETED seen -> child COMPLETED seen (watch)"].append(c_seen[S.TASK_STATE_COMPLETED] - p_done)
    report = Report(
        f"Dependency hand-off: a chain of {n + 1} `{a.command}` tasks, each depending on the one before, "
        f"idle pool of 1 node x {a.slots} slots",
        ["measure (per link)", "n", "p50 ms", "p99 ms", "min ms", "max ms"],
    )
    for k, xs in links.items():
        ms = [1000 * x for x in xs]
        report.add(
            k,
            len(ms),
            fmt(pct(ms, 50), 2),
            fmt(pct(ms, 99), 2),
            fmt(min(ms, default=float("nan")), 2),
            fmt(max(ms, default=float("nan")), 2),
        )
    report.add("whole chain: AddTasks -> last COMPLETED seen", n + 1, f"{1000 * chain_s:,.0f}", "", "", "")
    report.add("links per second along the chain", n, fmt(n / chain_s if chain_s else float("nan")), "", "", "")
    report.note(
        "agent stamps: the parent's execution_info.end_time and the child's start_time, both set by the one agent "
        "on the same machine clock (a process exits, the agent reports it, the server releases the dependent, "
        "places it and sends StartTasks, the agent starts it)."
    )
    report.note(
        f"watch: arrivals on one WatchTasks stream (monotonic clock); {same_message} of {n} children were seen "
        "dispatched in the same message as their parent's completion."
    )
    report.note("The whole chain is added in one AddTasks call before the first task runs; 3 warm-up tasks before.")
    report.note(
        f"every link checked: child started after its parent ended ({len(early)} did not), every task succeeded "
        f"({len(failed)} did not)."
    )
    report.note("Target (issue 13): hand-off p50 <= 5 ms on an idle pool (Batch users report about 7 s).")
    report.extra_md = extra
    report.print()
    print_lines(extra)
    if early or failed:
        print(f"FAILED CHECKS: {early[:5]} {failed[:5]}")
    if should_record(a.quick, a.no_record):
        record("Dependency hand-off (bench/deps_handoff.py)", [report], started)
    return 1 if early or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
