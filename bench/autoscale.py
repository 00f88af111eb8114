"""How fast an autoscale pool follows its work: from no node to the first running task, and back to none.

    python -m bench.autoscale [--quick] [-n N] [--interval S] [--rounds R] [--no-record]

A real server and real local agents. Each round: a pool at 0 nodes with a pending-task formula (up to 4
nodes while tasks wait or run, `taskcompletion`), evaluated every `--interval` seconds, is given N tasks
(`sleep 0.2`) in one AddTasks; the clock runs from the AddTasks call to the first task seen running, and
from the last task's completion to the pool back at 0 nodes (steady). The reference, in the same round: a
plain pool resized from 0 to as many nodes as the formula asks (4, started at once as autoscale starts
them), timed to the first node IDLE (node start-up). The issue's bar: the first
task runs within one evaluation interval plus node start-up (ratio ≤ 1), and the pool is back at 0 within
about one interval plus a sample period after the work is done.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from google.protobuf import duration_pb2

from bench.common import BenchServer, Report, median, record, should_record
from shoal.v1 import job_pb2, pool_pb2, task_pb2

FORMULA = """
pending = max($PendingTasks.GetSample(1));
$TargetDedicatedNodes = min(4, pending);
$NodeDeallocationOption = taskcompletion;
"""
#: The control plane's sampling period (server/lifecycle/autoscaling.py SAMPLE_SECONDS).
SAMPLE_SECONDS = 5.0


def _until(what: str, pred, timeout: float = 120.0, period: float = 0.02) -> float:
    """Poll `pred` until it is true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(period)
    raise TimeoutError(f"timed out waiting for {what}")


def _pool(server: BenchServer, pool_id: str) -> pool_pb2.Pool:
    return server.pools.GetPool(pool_pb2.GetPoolRequest(name=f"pools/{pool_id}"))


#: The nodes the formula asks for at most (and the reference starts at once).
MAX_NODES = 4


def startup_seconds(server: BenchServer, pool_id: str) -> float:
    """A plain pool from 0 to `MAX_NODES` nodes at once: seconds to the first node IDLE."""
    server.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id=pool_id, target_nodes=0)))
    _until("steady", lambda: _pool(server, pool_id).allocation_state == pool_pb2.ALLOCATION_STATE_STEADY)
    t0 = time.monotonic()
    server.pools.ResizePool(pool_pb2.ResizePoolRequest(name=f"pools/{pool_id}", target_nodes=MAX_NODES))

    def idle() -> bool:
        nodes = server.pools.ListNodes(pool_pb2.ListNodesRequest(parent=f"pools/{pool_id}")).nodes
        return any(n.state == pool_pb2.NODE_STATE_IDLE for n in nodes)

    done = _until("a node idle", idle)
    server.pools.DeletePool(pool_pb2.DeletePoolRequest(name=f"pools/{pool_id}"))
    _until(
        "the pool gone",
        lambda: pool_id not in {p.id for p in server.pools.ListPools(pool_pb2.ListPoolsRequest()).pools},
    )
    return done - t0


def autoscale_round(server: BenchServer, pool_id: str, n: int, interval: float) -> tuple[float, float, float]:
    """(seconds to the first running task, seconds to all done, seconds from done back to 0 nodes)."""
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(interval * 1e9))
    server.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(
                id=pool_id, enable_auto_scale=True, auto_scale_formula=FORMULA, auto_scale_evaluation_interval=d
            )
        )
    )
    _until("the first evaluation", lambda: _pool(server, pool_id).HasField("auto_scale_run"))
    job = f"{pool_id}-job"
    server.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job, pool_id=pool_id)))
    # (Wait until the next evaluation is as far away as it can be, so the round measures the worst case.)
    last = _pool(server, pool_id).auto_scale_run.timestamp.ToNanoseconds()
    _until("an evaluation", lambda: _pool(server, pool_id).auto_scale_run.timestamp.ToNanoseconds() > last)
    t0 = time.monotonic()
    server.tasks.AddTasks(
        task_pb2.AddTasksRequest(
            parent=f"jobs/{job}", tasks=[task_pb2.TaskSpec(id=f"t{i}", command_line="sleep 0.2") for i in range(n)]
        )
    )

    def counts() -> job_pb2.TaskCounts:
        return server.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name=f"jobs/{job}"))

    first = _until("a running task", lambda: (c := counts()).running + c.completed > 0)
    done = _until("every task done", lambda: counts().completed == n, timeout=600, period=0.1)

    def empty() -> bool:
        p = _pool(server, pool_id)
        return p.current_nodes == 0 and p.allocation_state == pool_pb2.ALLOCATION_STATE_STEADY

    back = _until("the pool back at 0 nodes", empty, timeout=300, period=0.1)
    server.pools.DeletePool(pool_pb2.DeletePoolRequest(name=f"pools/{pool_id}"))
    return first - t0, done - t0, back - done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 tasks, one round")
    ap.add_argument("-n", type=int, default=0, help="tasks (default 200, quick 20)")
    ap.add_argument("--interval", type=float, default=5.0, help="evaluation interval, seconds (default 5)")
    ap.add_argument("--rounds", type=int, default=0, help="rounds (default 3, quick 1)")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = ap.parse_args(argv)
    n = a.n or (20 if a.quick else 200)
    rounds = a.rounds or (1 if a.quick else 3)
    started = time.monotonic()
    report = Report(
        f"Autoscale from 0 nodes: {n} tasks (`sleep 0.2`), pending-task formula up to 4 nodes, "
        f"evaluated every {a.interval:g} s",
        [
            "round",
            "node start-up (s)",
            "first task running (s)",
            "ratio to interval + start-up",
            "all done (s)",
            "back to 0 nodes after (s)",
        ],
    )
    ratios: list[float] = []
    backs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-autoscale-") as tmp:
        server = BenchServer(Path(tmp) / "server", heartbeat_interval=1.0, heartbeat_timeout=30)
        try:
            server.start()
            for r in range(rounds):
                startup = startup_seconds(server, f"ref{r}")
                first, done, back = autoscale_round(server, f"auto{r}", n, a.interval)
                ratio = first / (a.interval + startup)
                ratios.append(ratio)
                backs.append(back)
                report.add(r + 1, f"{startup:.2f}", f"{first:.2f}", f"{ratio:.2f}", f"{done:.1f}", f"{back:.1f}")
        finally:
            server.stop()
    report.note(
        f"median ratio of the first running task to one interval plus node start-up: {median(ratios):.2f} "
        f"(bar: ≤ 1); median time back to 0 nodes after the work: {median(backs):.1f} s "
        f"(one interval plus one {SAMPLE_SECONDS:g} s sample: {a.interval + SAMPLE_SECONDS:g} s)"
    )
    report.print()
    if should_record(a.quick, a.no_record):
        record("bench.autoscale", [report], started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
