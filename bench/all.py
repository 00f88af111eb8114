"""Run every instrument: `python -m bench.all [--quick] [--no-record]` (extra flags go to each one)."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable

from bench import deps_dag, deps_handoff, latency, mpi_launch, simulated, slurm, throughput

INSTRUMENTS: list[tuple[str, Callable[[list[str] | None], int]]] = [
    ("throughput", throughput.main),
    ("latency", latency.main),
    ("dependencies handoff", deps_handoff.main),
    ("simulated", simulated.main),
    ("dependencies dag", deps_dag.main),
    ("slurm", slurm.main),
    ("mpi_launch", mpi_launch.main),
]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    failed = []
    for name, fn in INSTRUMENTS:
        print(f"\n=== bench.{name} {' '.join(args)}", flush=True)
        t0 = time.monotonic()
        try:
            rc = fn(args)
        except Exception:
            traceback.print_exc()
            rc = 1
        print(f"=== bench.{name}: exit {rc} in {time.monotonic() - t0:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
