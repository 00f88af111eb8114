"""Accounting (sacct, Batch's task, job and pool statistics): what attempts used, rolled up.

A task's own statistics are written with the task's row, in the commit that records the attempt's
end: `execution_info.last_attempt_stats` (what the agent measured; a multi-instance attempt sums its
instances) and `stats` (its attempts rolled up, with the time it waited before each). A first attempt
that completes a task kept as bytes appends them to its bytes (`scheduling.usage.first_attempt_change`).

Jobs and pools are rolled up in memory (`Tally`), with nothing written per completion: their rows
(table `usage`) are written every `USAGE_WRITE_SECONDS` by `run`, and at a clean stop. After a restart
each starts from its last row. A server killed (SIGKILL, power loss) loses at most the roll-ups of
the last period for jobs and pools (never a task's own statistics, which are in the task's row).
A deleted task stays counted in its job and pool; a deleted job or pool takes its row with it.

A pool also counts its nodes' time, dedicated and low-priority, in node seconds and core seconds:
each node from its `allocation_time` until it leaves (nodes present are added when read).

What is counted when:
- an attempt (`attempts`) and the wait before it when its end is reported, with its statistics when
  its agent measured them (also the end of an instance of a multi-instance
  task reported after the attempt ended: Shoal stops the others when the primary ends);
- `tasks_succeeded` / `tasks_failed` once per completion of a task (also one Shoal ended: terminated,
  or failed because of a task it depended on);
- `task_retries` when a failed attempt is retried, `task_requeues` when a task is requeued.
An attempt that Shoal ended before its report (requeued from a lost node, terminated) is not
measured: its report is no longer the attempt's (see the fencing in `attempts`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2
from shoal.server.domain.records import JobRec, NodeRec, TaskRec
from shoal.server.scheduling.usage import (
    Tally,
    add_instance,
    add_stats,
    add_usage,
    creation_parts,
    first_attempt_change,
    measured,
    seconds_between,
    since_parts,
    waited_since,
)
from shoal.server.store.base import StoredRow
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger(__name__)

#: How often the job and pool roll-ups are written (what a killed server may lose of them).
USAGE_WRITE_SECONDS: Final = 30.0
TABLE: Final = "usage"
_JOB: Final = "job/"
_POOL: Final = "pool/"
COMPLETED: Final = task_pb2.TASK_STATE_COMPLETED
ACTIVE: Final = task_pb2.TASK_STATE_ACTIVE
SUCCESS: Final = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
EVENT_COMPLETED: Final = agent_pb2.TASK_EVENT_KIND_COMPLETED


class PoolTally(Tally):
    """A pool's roll-up, and the time of its nodes that have left."""

    dedicated_node_seconds: float
    low_node_seconds: float
    dedicated_core_seconds: float
    low_core_seconds: float

    def __init__(self) -> None:
        super().__init__()
        self.dedicated_node_seconds = 0.0
        self.low_node_seconds = 0.0
        self.dedicated_core_seconds = 0.0
        self.low_core_seconds = 0.0


def node_time(node: pool_pb2.Node, until: timestamp_pb2.Timestamp) -> tuple[float, float]:
    """A node's seconds in its pool up to `until`, and its core seconds (none for a preempted node, which
    has no allocation: its time until then was counted when it was preempted)."""
    if not node.HasField("allocation_time"):
        return 0.0, 0.0
    seconds = seconds_between(until, node.allocation_time)
    return seconds, seconds * max(1, node.cores)


