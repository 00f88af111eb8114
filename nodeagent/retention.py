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

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

TaskRef = tuple[str, str]  # (job id, task id)


class RetentionJournal:
    """Deadlines of completed task directories, kept in memory and in an append-only file."""

    def __init__(self, path: Path, *, compact_after: int = 10_000) -> None:
        self.path = path
        self._deadlines: dict[TaskRef, float] = {}
        self._fd: int | None = None
        self._lines = 0
        self._compact_after = compact_after
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        try:
            text = self.path.read_text()
        except OSError:
            return
        for line in text.splitlines():
            try:
                deadline, job_id, task_id = json.loads(line)
                ref = (str(job_id), str(task_id))
                if deadline is None:  # removed
                    self._deadlines.pop(ref, None)
                else:
                    self._deadlines[ref] = float(deadline)
            except (ValueError, TypeError):
                continue  # a torn last line
            self._lines += 1

    def record(self, job_id: str, task_id: str, deadline: datetime) -> None:
        """The task's directory may go after `deadline` (replaces an earlier deadline of the same task)."""
        if not self._loaded:
            self._load()
        when = deadline.timestamp()
        self._deadlines[(job_id, task_id)] = when
        self._append(json.dumps([when, job_id, task_id]) + "\n")

    def deadline(self, job_id: str, task_id: str) -> float | None:
        """The recorded deadline (POSIX seconds), or None (still running, or never completed on this node)."""
        if not self._loaded:
            self._load()
        return self._deadlines.get((job_id, task_id))

    def due(self, now: datetime, is_active: Callable[[str, str], bool]) -> list[TaskRef]:
        """Tasks whose deadline passed and that are not running again."""
        if not self._loaded:
            self._load()
        t = now.timestamp()
        return [ref for ref, when in self._deadlines.items() if when <= t and not is_active(*ref)]

    def forget(self, refs: Iterable[TaskRef]) -> None:
        """These directories are gone (a tombstone line each; the journal is rewritten when most of it is dead)."""
        for ref in refs:
            if self._deadlines.pop(ref, None) is not None:
                self._append(json.dumps([None, *ref]) + "\n")

    def close(self) -> None:
        """Close the journal's file descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, line: str) -> None:
        if self._fd is None or self._lines > max(self._compact_after, 2 * len(self._deadlines)):
            self._compact()  # the rewrite holds the new entry already
            return
        try:
            os.write(self._fd, line.encode())
            self._lines += 1
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)

    def _compact(self) -> None:
        self.close()
        text = "".join(json.dumps([w, j, t]) + "\n" for (j, t), w in self._deadlines.items())
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._lines = len(self._deadlines)
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)


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
