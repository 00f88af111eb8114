"""The control plane alone at scale: a real server process and simulated agents over real gRPC.

    python -m bench.simulated [--quick] [--nodes 1000,10000] [--tasks 100000] [--store 1000000]
                              [--profile] [--no-record]

Phases, all against one `python -m shoal.server` process (its CPU and RSS are
read with psutil):

1. store: a job in a pool without nodes gets `--store` tasks, in AddTasks
   calls of at most 100,000 (the first is timed: "bulk add"); resident memory
   delta per stored task.
2. dispatch, for each node count: that many simulated agents (bench/simagent.py)
   join a fresh pool; one AddTasks of `--tasks` tasks; every StartTasks is
   answered at once with RUNNING+COMPLETED events. Dispatch rate, end-to-end
   rate, server CPU seconds per task. The stored tasks of phase 1 stay in the
   database and in memory meanwhile.
3. recover: a job with pending tasks in a pool whose node is not connected;
   SIGKILL the server, start it again on the same data directory while one
   simulated node keeps trying to join; time from the new process's start to
   the first StartTasks it receives.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import (
    BenchServer,
    Profiler,
    Report,
    fmt,
    print_lines,
    profile_markdown,
    record,
    should_record,
    wait_for,
)
from bench.simagent import SimFleet
from shoal.v1 import task_pb2

ADD_BATCH = 100_000


def own_cpu_seconds() -> float:
    """CPU seconds used so far by this process (the simulated fleet, mostly)."""
    t = psutil.Process().cpu_times()
    return t.user + t.system


def specs(prefix: str, n: int) -> list[task_pb2.TaskSpec]:
    return [task_pb2.TaskSpec(id=f"{prefix}{i}", command_line="/bin/true") for i in range(n)]


def check_added(resp: task_pb2.AddTasksResponse, n: int) -> None:
    bad = [r for r in resp.results if r.status != task_pb2.ADD_TASK_STATUS_SUCCESS]
    if len(resp.results) != n or bad:
        raise RuntimeError(f"AddTasks: {len(resp.results)} results, {len(bad)} failed: {bad[:1]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.simulated", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 nodes, 5,000 tasks, 5,000 stored")
    ap.add_argument("--nodes", default="", help="comma-separated node counts (default 1000,10000)")
    ap.add_argument("--tasks", type=int, default=0, help="tasks dispatched per node count (default 100000)")
    ap.add_argument("--store", type=int, default=-1, help="tasks stored before dispatching (default 1000000)")
    ap.add_argument("--slots", type=int, default=1, help="task slots per simulated node")
    ap.add_argument("--streams-per-channel", type=int, default=250)
    ap.add_argument(
        "--nodes-per-stream",
        type=int,
        default=100,
        help="simulated nodes per ConnectMany stream (1: a Connect stream per node, as real agents)",
    )
    ap.add_argument("--phase-timeout", type=float, default=300, help="give up a dispatch phase after this (s)")
    ap.add_argument(
        "--dispatch-ahead", type=int, default=None, help="the server's --dispatch-ahead (default: the server's)"
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the server during each phase")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = ap.parse_args(argv)
    node_counts = [int(x) for x in (a.nodes or ("100" if a.quick else "1000,10000")).split(",") if x]
    n_tasks = a.tasks or (5000 if a.quick else 100_000)
    n_store = a.store if a.store >= 0 else (5000 if a.quick else 1_000_000)
    started = time.monotonic()

    table = Report(
        "Control plane with simulated agents",
        ["measure", "value", "unit", "bar (issue 3)"],
    )
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-sim-") as tmp:
        root = Path(tmp)
        data = root / "server"
        server = BenchServer(
            data, heartbeat_interval=60, heartbeat_timeout=3600, orphan_timeout=3600, dispatch_ahead=a.dispatch_ahead
        )
        fleet: SimFleet | None = None
        profs: list[tuple[str, Profiler]] = []

        def profiler(label: str) -> Profiler | None:
            if not a.profile:
                return None
            p = Profiler(server.pid, root / f"sim-{len(profs)}.pyspy.txt")
            profs.append((label, p))
            return p

        try:
            server.start()
            gc.collect()
            time.sleep(0.5)
            rss0 = server.rss()
            table.add("server RSS at start", f"{rss0 / 2**20:.0f}", "MiB", "")

            # -- 1. store
            server.create_pool("store", 0, 1, provider="join")
            server.create_job("store", "store")
            prof = profiler(f"phase 1: AddTasks of {n_store:,} tasks in calls of <= {ADD_BATCH:,}")
            first_add = 0.0
            first_n = 0
            added = 0
            t_store = time.monotonic()
            while added < n_store:
                k = min(ADD_BATCH, n_store - added)
                batch = specs(f"s{added}-", k)
                t0 = time.monotonic()
                resp = server.add("store", batch, timeout=900)
                dt = time.monotonic() - t0
                check_added(resp, k)
                if not first_n:
                    first_add, first_n = dt, k
                added += k
                print(f"stored {added:,}/{n_store:,} tasks ({dt:.2f} s for the last {k:,})", flush=True)
            store_s = time.monotonic() - t_store
            if prof is not None:
                prof.stop()
            time.sleep(1.0)
            rss1 = server.rss()
            if first_n:
                table.add(
                    f"bulk add of {first_n:,} tasks in one AddTasks call",
                    f"{first_add:.2f}",
                    "s",
                    "<= 5 s for 100,000",
                )
                table.add(f"adding all {n_store:,} stored tasks", f"{store_s:.1f}", "s", "")
                table.add(
                    f"RSS per stored task ({n_store:,} ACTIVE tasks)",
                    f"{(rss1 - rss0) / n_store / 1024:.2f}",
                    "KiB",
                    "<= 2 KiB at 1,000,000",
                )
                table.add("server RSS after storing", f"{rss1 / 2**20:.0f}", "MiB", "")

            # -- 2. dispatch
            fleet = SimFleet(
                server.agent_identity(), streams_per_channel=a.streams_per_channel, nodes_per_stream=a.nodes_per_stream
            )
            for nodes in node_counts:
                pool = f"sim{nodes}"
                server.create_pool(pool, 0, a.slots, provider="join")  # joined nodes are not capped by target_nodes
                attach_s = fleet.add_nodes(pool, nodes, timeout=max(120.0, nodes / 20))
                table.add(f"{nodes:,} nodes: all joined (Register -> Welcome)", f"{attach_s:.2f}", "s", "")
                print(f"{nodes:,} simulated nodes joined in {attach_s:.2f} s", flush=True)
                server.create_job(pool, pool)
                fleet.stats.reset_dispatch()
                time.sleep(1.0)
                cpu0 = server.cpu_seconds()
                threads0 = server.thread_cpu_seconds()
                bench_cpu0 = own_cpu_seconds()
                prof = profiler(f"phase 2: {n_tasks:,} tasks dispatched to {nodes:,} simulated nodes")
                t0 = time.monotonic()
                for first in range(0, n_tasks, ADD_BATCH):  # the server takes at most 200,000 per call
                    k = min(ADD_BATCH, n_tasks - first)
                    check_added(server.add(pool, specs(f"d{first}-", k), timeout=900), k)
                t_add = time.monotonic() - t0

                last_print = [time.monotonic()]

                def done(job: str = pool, lp: list[float] = last_print) -> bool:
                    c = server.counts(job).completed
                    if time.monotonic() - lp[0] > 10:
                        lp[0] = time.monotonic()
                        print(f"  {c:,}/{n_tasks:,} completed, {fleet.stats.assigned:,} dispatched", flush=True)
                    return c >= n_tasks

                # The server's main thread from the first StartTasks on: how busy it is in the window.
                wait_for("first StartTasks", lambda: fleet.stats.first_assign, timeout=a.phase_timeout, every=0.002)
                main_at_first = server.thread_cpu_seconds().get("main", 0.0)
                incomplete = ""
                try:
                    wait_for(f"{n_tasks} tasks completed", done, timeout=a.phase_timeout, every=0.1)
                except TimeoutError:
                    c = server.counts(pool).completed
                    incomplete = f" (INCOMPLETE: {c:,} completed after {a.phase_timeout:.0f} s)"
                t_end = time.monotonic()
                cpu = server.cpu_seconds() - cpu0
                threads = server.thread_cpu_seconds()
                bench_cpu = own_cpu_seconds() - bench_cpu0
                if prof is not None:
                    prof.stop()
                st = fleet.stats
                n_done = st.assigned
                span = st.last_assign - st.first_assign
                # Sustained: the middle 80% of assignments.
                marks: list[float] = []
                seen = 0
                for at, k in st.assign_times:
                    seen += k
                    while len(marks) < 2 and seen >= (0.1, 0.9)[len(marks)] * n_done:
                        marks.append(at)
                sustained = 0.8 * n_done / (marks[1] - marks[0]) if len(marks) == 2 and marks[1] > marks[0] else 0
                tag = f"{nodes:,} nodes x {a.slots} slot, {n_tasks:,} tasks{incomplete}"
                table.add(f"{tag}: AddTasks call(s) of <= {ADD_BATCH:,}", f"{t_add:.2f}", "s", "")
                # A simulated node answers every StartTasks at once, but the server may run ahead of
                # the reports it has yet to apply (work sent ahead), so the rate of StartTasks alone
                # flatters it: the sustained rate runs until the server has applied the last COMPLETED.
                table.add(
                    f"{tag}: sustained, first StartTasks -> last task COMPLETED at the server",
                    fmt(n_done / (t_end - st.first_assign) if t_end > st.first_assign else float("nan")),
                    "tasks/s",
                    ">= 20,000 at 10,000 nodes",
                )
                table.add(
                    f"{tag}: StartTasks alone, first to last",
                    fmt(n_done / span if span > 0 else float("nan")),
                    "tasks/s",
                    "",
                )
                table.add(f"{tag}: StartTasks alone, middle 80%", fmt(sustained), "tasks/s", "")
                table.add(f"{tag}: end to end (add -> all COMPLETED)", fmt(n_done / (t_end - t0)), "tasks/s", "")
                table.add(f"{tag}: StartTasks commands", f"{st.start_messages:,}", "", "")
                table.add(f"{tag}: server messages carrying them", f"{st.start_carriers:,}", "", "")
                table.add(f"{tag}: server CPU per task", f"{1e6 * cpu / max(1, n_done):.0f}", "µs", "")
                by_thread = sorted(
                    ((name, t - threads0.get(name, 0.0)) for name, t in threads.items()), key=lambda x: -x[1]
                )
                split = ", ".join(f"{name} {1e6 * t / max(1, n_done):.0f}" for name, t in by_thread if t > 0.05)
                table.add(f"{tag}: server CPU per task by thread", split, "µs", "")
                window = t_end - st.first_assign
                main_window = threads.get("main", 0.0) - main_at_first
                table.add(
                    f"{tag}: server main thread in the sustained window",
                    f"{1e6 * main_window / max(1, n_done):.0f} µs per task, {100 * main_window / window:.0f}% busy"
                    if window > 0
                    else "",
                    "",
                    "",
                )
                sim_us = 1e6 * bench_cpu / max(1, n_done)
                table.add(f"{tag}: simulator (bench process) CPU per task", f"{sim_us:.0f}", "µs", "")
                table.add(f"{tag}: server RSS after", f"{server.rss() / 2**20:.0f}", "MiB", "")
                if st.errors:
                    table.note(f"{nodes} nodes: {st.errors} simulated stream errors (last: {st.last_error})")
                fleet.disconnect_all()

            # -- 3. recover
            server.create_pool("rec", 0, 1, provider="join")
            server.create_job("rec", "rec")
            check_added(server.add("rec", specs("r", 100)), 100)
            n_db = n_store + n_tasks * len(node_counts) + 100
            time.sleep(1.0)

            def tallies() -> dict[str, int]:
                out = {"store": server.counts("store").active}
                out.update({f"sim{nodes}": server.counts(f"sim{nodes}").completed for nodes in node_counts})
                return out

            expected = tallies()
            server.kill()
            fleet.stats.reset_dispatch()
            server.spawn()
            prof = profiler(f"phase 3: restart with {n_db:,} tasks in the database")
            t0 = server.started_at
            fleet.start_nodes("rec", 1, reconnect=True)
            wait_for("first dispatch after restart", lambda: fleet.stats.first_assign, timeout=600, every=0.005)
            recover = fleet.stats.first_assign - t0
            server.connect(60)
            answer = time.monotonic() - t0
            if prof is not None:
                prof.stop()
            table.add(
                f"restart with {n_db:,} tasks in the database -> first dispatch",
                f"{recover:.2f}",
                "s",
                "<= 10 s at 1,000,000",
            )
            table.add("server RSS after restart", f"{server.rss() / 2**20:.0f}", "MiB", "")
            table.note(f"answering ListPools after restart: {answer:.2f} s after spawn (measured after first dispatch)")
            # Nothing committed before the kill may be missing after it.
            found = tallies()
            lost = {job: (expected[job], got) for job, got in found.items() if got != expected[job]}
            if lost:
                raise RuntimeError(f"tasks missing after the restart (job: expected, found): {lost}")
            table.note(
                "after the restart: "
                + ", ".join(f"job {job} has its {got:,} tasks" for job, got in found.items())
                + " (checked with GetJobTaskCounts)"
            )
            for label, p in profs:
                extra += [*profile_markdown(label, p), ""]
        finally:
            for _, p in profs:
                p.stop()
            if fleet is not None:
                fleet.shutdown()
            server.stop()
    if a.nodes_per_stream > 1:
        how = (
            f"{a.nodes_per_stream} nodes per ConnectMany stream (each message carries frames of many nodes; the "
            "answers to one server message go back in one message)"
        )
    else:
        how = "one Connect stream per node, as real agents"
    table.note(
        f"Simulated agents: {how}, all in the bench process (one asyncio loop), "
        f"{a.streams_per_channel} streams per gRPC channel; each StartTasks answered at once with one TaskEvents "
        "report: a COMPLETED per task, with its start time, as a real agent sends for a task that ended before "
        "its RUNNING left (the RUNNING is folded into it). No heartbeats (server heartbeat timeout 3600 s). "
        "Nodes join in waves of 500 (a burst of thousands of new streams at once makes some fail in gRPC core), "
        "and a failed stream connects again every 50 ms (a real agent: 0.2 s, backing off to 2 s)."
    )
    table.note(
        "The bench process and the server share the machine's 2 cores; end of run = GetJobTaskCounts poll (0.1 s)."
    )
    table.extra_md = extra
    table.print()
    print_lines(extra)
    if should_record(a.quick, a.no_record):
        record("Simulated agents (bench/simulated.py)", [table], started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
