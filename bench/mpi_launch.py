"""MPI launch overhead: a 4-rank multi-instance task over two nodes against plain `mpiexec -n 4`.

    python -m bench.mpi_launch [--quick] [-r ROUNDS] [--no-record]

Both run the same mpi4py program (init, one allreduce, print) in the same
invocation, alternating, on this machine. Plain: `mpiexec -n 4 python app.py`
spawned directly (wall time of the process). Shoal: a real server and two real
local agents of a pool with inter-node communication; the task's command line is
`mpiexec -hosts $SHOAL_HOST_LIST -ppn 2 -n 4 python app.py`, so Hydra starts its
two proxies through `shoal-mpi-launch` and the agents. Two Shoal figures: the
time from AddTask until the COMPLETED state arrives over WatchTasks (everything:
scheduling, coordination, staging, launch, teardown), and the primary's own run
time (execution_info end - start, as stamped by the agent).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BenchServer, Report, fmt, median, record, should_record
from shoal.v1 import pool_pb2, task_pb2

APP = """
from mpi4py import MPI
c = MPI.COMM_WORLD
s = c.allreduce(c.Get_rank() + 1)
if c.Get_rank() == 0:
    print(f"{c.Get_size()} ranks, sum {s}", flush=True)
"""


def mpiexec() -> str:
    path = Path(sys.executable).parent / "mpiexec"
    if not path.exists():
        raise SystemExit("mpiexec not found next to this Python: install the `mpich` wheel (make install does)")
    return str(path)


def plain_run(app: Path) -> float:
    t = time.monotonic()
    out = subprocess.run([mpiexec(), "-n", "4", sys.executable, str(app)], capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - t
    if out.returncode != 0 or "4 ranks, sum 10" not in out.stdout:
        raise RuntimeError(f"plain mpiexec failed: {out.stdout} {out.stderr}")
    return elapsed


def shoal_run(server: BenchServer, app: Path, i: int, *, job: str = "mpi", ppn: int = 2) -> tuple[float, float]:
    """One multi-instance task of two instances running `app` with `ppn` ranks per node, in `job`:
    (AddTask -> COMPLETED seen, the primary's run time as the agent stamped it), in seconds."""
    spec = task_pb2.TaskSpec(
        id=f"mpi{i}",
        command_line=f"/bin/sh -c 'mpiexec -hosts $SHOAL_HOST_LIST -ppn {ppn} -n {2 * ppn} python {app}'",
        multi_instance_settings=task_pb2.MultiInstanceSettings(number_of_instances=2),
    )
    watch = server.tasks.WatchTasks(task_pb2.WatchTasksRequest(parent=f"jobs/{job}", task_ids=[spec.id]), timeout=120)
    t = time.monotonic()
    server.tasks.AddTask(task_pb2.AddTaskRequest(parent=f"jobs/{job}", task=spec), timeout=30)
    try:
        for msg in watch:
            done = [x for x in msg.tasks if x.state == task_pb2.TASK_STATE_COMPLETED]
            if done:
                elapsed = time.monotonic() - t
                info = done[0].execution_info
                if info.result != 1:
                    raise RuntimeError(f"the MPI task failed: {info}")
                inside = (info.end_time.ToNanoseconds() - info.start_time.ToNanoseconds()) / 1e9
                return elapsed, inside
    finally:
        watch.cancel()
    raise RuntimeError("watch ended before the task completed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.mpi_launch")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-r", "--rounds", type=int, default=None)
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args(argv)
    rounds = a.rounds or (2 if a.quick else 15)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-mpi-") as tmp:
        app = Path(tmp) / "app.py"
        app.write_text(APP)
        server = BenchServer(Path(tmp) / "server").start()
        try:
            server.pools.CreatePool(
                pool_pb2.CreatePoolRequest(
                    pool=pool_pb2.Pool(
                        id="mpi", target_nodes=2, task_slots_per_node=1, enable_inter_node_communication=True
                    )
                ),
                timeout=60,
            )
            server.wait_nodes("mpi", 2)
            server.create_job("mpi", "mpi")
            plain, total, inside = [], [], []
            plain_run(app)  # warm the page cache for both
            for i in range(rounds):
                plain.append(plain_run(app))
                t, ins = shoal_run(server, app, i)
                total.append(t)
                inside.append(ins)
        finally:
            server.stop()
    report = Report(
        f"MPI launch: 4 ranks (mpi4py allreduce), {rounds} rounds, medians",
        ["run", "median s", "min s", "max s", "x plain mpiexec"],
    )
    p = median(plain)
    report.add("plain `mpiexec -n 4` (one host, fork)", fmt(p, 3), fmt(min(plain), 3), fmt(max(plain), 3), "1.00")
    report.add(
        "Shoal 2 nodes x 2 ranks: AddTask → COMPLETED seen",
        fmt(median(total), 3),
        fmt(min(total), 3),
        fmt(max(total), 3),
        fmt(median(total) / p, 2),
    )
    report.add(
        "Shoal: primary's run time (agent-stamped)",
        fmt(median(inside), 3),
        fmt(min(inside), 3),
        fmt(max(inside), 3),
        fmt(median(inside) / p, 2),
    )
    report.note(
        "plain mpiexec forks its one proxy locally; Shoal's proxies start through shoal-mpi-launch and two agents"
    )
    report.note(
        "AddTask → COMPLETED includes scheduling, coordination (none here), the RunApplication round trip and teardown"
    )
    report.print()
    if should_record(a.quick, a.no_record):
        record("MPI launch overhead (bench.mpi_launch)", [report], started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