class Accounting:
    """The roll-ups of jobs and pools, and what a task's row gets of each attempt's end."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.jobs: dict[str, Tally] = {}
        self.pools: dict[str, PoolTally] = {}
        #: When each roll-up last changed (its key in the `usage` table).
        self.updated: dict[str, timestamp_pb2.Timestamp] = {}
        #: Roll-ups changed since they were last written.
        self._dirty: set[str] = set()

    # ---- the roll-ups ------------------------------------------------------------------------------

    def _job(self, job_key: str) -> Tally:
        key = _JOB + job_key
        self._dirty.add(key)
        self.updated[key] = self.k.stamp()
        tally = self.jobs.get(job_key)
        if tally is None:
            tally = self.jobs[job_key] = Tally()
        return tally

    def _pool(self, pool_key: str) -> PoolTally:
        key = _POOL + pool_key
        self._dirty.add(key)
        self.updated[key] = self.k.stamp()
        tally = self.pools.get(pool_key)
        if tally is None:
            tally = self.pools[pool_key] = PoolTally()
        return tally

    # ---- what the lifecycles report ------------------------------------------------------------------

    def frozen_success(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent, job: JobRec) -> bytes:
        """A task kept as bytes completed with its first attempt (`AttemptLifecycle.succeed_frozen`):
        the roll-ups gain it, and the bytes to append to the task's say what it used."""
        start = ev.start_time if ev.HasField("start_time") else ev.time
        wait = since_parts(start, creation_parts(t.stored_bytes(False)))
        stats = ev.stats
        jt = self._job(job.key)
        pt = self._pool(node.pool_key)
        if ev.HasField("stats"):
            m = measured(stats)
            jt.add_measured(m, wait)
            pt.add_measured(m, wait)
        else:
            jt.add_unmeasured(wait)
            pt.add_unmeasured(wait)
        jt.tasks_succeeded += 1
        pt.tasks_succeeded += 1
        return first_attempt_change(stats.SerializeToString() if ev.HasField("stats") else None, wait, True)

    def attempt_ended(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent, job: JobRec) -> None:
        """The attempt of `t` ended as `ev` says (its start and end are recorded, what follows is not
        decided yet): its statistics go into the task's and the roll-ups. A multi-instance attempt's
        are its instances' (`Subtask.stats`), summed."""
        proto = t.proto
        info = proto.execution_info
        if proto.subtasks:
            stats = common_pb2.TaskStatistics()
            for sub in proto.subtasks:
                if sub.HasField("stats"):
                    add_instance(stats, sub.stats)
        elif ev.HasField("stats"):
            stats = ev.stats
        else:
            stats = None
        since = waited_since(proto.creation_time, info.last_retry_time, info.last_requeue_time)
        wait = seconds_between(info.start_time, since)
        if stats is None:
            # (Nothing measured: an agent that does not measure. The attempt and its wait still count.)
            info.ClearField("last_attempt_stats")
            proto.stats.wait_seconds += wait
            proto.stats.attempts += 1
            self._job(job.key).add_unmeasured(wait)
            self._pool(node.pool_key).add_unmeasured(wait)
            return
        info.last_attempt_stats.CopyFrom(stats)
        add_usage(proto.stats, stats, wait)
        m = measured(stats)
        self._job(job.key).add_measured(m, wait)
        self._pool(node.pool_key).add_measured(m, wait)

    def attempt_decided(self, t: TaskRec, node: NodeRec | None, job: JobRec) -> None:
        """What followed an attempt's end (or Shoal's ending a task) is decided: a retry, or the task's
        completion, is counted."""
        proto = t.proto
        state = t.state
        if state == ACTIVE:
            proto.stats.task_retries += 1
            self._job(job.key).task_retries += 1
            if node is not None:
                self._pool(node.pool_key).task_retries += 1
        elif state == COMPLETED:
            succeeded = proto.execution_info.result == SUCCESS
            proto.stats.tasks_succeeded = 1 if succeeded else 0
            proto.stats.tasks_failed = 0 if succeeded else 1
            tallies: list[Tally] = [self._job(job.key)]
            if node is not None:
                tallies.append(self._pool(node.pool_key))
            for tally in tallies:
                if succeeded:
                    tally.tasks_succeeded += 1
                else:
                    tally.tasks_failed += 1

    def requeued(self, t: TaskRec) -> None:
        """`t` goes back to the queue (not a retry), from the node it was on."""
        t.proto.stats.task_requeues += 1
        self._job(t.job_key).task_requeues += 1
        node = self.k.nodes.get(t.node_key) if t.node_key else None
        if node is not None:
            self._pool(node.pool_key).task_requeues += 1

    def late_report(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent) -> None:
        """A report the fencing dropped: if it is the end of an instance of the task's last attempt, which
        Shoal stopped when the attempt ended, what the instance used still counts (once: it is kept in
        its `Subtask.stats`)."""
        if ev.kind != EVENT_COMPLETED or not ev.HasField("stats") or t.attempt != ev.attempt.attempt:
            return
        i = ev.attempt.instance
        seen = t.read()
        if not 0 <= i < len(seen.subtasks):
            return
        sub_seen = seen.subtasks[i]
        if sub_seen.HasField("stats") or sub_seen.node_info.node_id != node.proto.id:
            return
        proto = t.proto
        proto.subtasks[i].stats.CopyFrom(ev.stats)
        add_stats(proto.execution_info.last_attempt_stats, ev.stats)
        add_stats(proto.stats.totals, ev.stats)
        m = measured(ev.stats)
        self._job(t.job_key).add_measured(m, 0.0, count=False)
        self._pool(node.pool_key).add_measured(m, 0.0, count=False)
        self.k.mark_task(t)

    def node_left(self, n: NodeRec) -> None:
        """A node left its pool: its time counts for the pool."""
        seconds, cores = node_time(n.proto, self.k.stamp())
        if seconds <= 0:
            return
        p = self._pool(n.pool_key)
        if n.proto.is_dedicated:
            p.dedicated_node_seconds += seconds
            p.dedicated_core_seconds += cores
        else:
            p.low_node_seconds += seconds
            p.low_core_seconds += cores

    # ---- reading -------------------------------------------------------------------------------------

    def job_statistics(self, job_id: str) -> job_pb2.JobStatistics:
        """A job's statistics (NotFound for an unknown job)."""
        job = self.k.job(job_id)
        tally = self.jobs.get(job.key) or Tally()
        out = job_pb2.JobStatistics(usage=tally.to_proto())
        out.last_update_time.CopyFrom(self.updated.get(_JOB + job.key) or job.proto.creation_time)
        return out

    def pool_statistics(self, pool_id: str) -> pool_pb2.PoolStatistics:
        """A pool's statistics, its present nodes' time up to now (NotFound for an unknown pool)."""
        pool = self.k.pool(pool_id)
        tally = self.pools.get(pool.key) or PoolTally()
        out = pool_pb2.PoolStatistics(
            usage=tally.to_proto(),
            dedicated_node_seconds=tally.dedicated_node_seconds,
            low_priority_node_seconds=tally.low_node_seconds,
            dedicated_core_seconds=tally.dedicated_core_seconds,
            low_priority_core_seconds=tally.low_core_seconds,
        )
        now = self.k.stamp()
        for n in pool.nodes.values():
            seconds, cores = node_time(n.proto, now)
            if n.proto.is_dedicated:
                out.dedicated_node_seconds += seconds
                out.dedicated_core_seconds += cores
            else:
                out.low_priority_node_seconds += seconds
                out.low_priority_core_seconds += cores
        out.last_update_time.CopyFrom(now)
        return out

    # ---- persistence ---------------------------------------------------------------------------------

    def load(self, rows: list[StoredRow]) -> None:
        """The roll-ups as last written (at start-up)."""
        for row in rows:
            try:
                if row.key.startswith(_JOB):
                    js = job_pb2.JobStatistics.FromString(row.data)
                    self.jobs[row.key[len(_JOB) :]] = Tally.from_proto(js.usage)
                    self.updated[row.key] = js.last_update_time
                elif row.key.startswith(_POOL):
                    ps = pool_pb2.PoolStatistics.FromString(row.data)
                    p = PoolTally()
                    p.add_tally(Tally.from_proto(ps.usage))
                    p.dedicated_node_seconds = ps.dedicated_node_seconds
                    p.low_node_seconds = ps.low_priority_node_seconds
                    p.dedicated_core_seconds = ps.dedicated_core_seconds
                    p.low_core_seconds = ps.low_priority_core_seconds
                    self.pools[row.key[len(_POOL) :]] = p
                    self.updated[row.key] = ps.last_update_time
            except Exception:
                log.exception("cannot read the roll-up %s: it starts again from zero", row.key)

    def mark_rows(self) -> None:
        """Write the roll-ups that changed with the next flush; drop those of jobs and pools gone."""
        for key in self._dirty:
            if key.startswith(_JOB):
                jk = key[len(_JOB) :]
                tally = self.jobs.get(jk)
                if tally is None or jk not in self.k.jobs:
                    self.jobs.pop(jk, None)
                    self.updated.pop(key, None)
                    self.k.delete_row(TABLE, key)
                    continue
                js = job_pb2.JobStatistics(usage=tally.to_proto(), last_update_time=self.updated.get(key))
                self.k.mark(TABLE, key, ("", js.SerializeToString()))
            else:
                pk = key[len(_POOL) :]
                p = self.pools.get(pk)
                if p is None or pk not in self.k.pools:
                    self.pools.pop(pk, None)
                    self.updated.pop(key, None)
                    self.k.delete_row(TABLE, key)
                    continue
                ps = pool_pb2.PoolStatistics(
                    usage=p.to_proto(),
                    dedicated_node_seconds=p.dedicated_node_seconds,
                    low_priority_node_seconds=p.low_node_seconds,
                    dedicated_core_seconds=p.dedicated_core_seconds,
                    low_priority_core_seconds=p.low_core_seconds,
                    last_update_time=self.updated.get(key),
                )
                self.k.mark(TABLE, key, ("", ps.SerializeToString()))
        self._dirty = set()
        # Jobs and pools deleted since their roll-up last changed.
        for jk in [jk for jk in self.jobs if jk not in self.k.jobs]:
            del self.jobs[jk]
            self.k.delete_row(TABLE, _JOB + jk)
        for pk in [pk for pk in self.pools if pk not in self.k.pools]:
            del self.pools[pk]
            self.k.delete_row(TABLE, _POOL + pk)

    async def save(self) -> None:
        """Write what changed now (at a clean stop, and every period)."""
        self.mark_rows()
        if self.k.has_changes():
            await self.k.flush()

    async def run(self, interval: float = USAGE_WRITE_SECONDS) -> None:
        """Write the roll-ups every `interval` seconds, for ever."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.save()
            except Exception:
                log.exception("writing the job and pool statistics failed")
