"""ConnectMany: many nodes' conversations on one agent stream, each meaning what a Connect stream would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.tlshelp import agent_channel

A = agent_pb2


class SharedStream:
    """A real ConnectMany stream driven by hand: frames out, every server frame kept by channel."""

    def __init__(self, server) -> None:
        self.channel = agent_channel(server)
        self._out: asyncio.Queue[agent_pb2.AgentFrames | None] = asyncio.Queue()
        self.frames: dict[int, asyncio.Queue[agent_pb2.ServerFrame]] = {}
        #: How many frames each server message carried.
        self.message_sizes: list[int] = []
        self._ids = itertools.count(1)
        call = agent_pb2_grpc.AgentServiceStub(self.channel).ConnectMany(self._requests())
        self._reader = asyncio.create_task(self._read(call))

    async def _requests(self) -> AsyncIterator[agent_pb2.AgentFrames]:
        while (msg := await self._out.get()) is not None:
            yield msg

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for msg in call:
                self.message_sizes.append(len(msg.frames))
                for f in msg.frames:
                    self.inbox(f.channel).put_nowait(f)

    def inbox(self, channel: int) -> asyncio.Queue[agent_pb2.ServerFrame]:
        return self.frames.setdefault(channel, asyncio.Queue())

    def send(self, *frames: agent_pb2.AgentFrame) -> None:
        """All `frames` in one message."""
        self._out.put_nowait(A.AgentFrames(frames=frames))

    @staticmethod
    def register(channel: int, pool_id: str, node_id: str = "") -> agent_pb2.AgentFrame:
        reg = A.Register(node_id=node_id, pool_id=pool_id, ip_address="127.0.3.1", cores=1, boot_id=uuid.uuid4().hex)
        return A.AgentFrame(channel=channel, message=A.AgentMessage(register=reg))

    def completed(self, channel: int, ref: agent_pb2.AttemptRef) -> agent_pb2.AgentFrame:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        ev = A.TaskEvent(
            event_id=next(self._ids),
            attempt=ref,
            kind=A.TASK_EVENT_KIND_COMPLETED,
            time=now,
            start_time=now,
            exit_code=0,
            result=common_pb2.TASK_EXECUTION_RESULT_SUCCESS,
        )
        return A.AgentFrame(channel=channel, message=A.AgentMessage(task_events=A.TaskEvents(events=[ev])))

    async def expect(self, channel: int, kind: str, timeout: float = 10.0) -> agent_pb2.ServerFrame:
        """The next frame on `channel` with a message of `kind` (or "end"), skipping acks."""
        async with asyncio.timeout(timeout):
            while True:
                f = await self.inbox(channel).get()
                got = "end" if f.HasField("end") else f.message.WhichOneof("body")
                if got == kind:
                    return f
                if got != "events_ack":
                    raise AssertionError(f"channel {channel}: expected {kind}, got {f}")

    async def close(self) -> None:
        self._out.put_nowait(None)
        self._reader.cancel()
        await self.channel.close()


def reason_of(status: object) -> str:
    for d in status.details:  # type: ignore[attr-defined]
        info = error_details_pb2.ErrorInfo()
        if d.Unpack(info):
            return info.reason
    return ""


async def make_pool(stubs, pool_id: str = "p") -> None:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(id=pool_id, target_nodes=0, task_slots_per_node=1, provider="join")
        )
    )


async def add_tasks(stubs, n: int, job_id: str = "j") -> None:
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id="p")))
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(n)]
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=specs))


async def test_nodes_on_one_stream_join_run_and_report_together(server, stubs) -> None:
    await make_pool(stubs)
    s = SharedStream(server)
    s.send(*(s.register(ch, "p") for ch in (1, 2, 3)))
    ids = {ch: (await s.expect(ch, "welcome")).message.welcome.node_id for ch in (1, 2, 3)}
    assert len(set(ids.values())) == 3
    nodes = (await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p"))).nodes
    assert sorted(n.id for n in nodes) == sorted(ids.values())

    await add_tasks(stubs, 9)
    done: set[str] = set()
    while len(done) < 9:
        # Each node has one slot: one assignment per channel, all answered in one message.
        starts = [(ch, (await s.expect(ch, "start_tasks")).message.start_tasks.tasks) for ch in (1, 2, 3)]
        frames = []
        for ch, tasks in starts:
            for t in tasks:
                done.add(t.attempt.task_id)
                frames.append(s.completed(ch, t.attempt))
        s.send(*frames)
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    for _ in range(100):
        if counts.completed == 9:
            break
        await asyncio.sleep(0.02)
        counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    assert counts.completed == 9 and counts.succeeded == 9
    # The server packs what it has for the stream's nodes together: fewer messages than frames.
    assert sum(s.message_sizes) > len(s.message_sizes)
    await s.close()


async def test_a_bad_conversation_ends_alone_with_a_reason(server, stubs) -> None:
    await make_pool(stubs)
    s = SharedStream(server)
    hb = A.AgentFrame(channel=7, message=A.AgentMessage(heartbeat=A.Heartbeat()))
    s.send(hb, s.register(8, "no-such-pool"), s.register(9, "p"))
    end7 = (await s.expect(7, "end")).end
    assert end7.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert reason_of(end7) == "REGISTER_FIRST"
    end8 = (await s.expect(8, "end")).end
    assert end8.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert reason_of(end8) == "NODE_NOT_FOUND"
    # The good one is unaffected, and the bad ones changed nothing.
    await s.expect(9, "welcome")
    # A Register and more for the same new conversation may share a message.
    s.send(s.register(10, "p"), A.AgentFrame(channel=10, message=A.AgentMessage(heartbeat=A.Heartbeat())))
    await s.expect(10, "welcome")
    assert s.inbox(10).empty()
    nodes = (await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p"))).nodes
    assert len(nodes) == 2
    await s.close()


async def test_a_conversation_the_client_ends_takes_no_more_work(server, stubs) -> None:
    await make_pool(stubs)
    s = SharedStream(server)
    s.send(s.register(1, "p"), s.register(2, "p"))
    gone = (await s.expect(1, "welcome")).message.welcome.node_id
    await s.expect(2, "welcome")
    s.send(A.AgentFrame(channel=1, end=True))
    for _ in range(200):
        if server.cp.nodes[gone].session is None:
            break
        await asyncio.sleep(0.01)
    assert server.cp.nodes[gone].session is None
    await add_tasks(stubs, 2)
    first = (await s.expect(2, "start_tasks")).message.start_tasks.tasks
    assert len(first) == 1
    assert s.inbox(1).empty()
    await s.close()


async def test_a_node_that_connects_again_elsewhere_ends_its_old_conversation(server, stubs) -> None:
    await make_pool(stubs)
    old = SharedStream(server)
    old.send(old.register(4, "p"))
    node_id = (await old.expect(4, "welcome")).message.welcome.node_id
    new = SharedStream(server)
    new.send(new.register(1, "p", node_id=node_id))
    assert (await new.expect(1, "welcome")).message.welcome.node_id == node_id
    end = (await old.expect(4, "end")).end
    assert end.code == 0
    await old.close()
    await new.close()
