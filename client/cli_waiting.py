"""Why work waits, on the command line: the snapshots :mod:`shoal.client.waiting` reasons about, read
from the server, and its reasons as lines (``shoal job counts``) or told once each while waiting
(``shoal task wait``, ``shoal job wait``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import NotFound
from .waiting import JobDiagnosis, WaitReason, diagnose_job, task_waits

if TYPE_CHECKING:
    from ._client import Client
    from .types import Job, Node, Pool

__all__ = [
    "LOOK_AT",
    "WAIT_CHECK_INTERVAL",
    "WAIT_CHECK_MAX",
    "diagnosis_lines",
    "diagnosis_plain",
    "read_diagnosis",
    "telling_why",
]

#: The most active tasks of a job read to tell why they wait (the first ones listed).
LOOK_AT = 1000
#: Seconds between the first two looks at why the tasks a `wait` waits for have not started; each next
#: look comes half as long again after the last, up to WAIT_CHECK_MAX (a long wait costs the server little).
WAIT_CHECK_INTERVAL = 2.0
WAIT_CHECK_MAX = 30.0


def _job_snapshot(client: Client, job_id: str) -> tuple[Job | None, Pool | None, list[Node]]:
    """The job, its pool (None if missing) and the pool's nodes, as read now."""
    try:
        job = client.jobs.get(job_id)
    except NotFound:
        return None, None, []
    pool_id = job.execution_pool_id or job.pool_id
    if not pool_id:
        return job, None, []
    try:
        pool = client.pools.get(pool_id)
    except NotFound:
        return job, None, []
    return job, pool, list(client.pools.nodes(pool_id))


def read_diagnosis(client: Client, job_id: str, *, look_at: int = LOOK_AT, busy: int | None = None) -> JobDiagnosis:
    """Why the active tasks of ``job_id`` wait (the first ``look_at`` of them are looked at); ``busy``: how
    many of its tasks run or prepare, when the caller knows (for its parallel-task limit)."""
    job, pool, nodes = _job_snapshot(client, job_id)
    active = itertools.islice(client.tasks.list(job_id, state="active"), look_at) if job is not None else iter(())
    return diagnose_job(job, pool, nodes, active, busy=busy)


def _stuck(reason: WaitReason) -> str:
    return "  [stuck: runs only if this changes]" if reason.never else ""


def diagnosis_lines(d: JobDiagnosis, *, active: int) -> list[str]:
    """``d`` for people, a line per reason: the job's (for all its tasks), then the tasks' by kind."""
    if not d.job and not d.tasks:
        return []
    many = f", of the first {d.looked_at} looked at" if d.looked_at < active else ""
    lines = [f"why the {active} active task(s) wait{many}:"]
    lines += [f"  all: {r}{_stuck(r)}" for r in d.job]
    for g in d.tasks:
        which = g.example if g.tasks == 1 else f"{g.tasks}, e.g. {g.example}"
        lines.append(f"  {which}: {g.reason}{_stuck(g.reason)}")
    return lines


def _reason(r: WaitReason) -> dict[str, Any]:
    return {"code": r.code, "message": r.message, "stuck": r.never}


def diagnosis_plain(d: JobDiagnosis) -> dict[str, Any]:
    """``d`` for ``-o json``."""
    return {
        "job": [_reason(r) for r in d.job],
        "tasks": [{**_reason(g.reason), "tasks": g.tasks, "example": g.example} for g in d.tasks],
        "looked_at": d.looked_at,
    }


def _busy_now(client: Client, job_id: str) -> int | None:
    """How many of the job's tasks run or prepare now (None when the job is gone)."""
    try:
        return client.jobs.task_counts(job_id).running
    except NotFound:
        return None


def _current_reasons(client: Client, job_id: str, task_ids: Sequence[str] | None) -> Iterator[tuple[str, str]]:
    """(key, line) for each reason the waited-for tasks wait now; a key is told once."""
    busy = _busy_now(client, job_id)
    if not task_ids:
        d = read_diagnosis(client, job_id, busy=busy)
        for r in d.job:
            yield f"job:{r.code}", f"waiting: {r}{_stuck(r)}"
        for g in d.tasks:
            which = g.example if g.tasks == 1 else f"{g.tasks} tasks, e.g. {g.example}"
            yield f"tasks:{g.reason.code}", f"waiting: {which}: {g.reason}{_stuck(g.reason)}"
        return
    job, pool, nodes = _job_snapshot(client, job_id)
    for task_id in task_ids[:100]:
        try:
            task = client.tasks.get(job_id, task_id)
        except NotFound:
            continue
        for r in task_waits(task, job, pool, nodes, busy=busy):
            yield f"{task_id}:{r.code}", f"waiting: {task_id}: {r}{_stuck(r)}"


@contextmanager
def telling_why(
    client: Client,
    job_id: str,
    task_ids: Sequence[str] | None,
    tell: Callable[[str], None],
    *,
    interval: float | None = None,
) -> Iterator[None]:
    """While the body waits for tasks of ``job_id`` (``task_ids``, or all), look at once and then after
    ``interval`` seconds (WAIT_CHECK_INTERVAL), less often as the wait goes on, at why they have not started,
    and ``tell`` each reason once, when it is first seen."""
    stop = threading.Event()
    told: set[str] = set()
    first = WAIT_CHECK_INTERVAL if interval is None else interval

    def look() -> None:
        every = first
        while not stop.is_set():
            try:
                for key, line in _current_reasons(client, job_id, task_ids):
                    if key not in told and not stop.is_set():
                        told.add(key)
                        tell(line)
            except Exception:
                # A diagnosis never breaks the wait: the next look may do better, and the wait itself reports
                # what is wrong with the server.
                pass
            stop.wait(every)
            every = min(every * 1.5, max(first, WAIT_CHECK_MAX))

    thread = threading.Thread(target=look, name="why-waiting", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
