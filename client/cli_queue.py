"""``shoal queue``: what runs and what waits across every job of the account, as Slurm's ``squeue``.

One row per task that is not completed: its job, state, node, pool, how long it has run (or waited),
and, for a waiting task, why, in the words of :mod:`shoal.client.waiting` (the codes ``shoal task wait``
and ``shoal job counts`` tell too). The rows are worked out by pure functions from the jobs, tasks, pools
and nodes read; the command only reads and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from .cli_common import _OUTPUT, _client
from .cli_render import Column
from .cli_watch import list_or_watch, watch_option
from .errors import NotFound
from .waiting import task_waits

if TYPE_CHECKING:
    from .types import Job, Node, Pool, Task

__all__ = ["QueueEntry", "queue", "queue_entries", "read_queue", "short_duration"]

QUEUE_STATES = ("running", "preparing", "active")
"""The states of tasks the queue shows, in the order it shows them."""

# Jobs whose tasks may still be waiting or running (a completed job's tasks are all completed).
_LIVE_JOB_STATES = frozenset({"active", "disabling", "disabled", "enabling", "terminating"})


@dataclass(frozen=True, kw_only=True)
class QueueEntry:
    """One task of the queue (its JSON form is these fields)."""

    job_id: str
    """Its job."""
    task_id: str
    """The task id."""
    state: str
    """``running``, ``preparing`` or ``active`` (waiting)."""
    pool_id: str
    """The pool it runs on, or that its job's tasks go to while it waits."""
    node_id: str
    """The node it runs on; "" while it waits."""
    since: datetime | None
    """When it started running (or preparing, or last began to wait)."""
    seconds: float | None
    """How long it has run (or waited) so far."""
    reason: str
    """Why it waits: the code of the first of its reasons (those that need someone to act come first; see
    :mod:`shoal.client.waiting`), "" when nothing holds it but its turn."""
    reason_message: str
    """What that reason means, for people ("" with no reason)."""
    stuck: bool
    """That reason will not go away unless someone changes something (:attr:`WaitReason.never`)."""
    priority: int
    """Its job's priority (higher runs first)."""
    required_slots: int
    """Slots of a node it takes."""
    command_line: str
    """What it runs."""


def short_duration(seconds: float | None) -> str | None:
    """A duration as ``45s``, ``12m05s``, ``3h07m`` or ``2d04h`` (two units at most, as people read a queue)."""
    if seconds is None:
        return None
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def _job_pool(job: Job) -> str:
    """The pool a job's tasks go to (its auto pool's, for a job with one; "" before that is made)."""
    return job.execution_pool_id or job.pool_id


def _since(task: Task) -> datetime | None:
    if str(task.state) == "running" and task.start_time is not None:
        return task.start_time
    return task.state_transition_time or task.creation_time


def queue_entries(
    jobs: Sequence[Job],
    tasks: Mapping[str, Sequence[Task]],
    pools: Mapping[str, Pool],
    nodes: Mapping[str, Sequence[Node]],
    now: datetime,
    *,
    busy_read: bool = True,
) -> list[QueueEntry]:
    """The queue's rows from the ``jobs`` read, the not-completed ``tasks`` of each (by job id), the
    account's ``pools`` (by id) and the ``nodes`` of each pool a waiting task's job uses (by pool id):
    running first (longest running first), then preparing, then waiting (the job of the highest priority
    first, then the oldest). ``busy_read``: the running and preparing tasks of every job were read (so a
    job's parallel-task limit can be told apart)."""
    entries: list[QueueEntry] = []
    for job in jobs:
        job_tasks = tasks.get(job.id, ())
        busy = sum(1 for t in job_tasks if str(t.state) in ("running", "preparing")) if busy_read else None
        job_pool = _job_pool(job)
        for t in job_tasks:
            state = str(t.state)
            if state not in QUEUE_STATES:
                continue
            since = _since(t)
            reasons = (
                task_waits(t, job, pools.get(job_pool), nodes.get(job_pool, ()), busy=busy) if state == "active" else []
            )
            first = reasons[0] if reasons else None
            entries.append(
                QueueEntry(
                    job_id=job.id,
                    task_id=t.id,
                    state=state,
                    pool_id=t.pool_id or job_pool,
                    node_id=t.node_id,
                    since=since,
                    seconds=None if since is None else max(0.0, (now - since).total_seconds()),
                    reason=first.code if first else "",
                    reason_message=first.message if first else "",
                    stuck=first.never if first else False,
                    priority=job.priority,
                    required_slots=t.spec.required_slots,
                    command_line=t.command_line,
                )
            )
    order = {s: i for i, s in enumerate(QUEUE_STATES)}
    oldest = datetime.min.replace(tzinfo=UTC)

    def sort_key(e: QueueEntry) -> tuple[Any, ...]:
        since = e.since or oldest
        if e.state == "active":
            return (order[e.state], -e.priority, since, e.job_id, e.task_id)
        return (order[e.state], since, e.job_id, e.task_id)

    return sorted(entries, key=sort_key)


