"""Simulated node agents that speak the real agent protocol and complete every task at once.

Many of them run in one asyncio loop (on a thread of its own, so that the
caller can keep using blocking gRPC stubs). Each simulated node registers with
`pool_id` and no node id (joining a pool whose provider is "join"), keeps the
id the server gives it in Welcome, and answers every StartTasks with a RUNNING
and a COMPLETED event (exit code 0) per assignment. It sends no heartbeats:
run the server with a long heartbeat timeout.

Two ways to reach the server: one `Connect` stream per node (`nodes_per_stream
= 1`, what a real agent does), or `ConnectMany` streams that carry many nodes'
conversations each, a message of frames at a time: the answers to every
StartTasks of one server message go back in one message.

A fleet given an `OrderJournal` notes, per task, when its StartTasks arrived and
when the report of its completion was handed to gRPC to send, so that a bench can
check that the server never started a task before it could have heard of the
completion of the tasks it depends on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from bench.common import CHANNEL_OPTIONS
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.agentidentity import AgentIdentity
from shoal.tlsconfig import SERVER_TLS_NAME, channel_credentials, name_options
from shoal.v1 import common_pb2

A = agent_pb2

#: A simulated node tries to connect every 50 ms while the server is down. gRPC's default backoff (1 s,
#: then 1.6 times longer each time, jittered) made "restart -> first dispatch" land on its steps (5.2 or
#: 9.3 s whatever the server took): this measures the server's recovery. A real agent backs off from
#: 200 ms up to 2 s (nodeagent/agent.py), which can add up to 2 s to a real cluster's.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 50),
]

Y = TypeVar("Y")


@dataclass
class SimStats:
    welcomed: int = 0
    assigned: int = 0
    start_messages: int = 0
    events_sent: int = 0
    first_assign: float = 0.0
    last_assign: float = 0.0
    errors: int = 0
    last_error: str = ""
    assign_times: list[tuple[float, int]] = field(default_factory=list)
    #: Messages the server sent that carried StartTasks (with shared streams, one may carry several nodes').
    start_carriers: int = 0

    def reset_dispatch(self) -> None:
        self.assigned = 0
        self.start_messages = 0
        self.start_carriers = 0
        self.first_assign = 0.0
        self.last_assign = 0.0
        self.assign_times = []


class OrderJournal:
    """When each task's StartTasks arrived and when its COMPLETED left, on one counter of reports sent.

    `sent` counts the reports (messages of task events) handed to gRPC so far. A task's StartTasks
    arrived when `sent` was `arrived[task]`; its report was the `reported[task]`-th. The server can only
    have heard of a task's completion through a report already sent, so a task C that depends on P
    must have `reported[P] <= arrived[C]`: an instrument that owns no clock of the server's (and a
    simulated node completes a task at once, so start and end stamps would prove nothing). Tasks are
    keyed by id alone: use one journal per job (`reset` between jobs).
    """

    def __init__(self) -> None:
        self.sent = 0
        self.arrived: dict[str, int] = {}
        self.reported: dict[str, int] = {}
        #: StartTasks of a task that had one already (a task started twice).
        self.repeats: list[str] = []
        #: Task ids of the answers built but not yet queued, and of those queued, by message.
        self._building: list[str] = []
        self._queued: dict[int, list[str]] = {}

    def reset(self) -> None:
        self.arrived = {}
        self.reported = {}
        self.repeats = []

    def started(self, tasks: Any) -> None:
        sent = self.sent
        arrived = self.arrived
        building = self._building
        for t in tasks:
            tid = t.attempt.task_id
            if tid in arrived:
                self.repeats.append(tid)
            arrived[tid] = sent
            building.append(tid)

    def queued(self, msg: object) -> None:
        """The answers built since the last call go out in `msg`."""
        if self._building:
            self._queued[id(msg)] = self._building
            self._building = []

    def handed_over(self, msg: object) -> None:
        """`msg` is handed to gRPC to send."""
        ids = self._queued.pop(id(msg), None)
        if ids is not None:
            self.sent += 1
            n = self.sent
            reported = self.reported
            for tid in ids:
                reported[tid] = n


class SimNode:
    """One simulated agent: its identity and how it answers."""

    def __init__(self, fleet: SimFleet, pool_id: str) -> None:
        self.fleet = fleet
        self.pool_id = pool_id
        self.node_id = ""
        self.event_id = 0
        self.boot_id = f"sim-{id(self):x}-{time.monotonic_ns()}"
        self.welcomed = asyncio.Event()

    def register(self) -> agent_pb2.AgentMessage:
        return A.AgentMessage(
            register=A.Register(
                node_id=self.node_id,
                pool_id=self.pool_id,
                ip_address="127.0.0.1",
                cores=1,
                memory_bytes=1 << 30,
                root_directory="/nonexistent/sim",
                boot_id=self.boot_id,
            )
        )

    def welcome(self, w: agent_pb2.Welcome) -> None:
        self.node_id = w.node_id
        if not self.welcomed.is_set():
            self.fleet.stats.welcomed += 1
            self.welcomed.set()

    def complete(self, tasks: Any, into: agent_pb2.AgentMessage | None = None) -> agent_pb2.AgentMessage:
        """The report of `tasks` run and finished at once (written into `into` when given)."""
        stats = self.fleet.stats
        now = time.monotonic()
        n = len(tasks)
        if not stats.first_assign:
            stats.first_assign = now
        stats.last_assign = now
        stats.assigned += n
        stats.start_messages += 1
        stats.assign_times.append((now, n))
        stamp = timestamp_pb2.Timestamp()
        stamp.GetCurrentTime()
        # Every event of this report is the same COMPLETED but for its id and attempt: made once, as
        # bytes that each event is parsed from (half the simulator's cost of building them field by field).
        # A task that ended before its report left is reported by its COMPLETED alone, with its start
        # time: a real agent folds the RUNNING it has not sent yet into the COMPLETED (nodeagent/outbox.py).
        same = A.TaskEvent(
            kind=A.TASK_EVENT_KIND_COMPLETED,
            time=stamp,
            start_time=stamp,
            exit_code=0,
            result=common_pb2.TASK_EXECUTION_RESULT_SUCCESS,
        ).SerializeToString()
        msg = into if into is not None else A.AgentMessage()
        # Events are added in place: a message passed to a constructor is copied.
        add = msg.task_events.events.add
        for t in tasks:
            self.event_id += 1
            e = add(event_id=self.event_id)
            e.MergeFromString(same)
            e.attempt.CopyFrom(t.attempt)
        stats.events_sent += n
        if self.fleet.journal is not None:
            self.fleet.journal.started(tasks)
        return msg


class _Stream:
    """A client stream with a queue of requests (None ends it), opened again when it fails."""

    def __init__(self, fleet: SimFleet, channel: grpc.aio.Channel) -> None:
        self.fleet = fleet
        self.stub = agent_pb2_grpc.AgentServiceStub(channel)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.call: Any = None
        self.nodes: list[SimNode] = []
        self.reconnect = True

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            m = await self.queue.get()
            if m is None:
                return
            if self.fleet.journal is not None:
                self.fleet.journal.handed_over(m)
            yield m

    async def run(self, reconnect: bool) -> None:
        """Keep a stream open (one after another, when `reconnect`) until the fleet stops."""
        self.reconnect = reconnect
        while not self.fleet.stopping:
            self.queue = asyncio.Queue()
            try:
                if await self._session():
                    return
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
                if isinstance(e, asyncio.CancelledError) or self.fleet.stopping:
                    return
                self.fleet.stats.errors += 1
                self.fleet.stats.last_error = f"{e.code()}: {e.details()}"  # type: ignore[union-attr]
            if not reconnect or self.fleet.stopping:
                return
            await asyncio.sleep(self.fleet.retry_every)

    async def _session(self) -> bool:
        """One stream, to its end; True when the server said to stop for good."""
        raise NotImplementedError

    def answer(self, msg: object) -> None:
        """Queue `msg`, the answers just built, to be sent."""
        if self.fleet.journal is not None:
            self.fleet.journal.queued(msg)
        self.queue.put_nowait(msg)

    def close(self) -> None:
        self.queue.put_nowait(None)
        if self.call is not None:
            self.call.cancel()


class OneNodeStream(_Stream):
    """One node on a Connect stream of its own, as a real agent."""

    def __init__(self, fleet: SimFleet, channel: grpc.aio.Channel, pool_id: str) -> None:
        super().__init__(fleet, channel)
        self.node = SimNode(fleet, pool_id)
        self.nodes = [self.node]

    async def _session(self) -> bool:
        stats = self.fleet.stats
        node = self.node
        self.queue.put_nowait(node.register())
        self.call = self.stub.Connect(self._requests())
        async for msg in self.call:
            kind = msg.WhichOneof("body")
            if kind == "start_tasks":
                stats.start_carriers += 1
                self.answer(node.complete(msg.start_tasks.tasks))
                await asyncio.sleep(0)  # (see SharedStream._session)
            elif kind == "welcome":
                node.welcome(msg.welcome)
            elif kind == "shutdown":
                return True
        return False


class SharedStream(_Stream):
    """Many nodes on one ConnectMany stream, channel i carrying node i."""

    def __init__(self, fleet: SimFleet, channel: grpc.aio.Channel, pool_id: str, count: int) -> None:
        super().__init__(fleet, channel)
        self.nodes = [SimNode(fleet, pool_id) for _ in range(count)]

    def _register(self, channels: list[int]) -> None:
        frames = [A.AgentFrame(channel=ch, message=self.nodes[ch].register()) for ch in channels]
        self.queue.put_nowait(A.AgentFrames(frames=frames))

    async def _session(self) -> bool:
        stats = self.fleet.stats
        loop = asyncio.get_running_loop()
        self._register(list(range(len(self.nodes))))
        self.call = self.stub.ConnectMany(self._requests())
        async for msg in self.call:
            out = A.AgentFrames()
            carried = False
            for f in msg.frames:
                node = self.nodes[f.channel]
                if f.HasField("end"):
                    if f.end.code:
                        stats.errors += 1
                        stats.last_error = f"channel {f.channel}: {f.end.code}: {f.end.message}"
                        if self.reconnect:
                            loop.call_later(self.fleet.retry_every, self._register, [f.channel])
                    continue
                kind = f.message.WhichOneof("body")
                if kind == "start_tasks":
                    carried = True
                    node.complete(f.message.start_tasks.tasks, out.frames.add(channel=f.channel).message)
                elif kind == "welcome":
                    node.welcome(f.message.welcome)
            stats.start_carriers += carried
            if out.frames:
                self.answer(out)
                # Let the stream's writer send it now: with every stream's next message already
                # received, the loop would otherwise answer all of them before sending any answer,
                # and the server would wait for the whole fleet's answers at once.
                await asyncio.sleep(0)
        return False


class SimFleet:
    """Simulated nodes on one event loop running in a background thread.

    `nodes_per_stream` 1 gives each node a Connect stream of its own; more puts
    that many nodes on each ConnectMany stream.
    """

    def __init__(
        self,
        identity: AgentIdentity,
        streams_per_channel: int = 250,
        retry_every: float = 0.02,
        nodes_per_stream: int = 1,
        journal: OrderJournal | None = None,
    ) -> None:
        #: The agent port, and the certificate that speaks for every simulated node there.
        self.identity = identity
        self.address = identity.agent_address
        self.streams_per_channel = streams_per_channel
        self.retry_every = retry_every
        self.nodes_per_stream = max(1, nodes_per_stream)
        #: Notes the order of StartTasks and reports, when given.
        self.journal = journal
        self.stats = SimStats()
        self.stopping = False
        self.streams: list[OneNodeStream | SharedStream] = []
        self.channels: list[grpc.aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="simfleet")
        self.thread.start()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Closing thousands of streams at once leaves gRPC's request-iterator tasks to be torn down
        # noisily (aclose() of a running generator, destroyed pending tasks): harmless while stopping.
        if self.stopping:
            return
        loop.default_exception_handler(context)

    def call(self, coro: Coroutine[Any, Any, Y], timeout: float | None = None) -> Y:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _channel(self) -> grpc.aio.Channel:
        if not self.channels or len(self.streams) % self.streams_per_channel == 0:
            opts = [
                *CHANNEL_OPTIONS,
                *RECONNECT_OPTIONS,
                ("grpc.use_local_subchannel_pool", 1),
                ("shoal.sim.channel", len(self.channels)),
            ]
            ident = self.identity
            credentials = channel_credentials(ident.ca_pem, ident.cert_pem, ident.key_pem)
            opts += name_options(SERVER_TLS_NAME)
            self.channels.append(grpc.aio.secure_channel(self.address, credentials, options=opts))
        return self.channels[-1]

    def _open(self, pool_id: str, count: int, reconnect: bool) -> list[SimNode]:
        """Start streams for `count` more nodes; their nodes."""
        nodes: list[SimNode] = []
        while len(nodes) < count:
            k = min(self.nodes_per_stream, count - len(nodes))
            stream: OneNodeStream | SharedStream
            if self.nodes_per_stream == 1:
                stream = OneNodeStream(self, self._channel(), pool_id)
            else:
                stream = SharedStream(self, self._channel(), pool_id, k)
            self.streams.append(stream)
            nodes.extend(stream.nodes)
            self._tasks.append(asyncio.create_task(stream.run(reconnect)))
        return nodes

    async def _add(self, pool_id: str, count: int, reconnect: bool, timeout: float, wave: int) -> float:
        """Open the streams in waves of `wave` nodes (each waits for its Welcomes): a burst of thousands of
        new streams at once makes some fail (CANCELLED / INTERNAL from gRPC core)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        done = 0
        while done < count:
            new = self._open(pool_id, min(max(wave, self.nodes_per_stream), count - done), reconnect)
            left = max(0.1, deadline - time.monotonic())
            await asyncio.wait_for(asyncio.gather(*(n.welcomed.wait() for n in new)), left)
            done += len(new)
        return time.monotonic() - t0

    def add_nodes(
        self, pool_id: str, count: int, *, reconnect: bool = True, timeout: float = 300, wave: int = 500
    ) -> float:
        """Connect `count` nodes to `pool_id`; return the seconds until every one was welcomed."""
        return self.call(self._add(pool_id, count, reconnect, timeout, wave), timeout + 10)

    def start_nodes(self, pool_id: str, count: int, *, reconnect: bool = True) -> None:
        """Start nodes that keep trying to connect, without waiting."""

        async def go() -> None:
            self._open(pool_id, count, reconnect)

        self.call(go())

    async def _close_all(self) -> None:
        for st in self.streams:
            st.close()
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        for c in self.channels:
            await c.close(None)
        self.streams = []
        self.channels = []

    def disconnect_all(self) -> None:
        """Close every stream and channel (the server sees the nodes go away)."""
        self.stopping = True
        self.call(self._close_all(), 120)
        self.call(asyncio.sleep(0.5))
        self.stopping = False

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.disconnect_all()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
