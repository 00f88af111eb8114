"""The control plane's state and every change to it.

All state lives in memory (records in ``shoal.server.domain.records``) and is
written through a :class:`~shoal.server.store.base.Store`. Every change follows
the same shape: check, change the records (no ``await`` in between, so the
single event loop makes it atomic), :meth:`ControlPlane.flush` (group commit),
and only then act on it: answer the client, send commands to agents, publish
to watchers. Agent reports are fenced by attempt: a report about an attempt
that is no longer the task's current one is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import grpc
from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock, to_timestamp
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.server.api.errors import ApiError, already_exists, failed_precondition, not_found
from shoal.server.api.etags import check_etag
from shoal.server.domain import states, wire
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import (
    NO_INSTANCES,
    TAG_HAS_ATTEMPT,
    AgentSession,
    JobRec,
    NodeRec,
    PoolRec,
    TaskRec,
    task_shape,
)
from shoal.server.domain.wire import new_task_bytes, new_task_tail
from shoal.server.scheduling.retry import AttemptOutcome, failure_category, should_retry
from shoal.server.store.base import Delete, Op, Row, Rows, Store, StoredRow
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2

log = logging.getLogger("shoal.server")

T = task_pb2
P = pool_pb2
J = job_pb2

DEFAULT_RETENTION_SECONDS: Final = 7 * 24 * 3600.0
#: The most assignments per slot a busy node may hold ahead (see `ControlPlane.ahead_depth`).
DEFAULT_DISPATCH_AHEAD = 16
#: A job whose attempts run shorter than this (as estimated once a few have succeeded) may have work sent ahead.
SHORT_TASK_SECONDS = 1.0
SHORT_TASK_SAMPLES = 3
#: A busy slot keeps about this much of a short job's work waiting on its node: enough to cover the
#: round trip of its reports and the refill, so that the slot never waits on the server, and enough
#: for each message to carry many tasks. Work held ahead is a short wait for a job that arrives later.
AHEAD_SECONDS: Final = 0.1
#: How often node statistics (slot counts, task totals, IDLE <-> RUNNING) are written (and at a clean
#: stop): they are informational or recomputed when an agent attaches, and a busy pool changes them
#: all the time. A busy pool of 10,000 nodes rewrites all of them each time (~0.4 s of CPU). The task
#: totals are written with every commit that changes them too, in one small row (`_tally_row`): a
#: killed server must not lose them.
NODE_STATS_WRITE_SECONDS = 60.0
SCHEDULABLE_NODE_STATES: Final = frozenset({P.NODE_STATE_IDLE, P.NODE_STATE_RUNNING})
BUSY_FLIP: Final = {P.NODE_STATE_IDLE, P.NODE_STATE_RUNNING}
#: A pool with a node in one of these states is resizing: the node is on its way in or out.
SETTLING_NODE_STATES: Final = frozenset({P.NODE_STATE_CREATING, P.NODE_STATE_LEAVING_POOL})
#: States of a task with an attempt on a node.
LIVE_TASK_STATES: Final = frozenset({T.TASK_STATE_PREPARING, T.TASK_STATE_RUNNING})
#: Tasks in these states are kept serialized once stored (see TaskRec): nobody works on them.
COLD_TASK_STATES: Final = frozenset({T.TASK_STATE_ACTIVE, T.TASK_STATE_COMPLETED})
LIVE_NODE_STATES: Final = frozenset(
    {
        P.NODE_STATE_STARTING,
        P.NODE_STATE_WAITING_FOR_START_TASK,
        P.NODE_STATE_START_TASK_FAILED,
        P.NODE_STATE_IDLE,
        P.NODE_STATE_RUNNING,
        P.NODE_STATE_OFFLINE,
    }
)

# Read on every task's way (placing, reports, rows), so bound once here: compiled (see `shoal.native`),
# a Final name is read from a C variable, where `T.TASK_STATE_...` is two dictionary lookups each time.
ACTIVE: Final = T.TASK_STATE_ACTIVE
PREPARING: Final = T.TASK_STATE_PREPARING
RUNNING: Final = T.TASK_STATE_RUNNING
COMPLETED: Final = T.TASK_STATE_COMPLETED
SUCCESS: Final = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
EVENT_RUNNING: Final = agent_pb2.TASK_EVENT_KIND_RUNNING
EVENT_COMPLETED: Final = agent_pb2.TASK_EVENT_KIND_COMPLETED
NODE_IDLE: Final = P.NODE_STATE_IDLE
NODE_RUNNING: Final = P.NODE_STATE_RUNNING
NODE_LEAVING: Final = P.NODE_STATE_LEAVING_POOL
TASK_TRANSITIONS: Final = states.TASK_TRANSITIONS
NODE_TRANSITIONS: Final = states.NODE_TRANSITIONS


class Provider(Protocol):
    """Makes and removes the processes behind nodes."""

    def node_added(self, node: NodeRec) -> None:
        """A node record in CREATING state exists; start its agent."""

    def node_leaving(self, node: NodeRec) -> None:
        """The node leaves the pool: stop its agent, then call ControlPlane.node_gone."""

    def node_removed(self, node: NodeRec) -> None:
        """The node is gone from its pool (committed): delete what the provider keeps of it (its files)."""


ts = to_timestamp


def note_attempt_length(job: JobRec, ran: float) -> None:
    """Fold a successful attempt's length into the job's estimate (`run_seconds`), which sets how
    much of its work is sent ahead (`ControlPlane.ahead_depth`).

    Up at once, down slowly: one long attempt makes the estimate at least that long, so that a job
    whose tasks grow longer stops having them queued deep behind one another; shorter ones bring it
    down a fifth of the way each. A failed attempt is not counted: a task failing at its start says
    little about how long the job's tasks run.
    """
    job.run_seconds = ran if not job.runs else max(ran, 0.8 * job.run_seconds + 0.2 * ran)
    job.runs += 1


@dataclass
class Stats:
    """Counters for tests and benchmarks."""

    stale_reports: int = 0
    requeues: int = 0
    dispatched: int = 0
    flushes: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class ControlPlane:
    """Pools, nodes, jobs and tasks, and the rules for changing them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        heartbeat_interval: float = 1.0,
        dispatch_ahead: int = DEFAULT_DISPATCH_AHEAD,
    ) -> None:
        self.store = store
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        #: A busy node may hold up to this many assignments per slot beyond its slots, for jobs of
        #: short tasks (see `ahead_depth`): they start there without a round trip. 0: never.
        self.dispatch_ahead = dispatch_ahead
        self.pools: dict[str, PoolRec] = {}
        self.nodes: dict[str, NodeRec] = {}
        self.jobs: dict[str, JobRec] = {}
        self.requests: dict[str, str] = {}
        #: Every job with queued tasks, and perhaps some whose queue emptied since or that are gone
        #: (`queued_jobs` drops those as it meets them): the scheduler looks here, not at every job.
        self.waiting_jobs: dict[str, JobRec] = {}
        self.meta: dict[str, int] = {"task_seq": 0, "job_seq": 0, "node_counter": 0}
        self.provider: Provider | None = None
        self.stats = Stats()
        self._dirty: dict[tuple[str, str], object] = {}
        #: Messages to agents that may only leave once the changes behind them are committed.
        #: Messages to agents, each with the session of the node when it was queued (see `_deliver`).
        self._sends: list[tuple[NodeRec, agent_pb2.ServerMessage, AgentSession | None]] = []
        #: The StartTasks message of each node among `_sends`, that more assignments join.
        self._starts: dict[str, agent_pb2.ServerMessage] = {}
        #: Reports to acknowledge to their agents once committed: (session, up to event id).
        self._acks: list[tuple[AgentSession, int]] = []
        self._pools_to_refresh: set[str] = set()
        self._dismiss_after_commit: list[NodeRec] = []
        #: Nodes whose task counters changed since the last flush (see `_tally_row`).
        self._tallied: list[NodeRec] = []
        #: The `seq` of the last tally row written, and whether one was written since all node rows were.
        self._tally_seq = 0
        self._tallies_written = False
        #: Tasks changed since the last flush: their rows to write, and the changes to publish. Kept
        #: apart from `_dirty`, by record rather than by a key made for it: a task changes several
        #: times in its life and its row key is made once per flush, not per change.
        self._dirty_tasks: dict[TaskRec, None] = {}
        #: The changed tasks as serialized for the store by the flush under way (published after it).
        self._serialized: dict[TaskRec, bytes] = {}
        self._schedule_kick = asyncio.Event()
        #: Set by the scheduler: places what fits now, so that a batch of
        #: completions and the placements they make room for share one commit.
        self.place_hook: Callable[[Sequence[NodeRec] | None], int] | None = None
        #: When the health pass last wrote the nodes whose statistics changed (monotonic).
        self._stats_written_at = 0.0
        #: The time of the batch of reports being applied (see `_stamp`).
        self._batch_stamp: timestamp_pb2.Timestamp | None = None
        #: `_batch_stamp` as appended to a stored task (see `_transition_time`), made when first needed.
        self._batch_transition_time: bytes | None = None

    # ------------------------------------------------------------------ load / flush

    async def load(self) -> None:
        """Read everything from the store (at start-up)."""
        # A million records made in a row would set off the cyclic collector again and again,
        # each time walking all of them; what is loaded lives long, so it is frozen out of
        # the collector's view afterwards.
        gc.disable()
        try:
            await self._load()
        finally:
            gc.enable()
        gc.freeze()

    async def _load(self) -> None:
        loaded = await self.store.open()
        now_mono = self.clock.monotonic()
        for row in loaded.tables["meta"]:
            self.meta[row.key] = int(row.data.decode())
        for row in loaded.tables["requests"]:
            self.requests[row.key] = row.data.decode()
        for row in loaded.tables["pools"]:
            pool = P.Pool.FromString(row.data)
            self.pools[row.key] = PoolRec(row.key, pool)
        for row in loaded.tables["nodes"]:
            blob = json.loads(row.data)
            node = P.Node.FromString(bytes.fromhex(blob["node"]))
            rec = NodeRec(row.key, node, internal=blob.get("internal", {}), last_seen=now_mono)
            self.nodes[row.key] = rec
            pool_rec = self.pools.get(rec.pool_key)
            if pool_rec is not None:
                pool_rec.nodes[rec.key] = rec
        self._load_tallies(loaded.tables["tallies"])
        for row in loaded.tables["jobs"]:
            job = J.Job.FromString(row.data)
            self.jobs[row.key] = JobRec(row.key, row.seq, job)
        self._load_tasks(loaded.tables["tasks"])
        self.waiting_jobs = {key: job for key, job in self.jobs.items() if job.queue}
        for pool_rec in self.pools.values():
            self._refresh_pool(pool_rec)
        await self.flush()

    def _load_tallies(self, rows: list[StoredRow]) -> None:
        """Bring the nodes' task counters up to the last tally written (a killed server never wrote its
        node rows since), then write them into the node rows and drop the tallies, with the load's flush."""
        latest: dict[str, list[int]] = {}
        for row in rows:
            latest.update(json.loads(row.data))
            self._tally_seq = max(self._tally_seq, row.seq)
        for key, (run, succeeded) in latest.items():
            n = self.nodes.get(key)
            if n is not None and (n.tasks_run, n.tasks_succeeded) != (run, succeeded):
                n.tasks_run, n.tasks_succeeded = run, succeeded
                self._mark("nodes", key, n)
        if rows:
            self._dirty[("tallies", "")] = Delete("tallies")

    def _tally_row(self) -> Row:
        """The task counters of the nodes whose counters changed since the last flush: written in the same
        commit as the task changes that changed them, so that a restart after a kill counts exactly what
        the task records say (`_load_tallies`). One small row per flush, not one per node or per task; the
        rows are dropped whenever every node row is written again (`_mark_node_stats`)."""
        counts: dict[str, tuple[int, int]] = {}
        for n in self._tallied:
            n.tallied = False
            n.stats_dirty = True
            counts[n.key] = (n.tasks_run, n.tasks_succeeded)
        self._tallied = []
        self._tally_seq += 1
        self._tallies_written = True
        data = json.dumps(counts, separators=(",", ":")).encode()
        return Row("tallies", f"{self._tally_seq:016d}", data, "", self._tally_seq)

    def _tally(self, n: NodeRec) -> None:
        """Write `n`'s task counters with the next flush (`_tally_row`)."""
        if not n.tallied:
            n.tallied = True
            self._tallied.append(n)

    def _count_attempt(self, n: NodeRec, succeeded: bool) -> None:
        """An attempt that ran on `n` ended (`succeeded` or not): its task counters, written with the task."""
        n.tasks_run += 1
        if succeeded:
            n.tasks_succeeded += 1
        self._tally(n)

    def _load_tasks(self, rows: list[StoredRow]) -> None:
        """Tasks from their rows. A million of them is the normal case, so this loop is kept tight:
        a queued or completed task is not even parsed when its row's tag says its state and result."""
        job_rec: JobRec | None = None
        parent = None
        cut = 0
        live = LIVE_TASK_STATES
        stored = TaskRec.stored
        has_attempt = TAG_HAS_ATTEMPT
        # The job's indexes, looked up when the job changes (rows come job by job), not per row.
        tasks: dict[str, TaskRec] = {}
        queue: dict[str, None] = {}
        counts: dict[int, int] = {}
        for key, data, row_parent, seq, tag in rows:
            if row_parent != parent:
                parent, job_rec, cut = row_parent, self.jobs.get(row_parent), len(row_parent) + 1
                if job_rec is not None:
                    tasks, queue, counts = job_rec.tasks, job_rec.queue, job_rec.counts
            if job_rec is None:
                continue
            tk = key[cut:]
            # (untag, inlined: once per row.)
            state = tag & 0xFF
            if state and state not in live and tag & has_attempt:
                result = tag >> 8 & 0x7F
                tasks[tk] = stored(parent, tk, seq, data, state, result, tag >> 16)
                counts[state] += 1
                if state == ACTIVE:
                    queue[tk] = None
                elif result == SUCCESS:
                    job_rec.succeeded += 1
                else:
                    job_rec.failed += 1
                continue
            # Running (the server needs its placement), or a row written before tags existed.
            task = T.Task.FromString(data)
            if task.state in live:
                trec = TaskRec(parent, tk, seq, task)
            else:
                # Kept as the stored bytes until someone needs it (see TaskRec). Its row is written again
                # (same bytes, full tag) with the flush that ends the load, so that it is not parsed at the
                # next restart.
                trec = stored(parent, tk, seq, data, int(task.state), int(task.execution_info.result), task.attempt)
                self._dirty_tasks[trec] = None
            job_rec.tasks[tk] = trec
            self._count(job_rec, trec, +1, task)
            if trec.state == T.TASK_STATE_ACTIVE:
                job_rec.queue[tk] = None
            elif trec.state in live:
                if task.subtasks:
                    gang = tuple(idkey(s.node_info.node_id) for s in task.subtasks)
                else:
                    gang = (idkey(task.node_info.node_id),)
                if any(nk not in self.nodes for nk in gang):
                    self._requeue(trec, "node no longer exists")
                    continue
                trec.node_key = gang[0]
                trec.gang = gang if task.subtasks else ()
                trec.coordinated = frozenset(
                    s.id for s in task.subtasks if s.state == T.SUBTASK_STATE_RUNNING and s.HasField("exit_code")
                )
                for nk in gang:
                    self.nodes[nk].running[trec.tkey] = (
                        self.nodes[nk].proto.task_slots if task.subtasks else max(1, task.spec.required_slots)
                    )

    def _mark(self, table: str, k: str, rec: object) -> None:
        self._dirty[(table, k)] = rec

    def _mark_task(self, t: TaskRec) -> None:
        self._dirty_tasks[t] = None

    def _mark_meta(self, name: str) -> None:
        self._dirty[("meta", name)] = self.meta[name]

    def _rows(self) -> list[Op]:
        # Deletions first: a task deleted and added again under its id in one flush is a delete, then a row.
        ops: list[Op] = []
        for (table, k), rec in self._dirty.items():
            if isinstance(rec, Delete):
                ops.append(rec)
            elif isinstance(rec, JobRec):
                ops.append(Row("jobs", k, rec.proto.SerializeToString(), "", rec.seq))
            elif isinstance(rec, PoolRec):
                ops.append(Row("pools", k, rec.proto.SerializeToString()))
            elif isinstance(rec, NodeRec):
                node_row = json.dumps({"node": rec.view().SerializeToString().hex(), "internal": rec.internal})
                ops.append(Row("nodes", k, node_row.encode(), rec.pool_key))
            elif table in ("meta", "requests"):
                ops.append(Row(table, k, str(rec).encode()))
        # Most rows, the tasks': in one flat list (see `Rows`), made in a tight loop.
        watched: dict[str, bool] = {}
        jobs = self.jobs
        serialized = self._serialized
        values: list[object] = []
        append = values.append
        for rec in self._dirty_tasks:
            state = tag = rec.state
            # (task_tag, inlined: once per row.)
            if state == COMPLETED:
                tag |= rec.result << 8
            tag |= rec.attempt << 16 | TAG_HAS_ATTEMPT
            data = rec.stored_bytes(state in COLD_TASK_STATES)
            jk = rec.job_key
            append(f"{jk}/{rec.key}")
            append(jk)
            append(rec.seq)
            append(data)
            append(tag)
            w = watched.get(jk)
            if w is None:
                job = jobs.get(jk)
                w = watched[jk] = job is not None and bool(job.watchers)
            if w:
                # Watchers get the very bytes committed (see _publish).
                serialized[rec] = data
        if values:
            ops.append(Rows("tasks", values))
        if self._tallied:
            # (After the tasks' rows and any drop of the tallies before: see `_mark_node_stats`.)
            ops.append(self._tally_row())
        return ops

    async def flush(self) -> None:
        """Commit every change made so far, then publish the task changes to watchers and send what it allows.

        The changes are collected and handed to the store at once: reports taken while a commit is
        under way go into the next one together (group commit, see `Store.submit`). What they allow
        is sent, once committed, by a task of its own, so a caller that is cancelled does not stop it.
        """
        await asyncio.shield(self.start_flush())

    def start_flush(self) -> asyncio.Future[None]:
        """`flush` without waiting: the changes so far are collected and handed to the store now; the
        future is done once they are committed and what they allow is sent."""
        ops = self._rows()
        serialized = self._serialized
        sends = self._sends
        self._dirty = {}
        self._dirty_tasks = {}
        self._serialized = {}
        self._sends = []
        self._starts = {}
        acks, self._acks = self._acks, []
        dismiss, self._dismiss_after_commit = self._dismiss_after_commit, []
        if ops:
            self.stats.flushes += 1
        # (With no ops, the future waits for the commits already handed over: the changes the caller
        # made may be in one of them.)
        committed = self.store.submit(ops)
        return asyncio.ensure_future(self._after_commit(committed, serialized, sends, acks, dismiss))

    async def _after_commit(
        self,
        committed: asyncio.Future[None],
        serialized: dict[TaskRec, bytes],
        sends: list[tuple[NodeRec, agent_pb2.ServerMessage, AgentSession | None]],
        acks: list[tuple[AgentSession, int]],
        dismiss: list[NodeRec],
    ) -> None:
        await committed
        if serialized:
            self._publish(serialized)
        self._deliver(sends)
        # In the same turn as the StartTasks just queued, so that they carry the acknowledgements.
        for session, up_to in acks:
            session.ack(up_to)
        for n in dismiss:
            self._dismiss(n)

    def _deliver(self, sends: list[tuple[NodeRec, agent_pb2.ServerMessage, AgentSession | None]]) -> None:
        """Send what the last commit allows: kills first (one message per node), then the rest in order.

        Work for a node whose agent registered again since it was queued is dropped: the new
        registration said what the node runs, and what it did not report went back to the queue
        (`attach`), so that attempt must not start there now. Kills still go (stopping an attempt
        the node does not know is harmless).
        """
        kills: dict[tuple[str, bool], tuple[NodeRec, list[agent_pb2.AttemptRef]]] = {}
        rest: list[tuple[NodeRec, agent_pb2.ServerMessage]] = []
        for node, msg, session in sends:
            # (One StartTasks per node per commit, however many placements: see `_start_message`.)
            if msg.HasField("kill_tasks"):
                group = (node.key, msg.kill_tasks.delete_files)
                kills.setdefault(group, (node, []))[1].extend(msg.kill_tasks.attempts)
            elif session is node.session:
                rest.append((node, msg))
        for (_, delete_files), (node, refs) in kills.items():
            if node.session is not None:
                kill = agent_pb2.KillTasks(
                    command_id=node.session.command_id(), attempts=refs, delete_files=delete_files
                )
                node.session.send(agent_pb2.ServerMessage(kill_tasks=kill))
        for node, msg in rest:
            if node.session is not None:
                kind = msg.WhichOneof("body")
                if kind in ("start_tasks", "run_application"):
                    getattr(msg, kind).command_id = node.session.command_id()
                node.session.send(msg)

    def _send_after_commit(self, node: NodeRec, msg: agent_pb2.ServerMessage) -> None:
        self._sends.append((node, msg, node.session))

    def _publish(self, serialized: dict[TaskRec, bytes]) -> None:
        """Give watchers each changed task of a watched job (those `_rows` kept), as it was committed."""
        by_job: dict[str, list[task_pb2.Task]] = {}
        for t, data in serialized.items():
            by_job.setdefault(t.job_key, []).append(T.Task.FromString(data))
        for jk, protos in by_job.items():
            job = self.jobs.get(jk)
            if job is not None:
                for q in job.watchers:
                    q.put_nowait(protos)

    @staticmethod
    def runs_short(job: JobRec) -> bool:
        """True when the job's attempts are known to be short: sending its work ahead to busy nodes pays."""
        return job.runs >= SHORT_TASK_SAMPLES and job.run_seconds < SHORT_TASK_SECONDS

    def ahead_depth(self, job: JobRec) -> int:
        """Assignments per slot a busy node may hold ahead for `job` (0: none).

        About `AHEAD_SECONDS` of the job's attempts at their estimated length (`note_attempt_length`),
        at least one and at most `dispatch_ahead`; none for a job not known to be short.
        """
        if self.dispatch_ahead <= 0 or not self.runs_short(job):
            return 0
        return min(self.dispatch_ahead, max(1, math.ceil(AHEAD_SECONDS / max(job.run_seconds, 1e-3))))

    def kick_scheduler(self) -> None:
        """Ask the scheduler loop for another pass."""
        self._schedule_kick.set()

    async def wait_for_kick(self) -> None:
        await self._schedule_kick.wait()
        self._schedule_kick.clear()

    # ------------------------------------------------------------------ counters

    def _count(self, job: JobRec, t: TaskRec, sign: int, proto: task_pb2.Task | None = None) -> None:
        job.counts[t.state] += sign
        if t.state == COMPLETED:
            result = (proto or t.read()).execution_info.result
            if result == SUCCESS:
                job.succeeded += sign
            else:
                job.failed += sign

    def _stamp(self) -> timestamp_pb2.Timestamp:
        """Now, as a Timestamp: the batch's time while a batch of reports is applied (one clock read for all)."""
        stamp = self._batch_stamp
        return stamp if stamp is not None else ts(self.clock.now())

    @contextlib.contextmanager
    def one_time(self) -> Iterator[None]:
        """Stamp every change made inside with one reading of the clock (a pass, a batch of reports)."""
        if self._batch_stamp is not None:
            yield
            return
        self._batch_stamp = ts(self.clock.now())
        try:
            yield
        finally:
            self._batch_stamp = None
            self._batch_transition_time = None

    def _transition_time(self) -> bytes:
        """`_stamp()` as a task's `state_transition_time`, appended to its bytes (see `wire`)."""
        field = self._batch_transition_time
        if field is None:
            stamp = self._stamp()
            field = wire.transition_time(stamp.seconds, stamp.nanos)
            if self._batch_stamp is not None:
                self._batch_transition_time = field
        return field

    def _set_task_state(
        self, t: TaskRec, new: int, job: JobRec | None = None, proto: task_pb2.Task | None = None
    ) -> None:
        """Move `t` to state `new` (checked against the table), keeping the job's counts and queue.

        `job` and `proto` (the task's job and live message), when the caller has them, save looking
        them up again: this runs twice per task.
        """
        if job is None:
            job = self.jobs[t.job_key]
        old = t.state
        if old != new:
            # The table checked inline: this runs several times per task.
            if new not in TASK_TRANSITIONS.get(old, ()):
                states.check_transition(TASK_TRANSITIONS, old, new, f"task {t.job_key}/{t.key}")
            if proto is None:
                proto = t.proto
            if old == COMPLETED:
                self._count(job, t, -1, proto)
            else:
                job.counts[old] -= 1
            proto.previous_state = old  # type: ignore[assignment]
            proto.state = new  # type: ignore[assignment]
            proto.state_transition_time.CopyFrom(self._stamp())
            t.state = new
            job.counts[new] += 1
            if new == COMPLETED:
                # (_count, inlined: once per task.)
                t.result = result = proto.execution_info.result
                if result == SUCCESS:
                    job.succeeded += 1
                else:
                    job.failed += 1
        if new == ACTIVE:
            job.queue[t.key] = None
            self.waiting_jobs[job.key] = job
        elif old == ACTIVE:
            # (Only ACTIVE tasks are queued.)
            job.dequeue(t.key)
        self._dirty_tasks[t] = None  # (_mark_task, inlined: this runs several times per task)

    def _change_frozen(self, t: TaskRec, new: int, job: JobRec, change: bytes) -> None:
        """`_set_task_state` for a task kept as bytes, from ACTIVE to PREPARING or from a live state to
        COMPLETED: `change` (see `wire`), which records the new state, is appended to them. (The job's
        succeeded and failed counts are the caller's.)"""
        old = t.state
        if new not in TASK_TRANSITIONS.get(old, ()):
            states.check_transition(TASK_TRANSITIONS, old, new, f"task {t.job_key}/{t.key}")
        t.append(change)
        t.state = new
        counts = job.counts
        counts[old] -= 1
        counts[new] += 1
        if old == ACTIVE:
            job.dequeue(t.key)
        self._dirty_tasks[t] = None

    def _set_node_state(self, n: NodeRec, new: int) -> None:
        old = n.state
        if old == new:
            return
        if new not in NODE_TRANSITIONS.get(old, ()):
            states.check_transition(NODE_TRANSITIONS, old, new, f"node {n.key}")
        n.proto.state = new  # type: ignore[assignment]
        n.state = new
        n.proto.state_transition_time.CopyFrom(self._stamp())
        if {old, new} == BUSY_FLIP:
            # IDLE <-> RUNNING follows from the tasks placed on the node (recomputed when its
            # agent attaches after a restart): written with the next health pass, not per task.
            n.stats_dirty = True
        else:
            self._mark("nodes", n.key, n)
            if old in SETTLING_NODE_STATES or new in SETTLING_NODE_STATES:
                # A node arrived or started to leave (or never came up): the pool's allocation may change.
                pool = self.pools.get(n.pool_key)
                if pool is not None:
                    self._refresh_pool(pool)

    def _refresh_node_activity(self, n: NodeRec) -> None:
        # (Its running slot count is derived when the node is read: NodeRec.view.)
        if n.state in SCHEDULABLE_NODE_STATES:
            self._set_node_state(n, NODE_RUNNING if n.running else NODE_IDLE)
        # Slot counts and task statistics are derived or informational: they are
        # written with the next state change, or by the health pass, not per task.
        n.stats_dirty = True

    def _refresh_pool(self, pool: PoolRec) -> None:
        """Recount the pool's nodes at the next turn of the event loop, once however many of its nodes
        changed in this one (a count walks every node of the pool: once per flush made a wave of
        10,000 nodes joining, each flushing, quadratic). What the count changes is written with the
        next flush; it is derived, and counted again at a restart."""
        if not self._pools_to_refresh:
            asyncio.get_running_loop().call_soon(self._refresh_pools)
        self._pools_to_refresh.add(pool.key)

    def _refresh_pools(self) -> None:
        for key in self._pools_to_refresh:
            pool = self.pools.get(key)
            if pool is not None:
                self._refresh_pool_now(pool)
        self._pools_to_refresh.clear()

    def _refresh_pool_now(self, pool: PoolRec) -> None:
        nodes = pool.nodes.values()
        # As in Batch, a node counts until it has left: one leaving the pool may still run a task
        # (`taskcompletion`), and its agent still runs until it is gone.
        pool.proto.current_nodes = len(pool.nodes)
        settling = any(n.state in SETTLING_NODE_STATES for n in nodes)
        if pool.proto.provider == "local":
            members = sum(1 for n in nodes if n.state != NODE_LEAVING)
            steady = members == pool.proto.target_nodes and not settling
        else:
            # The nodes of a `join` pool come when their agents join, not because Shoal allocates them
            # (their number is not capped by the target): only nodes on their way in or out make it resize.
            steady = not settling
        new = P.ALLOCATION_STATE_STEADY if steady else P.ALLOCATION_STATE_RESIZING
        if pool.proto.allocation_state != new:
            pool.proto.allocation_state = new  # type: ignore[assignment]
            self._mark("pools", pool.key, pool)

    # ------------------------------------------------------------------ lookups

    def pool(self, pool_id: str) -> PoolRec:
        rec = self.pools.get(idkey(pool_id))
        if rec is None:
            raise not_found("POOL_NOT_FOUND", f"pool {pool_id!r} does not exist")
        return rec

    def node(self, pool_id: str, node_id: str) -> NodeRec:
        pool = self.pool(pool_id)
        rec = pool.nodes.get(idkey(node_id))
        if rec is None:
            raise not_found("NODE_NOT_FOUND", f"node {node_id!r} is not in pool {pool_id!r}")
        return rec

    def job(self, job_id: str) -> JobRec:
        rec = self.jobs.get(idkey(job_id))
        if rec is None:
            raise not_found("JOB_NOT_FOUND", f"job {job_id!r} does not exist")
        return rec

    def task(self, job_id: str, task_id: str) -> TaskRec:
        job = self.job(job_id)
        rec = job.tasks.get(idkey(task_id))
        if rec is None:
            raise not_found("TASK_NOT_FOUND", f"task {task_id!r} does not exist in job {job_id!r}")
        return rec

    # ------------------------------------------------------------------ pools

    async def create_pool(self, spec: pool_pb2.Pool, request_id: str = "") -> pool_pb2.Pool:
        """Create a pool and start making its nodes."""
        if request_id and f"pool:{request_id}" in self.requests:
            return self.pool(self.requests[f"pool:{request_id}"]).proto
        k = idkey(spec.id)
        if k in self.pools:
            raise already_exists("POOL_EXISTS", f"pool {spec.id!r} already exists")
        pool = P.Pool()
        pool.CopyFrom(spec)
        now = self.clock.now()
        pool.name = f"pools/{spec.id}"
        pool.provider = spec.provider or "local"
        pool.task_slots_per_node = spec.task_slots_per_node or 1
        pool.state = P.POOL_STATE_ACTIVE
        pool.allocation_state = P.ALLOCATION_STATE_RESIZING
        pool.creation_time.CopyFrom(ts(now))
        pool.state_transition_time.CopyFrom(ts(now))
        pool.current_nodes = 0
        rec = PoolRec(k, pool)
        self.pools[k] = rec
        self._mark("pools", k, rec)
        if request_id:
            self.requests[f"pool:{request_id}"] = spec.id
            self._mark("requests", f"pool:{request_id}", spec.id)
        new_nodes = self._grow(rec)
        self._refresh_pool(rec)
        await self.flush()
        self._start_nodes(new_nodes)
        return rec.proto

    def _grow(self, pool: PoolRec) -> list[NodeRec]:
        if pool.proto.provider != "local":
            return []
        members = [n for n in pool.nodes.values() if n.state != P.NODE_STATE_LEAVING_POOL]
        added = []
        for _ in range(pool.proto.target_nodes - len(members)):
            self.meta["node_counter"] += 1
            self._mark_meta("node_counter")
            n = self.meta["node_counter"]
            node_id = f"node-{n}"
            ip = f"127.0.{1 + (n - 1) // 254}.{1 + (n - 1) % 254}"
            now = ts(self.clock.now())
            proto = P.Node(
                name=f"pools/{pool.proto.id}/nodes/{node_id}",
                id=node_id,
                pool_id=pool.proto.id,
                state=P.NODE_STATE_CREATING,
                ip_address=ip,
                task_slots=pool.proto.task_slots_per_node,
            )
            proto.state_transition_time.CopyFrom(now)
            rec = NodeRec(idkey(node_id), proto, last_seen=self.clock.monotonic())
            self.nodes[rec.key] = rec
            pool.nodes[rec.key] = rec
            self._mark("nodes", rec.key, rec)
            added.append(rec)
        return added

    def _start_nodes(self, nodes: list[NodeRec]) -> None:
        if self.provider is None:
            return
        for n in nodes:
            self.provider.node_added(n)

    def _choose_leavers(self, pool: PoolRec, count: int) -> list[NodeRec]:
        order: dict[int, int] = {
            P.NODE_STATE_CREATING: 0,
            P.NODE_STATE_UNKNOWN: 1,
            P.NODE_STATE_START_TASK_FAILED: 2,
            P.NODE_STATE_STARTING: 3,
            P.NODE_STATE_WAITING_FOR_START_TASK: 3,
            P.NODE_STATE_OFFLINE: 4,
            P.NODE_STATE_IDLE: 5,
            P.NODE_STATE_RUNNING: 6,
        }
        members = [n for n in pool.nodes.values() if n.state != P.NODE_STATE_LEAVING_POOL]
        members.sort(key=lambda n: (order.get(n.state, 9), n.used_slots, -int(n.key.split("-")[-1] or 0)))
        return members[:count]

    async def resize_pool(
        self, pool_id: str, target: int, option: int = P.NODE_DEALLOCATION_OPTION_REQUEUE, *, etag: str = ""
    ) -> pool_pb2.Pool:
        """Change the pool's target size; new nodes start, surplus nodes leave.

        As in Batch, only a pool whose allocation is steady may be resized: a resize under way is not
        redirected (the caller waits for STEADY, or stops the resize).
        """
        pool = self.pool(pool_id)
        check_etag(f"pool {pool_id!r}", pool.proto, etag)
        if pool.proto.state != P.POOL_STATE_ACTIVE:
            raise failed_precondition("POOL_BEING_DELETED", f"pool {pool_id!r} is being deleted")
        self._refresh_pool_now(pool)
        if pool.proto.allocation_state == P.ALLOCATION_STATE_RESIZING:
            raise failed_precondition(
                "POOL_RESIZING",
                f"pool {pool_id!r} is resizing ({pool.proto.current_nodes} nodes, target "
                f"{pool.proto.target_nodes}): resize it once its allocation state is steady",
            )
        pool.proto.target_nodes = target
        self._mark("pools", pool.key, pool)
        members = [n for n in pool.nodes.values() if n.state != P.NODE_STATE_LEAVING_POOL]
        leaving: list[NodeRec] = []
        added: list[NodeRec] = []
        if len(members) > target:
            leaving = self._choose_leavers(pool, len(members) - target)
            for n in leaving:
                self._node_leave(n, option)
        else:
            added = self._grow(pool)
        self._refresh_pool_now(pool)
        await self.flush()
        self._after_node_changes(leaving)
        self._start_nodes(added)
        self.kick_scheduler()
        return pool.proto

    def _node_leave(self, n: NodeRec, option: int) -> None:
        wait_for_tasks = option == P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION and bool(n.running)
        self._set_node_state(n, P.NODE_STATE_LEAVING_POOL)
        n.internal["wait_for_tasks"] = wait_for_tasks
        if not wait_for_tasks:
            self._evict_tasks(n, terminate=option == P.NODE_DEALLOCATION_OPTION_TERMINATE, reason="node left the pool")

    def _evict_tasks(self, n: NodeRec, *, terminate: bool, reason: str) -> list[agent_pb2.AttemptRef]:
        """Take every attempt off node `n`: requeue it (or complete it as terminated)."""
        refs = []
        for tkey in list(n.running):
            t = self.jobs[tkey[0]].tasks.get(tkey[1])
            n.running.pop(tkey, None)
            if t is None:
                continue
            refs.append(self._attempt_ref(t))
            if terminate:
                if t.gang:
                    self._end_subtasks(t, reason)
                self._complete_terminated(t, reason)
                self._check_job_done(self.jobs[t.job_key])
            else:
                self._requeue(t, reason)
        self._refresh_node_activity(n)
        return refs

    def _after_node_changes(self, leaving: list[NodeRec]) -> None:
        for n in leaving:
            if n.internal.get("wait_for_tasks"):
                continue
            self._dismiss(n)

    def _dismiss(self, n: NodeRec) -> None:
        """Tell a leaving node's agent to stop; the provider reports when it is gone."""
        if n.session is not None:
            n.session.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="node left the pool")))
        if self.provider is not None and n.internal.get("pid"):
            self.provider.node_leaving(n)
        elif n.session is None:
            asyncio.get_running_loop().create_task(self.node_gone(n.key))

    async def node_gone(self, node_key: str) -> None:
        """The agent behind a leaving node has exited: forget the node."""
        n = self.nodes.get(node_key)
        if n is None:
            return
        if n.session is not None:
            n.session.close()
        for tkey in list(n.running):
            t = self.jobs.get(tkey[0])
            rec = t.tasks.get(tkey[1]) if t else None
            if rec is not None:
                self._requeue(rec, "node left the pool")
        n.running.clear()
        del self.nodes[node_key]
        # Its counters go with it: a node of the same id that joins later starts from zero, whatever
        # tallies of this one a restart reads.
        n.tasks_run = n.tasks_succeeded = 0
        self._tally(n)
        pool = self.pools.get(n.pool_key)
        if pool is not None:
            pool.nodes.pop(node_key, None)
            self._refresh_pool(pool)
        self._dirty[("nodes", node_key)] = Delete("nodes", node_key)
        if pool is not None and pool.proto.state == P.POOL_STATE_DELETING and not pool.nodes:
            del self.pools[pool.key]
            self._dirty[("pools", pool.key)] = Delete("pools", pool.key)
        await self.flush()
        if self.provider is not None:
            # As in Batch, the files of a node that left are gone with it.
            self.provider.node_removed(n)
        self.kick_scheduler()

    async def delete_pool(self, pool_id: str, *, etag: str = "") -> pool_pb2.Pool:
        """Start deleting a pool: its nodes leave (their tasks are requeued), then it is gone."""
        pool = self.pool(pool_id)
        check_etag(f"pool {pool_id!r}", pool.proto, etag)
        if pool.proto.state == P.POOL_STATE_DELETING:
            return pool.proto
        states.check_transition(states.POOL_TRANSITIONS, pool.proto.state, P.POOL_STATE_DELETING, "pool")
        pool.proto.state = P.POOL_STATE_DELETING
        pool.proto.state_transition_time.CopyFrom(ts(self.clock.now()))
        pool.proto.target_nodes = 0
        leaving = [n for n in pool.nodes.values() if n.state != P.NODE_STATE_LEAVING_POOL]
        for n in leaving:
            self._node_leave(n, P.NODE_DEALLOCATION_OPTION_REQUEUE)
        self._mark("pools", pool.key, pool)
        self._refresh_pool(pool)
        result = P.Pool()
        result.CopyFrom(pool.proto)
        if not pool.nodes:
            del self.pools[pool.key]
            self._dirty[("pools", pool.key)] = Delete("pools", pool.key)
        await self.flush()
        self._after_node_changes(leaving)
        self.kick_scheduler()
        return result

    # ------------------------------------------------------------------ jobs

    async def create_job(self, spec: job_pb2.Job, request_id: str = "") -> job_pb2.Job:
        """Create a job on an existing pool."""
        if request_id and f"job:{request_id}" in self.requests:
            return self.job(self.requests[f"job:{request_id}"]).proto
        k = idkey(spec.id)
        if k in self.jobs:
            raise already_exists("JOB_EXISTS", f"job {spec.id!r} already exists")
        self.pool(spec.pool_id)
        job = J.Job()
        job.CopyFrom(spec)
        now = ts(self.clock.now())
        job.name = f"jobs/{spec.id}"
        job.state = J.JOB_STATE_ACTIVE
        job.creation_time.CopyFrom(now)
        job.state_transition_time.CopyFrom(now)
        job.execution_info.start_time.CopyFrom(now)
        if job.on_all_tasks_complete == J.ON_ALL_TASKS_COMPLETE_UNSPECIFIED:
            job.on_all_tasks_complete = J.ON_ALL_TASKS_COMPLETE_NO_ACTION
        self.meta["job_seq"] += 1
        self._mark_meta("job_seq")
        rec = JobRec(k, self.meta["job_seq"], job)
        self.jobs[k] = rec
        self._mark("jobs", k, rec)
        if request_id:
            self.requests[f"job:{request_id}"] = spec.id
            self._mark("requests", f"job:{request_id}", spec.id)
        await self.flush()
        return job

    def _set_job_state(self, job: JobRec, new: int) -> None:
        states.check_transition(states.JOB_TRANSITIONS, job.proto.state, new, f"job {job.key}")
        if job.proto.state != new:
            job.proto.state = new  # type: ignore[assignment]
            job.proto.state_transition_time.CopyFrom(ts(self.clock.now()))
            if new == J.JOB_STATE_COMPLETED:
                job.proto.execution_info.end_time.CopyFrom(ts(self.clock.now()))
        self._mark("jobs", job.key, job)

    async def update_job(self, job_id: str, priority: int | None, on_all: int | None, *, etag: str = "") -> job_pb2.Job:
        job = self.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        if job.proto.state != J.JOB_STATE_ACTIVE:
            raise failed_precondition("JOB_NOT_ACTIVE", f"job {job_id!r} is not active")
        if priority is not None:
            job.proto.priority = priority
        if on_all is not None:
            if (
                job.proto.on_all_tasks_complete == J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
                and on_all == J.ON_ALL_TASKS_COMPLETE_NO_ACTION
            ):
                raise failed_precondition(
                    "INVALID_ON_ALL_TASKS_COMPLETE", "on_all_tasks_complete cannot go back from TERMINATE_JOB"
                )
            job.proto.on_all_tasks_complete = on_all  # type: ignore[assignment]
        self._mark("jobs", job.key, job)
        self._check_job_done(job)
        await self.flush()
        self.kick_scheduler()
        return job.proto

    def _terminate_job_now(self, job: JobRec, reason: str) -> list[tuple[NodeRec, agent_pb2.AttemptRef]]:
        kills = []
        self._set_job_state(job, J.JOB_STATE_TERMINATING)
        job.proto.execution_info.terminate_reason = reason
        for t in job.tasks.values():
            if t.state in LIVE_TASK_STATES:
                kills.extend(self._terminate_running(t, "the job was terminated"))
        self._set_job_state(job, J.JOB_STATE_COMPLETED)
        return kills

    async def terminate_job(self, job_id: str, reason: str = "", *, etag: str = "") -> job_pb2.Job:
        """End the job's running tasks and complete it; ACTIVE tasks stay ACTIVE and never run."""
        job = self.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        if job.proto.state == J.JOB_STATE_DELETING:
            raise failed_precondition("JOB_BEING_DELETED", f"job {job_id!r} is being deleted")
        if job.proto.state == J.JOB_STATE_COMPLETED:
            raise failed_precondition("JOB_COMPLETED", f"job {job_id!r} is already completed")
        kills = self._terminate_job_now(job, reason or "UserTerminate")
        self._send_kills(kills)
        await self.flush()
        self.kick_scheduler()
        return job.proto

    async def delete_job(self, job_id: str, *, etag: str = "") -> job_pb2.Job:
        """Delete the job, its tasks and their directories on every node of its pool."""
        job = self.job(job_id)
        check_etag(f"job {job_id!r}", job.proto, etag)
        kills = []
        for t in job.tasks.values():
            if t.state in LIVE_TASK_STATES:
                kills.extend(self._terminate_running(t, "the job was deleted"))
        self._set_job_state(job, J.JOB_STATE_DELETING)
        result = J.Job()
        result.CopyFrom(job.proto)
        del self.jobs[job.key]
        self._dirty[("jobs", job.key)] = Delete("jobs", job.key)
        for t in job.tasks.values():
            self._dirty_tasks.pop(t, None)
        self._dirty[("tasks!", job.key)] = Delete("tasks", parent=job.key)
        for q in job.watchers:
            q.put_nowait(None)
        self._send_kills(kills)
        await self.flush()
        pool = self.pools.get(job.pool_key)
        if pool is not None:
            for n in pool.nodes.values():
                if n.session is not None:
                    n.session.send(
                        agent_pb2.ServerMessage(
                            delete_task_files=agent_pb2.DeleteTaskFiles(
                                command_id=n.session.command_id(), job_id=job.proto.id
                            )
                        )
                    )
        self.kick_scheduler()
        return result

    def _check_job_done(self, job: JobRec) -> None:
        if (
            job.proto.state == J.JOB_STATE_ACTIVE
            and job.proto.on_all_tasks_complete == J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB
            and job.tasks
            and job.counts[T.TASK_STATE_COMPLETED] == len(job.tasks)
        ):
            # Unlike Batch, a job with no tasks yet is not "all complete".
            self._terminate_job_now(job, "AllTasksComplete")

    def job_counts(self, job_id: str) -> job_pb2.TaskCounts:
        """Task counts of a job, exact (kept up to date with every change)."""
        job = self.job(job_id)
        c = job.counts
        return J.TaskCounts(
            active=c[T.TASK_STATE_ACTIVE],
            running=c[T.TASK_STATE_PREPARING] + c[T.TASK_STATE_RUNNING],
            completed=c[T.TASK_STATE_COMPLETED],
            succeeded=job.succeeded,
            failed=job.failed,
        )

    # ------------------------------------------------------------------ tasks

    async def add_tasks(self, job_id: str, specs: list[task_pb2.TaskSpec]) -> list[task_pb2.AddTaskResult]:
        """Add validated task specs; an id that exists already gets a TASK_EXISTS result."""
        job = self.job(job_id)
        if job.proto.state != J.JOB_STATE_ACTIVE:
            raise failed_precondition(
                "JOB_NOT_ACTIVE", f"job {job_id!r} is {J.JobState.Name(job.proto.state)}; tasks cannot be added"
            )
        self._check_multi_instance(job, specs)
        # Each task is made as its stored bytes (it is kept so until placed): no message per task.
        tail = new_task_tail(T.TASK_STATE_ACTIVE, ts(self.clock.now()))
        prefix = f"jobs/{job.proto.id}/tasks/"
        results = []
        for spec in specs:
            tk = idkey(spec.id)
            if tk in job.tasks:
                results.append(
                    T.AddTaskResult(
                        task_id=spec.id,
                        status=T.ADD_TASK_STATUS_CLIENT_ERROR,
                        error_reason="TASK_EXISTS",
                        error_message=f"task {spec.id!r} already exists in job {job.proto.id!r}",
                    )
                )
                continue
            self.meta["task_seq"] += 1
            data = new_task_bytes(prefix + spec.id, spec.SerializeToString(), tail)
            t = TaskRec.stored(job.key, tk, self.meta["task_seq"], data, T.TASK_STATE_ACTIVE, shape=task_shape(spec))
            job.tasks[tk] = t
            job.queue[tk] = None
            self._count(job, t, +1)
            self._mark_task(t)
            results.append(T.AddTaskResult(task_id=spec.id, status=T.ADD_TASK_STATUS_SUCCESS))
        self._mark_meta("task_seq")
        if job.queue:
            self.waiting_jobs[job.key] = job
        if self.place_hook is not None:
            self.place_hook(None)
        await self.flush()
        self.kick_scheduler()
        return results

    def _check_multi_instance(self, job: JobRec, specs: list[task_pb2.TaskSpec]) -> None:
        """Reject multi-instance tasks the job's pool could never run (Batch would leave them ACTIVE forever)."""
        violations = []
        pool = self.pools.get(job.pool_key)
        for i, spec in enumerate(specs):
            if not spec.HasField("multi_instance_settings"):
                continue
            n = spec.multi_instance_settings.number_of_instances
            field_name = f"tasks[{i}].multi_instance_settings"
            if pool is None:
                violations.append((field_name, f"pool {job.proto.pool_id!r} does not exist"))
            elif not pool.proto.enable_inter_node_communication:
                violations.append((field_name, f"pool {pool.proto.id!r} does not enable inter-node communication"))
            elif n > pool.proto.target_nodes:
                violations.append(
                    (
                        f"{field_name}.number_of_instances",
                        f"{n} instances can never run on pool {pool.proto.id!r} of {pool.proto.target_nodes} nodes",
                    )
                )
            if len(violations) >= 100:
                break
        if violations:
            reason = (
                "INTER_NODE_COMMUNICATION_NOT_ENABLED"
                if all("inter-node" in d for _, d in violations)
                else "MULTI_INSTANCE_TASK_CANNOT_RUN"
            )
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, reason, "; ".join(d for _, d in violations), violations)

    def _max_retries(self, t: TaskRec) -> int:
        c = t.proto.spec.constraints
        if c.HasField("max_task_retry_count"):
            return c.max_task_retry_count
        return self.jobs[t.job_key].proto.constraints.max_task_retry_count

    def _release_node(self, t: TaskRec, *, kill_others_than: str | None = None) -> None:
        """Free every node the current attempt holds.

        For a multi-instance task, the instances still alive on the other nodes
        (all but `kill_others_than`, the node that reported the end) are told to
        stop once this change is committed.
        """
        if t.gang:
            used = t.gang
            job_id = self.jobs[t.job_key].proto.id
            for i, nk in enumerate(t.gang):
                n = self.nodes.get(nk)
                if n is not None and nk != kill_others_than and n.running.get(t.tkey) is not None:
                    ref = agent_pb2.AttemptRef(job_id=job_id, task_id=t.proto.spec.id, attempt=t.attempt, instance=i)
                    self._send_after_commit(n, agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(attempts=[ref])))
            t.gang = ()
        elif t.node_key is not None:
            used = (t.node_key,)
        else:
            return
        t.node_key = None
        t.coordinated = NO_INSTANCES
        tkey = (t.job_key, t.key)
        for nk in used:
            n = self.nodes.get(nk)
            if n is None:
                continue
            n.running.pop(tkey, None)
            self._refresh_node_activity(n)
            if n.state == NODE_LEAVING and n.internal.get("wait_for_tasks") and not n.running:
                n.internal["wait_for_tasks"] = False
                # Only once the end of its last task is committed.
                self._dismiss_after_commit.append(n)

    def _requeue(self, t: TaskRec, reason: str) -> None:
        if t.gang:
            self._end_subtasks(t, f"requeued: {reason}")
        self._release_node(t)
        info = t.proto.execution_info
        info.requeue_count += 1
        info.last_requeue_time.CopyFrom(ts(self.clock.now()))
        self.stats.requeues += 1
        self._set_task_state(t, T.TASK_STATE_ACTIVE)
        log.info("requeued %s/%s (attempt %d): %s", t.job_key, t.key, t.attempt, reason)

    def _complete_terminated(self, t: TaskRec, message: str) -> None:
        """Complete `t` as ended by Shoal (TaskEnded): terminated, its job ended, its node removed.

        A task ended while on a node gets `TERMINATED_EXIT_CODE`, Batch's exit code for a task it
        terminated (its processes were killed, they did not exit by themselves); one ended while waiting
        for a node has no exit code (nothing of it ran since it was last queued).
        """
        on_node = t.state in LIVE_TASK_STATES
        self._release_node(t)
        info = t.proto.execution_info
        now = ts(self.clock.now())
        if not info.HasField("start_time"):
            info.start_time.CopyFrom(now)
        info.end_time.CopyFrom(now)
        if on_node:
            info.exit_code = TERMINATED_EXIT_CODE
        else:
            info.ClearField("exit_code")
        info.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
        info.failure_info.CopyFrom(
            common_pb2.FailureInfo(category=common_pb2.ERROR_CATEGORY_SERVER_ERROR, code="TaskEnded", message=message)
        )
        self._set_task_state(t, T.TASK_STATE_COMPLETED)

    def _attempt_ref(self, t: TaskRec) -> agent_pb2.AttemptRef:
        return agent_pb2.AttemptRef(job_id=self.jobs[t.job_key].proto.id, task_id=t.proto.spec.id, attempt=t.attempt)

    def _terminate_running(self, t: TaskRec, message: str) -> list[tuple[NodeRec, agent_pb2.AttemptRef]]:
        if t.gang:
            # Releasing the gang tells every instance to stop, after the commit.
            self._end_subtasks(t, message)
            self._complete_terminated(t, message)
            return []
        node = self.nodes.get(t.node_key) if t.node_key else None
        ref = self._attempt_ref(t)
        self._complete_terminated(t, message)
        return [(node, ref)] if node is not None else []

    def _send_kills(self, kills: list[tuple[NodeRec, agent_pb2.AttemptRef]], delete_files: bool = False) -> None:
        """Queue KillTasks for these attempts; they leave with the next flush, after its commit."""
        for n, ref in kills:
            msg = agent_pb2.KillTasks(attempts=[ref], delete_files=delete_files)
            self._send_after_commit(n, agent_pb2.ServerMessage(kill_tasks=msg))

    async def terminate_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        """Complete a task now; a running attempt is killed."""
        t = self.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        if t.state == T.TASK_STATE_COMPLETED:
            raise failed_precondition("TASK_COMPLETED", f"task {task_id!r} is already completed")
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        if t.state == T.TASK_STATE_ACTIVE:
            self._complete_terminated(t, "terminated by the user")
        else:
            kills = self._terminate_running(t, "terminated by the user")
        self._check_job_done(self.jobs[t.job_key])
        self._send_kills(kills)
        await self.flush()
        self.kick_scheduler()
        return t.read()

    async def delete_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        """Delete a task; a running attempt is killed and its directory removed."""
        t = self.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        job = self.jobs[t.job_key]
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        node_id = t.proto.node_info.node_id
        # Every node that holds a directory of it: each instance of a gang has one.
        holders = [s.node_info.node_id for s in t.proto.subtasks if s.node_info.node_id]
        if t.state in LIVE_TASK_STATES:
            kills = self._terminate_running(t, "deleted")
        self._count(job, t, -1)
        job.dequeue(t.key)
        del job.tasks[t.key]
        self._dirty_tasks.pop(t, None)
        self._dirty[("tasks", f"{job.key}/{t.key}")] = Delete("tasks", f"{job.key}/{t.key}")
        self._check_job_done(job)
        self._send_kills(kills, delete_files=True)
        await self.flush()
        for holder in holders or ([node_id] if node_id and not kills else []):
            n = self.nodes.get(idkey(holder))
            if n is not None and n.session is not None:
                n.session.send(
                    agent_pb2.ServerMessage(
                        delete_task_files=agent_pb2.DeleteTaskFiles(
                            command_id=n.session.command_id(), job_id=job.proto.id, task_ids=[t.proto.spec.id]
                        )
                    )
                )
        self.kick_scheduler()
        return t.read()

    async def reactivate_task(self, job_id: str, task_id: str, *, etag: str = "") -> task_pb2.Task:
        """Put a failed, completed task back in the queue with its retry count reset."""
        t = self.task(job_id, task_id)
        if etag:
            check_etag(f"task {task_id!r}", t.read(), etag)
        job = self.jobs[t.job_key]
        if job.proto.state != J.JOB_STATE_ACTIVE:
            raise failed_precondition("JOB_NOT_ACTIVE", f"job {job_id!r} is not active")
        info = t.proto.execution_info
        if t.state != T.TASK_STATE_COMPLETED or info.result != common_pb2.TASK_EXECUTION_RESULT_FAILURE:
            raise failed_precondition(
                "TASK_NOT_FAILED", f"only a completed task that failed can be reactivated; {task_id!r} did not fail"
            )
        self._count(job, t, -1)
        requeues = info.requeue_count
        info.Clear()
        info.requeue_count = requeues
        self._count(job, t, +1)
        self._set_task_state(t, T.TASK_STATE_ACTIVE)
        await self.flush()
        self.kick_scheduler()
        return t.read()

    # ------------------------------------------------------------------ placing

    def assign(self, t: TaskRec, nodes: list[NodeRec], attempt: int, slots: int) -> None:
        """Record that `attempt` of `t` runs on `nodes` (one, or a gang), after the applier re-checked them.

        The StartTasks for each node is queued at once (built in place in the
        node's one message of this flush): it leaves once the flush has
        committed the placement, so a pass that fails half-way leaves no placed
        task without its StartTasks.
        """
        job = self.jobs[t.job_key]
        # A task placed for the first time, kept as bytes, has nothing of an earlier attempt to clear:
        # its placement is appended to its bytes (see `wire`), its message read but not kept.
        fresh = t.frozen and t.attempt == 0 and attempt == 1
        proto = t.read() if fresh else t.proto
        spec = proto.spec
        master = nodes[0]
        t.node_key = master.key
        multi = spec.HasField("multi_instance_settings")
        t.gang = tuple(n.key for n in nodes) if multi else ()
        t.coordinated = NO_INSTANCES
        t.attempt = attempt
        tkey = (t.job_key, t.key)
        for n in nodes:
            n.running[tkey] = slots
        if fresh and not multi:
            # (An unplaced task's next attempt is its first.)
            change = wire.state_change(PREPARING, t.state, self._transition_time())
            self._change_frozen(t, PREPARING, job, wire.FIRST_ATTEMPT + change + master.placement_change())
        else:
            proto = t.proto  # (live now: a first placement of a multi-instance task was only read)
            proto.attempt = attempt
            if attempt > 1 or proto.HasField("execution_info"):
                # What the previous attempt left (a first attempt has nothing to clear).
                info = proto.execution_info
                for f in ("start_time", "end_time", "exit_code", "failure_info", "result"):
                    info.ClearField(f)  # type: ignore[arg-type]
            # (Replaces all of it: the previous attempt's task directory too.)
            proto.node_info.CopyFrom(master.placement_info())
            if multi:
                del proto.subtasks[:]
                for i, n in enumerate(nodes):
                    proto.subtasks.append(
                        T.Subtask(id=i, state=T.SUBTASK_STATE_PREPARING, node_info=n.placement_info())
                    )
            self._set_task_state(t, PREPARING, job, proto)
        for n in nodes:
            self._refresh_node_activity(n)
        self.stats.dispatched += 1
        base = self._start_message(master).start_tasks.tasks.add(
            pool_id=master.proto.pool_id, command_line=spec.command_line, required_slots=slots
        )
        if spec.HasField("constraints"):
            c = spec.constraints
            if c.HasField("max_wall_clock_time"):
                base.max_wall_clock_seconds = c.max_wall_clock_time.ToTimedelta().total_seconds()
            base.retention_seconds = (
                c.retention_time.ToTimedelta().total_seconds()
                if c.HasField("retention_time")
                else DEFAULT_RETENTION_SECONDS
            )
        else:
            base.retention_seconds = DEFAULT_RETENTION_SECONDS
        ref = base.attempt
        ref.job_id = job.proto.id
        ref.task_id = spec.id
        ref.attempt = attempt
        common_env = job.proto.common_environment_settings
        if common_env:
            base.environment_settings.extend(common_env)
        if spec.environment_settings:
            base.environment_settings.extend(spec.environment_settings)
        if spec.resource_files:
            base.resource_files.extend(spec.resource_files)
        if spec.output_files:
            base.output_files.extend(spec.output_files)
        if not multi:
            return
        mis = spec.multi_instance_settings
        shared = f"{master.proto.root_directory}/workitems/{job.proto.id}/job-1/{spec.id}"
        for i, n in enumerate(nodes):
            a = base if i == 0 else self._start_message(n).start_tasks.tasks.add()
            if i > 0:
                a.CopyFrom(base)
                a.attempt.instance = i
                # The application's own files and outputs belong to the primary only.
                del a.resource_files[:]
                del a.output_files[:]
            a.multi_instance.CopyFrom(
                agent_pb2.MultiInstance(
                    instance_index=i,
                    number_of_instances=len(nodes),
                    host_list=[x.proto.ip_address for x in nodes],
                    agent_addresses=[f"{x.proto.ip_address}:{x.node_service_port}" for x in nodes],
                    coordination_command_line=mis.coordination_command_line,
                    common_resource_files=mis.common_resource_files,
                    task_shared_dir=shared,
                )
            )

    def _start_message(self, node: NodeRec) -> agent_pb2.ServerMessage:
        """The one StartTasks message this flush sends `node` (queued in order with its other messages)."""
        msg = self._starts.get(node.key)
        if msg is None:
            msg = self._starts[node.key] = agent_pb2.ServerMessage()
            msg.start_tasks.SetInParent()
            self._sends.append((node, msg, node.session))
        return msg

    # ------------------------------------------------------------------ agents

    async def attach(
        self, reg: agent_pb2.Register, notify: Callable[[AgentSession], None] | None = None
    ) -> AgentSession:
        """An agent connected: reconcile what it runs with what the server wants.

        `notify` goes to the new session (see AgentSession): set when it shares a stream with others.
        """
        node = self.nodes.get(idkey(reg.node_id)) if reg.node_id else None
        if node is None:
            pool = self.pools.get(idkey(reg.pool_id)) if reg.pool_id else None
            if pool is None or pool.proto.state != P.POOL_STATE_ACTIVE:
                raise not_found("NODE_NOT_FOUND", f"no node {reg.node_id!r} and no active pool {reg.pool_id!r} to join")
            node = self._join_node(pool, reg)
        if node.session is not None:
            node.session.close()
        session = AgentSession(node.key, reg.boot_id, notify)
        node.session = session
        node.last_seen = self.clock.monotonic()
        node.node_service_port = reg.node_service_port
        node.proto.ip_address = reg.ip_address or node.proto.ip_address
        node.forget_placement()
        node.proto.cores = reg.cores
        node.proto.memory_bytes = reg.memory_bytes
        node.proto.root_directory = reg.root_directory
        node.proto.last_heartbeat_time.CopyFrom(ts(self.clock.now()))
        self._mark("nodes", node.key, node)
        pool = self.pools[node.pool_key]
        if node.state == P.NODE_STATE_LEAVING_POOL:
            # Its unacknowledged reports still count (a task that finished must
            # not run again); whatever else it ran goes back to the queue.
            self._apply_events(node, list(reg.pending_events))
            for tkey in list(node.running):
                job = self.jobs.get(tkey[0])
                t = job.tasks.get(tkey[1]) if job else None
                if t is not None:
                    self._requeue(t, "node left the pool")
                node.running.pop(tkey, None)
            await self.flush()
            session.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="node left the pool")))
            return session
        # Reports the server never committed come first, so that a completion
        # is not mistaken for a lost attempt below.
        self._apply_events(node, list(reg.pending_events))
        reported = {(idkey(a.job_id), idkey(a.task_id)): a.attempt for a in reg.running}
        # An instance whose node lost it takes its whole gang back to the queue.
        for tkey in list(node.running):
            t = self.jobs[tkey[0]].tasks.get(tkey[1]) if tkey[0] in self.jobs else None
            if t is None:
                node.running.pop(tkey, None)
            elif reported.get(tkey) != t.attempt:
                self._requeue(t, "the node does not run it")
        kills = []
        for a in reg.running:
            tk = (idkey(a.job_id), idkey(a.task_id))
            job = self.jobs.get(tk[0])
            t = job.tasks.get(tk[1]) if job else None
            if t is None or t.instance_on(node.key) != a.instance or t.attempt != a.attempt:
                kills.append((node, a))
        start = pool.proto.start_task if pool.proto.HasField("start_task") else None
        run_start = bool(start and start.command_line) and not reg.start_task_succeeded
        node.start_task_ok = not run_start and (bool(reg.start_task_succeeded) or not start)
        if run_start and start is not None and start.wait_for_success:
            target = P.NODE_STATE_STARTING
        elif node.state == P.NODE_STATE_START_TASK_FAILED and reg.start_task_succeeded:
            target = P.NODE_STATE_START_TASK_FAILED
        else:
            target = P.NODE_STATE_RUNNING if node.running else P.NODE_STATE_IDLE
        if node.state in (P.NODE_STATE_IDLE, P.NODE_STATE_RUNNING) and target == P.NODE_STATE_STARTING:
            self._set_node_state(node, P.NODE_STATE_STARTING)
        elif node.state != target:
            if node.state == P.NODE_STATE_CREATING and target == P.NODE_STATE_RUNNING:
                target = P.NODE_STATE_IDLE
            if states.can_transition(states.NODE_TRANSITIONS, node.state, target):
                self._set_node_state(node, target)
            else:
                self._set_node_state(node, P.NODE_STATE_STARTING)
                if target != P.NODE_STATE_STARTING:
                    self._set_node_state(node, target)
        self._refresh_node_activity(node)
        self._refresh_pool(pool)
        # Held back by the session until Welcome has gone out.
        self._send_kills(kills)
        await self.flush()
        welcome = agent_pb2.Welcome(
            node_id=node.proto.id,
            pool_id=node.proto.pool_id,
            heartbeat_interval_seconds=self.heartbeat_interval,
            run_start_task=run_start,
            task_slots=node.proto.task_slots,
        )
        if run_start and start is not None:
            welcome.start_task.CopyFrom(start)
        session.send(agent_pb2.ServerMessage(welcome=welcome))
        if reg.pending_events:
            session.ack(max(e.event_id for e in reg.pending_events))
        # RunApplication is not acknowledged: a primary that reconnects while its
        # gang is fully coordinated is told again (the agent ignores a repeat).
        for tkey in node.running:
            job = self.jobs.get(tkey[0])
            t = job.tasks.get(tkey[1]) if job else None
            if t is not None and t.gang and t.gang[0] == node.key and len(t.coordinated) == len(t.gang):
                session.send(
                    agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(attempt=self._attempt_ref(t)))
                )
        self.kick_scheduler()
        return session

    def _join_node(self, pool: PoolRec, reg: agent_pb2.Register) -> NodeRec:
        self.meta["node_counter"] += 1
        self._mark_meta("node_counter")
        node_id = reg.node_id or f"node-{self.meta['node_counter']}"
        proto = P.Node(
            name=f"pools/{pool.proto.id}/nodes/{node_id}",
            id=node_id,
            pool_id=pool.proto.id,
            state=P.NODE_STATE_CREATING,
            ip_address=reg.ip_address,
            task_slots=pool.proto.task_slots_per_node,
        )
        rec = NodeRec(idkey(node_id), proto, last_seen=self.clock.monotonic())
        self.nodes[rec.key] = rec
        pool.nodes[rec.key] = rec
        self._mark("nodes", rec.key, rec)
        return rec

    def detach(self, session: AgentSession) -> None:
        """The stream ended. The node stays as it is until it comes back or its heartbeat times out."""
        session.close()
        node = self.nodes.get(session.node_key)
        if node is not None and node.session is session:
            node.session = None
            self.kick_scheduler()

    def heartbeat(self, session: AgentSession, hb: agent_pb2.Heartbeat) -> None:
        node = self.nodes.get(session.node_key)
        if node is None or node.session is not session:
            return
        node.last_seen = self.clock.monotonic()
        node.proto.cpu_percent = hb.cpu_percent
        node.proto.last_heartbeat_time.CopyFrom(ts(self.clock.now()))

    def touch(self, session: AgentSession) -> None:
        node = self.nodes.get(session.node_key)
        if node is not None and node.session is session:
            node.last_seen = self.clock.monotonic()

    async def start_task_report(self, session: AgentSession, info: common_pb2.StartTaskInfo) -> None:
        node = self.nodes.get(session.node_key)
        if node is None or node.session is not session:
            return
        node.proto.start_task_info.CopyFrom(info)
        pool = self.pools[node.pool_key]
        wait = pool.proto.start_task.wait_for_success
        if info.state == common_pb2.START_TASK_STATE_RUNNING:
            if wait and node.state == P.NODE_STATE_STARTING:
                self._set_node_state(node, P.NODE_STATE_WAITING_FOR_START_TASK)
        elif info.state == common_pb2.START_TASK_STATE_COMPLETED:
            ok = info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
            node.start_task_ok = ok
            if wait and node.state in (P.NODE_STATE_STARTING, P.NODE_STATE_WAITING_FOR_START_TASK):
                self._set_node_state(node, P.NODE_STATE_IDLE if ok else P.NODE_STATE_START_TASK_FAILED)
        self._mark("nodes", node.key, node)
        self._refresh_pool(pool)
        await self.flush()
        self.kick_scheduler()

    async def task_events(self, session: AgentSession, events: list[agent_pb2.TaskEvent]) -> None:
        """Apply a batch of reports from a node, commit, then acknowledge them."""
        await self.task_events_many([(session, events)])

    async def task_events_many(self, reports: list[tuple[AgentSession, list[agent_pb2.TaskEvent]]]) -> None:
        """Apply reports from one or more nodes, place work on the room they freed, commit, then acknowledge."""
        now = self.clock.monotonic()
        accepted: list[tuple[AgentSession, list[agent_pb2.TaskEvent]]] = []
        nodes: list[NodeRec] = []
        with self.one_time():
            for session, events in reports:
                node = self.nodes.get(session.node_key)
                if node is None or node.session is not session:
                    continue
                node.last_seen = now
                self._apply_events(node, events)
                accepted.append((session, events))
                nodes.append(node)
            if not nodes:
                return
            # Only these nodes gained room, so a pass over them alone usually
            # suffices; the full pass (O(nodes)) runs when it could not settle things.
            placed = self.place_hook(nodes) if self.place_hook is not None else -1
        full_pass = placed < 0
        if not full_pass:
            roomy = {n.pool_key for n in nodes if n.task_slots > n.used_slots}
            full_pass = bool(roomy) and any(j.queue for j in self.waiting_jobs.values() if j.pool_key in roomy)
        for session, events in accepted:
            if events:
                self._acks.append((session, max(e.event_id for e in events)))
        await self.flush()
        if full_pass:
            self.kick_scheduler()

    def _apply_events(self, node: NodeRec, events: list[agent_pb2.TaskEvent]) -> None:
        jobs = self.jobs
        touched: dict[str, JobRec] = {}
        for ev in events:
            ref = ev.attempt
            job = jobs.get(ref.job_id.lower())  # (idkey, inlined: this runs once per report)
            t = job.tasks.get(ref.task_id.lower()) if job is not None else None
            if (
                t is None
                or job is None
                # (The state first: a report about a finished task must not bring its message back to life.)
                or t.state not in LIVE_TASK_STATES
                or t.attempt != ref.attempt
                or t.instance_on(node.key) != ref.instance
            ):
                self.stats.stale_reports += 1
                continue
            touched[job.key] = job
            kind = ev.kind
            if t.gang:
                self._apply_instance_event(t, node, ev)
            elif kind == EVENT_COMPLETED and ev.result == SUCCESS and t.placed_as_bytes():
                # Most reports: the end is appended to the task's bytes too.
                self._succeed_frozen(t, node, ev, job)
            elif kind == EVENT_COMPLETED:
                # A short attempt's RUNNING may have been folded into its COMPLETED: the attempt
                # ran, so it moves on from RUNNING, in one transition rather than two
                # (_complete_attempt records the start it would have brought).
                self._complete_attempt(t, node, ev, job, folded=t.state == PREPARING)
            elif kind == EVENT_RUNNING:
                self._mark_running(t, ev)
        # (Once per job, after its reports: a job that completes ends with its last task's report.)
        for job in touched.values():
            self._check_job_done(job)

    def _mark_running(self, t: TaskRec, ev: agent_pb2.TaskEvent) -> None:
        if t.state == PREPARING:
            t.proto.execution_info.start_time.CopyFrom(ev.start_time if ev.HasField("start_time") else ev.time)
            t.proto.node_info.task_root_directory = ev.task_root_directory
            self._set_task_state(t, RUNNING)

    def _apply_instance_event(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent) -> None:
        """One instance of a multi-instance task reported."""
        i = ev.attempt.instance
        sub = t.proto.subtasks[i]
        if ev.kind == agent_pb2.TASK_EVENT_KIND_RUNNING:
            sub.state = T.SUBTASK_STATE_RUNNING
            sub.start_time.CopyFrom(ev.start_time if ev.HasField("start_time") else ev.time)
            sub.node_info.task_root_directory = ev.task_root_directory
            if i == 0:
                self._mark_running(t, ev)
            self._mark_task(t)
        elif ev.kind == agent_pb2.TASK_EVENT_KIND_COORDINATED:
            t.coordinated = t.coordinated | {i}
            # The coordination command's exit code; `load` rebuilds `coordinated`
            # from RUNNING subtasks that have one, so a restart does not lose it.
            sub.exit_code = 0
            self._mark_task(t)
            if len(t.coordinated) == len(t.gang):
                primary = self.nodes.get(t.gang[0])
                if primary is not None:
                    ref = self._attempt_ref(t)
                    self._send_after_commit(
                        primary, agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(attempt=ref))
                    )
        elif ev.kind == agent_pb2.TASK_EVENT_KIND_COMPLETED:
            if i == 0:
                self._mark_running(t, ev)
            self._finish_subtask(sub, ev)
            failed = ev.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS
            lost = [nk for nk in t.gang if nk != node.key and not self._connected(nk)]
            if failed and lost:
                # mpiexec fails as soon as a proxy's connection drops, often before
                # the lost node's heartbeat times out: a lost node is a requeue, not
                # a failure of the task.
                self._requeue(t, f"node {lost[0]} of its gang was lost")
                return
            if i == 0:
                # The primary's end is the task's end: the others are stopped.
                if failed:
                    why = (ev.failure_info.code if ev.HasField("failure_info") else "") or "FailureExitCode"
                    if ev.HasField("exit_code"):
                        why += f", exit code {ev.exit_code}"
                    self._end_subtasks(t, f"ended with the primary instance, which failed ({why})")
                else:
                    self._end_subtasks(t, "ended with the primary instance", primary_succeeded=True)
                self._complete_attempt(t, node, ev)
            elif ev.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS:
                # Any failed instance fails the whole task (which may then be retried whole).
                self._end_subtasks(t, f"instance {i} failed")
                instance_end = agent_pb2.TaskEvent()
                instance_end.CopyFrom(ev)
                if instance_end.HasField("failure_info"):
                    failure = instance_end.failure_info
                    failure.message = f"instance {i} on {node.proto.id}: {failure.message}"
                self._complete_attempt(t, node, instance_end)
            else:
                self._mark_task(t)

    def _connected(self, node_key: str) -> bool:
        n = self.nodes.get(node_key)
        return n is not None and n.connected

    def _finish_subtask(self, sub: task_pb2.Subtask, ev: agent_pb2.TaskEvent) -> None:
        if not sub.HasField("start_time"):
            sub.start_time.CopyFrom(ev.start_time if ev.HasField("start_time") else ev.time)
            sub.node_info.task_root_directory = ev.task_root_directory
        sub.state = T.SUBTASK_STATE_COMPLETED
        sub.end_time.CopyFrom(ev.time)
        if ev.HasField("exit_code"):
            sub.exit_code = ev.exit_code
        sub.result = ev.result
        if ev.HasField("failure_info") and ev.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS:
            sub.failure_info.CopyFrom(ev.failure_info)

    def _end_subtasks(self, t: TaskRec, message: str, *, primary_succeeded: bool = False) -> None:
        """Complete every instance still going (its agent is told to stop it): the task's attempt ended,
        because its primary did, an instance failed, or it was terminated or requeued (`message` says which).

        An instance other than the primary whose coordination command succeeded keeps the exit code it
        recorded, its own; any other (the primary, whose command was running, or one still staging or
        coordinating) was ended by Shoal and gets `TERMINATED_EXIT_CODE`, as a terminated task does. After
        a primary that succeeded, an instance that coordinated did its part (a home for the application's
        ranks) and succeeded; otherwise it ended with the task: result FAILURE, failure TaskEnded saying why.
        """
        now = ts(self.clock.now())
        for sub in t.proto.subtasks:
            if sub.state == T.SUBTASK_STATE_COMPLETED:
                continue
            coordinated = sub.id != 0 and sub.state == T.SUBTASK_STATE_RUNNING and sub.HasField("exit_code")
            sub.state = T.SUBTASK_STATE_COMPLETED
            sub.end_time.CopyFrom(now)
            if not coordinated:
                sub.exit_code = TERMINATED_EXIT_CODE
            if primary_succeeded and coordinated:
                sub.result = SUCCESS
                sub.ClearField("failure_info")
            else:
                sub.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
                sub.failure_info.CopyFrom(
                    common_pb2.FailureInfo(
                        category=common_pb2.ERROR_CATEGORY_SERVER_ERROR, code="TaskEnded", message=message
                    )
                )
        self._mark_task(t)

    def _complete_attempt(
        self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent, job: JobRec | None = None, *, folded: bool = False
    ) -> None:
        """The attempt of `t` on `node` ended as `ev` says: record it, free the node, retry or complete.

        `folded`: the attempt's RUNNING was folded into this report (it moves on from RUNNING).
        Runs once per task: each field of `ev` and of the task is read once. (The successful end of an
        attempt placed as bytes goes to `_succeed_frozen` instead: see `_apply_events`.)
        """
        if job is None:
            job = self.jobs[t.job_key]
        proto = t.proto
        info = proto.execution_info
        ev_time = ev.time
        ev_start = ev.start_time if ev.HasField("start_time") else None
        if not info.HasField("start_time"):
            info.start_time.CopyFrom(ev_start if ev_start is not None else ev_time)
        if ev.task_root_directory:
            proto.node_info.task_root_directory = ev.task_root_directory
        info.end_time.CopyFrom(ev_time)
        exit_code = ev.exit_code if ev.HasField("exit_code") else None
        if exit_code is not None:
            info.exit_code = exit_code
        else:
            info.ClearField("exit_code")
        succeeded = ev.result == SUCCESS
        code = ""
        if succeeded:
            began = ev_start if ev_start is not None else info.start_time
            note_attempt_length(job, max(0.0, (ev_time.seconds - began.seconds) + (ev_time.nanos - began.nanos) / 1e9))
            info.ClearField("failure_info")
            info.result = SUCCESS
        else:
            code = (ev.failure_info.code if ev.HasField("failure_info") else "") or "FailureExitCode"
            fi = common_pb2.FailureInfo()
            fi.CopyFrom(ev.failure_info)
            fi.code = code
            if not fi.category:
                fi.category = failure_category(code)  # type: ignore[assignment]
            info.failure_info.CopyFrom(fi)
            info.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
        self._count_attempt(node, succeeded)
        node.recent.append((job.proto.id, proto.spec.id, proto.attempt, exit_code))
        node.recent_changed = True
        self._release_node(t, kill_others_than=node.key)
        if not succeeded and should_retry(
            AttemptOutcome(exit_code, code, succeeded), info.retry_count, self._max_retries(t)
        ):
            info.retry_count += 1
            info.last_retry_time.CopyFrom(ev_time)
            self._set_task_state(t, ACTIVE, job, proto)
        else:
            self._set_task_state(t, COMPLETED, job, proto)
        if folded:
            proto.previous_state = RUNNING  # type: ignore[assignment]

    def _succeed_frozen(self, t: TaskRec, node: NodeRec, ev: agent_pb2.TaskEvent, job: JobRec) -> None:
        """`_complete_attempt` of a successful attempt of a task kept as bytes, placed and not yet
        reported RUNNING: nothing of the attempt's end is recorded yet, so it is appended (see `wire`).
        The RUNNING it skipped is folded in, as `_complete_attempt` does."""
        end = ev.time
        start = ev.start_time if ev.HasField("start_time") else end
        exit_code = ev.exit_code if ev.HasField("exit_code") else None
        note_attempt_length(job, max(0.0, (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9))
        self._count_attempt(node, True)
        ref = ev.attempt
        # (The task's id as the agent reports it: the one it was sent. Its message is not read here.)
        node.recent.append((job.proto.id, ref.task_id, ref.attempt, exit_code))
        node.recent_changed = True
        self._release_node(t, kill_others_than=node.key)
        end_bytes = end.SerializeToString()
        change = wire.ended(
            wire.state_change(COMPLETED, RUNNING, self._transition_time()),
            end_bytes if start is end else start.SerializeToString(),
            end_bytes,
            exit_code,
            SUCCESS,
            ev.task_root_directory,
        )
        t.result = SUCCESS
        job.succeeded += 1
        self._change_frozen(t, COMPLETED, job, change)

    # ------------------------------------------------------------------ health

    def _mark_node_stats(self) -> None:
        for n in self.nodes.values():
            if n.stats_dirty:
                n.stats_dirty = False
                self._mark("nodes", n.key, n)
        if self._tallies_written:
            # Every node's row now holds its counters (a node whose counters changed is stats_dirty):
            # the tallies written before are spent. (This flush's own tally row comes after the drop.)
            self._tallies_written = False
            self._dirty[("tallies", "")] = Delete("tallies")

    async def save_node_stats(self) -> None:
        """Write the node statistics that changed since the health pass last did (at a clean stop)."""
        self._mark_node_stats()
        await self.flush()

    async def check_health(self, timeout: float) -> None:
        """Nodes silent for longer than `timeout` become UNKNOWN and their tasks are requeued."""
        now = self.clock.monotonic()
        lost = []
        # An agent gets longer to come up the first time than to answer later.
        creating_timeout = max(60.0, 3 * timeout)
        gone = []
        # One pass, cheapest test first: it runs twice a second over every node.
        for n in self.nodes.values():
            silent = now - n.last_seen
            if silent <= timeout:
                continue
            state = n.state
            if state in LIVE_NODE_STATES or (state == P.NODE_STATE_CREATING and silent > creating_timeout):
                lost.append(n)
            elif state == P.NODE_STATE_LEAVING_POOL and n.session is None:
                gone.append(n.key)
        for key in gone:
            log.warning("leaving node %s is silent: forgetting it", key)
            await self.node_gone(key)
        if now - self._stats_written_at >= NODE_STATS_WRITE_SECONDS:
            self._stats_written_at = now
            self._mark_node_stats()
        if not lost:
            if self._dirty or self._dirty_tasks:
                await self.flush()
            return
        for n in lost:
            log.warning("node %s silent for %.1fs: UNKNOWN", n.key, now - n.last_seen)
            self._evict_tasks(n, terminate=False, reason="node lost")
            self._set_node_state(n, P.NODE_STATE_UNKNOWN)
            if n.session is not None:
                n.session.close()
                n.session = None
        await self.flush()
        self.kick_scheduler()

    async def check_job_deadlines(self) -> None:
        """Terminate jobs past their max_wall_clock_time."""
        now = self.clock.now()
        kills: list[tuple[NodeRec, agent_pb2.AttemptRef]] = []
        for job in list(self.jobs.values()):
            c = job.proto.constraints
            if job.proto.state != J.JOB_STATE_ACTIVE or not c.HasField("max_wall_clock_time"):
                continue
            if now - job.proto.creation_time.ToDatetime(tzinfo=now.tzinfo) > c.max_wall_clock_time.ToTimedelta():
                kills.extend(self._terminate_job_now(job, "MaxWallClockTimeExpiry"))
        if self._dirty or self._dirty_tasks:
            self._send_kills(kills)
            await self.flush()
