"""AgentService: the one stream per node between the control plane and its agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.server.api.errors import ApiError, abort
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.records import AgentSession

log = logging.getLogger("shoal.agents")


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Registers agents, applies their reports and carries commands to them."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ServerMessage]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.WhichOneof("body") != "register":
            await abort(
                context,
                ApiError(grpc.StatusCode.FAILED_PRECONDITION, "REGISTER_FIRST", "the first message must be Register"),
            )
            return
        try:
            session = await self.cp.attach(first.register)
        except ApiError as e:
            await abort(context, e)
            return
        reader = asyncio.create_task(self._read(request_iterator, session))
        try:
            while True:
                msg = await session.get()
                if msg is None:
                    break
                yield msg
        finally:
            reader.cancel()
            self.cp.detach(session)

    async def _read(self, requests: AsyncIterator[agent_pb2.AgentMessage], session: AgentSession) -> None:
        try:
            async for msg in requests:
                kind = msg.WhichOneof("body")
                if kind == "heartbeat":
                    self.cp.heartbeat(session, msg.heartbeat)
                elif kind == "task_events":
                    await self.cp.task_events(session, list(msg.task_events.events))
                elif kind == "start_task":
                    await self.cp.start_task_report(session, msg.start_task.info)
                else:
                    self.cp.touch(session)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        except Exception:
            log.exception("agent stream for %s failed", session.node_key)
        finally:
            session.close()
