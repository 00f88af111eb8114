"""Retention of completed task directories: a deadline file per task and a sweeper."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

RETENTION_FILE = ".retention"


def write_deadline(task_dir: Path, deadline: datetime) -> None:
    """Record when a completed task's directory may be deleted."""
    (task_dir / RETENTION_FILE).write_text(deadline.isoformat() + "\n")


def read_deadline(task_dir: Path) -> datetime | None:
    """The recorded deadline, or None (still running, or never completed by this node)."""
    try:
        return datetime.fromisoformat((task_dir / RETENTION_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def sweep(workitems: Path, now: datetime, is_active: Callable[[str, str], bool]) -> list[Path]:
    """Delete task directories whose deadline passed and whose task is not active; returns them.

    Job directories left empty are removed as well.
    """
    removed: list[Path] = []
    if not workitems.is_dir():
        return removed
    for job_dir in workitems.iterdir():
        jobs1 = job_dir / "job-1"
        if not jobs1.is_dir():
            continue
        for task_dir in jobs1.iterdir():
            deadline = read_deadline(task_dir)
            if deadline is None or deadline > now or is_active(job_dir.name, task_dir.name):
                continue
            shutil.rmtree(task_dir, ignore_errors=True)
            removed.append(task_dir)
            log.info("retention expired: removed %s", task_dir)
        remove_if_empty(job_dir)
    return removed


def remove_if_empty(job_dir: Path) -> None:
    """Remove `workitems/<job>` (and its `job-1`) when no task directory is left."""
    try:
        jobs1 = job_dir / "job-1"
        if jobs1.is_dir() and not any(jobs1.iterdir()):
            jobs1.rmdir()
        if job_dir.is_dir() and not any(job_dir.iterdir()):
            job_dir.rmdir()
    except OSError:
        pass
