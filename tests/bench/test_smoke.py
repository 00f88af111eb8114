"""Smoke runs of the benchmark instruments: each quick mode runs and reports numbers (no timing asserts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"\d+\.\d+|\d[\d,]*")


def run_quick(name: str, timeout: float, *args: str) -> str:
    results = REPO / "bench" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    env = dict(os.environ, SHOAL_BENCH_NO_RECORD="1", SHOAL_BENCH_NO_SLURM="1")
    p = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args, "--quick", "--no-record"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, f"bench.{name} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    after = results.read_bytes() if results.exists() else None
    assert before == after, "a smoke run must not write bench/RESULTS.md"
    return p.stdout


def table_numbers(out: str, label: str) -> list[str]:
    lines = [line for line in out.splitlines() if label in line]
    assert lines, f"no row with {label!r} in:\n{out}"
    return NUMBER.findall(lines[0].split(label, 1)[1])


@pytest.mark.timeout(40)
def test_throughput_quick() -> None:
    out = run_quick("throughput", 35)
    assert table_numbers(out, "shoal 2 nodes x 2 slots")
    assert table_numbers(out, "raw Popen")
    assert table_numbers(out, "raw multi-process")


@pytest.mark.timeout(30)
def test_latency_quick() -> None:
    out = run_quick("latency", 25)
    assert table_numbers(out, "submit -> start (agent start_time)")
    assert table_numbers(out, "submit -> COMPLETED seen")


@pytest.mark.timeout(30)
def test_dependency_handoff_quick() -> None:
    out = run_quick("dependencies", 25, "handoff")
    assert table_numbers(out, "parent end -> child start (agent stamps)")
    assert table_numbers(out, "parent COMPLETED seen -> child PREPARING seen")


@pytest.mark.timeout(40)
def test_dependency_dag_quick() -> None:
    out = run_quick("dependencies", 35, "dag")
    assert table_numbers(out, "DAG / independent, median of the rounds")
    assert table_numbers(out, "DAG, first StartTasks -> last COMPLETED")
    assert table_numbers(out, "a cycle through the whole chain (refused)")
    assert "No problem found" in out


@pytest.mark.timeout(30)
def test_dependency_store_quick() -> None:
    out = run_quick("dependencies", 25, "store")
    assert table_numbers(out, "RSS per stored task with dependencies")
    assert table_numbers(out, "SIGKILL, new process -> first answer")


@pytest.mark.timeout(40)
def test_simulated_quick() -> None:
    out = run_quick("simulated", 35)
    assert table_numbers(out, "sustained, first StartTasks -> last task COMPLETED")
    assert table_numbers(out, "StartTasks alone, first to last")
    assert table_numbers(out, "RSS per stored task")
    assert table_numbers(out, "first dispatch")


@pytest.mark.timeout(20)
def test_slurm_without_slurm_says_so() -> None:
    out = run_quick("slurm", 15)
    assert "Slurm" in out
