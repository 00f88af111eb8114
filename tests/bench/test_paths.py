"""The bench names paths relative to the repository, so that a clone anywhere runs and reproduces it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bench import common, slurm

REPO = Path(__file__).resolve().parents[2]


def test_a_recorded_section_holds_no_absolute_path_of_the_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(REPO / "bench" / "simulated.py"), "--nodes", "10"])
    report = common.Report("A table", ["figure", "value"])
    report.add("dispatches/s", "1")
    text = common.section("Simulated agents", [report], time.monotonic())
    assert str(REPO) not in text
    assert "reproduce, from the repository's root: `.venv/bin/python -m bench.simulated --nodes 10`" in text


def test_a_script_run_by_its_path_is_named_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(REPO / "scripts" / "x.py"), "--flag", str(REPO / "bench" / "a b")])
    line = common.command_line()
    assert str(REPO) not in line
    assert "scripts/x.py --flag 'bench/a b'" in line


def test_the_slurm_peer_is_found_beside_the_repository() -> None:
    assert REPO.parent / "shared" / "peers" / "slurm" == slurm.PEER


def test_no_bench_source_names_where_this_clone_or_its_peers_lie() -> None:
    fixed = (f"{REPO}/", f"{REPO.parent / 'shared'}/")
    named = [p.name for p in (REPO / "bench").glob("*.py") if any(f in p.read_text() for f in fixed)]
    assert named == []


def test_profile_frames_are_shortened_from_the_repository() -> None:
    frame = f"plan (/{REPO.relative_to('/')}/server/scheduling/plan.py:12)"
    assert common.short_frame(frame) == "plan (server/scheduling/plan.py:12)"
