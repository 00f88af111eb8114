"""In-memory records of the control plane: the protobuf resource plus the indexes the server needs."""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from shoal.agent.v1 import agent_pb2
from shoal.server.domain import wire
from shoal.server.scheduling.dependencies import DependencyIndex
from shoal.v1 import job_pb2, pool_pb2, task_pb2

TaskKey = tuple[str, str]  # (job key, task key)


NO_INSTANCES: Final[frozenset[int]] = frozenset()

#: A task row's tag says what a restart needs to index the task without parsing it: its state
#: (bits 0-7), the result of a completed task (bits 8-14) and its attempt (bits 16 on, present when
#: bit 15 is set: rows written before it was tagged lack it, and are tagged again at the first load).
#: Code older than this layout read every bit from 8 on as the result: it misreads these tags.
TAG_HAS_ATTEMPT: Final = 1 << 15


def task_tag(state: int, result: int, attempt: int) -> int:
    """The tag of a task row (see TAG_HAS_ATTEMPT); `result` counts only for a completed task."""
    return state | (result << 8 if state == task_pb2.TASK_STATE_COMPLETED else 0) | attempt << 16 | TAG_HAS_ATTEMPT


class TaskShape(NamedTuple):
    """What placing a task needs of its spec, which never changes (see `TaskRec.shape`)."""

    #: Slots it takes on a node (at least 1; an instance of a multi-instance task takes the whole node).
    required_slots: int
    #: Nodes it needs at once: 1 unless it is multi-instance.
    instances: int
    #: Its wall-clock limit in seconds, if it has one.
    max_runtime: float | None
    multi_instance: bool
    #: It has exit conditions (else its completion takes Batch's defaults without reading it).
    exit_conditions: bool = False
    #: It runs on dedicated nodes only (`TaskSpec.dedicated_nodes_only`).
    dedicated_only: bool = False


#: Shapes made so far, shared by the tasks that have them (most tasks of a job have the same); up to
#: `MAX_SHARED_SHAPES` of them: past that (a wall-clock limit per task, say) a task keeps its own.
_SHAPES: dict[TaskShape, TaskShape] = {}
MAX_SHARED_SHAPES = 4096


def task_shape(spec: task_pb2.TaskSpec) -> TaskShape:
    """`spec`'s shape, shared with every task of the same shape."""
    multi = spec.HasField("multi_instance_settings")
    max_runtime = None
    if spec.HasField("constraints") and spec.constraints.HasField("max_wall_clock_time"):
        max_runtime = spec.constraints.max_wall_clock_time.ToTimedelta().total_seconds()
    shape = TaskShape(
        max(1, spec.required_slots),
        max(1, spec.multi_instance_settings.number_of_instances) if multi else 1,
        max_runtime,
        multi,
        spec.HasField("exit_conditions"),
        spec.dedicated_nodes_only,
    )
    shared = _SHAPES.get(shape)
    if shared is not None:
        return shared
    if len(_SHAPES) < MAX_SHARED_SHAPES:
        _SHAPES[shape] = shape
    return shape


def untag(tag: int) -> tuple[int, int, int | None]:
    """A task row's (state, result, attempt) from its tag: the attempt is None when not tagged, the
    state 0 when nothing is."""
    return tag & 0xFF, tag >> 8 & 0x7F, tag >> 16 if tag & TAG_HAS_ATTEMPT else None


_new_object: Final = object.__new__
#: This module runs compiled to C by mypyc (see `shoal.native`), not from its source.
COMPILED: Final = not __file__.endswith(".py")
#: How many of its last attempts a node lists (Node.recent_tasks).
RECENT_TASKS_PER_NODE: Final = 10


