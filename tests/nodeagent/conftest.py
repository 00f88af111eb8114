"""A tiny in-process control plane (AgentService + StorageService) for node agent tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.nodeagent.agent import Agent
from shoal.nodeagent.config import AgentConfig
from shoal.v1 import common_pb2, storage_pb2, storage_pb2_grpc
from tests.tlshelp import give_node_identity, plane_credentials

EOF_: Any = grpc.aio.EOF  # type: ignore[attr-defined]


class FakeStorage(storage_pb2_grpc.StorageServiceServicer):
    """Blobs as files under `root/<container>/<name>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, container: str, name: str, data: bytes) -> None:
        p = self.root / container / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def get(self, container: str, name: str) -> bytes | None:
        p = self.root / container / name
        return p.read_bytes() if p.is_file() else None

    def create(self, container: str) -> None:
        (self.root / container).mkdir(parents=True, exist_ok=True)

    async def ListBlobs(self, request, context):
        c = self.root / request.container
        if not c.is_dir():
            await context.abort(grpc.StatusCode.NOT_FOUND, f"container {request.container} not found")
        blobs = []
        for p in sorted(c.rglob("*")):
            if p.is_file():
                name = p.relative_to(c).as_posix()
                if name.startswith(request.prefix):
                    blobs.append(storage_pb2.Blob(container=request.container, name=name, size=p.stat().st_size))
        return storage_pb2.ListBlobsResponse(blobs=blobs)

    async def DownloadBlob(self, request, context):
        data = self.get(request.container, request.blob_name)
        if data is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "blob not found")
            return
        for i in range(0, max(len(data), 1), 1000):
            yield storage_pb2.BlobChunk(data=data[i : i + 1000])

    async def UploadBlob(self, request_iterator, context):
        container = name = ""
        buf = bytearray()
        finished = False
        async for req in request_iterator:
            assert not finished, "a message followed the one with finish set"
            if not name:
                container, name = req.container, req.blob_name
            assert len(req.data) <= 1024 * 1024
            buf.extend(req.data)
            finished = req.finish
        assert finished, "the upload ended without a message with finish set"
        if not (self.root / container).is_dir():
            await context.abort(grpc.StatusCode.NOT_FOUND, f"container {container} not found")
        self.put(container, name, bytes(buf))
        return storage_pb2.Blob(container=container, name=name, size=len(buf), sha256=hashlib.sha256(buf).hexdigest())


class FakePlane(agent_pb2_grpc.AgentServiceServicer):
    """Records every AgentMessage; a test pushes ServerMessages with `send`."""

    def __init__(self, welcome: agent_pb2.Welcome | None = None, auto_ack: bool = True) -> None:
        self.welcome = welcome or agent_pb2.Welcome(node_id="node-1", pool_id="pool1", heartbeat_interval_seconds=30)
        self.auto_ack = auto_ack
        #: Answer Register with Shutdown instead of Welcome (a node that left the pool).
        self.refuse_with_shutdown = False
        #: Never answer Register (a hung control plane).
        self.silent = False
        self.messages: list[agent_pb2.AgentMessage] = []
        self.registers: list[agent_pb2.Register] = []
        self._changed = asyncio.Event()
        self._out: asyncio.Queue[agent_pb2.ServerMessage] | None = None
        self.stream_ended = asyncio.Event()

    def _record(self, msg: agent_pb2.AgentMessage) -> None:
        self.messages.append(msg)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Wait until `pred()` is truthy (re-checked on every received message)."""

        async def loop() -> Any:
            while True:
                changed = self._changed
                v = pred()
                if v:
                    return v
                await changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    def events(self) -> list[agent_pb2.TaskEvent]:
        out = [e for m in self.messages if m.WhichOneof("body") == "task_events" for e in m.task_events.events]
        for r in self.registers:
            out.extend(r.pending_events)
        return out

    def event(self, task_id: str, kind: int, attempt: int = 1) -> agent_pb2.TaskEvent | None:
        for e in self.events():
            if e.attempt.task_id == task_id and e.kind == kind and e.attempt.attempt == attempt:
                return e
        return None

    async def wait_event(self, task_id: str, kind: int, attempt: int = 1, timeout: float = 20.0):
        return await self.wait_for(lambda: self.event(task_id, kind, attempt), timeout)

    def start_reports(self) -> list[common_pb2.StartTaskInfo]:
        return [m.start_task.info for m in self.messages if m.WhichOneof("body") == "start_task"]

    async def send(self, msg: agent_pb2.ServerMessage) -> None:
        await self.wait_for(lambda: self._out is not None)
        assert self._out is not None
        await self._out.put(msg)

    async def Connect(self, request_iterator, context):
        first = await context.read()
        assert first.WhichOneof("body") == "register"
        self.registers.append(first.register)
        self._record(first)
        if self.silent:
            await asyncio.Event().wait()
        if self.refuse_with_shutdown:
            await context.write(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="left the pool")))
            return
        await context.write(agent_pb2.ServerMessage(welcome=self.welcome))
        out: asyncio.Queue[agent_pb2.ServerMessage] = asyncio.Queue()
        self._out = out

        async def reader() -> None:
            while True:
                msg = await context.read()
                if msg is EOF_:
                    return
                self._record(msg)
                if self.auto_ack and msg.WhichOneof("body") == "task_events":
                    up_to = max(e.event_id for e in msg.task_events.events)
                    await out.put(agent_pb2.ServerMessage(events_ack=agent_pb2.EventsAck(up_to_event_id=up_to)))

        rd = asyncio.ensure_future(reader())
        try:
            while True:
                get = asyncio.ensure_future(out.get())
                done, _ = await asyncio.wait({get, rd}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                await context.write(get.result())
        finally:
            rd.cancel()
            if self._out is out:
                self._out = None
            self.stream_ended.set()


class PlaneServer:
    """A grpc.aio server on 127.0.0.1 hosting a FakePlane and FakeStorage; restartable on the same port."""

    def __init__(self, blob_root: Path) -> None:
        self.storage = FakeStorage(blob_root)
        self.plane = FakePlane()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, plane: FakePlane | None = None) -> FakePlane:
        if plane is not None:
            self.plane = plane
        server = grpc.aio.server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self.plane, server)
        storage_pb2_grpc.add_StorageServiceServicer_to_server(self.storage, server)
        # As the server's agent port: mutual TLS with certificates of the tests' CA.
        self.port = server.add_secure_port(f"127.0.0.1:{self.port}", plane_credentials())
        await server.start()
        self._server = server
        return self.plane

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


@pytest.fixture
async def plane_server(tmp_path: Path) -> AsyncIterator[PlaneServer]:
    ps = PlaneServer(tmp_path / "blobs")
    await ps.start()
    try:
        yield ps
    finally:
        with contextlib.suppress(Exception):
            await ps.stop()


@pytest.fixture
def make_plane() -> Callable[..., FakePlane]:
    """The FakePlane class, for tests that restart the control plane with a fresh one."""
    return FakePlane


def assignment(task_id: str, command: str, job_id: str = "j1", attempt: int = 1, **kw) -> agent_pb2.TaskAssignment:
    return agent_pb2.TaskAssignment(
        attempt=agent_pb2.AttemptRef(job_id=job_id, task_id=task_id, attempt=attempt),
        pool_id="pool1",
        command_line=command,
        required_slots=1,
        retention_seconds=3600,
        **kw,
    )


def start_tasks(command_id: int, *tasks: agent_pb2.TaskAssignment) -> agent_pb2.ServerMessage:
    return agent_pb2.ServerMessage(start_tasks=agent_pb2.StartTasks(command_id=command_id, tasks=tasks))


@pytest.fixture
async def run_agent(plane_server, tmp_path: Path):
    started: list[tuple[Agent, asyncio.Task[int]]] = []

    async def make(**kw) -> tuple[Agent, asyncio.Task[int]]:
        # The node's certificate, as the local provider gives it (the FakePlane welcomes node-1 of pool1).
        give_node_identity(tmp_path / "node", kw.pop("node_cert", "node-1"), "pool1")
        cfg = AgentConfig(
            server=plane_server.address,
            agent_server=plane_server.address,
            node_root=tmp_path / "node",
            ip="127.0.0.1",
            orphan_timeout=kw.pop("orphan_timeout", 60.0),
            kill_grace_seconds=0.5,
            **kw,
        )
        agent = Agent(cfg)
        task = asyncio.create_task(agent.run())
        started.append((agent, task))
        return agent, task

    yield make
    for agent, task in started:
        agent.request_stop("test over")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
