"""Smoke run of the MPI launch-overhead instrument (runs and reports; no timing asserts)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.test_smoke import run_quick, table_numbers


@pytest.mark.timeout(120)
def test_mpi_launch_quick() -> None:
    if shutil.which("mpiexec", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the mpich wheel is not installed")
    out = run_quick("mpi_launch", timeout=110)
    assert len(table_numbers(out, "plain `mpiexec -n 4`")) >= 3
    assert len(table_numbers(out, "AddTask")) >= 3