class TaskRec:
    """One task. Slotted, with shared empty defaults: there may be millions.

    A task nobody is working on (waiting deep in the queue, or completed) is
    kept as its serialized bytes, the very bytes written to the store: a live
    protobuf message costs about 1.4 KiB of arena, the bytes about a tenth of
    that. `proto` brings the message back (and keeps it) for a change;
    `read()` gives a copy to look at without keeping it; `stored_bytes` lets it
    go again once the task is stored.
    """

    __slots__ = (
        "_data",
        "_proto",
        "_shape",
        "attempt",
        "coordinated",
        "gang",
        "job_key",
        "key",
        "node_key",
        "result",
        "seq",
        "state",
    )

    def __init__(
        self,
        job_key: str,
        key: str,
        seq: int,
        proto: task_pb2.Task | None = None,
        *,
        data: bytes | None = None,
        state: int | None = None,
        result: int | None = None,
        attempt: int | None = None,
    ) -> None:
        self.job_key = job_key
        self.key = key
        self.seq = seq
        self._proto = proto
        self._data = data if proto is None else None
        if state is None:
            assert proto is not None, "a task kept as bytes needs its state given"
            state = int(proto.state)
        #: The task's state (`TaskState`), kept beside the message so that counting and
        #: filtering never bring a frozen task back.
        self.state: int = state
        #: The result of its last completed attempt (`TaskExecutionResult`), kept beside the state for
        #: the stored row's tag: set when the task completes (0 otherwise).
        self.result: int = result if result is not None else (int(proto.execution_info.result) if proto else 0)
        #: `proto.attempt`, kept beside it: placing and fencing read it without the message.
        self.attempt: int = attempt if attempt is not None else (proto.attempt if proto is not None else 0)
        self._shape: TaskShape | None = None
        #: Node running the current attempt (PREPARING/RUNNING), else None. For a
        #: multi-instance task, the primary's node.
        self.node_key: str | None = None
        #: Multi-instance tasks: the node of each instance (index = instance), else ().
        self.gang: tuple[str, ...] = ()
        #: Multi-instance tasks: instances whose coordination command succeeded.
        self.coordinated: frozenset[int] = NO_INSTANCES

    @classmethod
    def stored(
        cls,
        job_key: str,
        key: str,
        seq: int,
        data: bytes,
        state: int,
        result: int = 0,
        attempt: int = 0,
        shape: TaskShape | None = None,
    ) -> TaskRec:
        """A task nobody works on, straight from its row: what `__init__(..., data=, state=)` makes,
        in less than half the time (a restart makes a million of them)."""
        if COMPILED:
            # A compiled class cannot be made by object.__new__, and its own constructor is as quick.
            t = cls(job_key, key, seq, None, data=data, state=state, result=result, attempt=attempt)
            t._shape = shape
            return t
        t = _new_object(cls)
        t.job_key = job_key
        t.key = key
        t.seq = seq
        t._proto = None
        t._data = data
        t.state = state
        t.result = result
        t.attempt = attempt
        t._shape = shape
        t.node_key = None
        t.gang = ()
        t.coordinated = NO_INSTANCES
        return t

    @property
    def proto(self) -> task_pb2.Task:
        """The task's message, to read or change (a frozen task is parsed and kept live)."""
        if self._proto is None:
            self._proto = task_pb2.Task.FromString(self._data or b"")
            self._data = None
        return self._proto

    def shape(self) -> TaskShape:
        """What placing the task needs of its spec (read from the message the first time only)."""
        shape = self._shape
        if shape is None:
            shape = self._shape = task_shape(self.read().spec)
        return shape

    def read(self) -> task_pb2.Task:
        """The task's message for reading only: the live one, or a parsed copy that is not kept."""
        if self._proto is not None:
            return self._proto
        return task_pb2.Task.FromString(self._data or b"")

    def reshape(self, shape: TaskShape) -> None:
        """Its spec changed (UpdateTask): what placing it needs, again."""
        self._shape = shape

    def stored_bytes(self, cold: bool) -> bytes:
        """The message serialized, for its row; when `cold` (nobody works on the task now), the live
        message is let go and the bytes kept instead (no work when frozen)."""
        proto = self._proto
        if proto is None:
            return self._data or b""
        data = proto.SerializeToString()
        if cold:
            self._data = data
            self._proto = None
        return data

    def append(self, change: bytes) -> None:
        """Append a change (see `wire`) to a frozen task's bytes: parsed, they merge into the message."""
        assert self._proto is None, "a live message is changed in place"
        self._data = (self._data or b"") + change

    def placed_as_bytes(self) -> bool:
        """In flight and still kept as bytes: placed by appending to them (`ControlPlane.assign`), and
        nothing of the attempt recorded since (no start, end or result: any such change makes it live)."""
        return self._proto is None and self.state == task_pb2.TASK_STATE_PREPARING

    @property
    def frozen(self) -> bool:
        """True while only the serialized message is kept."""
        return self._proto is None

    @property
    def tkey(self) -> TaskKey:
        """(job key, task key); built on demand rather than stored, to keep records small."""
        return (self.job_key, self.key)

    def instance_on(self, node_key: str) -> int | None:
        """Which instance of the current attempt runs on `node_key` (0 for an ordinary task), if any."""
        if self.gang:
            return self.gang.index(node_key) if node_key in self.gang else None
        return 0 if self.node_key == node_key else None


