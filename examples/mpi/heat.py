"""2-D heat diffusion with halo exchange (mpi4py + NumPy), checked against a serial run.

The grid is split into horizontal bands, one per rank. Every step each rank
swaps its edge rows with its neighbours (the halos), then applies the explicit
5-point stencil to its band. Rank 0 gathers the result, runs the same number
of steps serially, and exits non-zero unless the two agree to rounding.

    mpiexec -hosts $SHOAL_HOST_LIST -n 4 python heat.py --nx 200 --ny 200 --steps 500
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from mpi4py import MPI

ALPHA = 0.2  # diffusion number (≤ 0.25 for the explicit scheme to be stable)


def initial(nx: int, ny: int) -> np.ndarray:
    """Cold plate, hot top edge, a warm square in the middle."""
    u = np.zeros((nx, ny))
    u[0, :] = 100.0
    u[nx // 3 : nx // 2, ny // 3 : ny // 2] = 50.0
    return u


def step(u: np.ndarray) -> None:
    """One explicit step on the interior of `u` (edges are fixed boundaries)."""
    u[1:-1, 1:-1] += ALPHA * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * u[1:-1, 1:-1])


def serial(nx: int, ny: int, steps: int) -> np.ndarray:
    u = initial(nx, ny)
    for _ in range(steps):
        step(u)
    return u


def bands(nx: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) rows of each rank's band."""
    base, extra = divmod(nx, size)
    out, start = [], 0
    for r in range(size):
        stop = start + base + (1 if r < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def parallel(comm: MPI.Comm, nx: int, ny: int, steps: int) -> np.ndarray | None:
    rank, size = comm.Get_rank(), comm.Get_size()
    start, stop = bands(nx, size)[rank]
    full = initial(nx, ny)
    # The band plus one halo row above and below (where a neighbour exists).
    lo = max(start - 1, 0)
    hi = min(stop + 1, nx)
    u = full[lo:hi].copy()
    up = rank - 1 if rank > 0 else MPI.PROC_NULL
    down = rank + 1 if rank < size - 1 else MPI.PROC_NULL
    first = start - lo  # index of the band's first row in u
    last = first + (stop - start) - 1
    for _ in range(steps):
        # Halo exchange: my first row goes up, my last row goes down.
        if up != MPI.PROC_NULL:
            comm.Sendrecv(u[first].copy(), dest=up, recvbuf=u[first - 1], source=up)
        if down != MPI.PROC_NULL:
            comm.Sendrecv(u[last].copy(), dest=down, recvbuf=u[last + 1], source=down)
        new = u.copy()
        step(new)
        # Rows outside my band (halos) and the global boundary rows stay as they were.
        keep_lo = first if start > 0 else first + 1
        keep_hi = last if stop < nx else last - 1
        u[keep_lo : keep_hi + 1, 1:-1] = new[keep_lo : keep_hi + 1, 1:-1]
    pieces = comm.gather(u[first : last + 1], root=0)
    return np.vstack(pieces) if rank == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nx", type=int, default=120)
    ap.add_argument("--ny", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    t0 = MPI.Wtime()
    result = parallel(comm, a.nx, a.ny, a.steps)
    elapsed = MPI.Wtime() - t0
    if comm.Get_rank() != 0:
        return 0
    assert result is not None
    reference = serial(a.nx, a.ny, a.steps)
    err = float(np.max(np.abs(result - reference)))
    ok = err < 1e-9
    print(
        f"heat: {comm.Get_size()} ranks, grid {a.nx}x{a.ny}, {a.steps} steps, "
        f"{elapsed:.3f} s; mean temperature {result.mean():.6f}; max |parallel - serial| = {err:.2e} "
        f"{'OK' if ok else 'MISMATCH'}",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
