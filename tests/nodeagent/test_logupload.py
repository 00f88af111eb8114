"""The agent's choice of log files for UploadLogs (`shoal.nodeagent.logupload`): names, time spans, links."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from shoal.nodeagent import logupload
from shoal.nodeagent.logupload import LogSpan, in_window

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_log_names() -> None:
    for name in ("agent.log", "agent.out", "agent.log.1", "agent.log.12", "agent.out.3", "agent.log-20260301"):
        assert logupload.is_log_name(name), name
    for name in ("agent.lock", "agent.log.gz", "agent.log.", "xagent.log", "agent.log/x", "agent.log.1.2", "node-id"):
        assert not logupload.is_log_name(name), name


def test_first_line_time_is_the_agents_log_format_in_local_time() -> None:
    local = datetime(2026, 3, 1, 13, 4, 5, 678000).astimezone()
    head = local.strftime("%Y-%m-%d %H:%M:%S").encode() + b",678 INFO shoal.nodeagent.agent: agent node-1\n"
    assert logupload.first_line_time(head) == local.astimezone(UTC)
    assert logupload.first_line_time(b"Traceback (most recent call last):\n") is None
    assert logupload.first_line_time(b"2026-13-45 99:00:00,000 bad\n") is None
    assert logupload.first_line_time(b"") is None


def test_window() -> None:
    span = LogSpan(first=T0, modified=T0 + timedelta(hours=1))
    assert in_window(span, T0 - timedelta(hours=1), None)
    assert in_window(span, T0 + timedelta(minutes=30), T0 + timedelta(minutes=40))
    assert in_window(span, T0 + timedelta(hours=1), None)  # written at the start, exactly
    assert not in_window(span, T0 + timedelta(hours=2), None)  # nothing written since
    assert not in_window(span, T0 - timedelta(hours=2), T0 - timedelta(hours=1))  # begun after the window
    assert in_window(LogSpan(None, T0), T0 - timedelta(days=9), T0 - timedelta(days=8))  # its start unknown


@given(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
)
def test_window_is_interval_overlap(first: int, length: int, start: int, width: int) -> None:
    span = LogSpan(T0 + timedelta(seconds=first), T0 + timedelta(seconds=first + length))
    lo, hi = T0 + timedelta(seconds=start), T0 + timedelta(seconds=start + width)
    overlap = span.first is not None and span.first <= hi and lo <= span.modified
    assert in_window(span, lo, hi) == overlap


def test_candidates_are_the_logs_in_the_root_newest_first_never_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret"
    outside.write_text("not a log")
    for i, name in enumerate(("agent.log.2", "agent.log.1", "agent.out", "agent.log", "other.txt")):
        (root / name).write_text(name)
        os.utime(root / name, (1000 + i, 1000 + i))
    (root / "agent.log.3").symlink_to(outside)
    (root / "agent.log.4").mkdir()
    (root / "startup").mkdir()
    (root / "startup" / "agent.log").write_text("a task's file, not the agent's")
    assert logupload.candidates(root) == ["agent.log", "agent.out", "agent.log.1", "agent.log.2"]


def test_a_snapshot_stops_at_the_size_it_was_opened_with(tmp_path: Path) -> None:
    f = tmp_path / "agent.log"
    f.write_bytes(b"0123456789")
    fd = os.open(f, os.O_RDONLY)
    try:
        snap = logupload._Snapshot(fd, 10)
        with f.open("ab") as out:
            out.write(b"appended while uploading")
        assert snap.read(4) + snap.read(100) + snap.read(100) == b"0123456789"
    finally:
        os.close(fd)