def reacts_to_completions(job: job_pb2.Job) -> bool:
    """Whether a task of `job` completing can do more than count: release or block dependents, act on the
    job (exit options' job actions), or end it (its job manager task)."""
    return (
        job.uses_task_dependencies
        or job.on_task_failure == job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
        or job.HasField("job_manager_task")
    )


#: The ids Batch gives a job's own tasks when the job names none.
DEFAULT_JOB_MANAGER_ID: Final = "jobmanager"
DEFAULT_PREPARATION_ID: Final = "jobpreparation"
DEFAULT_RELEASE_ID: Final = "jobrelease"


@dataclass(eq=False)
class JobRec:
    """One job and the index of its tasks."""

    key: str
    seq: int
    proto: job_pb2.Job
    #: Every task, in creation order.
    tasks: dict[str, TaskRec] = field(default_factory=dict)
    #: ACTIVE tasks in queue order (requeued and retried tasks go to the end). Take tasks out
    #: with `dequeue`, which keeps the head of the queue cheap to reach.
    queue: dict[str, None] = field(default_factory=dict)
    #: Tasks taken out of `queue` since it was last rebuilt.
    _holes: int = 0
    #: Dependents released by a completion and not placed yet: they go before `queue` (`queued`), so
    #: that a workflow's next step is not queued behind thousands of independent tasks (a chain would
    #: otherwise advance one link per pass through the whole queue).
    released: dict[str, None] = field(default_factory=dict)
    _released_holes: int = 0
    #: Number of tasks per TaskState.
    #: A plain dict with every state, not a Counter: its items are read and written twice per task, and
    #: a dict subclass misses the interpreter's fast path for subscripts (twice as long).
    counts: dict[int, int] = field(default_factory=lambda: dict.fromkeys(task_pb2.TaskState.values(), 0))
    succeeded: int = 0
    failed: int = 0
    #: How long its successful attempts run (seconds): up at once with a longer one, down slowly
    #: (see `controlplane.note_attempt_length`), over `runs` attempts seen by this process.
    run_seconds: float = 0.0
    runs: int = 0
    #: The scheduler's pass that last placed a task of it (grows with time; 0: none since the start):
    #: among jobs running as many tasks, the one served longest ago goes first (`fair_merge`).
    served: int = 0
    watchers: set[asyncio.Queue[list[task_pb2.Task] | None]] = field(default_factory=set)
    #: Its tasks' dependencies (`uses_task_dependencies`), else None.
    deps: DependencyIndex | None = None
    #: Whether a task's completion has consequences beyond the counts (`reacts_to_completions`): its
    #: completions are then handed to `lifecycle.completion`.
    reacts: bool = False
    #: The key of its job manager task, if it has one: it goes first (`lifecycle.jobmanager`).
    jm_key: str | None = None
    #: Per node key, its job preparation and release tasks there (`lifecycle.jobprep`).
    node_tasks: dict[str, job_pb2.PreparationAndReleaseTaskStatus] = field(default_factory=dict)
    #: Nodes where its preparation task failed for good (with wait_for_success): its tasks avoid them.
    prep_failed: set[str] = field(default_factory=set)
    #: Its preparation task as sent with each assignment (made once), if it has one.
    prep_spec: agent_pb2.JobTaskSpec | None = None

    @property
    def pool_key(self) -> str:
        return self.proto.pool_id.lower()

    def jm_waiting(self) -> bool:
        """Whether its job manager task waits to be placed: nothing else of the job goes before it."""
        key = self.jm_key
        if key is None:
            return False
        t = self.tasks.get(key)
        return t is not None and t.state == task_pb2.TASK_STATE_ACTIVE

    def queue_first(self, task_key: str) -> None:
        """Put a queued task at the head of the queue (a job manager task requeued: it goes first again)."""
        if task_key in self.queue:
            rest = self.queue
            self.queue = {task_key: None}
            for k in rest:
                if k != task_key:
                    self.queue[k] = None
            self._holes = 0

    def capped(self) -> bool:
        """Whether `max_parallel_tasks` caps its running tasks."""
        return self.proto.HasField("max_parallel_tasks") and self.proto.max_parallel_tasks >= 0

    def queued(self) -> Iterator[str]:
        """The ACTIVE tasks waiting for a node, in the order they are offered: released dependents first."""
        if self.released:
            return itertools.chain(self.released, self.queue)
        return iter(self.queue)

    def has_queued(self) -> bool:
        """Whether some task waits for a node."""
        return bool(self.queue) or bool(self.released)

    def dequeue(self, task_key: str) -> None:
        """Take a task out of the queue.

        A dict leaves a hole where an entry was removed, and iteration walks
        over the holes: with the queue consumed from its head, reaching the
        first queued task would cost one step per task ever dispatched. The
        dict is rebuilt once the holes outnumber the entries (amortised O(1)).
        """
        if self.released and self.released.pop(task_key, _ABSENT) is not _ABSENT:
            # (The same holes as in `queue`: rebuilt once they outnumber the entries.)
            self._released_holes += 1
            if self._released_holes > 1024 and self._released_holes > len(self.released):
                self.released = dict(self.released)
                self._released_holes = 0
            return
        if self.queue.pop(task_key, _ABSENT) is _ABSENT:
            return
        self._holes += 1
        if self._holes > 1024 and self._holes > len(self.queue):
            self.queue = dict(self.queue)
            self._holes = 0


