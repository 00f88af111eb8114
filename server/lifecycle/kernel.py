"""The kernel every change of the control plane goes through: the records, the flush (group commit),
delivery of what a commit allows, publishing to watchers, state changes checked against their tables,
and the clock of a batch.

Every change follows the same shape: check, change the records (no ``await`` in between, so the
single event loop makes it atomic), flush (group commit), and only then act on it: answer the
client, send commands to agents, publish to watchers. Agent reports are fenced by attempt: a report
about an attempt that is no longer the task's current one is counted and dropped. The lifecycles
(``pools``, ``nodes``, ``jobs``, ``tasks``, ``attempts``, ``gangs``, ...) beside this module decide and
change through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, cast

from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock, to_timestamp
from shoal.server.domain import states, wire
from shoal.server.domain.errors import NotFound
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.records import (
    TAG_HAS_ATTEMPT,
    AgentSession,
    JobRec,
    NodeRec,
    PoolRec,
    TaskRec,
)
from shoal.server.lifecycle.nodewatch import Collected, NodeWatch
from shoal.server.store.base import Delete, Op, Row, Rows, Store, StoredRow
from shoal.v1 import certificate_pb2, common_pb2, job_pb2, pool_pb2, task_pb2

if TYPE_CHECKING:
    from shoal.server.containers.credentials import RegistryCredentials
    from shoal.server.lifecycle.accounting import Accounting
    from shoal.server.lifecycle.attempts import AttemptLifecycle
    from shoal.server.lifecycle.autopools import AutoPools
    from shoal.server.lifecycle.autoscaling import AutoScaling
    from shoal.server.lifecycle.completion import CompletionLifecycle
    from shoal.server.lifecycle.dependencies import DependencyLifecycle
    from shoal.server.lifecycle.gangs import GangLifecycle
    from shoal.server.lifecycle.jobmanager import JobManagerLifecycle
    from shoal.server.lifecycle.jobprep import JobPrepLifecycle
    from shoal.server.lifecycle.jobs import JobLifecycle
    from shoal.server.lifecycle.nodes import NodeLifecycle
    from shoal.server.lifecycle.pools import PoolLifecycle
    from shoal.server.lifecycle.preemption import Preemption
    from shoal.server.lifecycle.restarts import NodeRestarts
    from shoal.server.lifecycle.tasks import TaskLifecycle


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
        P.NODE_STATE_UNUSABLE,
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
#: A node whose agent restarts (RebootNode, ReimageNode): it waits for its tasks, then restarts.
#: Server messages that are commands: each carries a command id the agent acknowledges.
COMMANDS: Final = frozenset(
    {
        "start_tasks",
        "run_application",
        "delete_task_files",
        "run_job_release",
        "restart",
        "node_users",
        "deploy_packages",
    }
)
RESTARTING_NODE_STATES: Final = frozenset({P.NODE_STATE_REBOOTING, P.NODE_STATE_REIMAGING})
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

    def node_preempted(self, node: NodeRec) -> None:
        """The node's preemption is committed: kill its agent at once and delete its files."""

    def node_recovering(self, node: NodeRec) -> None:
        """A preempted node is CREATING again (committed): start its agent on a fresh root."""


ts = to_timestamp


