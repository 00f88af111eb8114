"""The MPI example is a real program: its parallel result equals the serial one."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mpi" / "heat.py"


@pytest.mark.timeout(60)
def test_heat_parallel_matches_serial_with_plain_mpiexec() -> None:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if mpiexec is None:
        pytest.skip("the mpich wheel is not installed")
    out = subprocess.run(
        [mpiexec, "-n", "3", sys.executable, str(EXAMPLE), "--nx", "61", "--ny", "40", "--steps", "80"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "3 ranks" in out.stdout and "OK" in out.stdout


def test_bands_cover_the_grid() -> None:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import heat  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    for nx in (5, 61, 100):
        for size in (1, 2, 3, 7):
            b = heat.bands(nx, size)
            assert b[0][0] == 0 and b[-1][1] == nx
            assert all(x[1] == y[0] for x, y in itertools.pairwise(b))