_ABSENT: Final = object()


class SlotMap(dict[TaskKey, int]):
    """Attempts on a node and the slots each takes, with the total kept as it changes (no sum per read)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    # dict's own methods are called directly: `super()` makes an object per call, twice per task.

    def __setitem__(self, key: TaskKey, slots: int) -> None:
        self.total += slots - self.get(key, 0)
        dict.__setitem__(self, key, slots)

    def pop(self, key: TaskKey, default: int | None = None) -> int | None:  # type: ignore[override]
        slots = dict.pop(self, key, None)
        if slots is None:
            return default
        self.total -= slots
        return slots

    def clear(self) -> None:
        super().clear()
        self.total = 0


#: How long an acknowledgement of events may wait for a message to ride on (seconds).
ACK_DELAY: Final = 0.05


class AgentSession:
    """The server's end of one node's agent stream."""

    def __init__(self, node_key: str, boot_id: str, notify: Callable[[AgentSession], None] | None = None) -> None:
        self.node_key = node_key
        self.boot_id = boot_id
        #: Messages waiting for the stream writer; None ends the stream.
        self._queue: collections.deque[agent_pb2.ServerMessage | None] = collections.deque()
        self._ready = asyncio.Event()
        #: Called instead of waking `get` when a message is queued: the session
        #: shares a stream with others (ConnectMany) and its writer `drain`s it.
        self._notify = notify
        self.closed = False
        self._next_command = 1
        #: Welcome must be the first message an agent sees: everything else
        #: waits here until it (or Shutdown, sent instead of it) has gone out.
        self._held: list[agent_pb2.ServerMessage] | None = []
        #: Events committed but not yet acknowledged to the agent, and the timer that sends it alone.
        self._unsent_ack = 0
        self._ack_timer: asyncio.TimerHandle | None = None

    def command_id(self) -> int:
        cid = self._next_command
        self._next_command += 1
        return cid

    def _put(self, msg: agent_pb2.ServerMessage | None) -> None:
        if msg is not None and self._unsent_ack:
            msg.events_acked_up_to = max(msg.events_acked_up_to, self._unsent_ack)
            self._unsent_ack = 0
        self._queue.append(msg)
        if self._notify is not None:
            self._notify(self)
        else:
            self._ready.set()

    async def get(self) -> agent_pb2.ServerMessage | None:
        """The next message for the stream (None: the session is over). Once taken, it no longer changes."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def drain(self) -> list[agent_pb2.ServerMessage | None]:
        """Every message waiting, in order (None: the session is over). Once taken, they no longer change."""
        out = list(self._queue)
        self._queue.clear()
        return out

    def send(self, msg: agent_pb2.ServerMessage) -> None:
        if self.closed:
            return
        if self._held is not None:
            if msg.WhichOneof("body") not in ("welcome", "shutdown"):
                self._held.append(msg)
                return
            held, self._held = self._held, None
            self._put(msg)
            for m in held:
                self._put(m)
            return
        self._put(msg)

    def ack(self, up_to_event_id: int) -> None:
        """Acknowledge events, on the next message to the agent.

        An acknowledgement only lets the agent forget events (it re-sends the
        unacknowledged ones after a reconnect, and the server drops repeats), so
        it need not leave at once: it rides on a message still waiting for the
        writer, or on the next one sent within ACK_DELAY, or else goes alone.
        """
        last = self._queue[-1] if self._queue and self._held is None else None
        if last is not None:
            last.events_acked_up_to = max(last.events_acked_up_to, up_to_event_id)
            return
        self._unsent_ack = max(self._unsent_ack, up_to_event_id)
        if self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY, self._send_ack)

    def _send_ack(self) -> None:
        self._ack_timer = None
        if self._unsent_ack and not self.closed:
            self.send(agent_pb2.ServerMessage(events_ack=agent_pb2.EventsAck(up_to_event_id=self._unsent_ack)))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
            self._put(None)