_COLUMNS: list[Column] = [
    Column("job", lambda e: e.job_id, priority=0),
    Column("task", lambda e: e.task_id, priority=1),
    Column("state", lambda e: e.state, priority=2),
    Column("node", lambda e: e.node_id or None, priority=4),
    Column("pool", lambda e: e.pool_id or None, priority=5),
    Column("time", lambda e: short_duration(e.seconds), priority=3, ticks=True),
    Column("reason", lambda e: e.reason or None, priority=6),
    Column("priority", lambda e: e.priority, priority=7, wide=True),
    Column("slots", lambda e: e.required_slots, priority=8, wide=True),
    Column("command", lambda e: e.command_line, priority=9, wide=True),
    # (Its message moves with the rest of the cluster, as an elapsed time moves with the clock: "3 of the 4
    # slots are taken". --watch prints a row again when its reason changes, not for every slot freed.)
    Column("why", lambda e: e.reason_message or None, priority=10, wide=True, ticks=True),
]


def read_queue(
    client: Any, *, job_ids: Sequence[str], pool_ids: Sequence[str], states: Sequence[str]
) -> list[QueueEntry]:
    """Read the jobs (``job_ids``, else every live job of the account), their tasks in ``states``, the
    pools, and the nodes of each pool that a job with waiting tasks uses (once per pool), and return the
    queue's rows (only those on ``pool_ids`` when given)."""
    if job_ids:
        jobs = [client.jobs.get(j) for j in dict.fromkeys(job_ids)]
    else:
        jobs = [j for j in client.jobs.list() if str(j.state) in _LIVE_JOB_STATES]
    if pool_ids:
        jobs = [j for j in jobs if _job_pool(j) in pool_ids]
    pools: dict[str, Pool] = {p.id: p for p in client.pools.list()}
    # To tell a job held by its parallel-task limit, its running and preparing tasks are read too.
    wanted = list(dict.fromkeys([*states, *(["running", "preparing"] if "active" in states else [])]))
    tasks: dict[str, list[Task]] = {}
    for job in jobs:
        tasks[job.id] = [t for s in wanted for t in client.tasks.list(job.id, state=s)]
    nodes: dict[str, list[Node]] = {}
    for pool_id in dict.fromkeys(_job_pool(j) for j in jobs if any(str(t.state) == "active" for t in tasks[j.id])):
        if pool_id not in pools:
            continue
        try:
            nodes[pool_id] = list(client.pools.nodes(pool_id))
        except NotFound:
            # Deleted since the pools were listed: its tasks wait for a pool that is not there.
            del pools[pool_id]
    rows = queue_entries(jobs, tasks, pools, nodes, datetime.now(UTC))
    return [r for r in rows if r.state in states and (not pool_ids or r.pool_id in pool_ids)]


@click.command("queue")
@click.option("--job", "job_ids", multiple=True, metavar="JOB_ID", help="Only this job's tasks (repeatable).")
@click.option("--pool", "pool_ids", multiple=True, metavar="POOL_ID", help="Only tasks on this pool (repeatable).")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(QUEUE_STATES),
    help="Only tasks in this state (repeatable; default: all three).",
)
@_OUTPUT
@watch_option
@click.pass_context
def queue(
    ctx: click.Context,
    job_ids: tuple[str, ...],
    pool_ids: tuple[str, ...],
    states: tuple[str, ...],
    output: str,
    watch: bool,
) -> None:
    """What runs and what waits, across every job of the account (as Slurm's squeue).

    A row per running, preparing or waiting (active) task: job, task, state, node, pool, how long it
    has run or waited, and why it waits: the first of its reasons, those that need someone to act
    first, in the codes that `shoal task wait` and `shoal job counts` use (JobDisabled, PoolEmpty,
    NodesStarting, DependencyFailed, WaitingOnDependencies, SlotsBusy, JobMaxParallelTasks...; the
    README's "Why work waits" lists them all). -o wide adds what the reason means, -o json has it as
    reason, reason_message and stuck; -o name prints JOB_ID TASK_ID lines.
    """
    client = _client(ctx)
    wanted = [s for s in QUEUE_STATES if not states or s in states]
    fetch: Callable[[], Iterable[QueueEntry]] = lambda: read_queue(  # noqa: E731
        client, job_ids=job_ids, pool_ids=pool_ids, states=wanted
    )
    list_or_watch(
        output,
        watch,
        fetch,
        _COLUMNS,
        "queue",
        key=lambda e: f"{e.job_id}/{e.task_id}",
        name=lambda e: f"{e.job_id} {e.task_id}",
    )