@dataclass
class Stats:
    """Counters for tests, benchmarks and the metrics (`shoal.server.observability.metrics` reads them)."""

    stale_reports: int = 0
    requeues: int = 0
    #: Attempts placed on nodes.
    dispatched: int = 0
    flushes: int = 0
    #: Attempts that ended on a node, those that succeeded among them (`count_attempt`).
    attempts_ended: int = 0
    attempts_succeeded: int = 0
    #: Tasks that became COMPLETED (`set_task_state`, `change_frozen`).
    completed: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Kernel:
    """The records and the one way changes to them are committed and acted on.

    The lifecycles are set by the control plane that assembles them (`shoal.server.controlplane`).
    """

    pool_life: PoolLifecycle
    node_life: NodeLifecycle
    job_life: JobLifecycle
    task_life: TaskLifecycle
    attempt_life: AttemptLifecycle
    gang_life: GangLifecycle
    dependency_life: DependencyLifecycle
    jobmanager_life: JobManagerLifecycle
    prep_life: JobPrepLifecycle
    completion: CompletionLifecycle
    restarts: NodeRestarts
    autoscale: AutoScaling
    preemption: Preemption
    accounting: Accounting
    autopools: AutoPools
    registry_credentials: RegistryCredentials

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
        #: The credential a node's tasks get, from (account, pool id, node id); None: no authentication.
        self.node_credential: Callable[[str, str, str], str] | None = None
        #: The rows of the `accounts` table as read at start-up (handed to the account registry).
        self.account_rows: list[StoredRow] = []
        #: WatchNodes streams and the changes of their pools' nodes in this flush (see `nodewatch`).
        self.node_watch = NodeWatch(self.pools)
        #: The rows of the `certificates` table as read at start-up (handed to the certificate registry).
        self.certificate_rows: list[StoredRow] = []
        #: What a node of a pool installs, from (account, the pool's certificate references); None: nothing.
        self.node_certificates: (
            Callable[[str, Sequence[certificate_pb2.CertificateReference]], list[agent_pb2.NodeCertificate]] | None
        ) = None
        #: The rows of the `nodeusers` table as read at start-up (handed to the node user registry).
        self.nodeuser_rows: list[StoredRow] = []
        #: The rows of the `schedules` table as read at start-up (handed to `lifecycle.schedules`).
        self.schedule_rows: list[StoredRow] = []
        #: Called, in registration order, with each Welcome being made, to add what lives beside the
        #: scheduling state (the node's users: `server.nodeusers`; the pool's application packages:
        #: `server.applications`). See `node_welcomed`.
        self.welcome_hooks: list[Callable[[NodeRec, agent_pb2.Register, agent_pb2.Welcome], None]] = []
        #: The rows of the `applications` table as read at start-up (handed to the application registry).
        self.application_rows: list[StoredRow] = []
        #: Fills an assignment's packages from (account, the task's application package references); None:
        #: a server without applications (the references are then not deployed). Called only for a task
        #: that has references: a task without any costs nothing (see `attempts.assign`).
        self.task_packages: (
            Callable[
                [str, Sequence[common_pb2.ApplicationPackageReference]],
                list[agent_pb2.PackageDeployment],
            ]
            | None
        ) = None
        #: Called as a node that left is forgotten, before the flush that deletes its row; None: nothing.
        self.node_forgotten_hook: Callable[[NodeRec], None] | None = None
        #: Called, in registration order, when a job completes and again when it is removed (deleted):
        #: the rooms that outlive a job (job schedules, auto pools) register here. A hook may be called
        #: twice for one job and must do nothing the second time; it runs inside the change that ended
        #: the job, before its flush, and may change state (marking rows) but not flush.
        self.job_end_hooks: list[Callable[[JobRec], None]] = []
        #: Called, in registration order, with a job schedule's id (as given, not its key) and its job
        #: specification (its `account` set to the schedule's) when the schedule completes and again when
        #: it is deleted (auto pools of the JOB_SCHEDULE lifetime go with it); the same rules as
        #: `job_end_hooks`.
        self.schedule_end_hooks: list[Callable[[str, job_pb2.Job], None]] = []
        #: Every job with queued tasks, and perhaps some whose queue emptied since or that are gone
        #: (`queued_jobs` drops those as it meets them): the scheduler looks here, not at every job.
        self.waiting_jobs: dict[str, JobRec] = {}
        self.meta: dict[str, int] = {"task_seq": 0, "job_seq": 0, "node_counter": 0}
        self.provider: Provider | None = None
        #: The Exec secret of an attempt (job id, task id, attempt), the same on each node of its gang
        #: (see `shoal.server.security`); None: attempts get none (their agent makes one of its own).
        self.exec_secret: Callable[[str, str, int], str] | None = None
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
        #: Effects of the changes so far that may only happen once they are committed (a new pool's
        #: nodes started, a deleted pool's watchers ended), in order: see `after_commit`.
        self._after_commit_calls: list[Callable[[], None]] = []
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
        #: Jobs with dependents released since the last placement pass over the nodes that reported.
        self.jobs_released: dict[str, JobRec] = {}
        #: Nodes running a job manager task exclusively: nothing is sent ahead to them.
        self.exclusive_nodes: set[str] = set()
        #: Tasks Shoal itself ended (terminated, disabled, requeued nowhere): their completion takes no job
        #: action (see `lifecycle.completion`); emptied by each settle.
        self.ended_by_shoal: set[TaskRec] = set()
        #: Tasks completed since the consequences were last applied, of jobs that react to completions
        #: (`JobRec.reacts`): see `lifecycle.completion`.
        self.completions: list[TaskRec] = []
        self._schedule_kick = asyncio.Event()
        #: Set by the scheduler: places what fits now, so that a batch of
        #: completions and the placements they make room for share one commit.
        self.place_hook: Callable[[Sequence[NodeRec] | None], int] | None = None
        #: Metrics (`shoal.server.observability.metrics`; None: not measured): called with each scheduling
        #: pass's duration in seconds and whether it was a full pass (every node), and with the first task
        #: a pass places, before its placement is recorded (to sample how long tasks wait).
        self.pass_observer: Callable[[float, bool], None] | None = None
        self.wait_sampler: Callable[[TaskRec], None] | None = None
        #: The time of the batch of reports being applied (see `_stamp`).
        self._batch_stamp: timestamp_pb2.Timestamp | None = None
        #: `_batch_stamp` as appended to a stored task (see `_transition_time`), made when first needed.
        self._batch_transition_time: bytes | None = None

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
        # (Read by the account registry, which lives beside the control plane: see `shoal.server.accounts`.)
        self.account_rows = loaded.tables["accounts"]
        self.certificate_rows = loaded.tables["certificates"]
        self.nodeuser_rows = loaded.tables["nodeusers"]
        self.schedule_rows = loaded.tables["schedules"]
        self.application_rows = loaded.tables["applications"]
        # (Before anything is sent: assignments and Welcomes carry the passwords.)
        self.registry_credentials.load(loaded.tables["credentials"])
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
        jobtasks: dict[str, list[tuple[str, bytes]]] = {}
        for row in loaded.tables["jobtasks"]:
            jobtasks.setdefault(row.parent, []).append((row.key[len(row.parent) + 1 :], row.data))
        for row in loaded.tables["jobs"]:
            job = J.Job.FromString(row.data)
            job_rec = self.jobs[row.key] = JobRec(row.key, row.seq, job)
            self.dependency_life.job_loaded(job_rec)
            self.jobmanager_life.job_loaded(job_rec)
            self.prep_life.job_loaded(job_rec, jobtasks.get(row.key, []))
        self.task_life.load_rows(loaded.tables["tasks"])
        self.accounting.load(loaded.tables["usage"])
        tombstones: dict[str, list[tuple[str, bytes]]] = {}
        for row in loaded.tables["tombstones"]:
            tombstones.setdefault(row.parent, []).append((row.key[len(row.parent) + 1 :], row.data))
        for job_rec in self.jobs.values():
            if job_rec.deps is not None:
                self.dependency_life.restore(job_rec, tombstones.get(job_rec.key, []))
        self.waiting_jobs = {key: job for key, job in self.jobs.items() if job.has_queued()}
        for pool_rec in self.pools.values():
            self.refresh_pool(pool_rec)
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
                self.mark("nodes", key, n)
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

    def tally(self, n: NodeRec) -> None:
        """Write `n`'s task counters with the next flush (`_tally_row`)."""
        if not n.tallied:
            n.tallied = True
            self._tallied.append(n)

    def count_attempt(self, n: NodeRec, succeeded: bool) -> None:
        """An attempt that ran on `n` ended (`succeeded` or not): its task counters, written with the task."""
        n.tasks_run += 1
        stats = self.stats
        stats.attempts_ended += 1
        if succeeded:
            n.tasks_succeeded += 1
            stats.attempts_succeeded += 1
        self.tally(n)

    def mark(self, table: str, k: str, rec: object) -> None:
        self._dirty[(table, k)] = rec

    def mark_task(self, t: TaskRec) -> None:
        self._dirty_tasks[t] = None

    def mark_meta(self, name: str) -> None:
        self._dirty[("meta", name)] = self.meta[name]

    def delete_row(self, table: str, k: str) -> None:
        """Delete the row `k` of `table` with the next flush."""
        self._dirty[(table, k)] = Delete(table, k)

    def delete_tasks_of(self, job_key: str) -> None:
        """Delete every task row of a job (and its tombstones and job tasks' runs) with the next flush."""
        self._dirty[("tasks!", job_key)] = Delete("tasks", parent=job_key)
        self._dirty[("tombstones!", job_key)] = Delete("tombstones", parent=job_key)
        self._dirty[("jobtasks!", job_key)] = Delete("jobtasks", parent=job_key)

    def forget_task_row(self, t: TaskRec) -> None:
        """Write no row for `t` with the next flush (it is being deleted)."""
        self._dirty_tasks.pop(t, None)

    def has_changes(self) -> bool:
        """Whether anything changed since the last flush."""
        return bool(self._dirty or self._dirty_tasks)

    def ack_after_commit(self, session: AgentSession, up_to: int) -> None:
        """Acknowledge `session`'s reports up to event `up_to` once the next flush has committed them."""
        self._acks.append((session, up_to))

    def dismiss_after_commit(self, n: NodeRec) -> None:
        """Tell leaving node `n` to stop once the next flush has committed the end of its last task."""
        self._dismiss_after_commit.append(n)

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Call `effect` once the next flush has committed the changes made so far (for a change made
        where nothing may flush: a hook, or `JobLifecycle.make_job`)."""
        self._after_commit_calls.append(effect)

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
                node_bytes = rec.view().SerializeToString()
                node_row = json.dumps({"node": node_bytes.hex(), "internal": rec.internal})
                ops.append(Row("nodes", k, node_row.encode(), rec.pool_key))
                if self.node_watch.streams:
                    self.node_watch.written(rec.pool_key, node_bytes)
            elif table in ("meta", "requests"):
                ops.append(Row(table, k, str(rec).encode()))
            elif table in ("tombstones", "jobtasks", "usage", "schedules", "credentials"):
                # (The job's key and the row's data: a `dependencies.Tombstone`, or a node's job tasks; or a
                # job's or pool's statistics, `lifecycle.accounting`; or a job schedule, `lifecycle.schedules`;
                # or, the account's, a registry password, `containers.credentials`.)
                job_key, data = cast("tuple[str, bytes]", rec)
                ops.append(Row(table, k, data, job_key))
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

    def node_welcomed(self, node: NodeRec, reg: agent_pb2.Register, welcome: agent_pb2.Welcome) -> None:
        """`welcome` for `node`'s agent (which sent `reg`) is being made: the hooks add to it."""
        for hook in self.welcome_hooks:
            hook(node, reg, welcome)

    def node_forgotten(self, node: NodeRec) -> None:
        """`node` left its pool and is being forgotten: the hook deletes what is kept of it elsewhere."""
        self.accounting.node_left(node)
        if self.node_forgotten_hook is not None:
            self.node_forgotten_hook(node)

    async def flush(self) -> None:
        """Commit every change made so far, then publish the task changes to watchers and send what it allows.

        The changes are collected and handed to the store at once: reports taken while a commit is
        under way go into the next one together (group commit, see `Store.submit`). What they allow
        is sent, once committed, by a task of its own, so a caller that is cancelled does not stop it.
        """
        await asyncio.shield(self.start_flush())

    def start_flush(self) -> asyncio.Future[None]:
        """`flush` without waiting: the changes so far are collected and handed to the store now; the
        future is done once they are committed and what they allow is sent. The consequences of the
        completions not settled yet are applied first (`settle`): they are part of the same commit."""
        if self.completions:
            self.completion.settle()
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
        effects, self._after_commit_calls = self._after_commit_calls, []
        node_changes = self.node_watch.take()
        if ops:
            self.stats.flushes += 1
        # (With no ops, the future waits for the commits already handed over: the changes the caller
        # made may be in one of them.)
        committed = self.store.submit(ops)
        return asyncio.ensure_future(
            self._after_commit(committed, serialized, sends, acks, dismiss, node_changes, effects)
        )

    async def _after_commit(
        self,
        committed: asyncio.Future[None],
        serialized: dict[TaskRec, bytes],
        sends: list[tuple[NodeRec, agent_pb2.ServerMessage, AgentSession | None]],
        acks: list[tuple[AgentSession, int]],
        dismiss: list[NodeRec],
        node_changes: Collected,
        effects: list[Callable[[], None]],
    ) -> None:
        await committed
        if serialized:
            self._publish(serialized)
        NodeWatch.publish(node_changes)
        self._deliver(sends)
        # In the same turn as the StartTasks just queued, so that they carry the acknowledgements.
        for session, up_to in acks:
            session.ack(up_to)
        for n in dismiss:
            self.node_life.dismiss(n)
        for effect in effects:
            effect()

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
                if kind in COMMANDS:
                    getattr(msg, kind).command_id = node.session.command_id()
                node.session.send(msg)

    def send_after_commit(self, node: NodeRec, msg: agent_pb2.ServerMessage) -> None:
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

    def count(self, job: JobRec, t: TaskRec, sign: int, proto: task_pb2.Task | None = None) -> None:
        job.counts[t.state] += sign
        if t.state == COMPLETED:
            result = (proto or t.read()).execution_info.result
            if result == SUCCESS:
                job.succeeded += sign
            else:
                job.failed += sign

    def stamp(self) -> timestamp_pb2.Timestamp:
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

    def transition_time(self) -> bytes:
        """`_stamp()` as a task's `state_transition_time`, appended to its bytes (see `wire`)."""
        field = self._batch_transition_time
        if field is None:
            stamp = self.stamp()
            field = wire.transition_time(stamp.seconds, stamp.nanos)
            if self._batch_stamp is not None:
                self._batch_transition_time = field
        return field

    def set_task_state(
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
                self.count(job, t, -1, proto)
            else:
                job.counts[old] -= 1
            proto.previous_state = old  # type: ignore[assignment]
            proto.state = new  # type: ignore[assignment]
            proto.state_transition_time.CopyFrom(self.stamp())
            t.state = new
            job.counts[new] += 1
            if new == COMPLETED:
                self.stats.completed += 1
                # (_count, inlined: once per task.)
                t.result = result = proto.execution_info.result
                if result == SUCCESS:
                    job.succeeded += 1
                else:
                    job.failed += 1
                if job.reacts:
                    self.completions.append(t)
        if new == ACTIVE:
            job.queue[t.key] = None
            if job.jm_key is not None and t.key == job.jm_key:
                job.queue_first(t.key)  # (a job manager task goes first again)
            self.waiting_jobs[job.key] = job
        elif old == ACTIVE:
            # (Only ACTIVE tasks are queued.)
            job.dequeue(t.key)
        self._dirty_tasks[t] = None  # (_mark_task, inlined: this runs several times per task)

    def change_frozen(self, t: TaskRec, new: int, job: JobRec, change: bytes) -> None:
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
        elif new == COMPLETED:
            self.stats.completed += 1
            if job.reacts:
                self.completions.append(t)
        self._dirty_tasks[t] = None

    def set_node_state(self, n: NodeRec, new: int) -> None:
        old = n.state
        if old == new:
            return
        if new not in NODE_TRANSITIONS.get(old, ()):
            states.check_transition(NODE_TRANSITIONS, old, new, f"node {n.key}")
        n.proto.state = new  # type: ignore[assignment]
        n.state = new
        n.proto.state_transition_time.CopyFrom(self.stamp())
        if {old, new} == BUSY_FLIP:
            # IDLE <-> RUNNING follows from the tasks placed on the node (recomputed when its
            # agent attaches after a restart): written with the next health pass, not per task;
            # but at once while someone watches nodes (a watcher sees what is written).
            n.stats_dirty = True
            if self.node_watch.streams:
                self.mark("nodes", n.key, n)
        else:
            self.mark("nodes", n.key, n)
            if old in SETTLING_NODE_STATES or new in SETTLING_NODE_STATES:
                # A node arrived or started to leave (or never came up): the pool's allocation may change.
                pool = self.pools.get(n.pool_key)
                if pool is not None:
                    self.refresh_pool(pool)

    @staticmethod
    def ready_state(n: NodeRec) -> int:
        """Where a node with nothing running settles: IDLE, or OFFLINE while its scheduling is disabled;
        STARTING while its agent pulls the pool's container images."""
        if n.preparing:
            return P.NODE_STATE_STARTING
        return P.NODE_STATE_OFFLINE if n.scheduling_disabled else NODE_IDLE

    def refresh_node_activity(self, n: NodeRec) -> None:
        # (Its running slot count is derived when the node is read: NodeRec.view.)
        if n.state in SCHEDULABLE_NODE_STATES:
            self.set_node_state(n, NODE_RUNNING if n.running else self.ready_state(n))
        # Slot counts and task statistics are derived or informational: they are
        # written with the next state change, or by the health pass, not per task.
        n.stats_dirty = True

    def refresh_pool(self, pool: PoolRec) -> None:
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
                self.refresh_pool_now(pool)
        self._pools_to_refresh.clear()

    def refresh_pool_now(self, pool: PoolRec) -> None:
        nodes = pool.nodes.values()
        # As in Batch, a node counts until it has left: one leaving the pool may still run a task
        # (`taskcompletion`), and its agent still runs until it is gone.
        low = sum(1 for n in nodes if not n.proto.is_dedicated)
        if pool.proto.current_nodes != len(pool.nodes) - low or pool.proto.current_low_priority_nodes != low:
            pool.proto.current_nodes = len(pool.nodes) - low
            pool.proto.current_low_priority_nodes = low
        settling = any(n.state in SETTLING_NODE_STATES for n in nodes)
        if pool.proto.provider == "local":
            staying_low = sum(1 for n in nodes if n.state != NODE_LEAVING and not n.proto.is_dedicated)
            staying = sum(1 for n in nodes if n.state != NODE_LEAVING) - staying_low
            steady = (
                staying == pool.proto.target_nodes
                and staying_low == pool.proto.target_low_priority_nodes
                and not settling
            )
        else:
            # The nodes of a `join` pool come when their agents join, not because Shoal allocates them
            # (their number is not capped by the target): only nodes on their way in or out make it resize.
            steady = not settling
        old = pool.proto.allocation_state
        if steady:
            new = P.ALLOCATION_STATE_STEADY
        else:
            # A stopped resize stays STOPPING until what is under way settles (see `PoolLifecycle.stop_resize`).
            new = P.ALLOCATION_STATE_STOPPING if old == P.ALLOCATION_STATE_STOPPING else P.ALLOCATION_STATE_RESIZING
        if old != new:
            pool.proto.allocation_state = new  # type: ignore[assignment]
            pool.proto.allocation_state_transition_time.CopyFrom(self.stamp())
            self.mark("pools", pool.key, pool)

    def pool(self, pool_id: str) -> PoolRec:
        rec = self.pools.get(idkey(pool_id))
        if rec is None:
            raise NotFound("POOL_NOT_FOUND", f"pool {pool_id!r} does not exist")
        return rec

    def node(self, pool_id: str, node_id: str) -> NodeRec:
        pool = self.pool(pool_id)
        rec = pool.nodes.get(idkey(node_id))
        if rec is None:
            raise NotFound("NODE_NOT_FOUND", f"node {node_id!r} is not in pool {pool_id!r}")
        return rec

    def job(self, job_id: str) -> JobRec:
        rec = self.jobs.get(idkey(job_id))
        if rec is None:
            raise NotFound("JOB_NOT_FOUND", f"job {job_id!r} does not exist")
        return rec

    def task(self, job_id: str, task_id: str) -> TaskRec:
        job = self.job(job_id)
        rec = job.tasks.get(idkey(task_id))
        if rec is None:
            raise NotFound("TASK_NOT_FOUND", f"task {task_id!r} does not exist in job {job_id!r}")
        return rec

    def attempt_ref(self, t: TaskRec) -> agent_pb2.AttemptRef:
        return agent_pb2.AttemptRef(job_id=self.jobs[t.job_key].proto.id, task_id=t.proto.spec.id, attempt=t.attempt)

    def send_kills(self, kills: list[tuple[NodeRec, agent_pb2.AttemptRef]], delete_files: bool = False) -> None:
        """Queue KillTasks for these attempts; they leave with the next flush, after its commit."""
        for n, ref in kills:
            msg = agent_pb2.KillTasks(attempts=[ref], delete_files=delete_files)
            self.send_after_commit(n, agent_pb2.ServerMessage(kill_tasks=msg))

    def start_message(self, node: NodeRec) -> agent_pb2.ServerMessage:
        """The one StartTasks message this flush sends `node` (queued in order with its other messages)."""
        msg = self._starts.get(node.key)
        if msg is None:
            msg = self._starts[node.key] = agent_pb2.ServerMessage()
            msg.start_tasks.SetInParent()
            self._sends.append((node, msg, node.session))
        return msg

    def mark_node_stats(self) -> None:
        for n in self.nodes.values():
            if n.stats_dirty:
                n.stats_dirty = False
                self.mark("nodes", n.key, n)
        if self._tallies_written:
            # Every node's row now holds its counters (a node whose counters changed is stats_dirty):
            # the tallies written before are spent. (This flush's own tally row comes after the drop.)
            self._tallies_written = False
            self._dirty[("tallies", "")] = Delete("tallies")