@dataclass(eq=False)
class NodeRec:
    """One compute node."""

    key: str
    proto: pool_pb2.Node
    #: Provider bookkeeping (pid, root), persisted with the node.
    internal: dict[str, Any] = field(default_factory=dict)
    session: AgentSession | None = None
    #: Attempts placed here and not yet finished: task key -> slots taken.
    running: SlotMap = field(default_factory=SlotMap)
    last_seen: float = 0.0
    node_service_port: int = 0
    #: The agent's Exec-only listener (TLS, no client certificate): what `shoal-mpi-launch` reaches.
    exec_port: int = 0
    start_task_ok: bool = False
    #: Its agent is pulling the pool's container images: it takes no task and stays STARTING until they
    #: are there (`NodeHealth.images_ready`).
    preparing: bool = False
    #: Statistics changed since the node row was last written.
    stats_dirty: bool = False
    #: `proto.state`, kept as a plain int: read several times per task and per health pass.
    #: Only ControlPlane._set_node_state changes a node's state, and it sets both.
    state: int = field(init=False)
    #: The pool's key (a node never changes pools).
    pool_key: str = field(init=False)
    #: `proto.task_slots` (set when the node is made, never changed), as a plain int: read per placement.
    task_slots: int = field(init=False)
    #: `proto.scheduling_state` is DISABLED: no new task lands here (read per placement).
    scheduling_disabled: bool = field(init=False)

    #: The last attempts that ended here, oldest first: (job id, task id, attempt, exit code or None).
    #: Kept out of `proto` until it is read (`view`): a message per completed task cost more than the
    #: rest of the node's bookkeeping for it.
    recent: collections.deque[tuple[str, str, int, int | None]] = field(init=False)
    #: `recent` changed since `view` last copied it into `proto`.
    recent_changed: bool = False
    #: `proto.total_tasks_run` / `total_tasks_succeeded`, counted here and copied in by `view`
    #: (a plain int costs a fraction of a message field read and written back, once per task).
    tasks_run: int = field(init=False)
    tasks_succeeded: int = field(init=False)
    #: The counters changed since the last flush: the node is in `ControlPlane._tallied` (written with the
    #: tasks' changes that changed them, see `ControlPlane._tally_row`).
    tallied: bool = False
    #: Where a task placed here runs (pool, node id, address), as its `node_info` records it: made
    #: once per registration (`placement_info`), not per task; None when the address may have changed.
    placement: task_pb2.TaskNodeInfo | None = None
    #: `placement` as appended to a task's bytes (`placement_change`).
    placed_bytes: bytes | None = None

    def __post_init__(self) -> None:
        self.state = int(self.proto.state)
        self.pool_key = self.proto.pool_id.lower()
        self.task_slots = self.proto.task_slots
        self.scheduling_disabled = self.proto.scheduling_state == pool_pb2.SCHEDULING_STATE_DISABLED
        self.tasks_run = self.proto.total_tasks_run
        self.tasks_succeeded = self.proto.total_tasks_succeeded
        self.recent = collections.deque(
            (
                (r.job_id, r.task_id, r.attempt, r.exit_code if r.HasField("exit_code") else None)
                for r in self.proto.recent_tasks
            ),
            maxlen=RECENT_TASKS_PER_NODE,
        )

    def view(self) -> pool_pb2.Node:
        """The node's message with what is derived from the live state brought up to date (API, store)."""
        p = self.proto
        # Work sent ahead waits on the node for a slot: it does not count as running.
        p.running_task_slots = min(self.running.total, p.task_slots)
        p.running_tasks_count = len(self.running)
        p.total_tasks_run = self.tasks_run
        p.total_tasks_succeeded = self.tasks_succeeded
        if self.recent_changed:
            self.recent_changed = False
            del p.recent_tasks[:]
            for job_id, task_id, attempt, exit_code in self.recent:
                rt = p.recent_tasks.add(job_id=job_id, task_id=task_id, attempt=attempt, state="completed")
                if exit_code is not None:
                    rt.exit_code = exit_code
        return p

    def placement_change(self) -> bytes:
        """`placement_info` as appended to a task placed here (see `wire.node_info`)."""
        change = self.placed_bytes
        if change is None:
            p = self.proto
            change = self.placed_bytes = wire.node_info(p.pool_id, p.id, p.ip_address)
        return change

    def forget_placement(self) -> None:
        """The node's address may have changed: `placement_info` and `placement_change` are made again."""
        self.placement = None
        self.placed_bytes = None

    def placement_info(self) -> task_pb2.TaskNodeInfo:
        """The `node_info` of a task placed here (copied into the task; do not change it)."""
        info = self.placement
        if info is None:
            p = self.proto
            info = self.placement = task_pb2.TaskNodeInfo(pool_id=p.pool_id, node_id=p.id, node_address=p.ip_address)
        return info

    @property
    def used_slots(self) -> int:
        return self.running.total

    @property
    def connected(self) -> bool:
        """True while the stream that registered is open."""
        return self.session is not None and not self.session.closed


class NodeChanges(NamedTuple):
    """What one commit changed of a watched pool's nodes: nodes as written, and ids of nodes gone."""

    nodes: list[bytes]
    removed: list[str]


@dataclass(eq=False)
class PoolRec:
    """One pool and its nodes."""

    key: str
    proto: pool_pb2.Pool
    nodes: dict[str, NodeRec] = field(default_factory=dict)
    #: Why some of its ACTIVE gangs wait (task -> `Task.waiting_reason`), as the scheduler's last full
    #: pass found (`controllers.scheduler.tell_waiting`); not stored. Only ACTIVE tasks show theirs.
    waiting: dict[TaskKey, str] = field(default_factory=dict)
    #: WatchNodes streams of the pool: each gets the node changes of every commit (None: the pool is gone).
    watchers: set[asyncio.Queue[NodeChanges | None]] = field(default_factory=set)
