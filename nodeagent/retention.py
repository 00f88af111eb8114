"""Retention of completed task directories: one journal of deadlines per node, and a sweeper.

A completed task's directory may be deleted once its retention deadline
passes. The deadlines live in one append-only journal,
`volatile/retention.jsonl`, not in a file per task: creating a file costs as
much as spawning the task's process on some filesystems, while appending a
line to an open journal is one small write. The journal is replayed at start
(a later line for the same task wins) and rewritten with only the live
entries once enough of it is dead.

The sweeper wakes at the earliest deadline (`next_sweep_delay`), not on a
fixed period, so a directory goes when its retention runs out rather than up
to a period later; a completion whose deadline comes before the planned wake
wakes it sooner (see `TaskRunner.run_sweeper`).
"""

from __future__ import annotations

import heapq
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
        #: (deadline, task) of every recorded deadline; an entry whose deadline is no longer the
        #: task's (replaced, forgotten) is dropped when it comes to the top.
        self._heap: list[tuple[float, TaskRef]] = []
        self._journal = Journal(path, compact_after=compact_after)
        self._load()
        self._heap = [(w, ref) for ref, w in self._deadlines.items()]
        heapq.heapify(self._heap)

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

    def record(self, job_id: str, task_id: str, deadline: datetime) -> float:
        """The task's directory may go after `deadline` (replaces an earlier deadline of the same task);
        returns the deadline in POSIX seconds."""
        when = deadline.timestamp()
        self._deadlines[(job_id, task_id)] = when
        heapq.heappush(self._heap, (when, (job_id, task_id)))
        if len(self._heap) > 2 * len(self._deadlines) + 1000:
            # Mostly replaced deadlines: rebuild from the live ones (amortised, like the journal).
            self._heap = [(w, ref) for ref, w in self._deadlines.items()]
            heapq.heapify(self._heap)
        self._journal.append([when, job_id, task_id], self._live, len(self._deadlines))
        return when

    def deadline(self, job_id: str, task_id: str) -> float | None:
        """The recorded deadline (POSIX seconds), or None (still running, or never completed on this node)."""
        return self._deadlines.get((job_id, task_id))

    def _drop_stale(self) -> None:
        while self._heap and self._deadlines.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest deadline still watched (POSIX seconds), or None."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def last_deadline(self, exists: Callable[[str, str], bool]) -> float | None:
        """The latest deadline recorded of a directory that still `exists` (POSIX seconds), or None: when
        every directory may go."""
        return max((w for (j, t), w in self._deadlines.items() if exists(j, t)), default=None)

    def due(self, now: datetime, is_active: Callable[[str, str], bool]) -> list[TaskRef]:
        """Tasks whose deadline passed and that are not running again.

        Those running again are no longer watched here: their next completion records a new
        deadline (a restarted agent watches every deadline of its journal again).
        """
        t = now.timestamp()
        out: list[TaskRef] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > t:
                return out
            _when, ref = heapq.heappop(self._heap)
            if not is_active(*ref):
                out.append(ref)

    def forget(self, refs: Iterable[TaskRef]) -> None:
        """These directories are gone."""
        for ref in refs:
            if self._deadlines.pop(ref, None) is not None:
                self._journal.append([None, *ref], self._live, len(self._deadlines))

    def close(self) -> None:
        """Close the journal's file descriptor."""
        self._journal.close()


def next_sweep_delay(next_deadline: float | None, now: float, max_wait: float) -> float:
    """Seconds until the sweeper runs again: at the earliest deadline (`now` and the deadline in
    POSIX seconds), at once when it has passed, and never later than `max_wait` (a safety net for
    a wall clock that jumps)."""
    if next_deadline is None:
        return max_wait
    return min(max_wait, max(0.0, next_deadline - now))


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
