"""Retention of completed task directories: one journal of deadlines per node, and a sweeper.

A completed task's directory may be deleted once its retention deadline
passes. The deadlines live in one append-only journal,
`volatile/retention.jsonl`, not in a file per task: creating a file costs as
much as spawning the task's process on some filesystems, while appending a
line to an open journal is one small write. The journal is replayed at start
(a later line for the same task wins) and rewritten with only the live
entries once enough of it is dead.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from shoal.nodeagent.journal import Journal

log = logging.getLogger(__name__)

TaskRef = tuple[str, str]  # (job id, task id)


class RetentionJournal:
    """Deadlines of completed task directories, kept in memory and in a journal (`shoal.nodeagent.journal`).

    A line `[deadline, job, task]` records a deadline, `[null, job, task]` that the directory is gone.
    """

    def __init__(self, path: Path, *, compact_after: int = 10_000) -> None:
        self.path = path
        self._deadlines: dict[TaskRef, float] = {}
        self._journal = Journal(path, compact_after=compact_after)
        self._load()

    def _load(self) -> None:
        for rec in self._journal.read():
            if not isinstance(rec, list):
                continue
            try:
                deadline, job_id, task_id = rec
                ref = (str(job_id), str(task_id))
                if deadline is None:
                    self._deadlines.pop(ref, None)
                else:
                    self._deadlines[ref] = float(deadline)
            except (ValueError, TypeError):
                continue

    def _live(self) -> list[object]:
        return [[w, j, t] for (j, t), w in self._deadlines.items()]

    def record(self, job_id: str, task_id: str, deadline: datetime) -> None:
        """The task's directory may go after `deadline` (replaces an earlier deadline of the same task)."""
        when = deadline.timestamp()
        self._deadlines[(job_id, task_id)] = when
        self._journal.append([when, job_id, task_id], self._live, len(self._deadlines))

    def deadline(self, job_id: str, task_id: str) -> float | None:
        """The recorded deadline (POSIX seconds), or None (still running, or never completed on this node)."""
        return self._deadlines.get((job_id, task_id))

    def due(self, now: datetime, is_active: Callable[[str, str], bool]) -> list[TaskRef]:
        """Tasks whose deadline passed and that are not running again."""
        t = now.timestamp()
        return [ref for ref, when in self._deadlines.items() if when <= t and not is_active(*ref)]

    def forget(self, refs: Iterable[TaskRef]) -> None:
        """These directories are gone."""
        for ref in refs:
            if self._deadlines.pop(ref, None) is not None:
                self._journal.append([None, *ref], self._live, len(self._deadlines))

    def close(self) -> None:
        """Close the journal's file descriptor."""
        self._journal.close()


def remove_task_dirs(dirs: Iterable[Path]) -> list[Path]:
    """Delete these task directories and the job directories they leave empty; returns those removed."""
    removed = []
    for task_dir in dirs:
        if task_dir.is_dir():
            shutil.rmtree(task_dir, ignore_errors=True)
            removed.append(task_dir)
            log.info("retention expired: removed %s", task_dir)
        remove_if_empty(task_dir.parent.parent)
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
