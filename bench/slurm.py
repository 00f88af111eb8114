"""Shoal side by side with a local one-machine Slurm, from the same invocation.

    python -m bench.slurm [--with-slurm] [--quick] [-n N] [--no-record]

Without Slurm (no working `sinfo`), it says so and exits 0. `--with-slurm`
first runs ../shared/peers/slurm/setup.sh (beside the repository) (installs Slurm from Debian
packages and starts it on loopback; several minutes the first time). Then it
runs the peer's bench.sh (`-p current`: job array of N `/bin/true`, and
`srun -n1 /bin/true` latency, `srun -n2 --mpi=pmi2` of the peer's MPI hello)
and, in the same invocation, the Shoal equivalents: N `/bin/true` tasks
through a real server and a local pool of 1 node x 2 slots (the Slurm node has
the machine's 2 CPUs), single-task submit-to-completion latency, and the same
mpi4py hello as a multi-instance task of two instances (one rank on each of
two local nodes, Hydra's proxies started through `shoal-mpi-launch`). Ratios
are Shoal / Slurm.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import PEERS, BenchServer, Report, fmt, pct, record, should_record
from bench.latency import TaskWatcher
from bench.mpi_launch import shoal_run as shoal_mpi_run
from bench.throughput import shoal_run
from shoal.v1 import pool_pb2, task_pb2

#: The Slurm peer's scripts: `../shared/peers/slurm` beside the repository, wherever it is cloned.
PEER = PEERS / "slurm"
#: The MPI program both sides run (mpi4py: barrier, print): Slurm's with Debian's MPICH and an mpi4py built
#: against it (the peer's setup), Shoal's with the `mpich` and `mpi4py` wheels of its venv.
MPI_HELLO = PEER / "hello.py"
#: Rounds of the Shoal MPI task (bench.sh runs MPI_N = 10 of its own).
MPI_ROUNDS = 10
SLURM_CONF = Path(os.environ.get("SLURMPEER_DIR", "/tmp/slurmpeer")) / "etc" / "slurm.conf"


def slurm_env() -> dict[str, str]:
    env = dict(os.environ)
    if SLURM_CONF.exists():
        env.setdefault("SLURM_CONF", str(SLURM_CONF))
    return env


def slurm_available() -> tuple[bool, str]:
    if os.environ.get("SHOAL_BENCH_NO_SLURM", "") == "1":
        return False, "SHOAL_BENCH_NO_SLURM=1"
    if shutil.which("sinfo") is None:
        return False, "no `sinfo` on PATH"
    try:
        p = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=5, env=slurm_env())
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"sinfo failed: {e}"
    if p.returncode != 0:
        return False, f"sinfo failed: {p.stderr.strip()[:200]}"
    if "idle" not in p.stdout and "mix" not in p.stdout and "alloc" not in p.stdout:
        return False, f"no usable Slurm node: {p.stdout.strip()[:200]}"
    return True, p.stdout.strip()


def run_peer_bench(n: int, reps: int, out: Path) -> dict[str, float]:
    """bench.sh on the running cluster; median of each metric from its samples.csv."""
    env = slurm_env()
    env.setdefault("SRUN_N", "20")
    subprocess.run(
        [
            "bash",
            str(PEER / "bench.sh"),
            "-p",
            "current",
            "-r",
            str(reps),
            "-t",
            "array srun mpi",
            "-n",
            str(n),
            "-o",
            str(out),
        ],
        check=True,
        env=env,
        timeout=3600,
    )
    values: dict[str, list[float]] = {}
    with (out / "samples.csv").open() as f:
        for row in csv.DictReader(f):
            try:
                values.setdefault(row["metric"], []).append(float(row["value"]))
            except ValueError:
                continue
    return {k: statistics.median(v) for k, v in values.items() if v}


def shoal_latency(server: BenchServer, n: int) -> list[float]:
    server.create_job("lat", "lat")
    w = TaskWatcher(server, "lat")
    w.start()
    w.ready.wait(30)
    out = []
    for i in range(n + 2):
        tid = f"t{i}"
        done = w.expect(tid)
        t0 = time.monotonic()
        server.tasks.AddTask(
            task_pb2.AddTaskRequest(parent="jobs/lat", task=task_pb2.TaskSpec(id=tid, command_line="/bin/true")),
            timeout=30,
        )
        if not done.wait(30):
            raise TimeoutError(f"task {tid} did not complete")
        if i >= 2:
            out.append(w.seen[tid][task_pb2.TASK_STATE_COMPLETED] - t0)
    w.stream.cancel()
    return out


def shoal_mpi(server: BenchServer, rounds: int) -> list[float]:
    """AddTask -> COMPLETED seen of the MPI hello as a 2-instance task, once per round (one warm-up first)."""
    server.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(id="mpi", target_nodes=2, task_slots_per_node=1, enable_inter_node_communication=True)
        ),
        timeout=60,
    )
    server.wait_nodes("mpi", 2)
    server.create_job("mpi", "mpi")
    shoal_mpi_run(server, MPI_HELLO, 0, ppn=1)
    return [shoal_mpi_run(server, MPI_HELLO, i, ppn=1)[0] for i in range(1, rounds + 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.slurm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--with-slurm", action="store_true", help="run ../shared/peers/slurm/setup.sh first")
    ap.add_argument("--quick", action="store_true", help="N=100, 1 repetition")
    ap.add_argument("-n", type=int, default=0, help="tasks in the job array / Shoal job (default 1000)")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = ap.parse_args(argv)
    started = time.monotonic()
    if a.with_slurm:
        if not (PEER / "setup.sh").exists():
            print(f"{PEER / 'setup.sh'} not found")
            return 0
        subprocess.run(["bash", str(PEER / "setup.sh")], check=True, timeout=3600)
    ok, why = slurm_available()
    if not ok:
        print(f"Slurm is not available ({why}); nothing to compare. Run with --with-slurm to install a local one.")
        return 0
    n = a.n or (100 if a.quick else 1000)
    reps = 1 if a.quick else 3
    with tempfile.TemporaryDirectory(prefix="shoal-bench-slurm-") as tmp:
        root = Path(tmp)
        slurm = run_peer_bench(n, reps, root / "slurm")
        server = BenchServer(root / "server")
        try:
            server.start()
            server.create_pool("p1x2", 1, 2)
            server.create_pool("lat", 1, 1)
            server.wait_nodes("p1x2", 1)
            server.wait_nodes("lat", 1)
            rates = []
            for r in range(reps):
                run = shoal_run(server, "p1x2", f"arr{r}", "/bin/true", n, timeout=max(120.0, n * 0.2))
                rates.append(n / run.seconds)
            lat = shoal_latency(server, 20)
            mpi = shoal_mpi(server, 2 if a.quick else MPI_ROUNDS)
        finally:
            server.stop()
    shoal_rate = statistics.median(rates)
    shoal_lat_ms = 1000 * pct(lat, 50)
    report = Report(
        "Shoal and Slurm on the same machine, same invocation",
        ["measure", "Shoal", "Slurm", "Shoal / Slurm"],
    )
    slurm_rate = slurm.get(f"array{n}_e2e_rate", float("nan"))
    slurm_lat = slurm.get("srun_n1_true_latency", float("nan"))
    report.add(
        f"{n} x /bin/true, submit -> all done (tasks/s, median of {reps})",
        fmt(shoal_rate),
        fmt(slurm_rate),
        f"{shoal_rate / slurm_rate:.1f}" if slurm_rate == slurm_rate else "n/a",
    )
    report.add(
        "one /bin/true, submit -> completion p50 (ms)",
        fmt(shoal_lat_ms, 1),
        fmt(slurm_lat, 1),
        f"{shoal_lat_ms / slurm_lat:.2f}" if slurm_lat == slurm_lat else "n/a",
    )
    slurm_mpi = slurm.get("srun_n2_pmi2_hello_mpi4py", float("nan"))
    shoal_mpi_ms = 1000 * statistics.median(mpi)
    report.add(
        "2-rank MPI hello (mpi4py), submit -> completion median (ms)",
        fmt(shoal_mpi_ms, 1),
        fmt(slurm_mpi, 1),
        f"{shoal_mpi_ms / slurm_mpi:.2f}" if slurm_mpi == slurm_mpi else "n/a (no mpi4py on the Slurm side)",
    )
    report.note("Slurm: ../shared/peers/slurm/bench.sh -p current (the profile setup.sh last started; default ht).")
    report.note("Slurm array end = first empty `squeue` (polled every 0.1 s); srun latency = wall time of srun.")
    report.note("Shoal: local pool 1 node x 2 slots; latency = AddTask call to COMPLETED arriving on WatchTasks.")
    report.note(
        "MPI: Slurm = wall time of `srun -n 2 --mpi=pmi2 python hello.py` (one node, 2 CPUs; Debian MPICH); Shoal = "
        "AddTask to COMPLETED seen of a 2-instance task on 2 local nodes, `mpiexec -hosts $SHOAL_HOST_LIST -ppn 1 "
        "-n 2 python hello.py` (the mpich wheel's Hydra, proxies through shoal-mpi-launch). Same program "
        f"({MPI_HELLO.name}), different MPICH builds."
    )
    report.print()
    if should_record(a.quick, a.no_record):
        record("Slurm side by side (bench/slurm.py)", [report], started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
