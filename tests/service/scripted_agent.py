"""An agent whose every move the test makes: a real AgentService.Connect stream, driven by hand."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.v1 import common_pb2, pool_pb2
from tests.tlshelp import agent_channel

if TYPE_CHECKING:
    from shoal.server.app import ShoalServer

A = agent_pb2


class ScriptedAgent:
    """Registers with a `join` pool, then sends exactly what the test tells it to.

    It speaks on `server`'s agent port with a certificate that may speak for any node.
    """

    def __init__(self, server: ShoalServer, pool_id: str, ip: str, *, node_service_port: int = 1) -> None:
        self.server = server
        self.pool_id = pool_id
        self.ip = ip
        #: Where the control plane reaches this node's NodeService (nothing listens on port 1).
        self.node_service_port = node_service_port
        self.node_id = ""
        self.inbox: asyncio.Queue[agent_pb2.ServerMessage] = asyncio.Queue()
        self._out: asyncio.Queue[agent_pb2.AgentMessage | None] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._channel: grpc.aio.Channel | None = None
        self._reader: asyncio.Task[None] | None = None
        #: More fields of its Register (e.g. `task_user_isolation`).
        self.register_extra: dict[str, object] = {}

    async def connect(self, node_id: str = "") -> agent_pb2.Welcome:
        """Register (as node `node_id`, when given: a node the server knows) and wait for Welcome."""
        self._channel = agent_channel(self.server)
        stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        reg = A.Register(
            node_id=node_id,
            pool_id=self.pool_id,
            ip_address=self.ip,
            node_service_port=self.node_service_port,
            cores=2,
            boot_id=uuid.uuid4().hex,
            **self.register_extra,  # type: ignore[arg-type]
        )
        await self._out.put(A.AgentMessage(register=reg))
        call = stub.Connect(self._requests())
        self._reader = asyncio.create_task(self._read(call))
        welcome = await self.expect("welcome")
        self.node_id = welcome.welcome.node_id
        return welcome.welcome

    async def _requests(self) -> AsyncIterator[agent_pb2.AgentMessage]:
        while True:
            msg = await self._out.get()
            if msg is None:
                return
            yield msg

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for msg in call:
                await self.inbox.put(msg)

    async def expect(self, kind: str, timeout: float = 10.0) -> agent_pb2.ServerMessage:
        """The next message of `kind`, skipping acks."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.inbox.get()
                if msg.WhichOneof("body") == kind:
                    return msg
                if msg.WhichOneof("body") != "events_ack":
                    raise AssertionError(f"expected {kind}, got {msg}")

    async def event(
        self,
        ref: agent_pb2.AttemptRef,
        kind: int,
        *,
        exit_code: int | None = None,
        failure: str = "",
        ran_seconds: float = 0.0,
        job_task: int = 0,
        stats: common_pb2.TaskStatistics | None = None,
    ) -> None:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        start = timestamp_pb2.Timestamp()
        start.FromNanoseconds(now.ToNanoseconds() - int(ran_seconds * 1e9))
        ev = A.TaskEvent(event_id=next(self._ids), attempt=ref, kind=kind, time=now, start_time=start)  # type: ignore[arg-type]
        ev.job_task = job_task  # type: ignore[assignment]
        if kind == A.TASK_EVENT_KIND_COMPLETED:
            ev.exit_code = exit_code or 0
            ok = not failure and not exit_code
            ev.result = common_pb2.TASK_EXECUTION_RESULT_SUCCESS if ok else common_pb2.TASK_EXECUTION_RESULT_FAILURE
            if not ok:
                if failure and exit_code is None:
                    ev.ClearField("exit_code")  # (it never ran)
                ev.failure_info.CopyFrom(
                    common_pb2.FailureInfo(
                        category=common_pb2.ERROR_CATEGORY_USER_ERROR, code=failure or "FailureExitCode"
                    )
                )
        if stats is not None:
            ev.stats.CopyFrom(stats)
        await self._out.put(A.AgentMessage(task_events=A.TaskEvents(events=[ev])))

    async def send_start_task_done(self, *, succeeded: bool = True) -> None:
        """Report the start task completed (a success unless told otherwise)."""
        result = common_pb2.TASK_EXECUTION_RESULT_SUCCESS if succeeded else common_pb2.TASK_EXECUTION_RESULT_FAILURE
        info = common_pb2.StartTaskInfo(state=common_pb2.START_TASK_STATE_COMPLETED, result=result)
        await self._out.put(A.AgentMessage(start_task=A.StartTaskReport(info=info)))

    async def send_images_pulled(self, *errors: pool_pb2.NodeError) -> None:
        """Report the pool's container images pulled (with the node errors of those that could not be)."""
        health = A.NodeHealth(errors=list(errors), images_ready=True)
        await self._out.put(A.AgentMessage(node_health=health))

    async def heartbeat(self) -> None:
        await self._out.put(A.AgentMessage(heartbeat=A.Heartbeat()))

    async def close(self) -> None:
        await self._out.put(None)
        if self._reader is not None:
            self._reader.cancel()
        if self._channel is not None:
            await self._channel.close()
