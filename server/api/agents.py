"""AgentService: the stream between the control plane and each node's agent.

`Connect` carries one node; `ConnectMany` carries the conversations of many
nodes on one stream, in frames, for a process that speaks for many nodes: the
server packs what it has for all of them into one message per write and takes
a whole message of their reports as one batch (one placement pass, one commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import grpc
from google.rpc import status_pb2

from shoal import logs
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.certs.authority import PeerIdentity
from shoal.grpcguard import Malformed, refuse
from shoal.server.api.agentgate import AgentGate
from shoal.server.api.errors import ApiError, abort, from_refusal
from shoal.server.api.turns import TurnShare
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import Refused
from shoal.server.domain.records import AgentSession
from shoal.tlsconfig import peer_certificate

log = logging.getLogger("shoal.agents")

#: Seconds of a turn of the event loop in which agent reports start being applied (each also places
#: work on the room it frees): later ones wait for the next turn, so that commits, StartTasks and
#: stream writes go on in between.
REPORT_SECONDS_PER_TURN = 0.01

CONNECT: Final = "/shoal.agent.v1.AgentService/Connect"
CONNECT_MANY: Final = "/shoal.agent.v1.AgentService/ConnectMany"
#: The methods that refuse a malformed message themselves (see `shoal.grpcguard`): one check per message
#: in their read loops, where the guard would add a generator to each direction of every agent stream.
SELF_CHECKED: Final = frozenset({CONNECT, CONNECT_MANY})

_REGISTER_FIRST = ApiError(grpc.StatusCode.FAILED_PRECONDITION, "REGISTER_FIRST", "the first message must be Register")


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Registers agents, applies their reports and carries commands to them.

    Served on the agent port (mutual TLS): `gate` decides which nodes the peer's certificate may
    register (see `shoal.server.api.agentgate`).
    """

    def __init__(self, cp: ControlPlane, gate: AgentGate) -> None:
        self.cp = cp
        self.gate = gate
        #: Reports applied per turn of the event loop (see `TurnShare`).
        self.turns = TurnShare(REPORT_SECONDS_PER_TURN)

    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ServerMessage]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if type(first) is Malformed:
            await refuse(context, first, CONNECT)
        if first.WhichOneof("body") != "register":
            await abort(context, _REGISTER_FIRST)
            return
        # (What is logged about this stream, its reader's reports too, says which node: once per stream.)
        fields = logs.bind(method=CONNECT, node=first.register.node_id, pool=first.register.pool_id)
        try:
            reg = self.gate.admit(self.gate.identity(peer_certificate(context)), first.register)
            session = await self.cp.attach(reg)
        except Refused as e:
            logs.unbind(fields)
            await abort(context, e)
            return
        reader = asyncio.create_task(self._read(request_iterator, session, context))
        try:
            while True:
                msg = await session.get()
                if msg is None:
                    break
                yield msg
        finally:
            reader.cancel()
            self.cp.detach(session)
            logs.unbind(fields)

    async def ConnectMany(
        self, request_iterator: AsyncIterator[agent_pb2.AgentFrames], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ServerFrames]:
        try:
            ident = self.gate.identity(peer_certificate(context))
        except Refused as e:
            await abort(context, e)
            return
        stream = _SharedStream(ident)
        reader = asyncio.create_task(self._read_many(request_iterator, stream, context))
        try:
            while True:
                frames = await stream.get()
                if frames is None:
                    break
                if frames.frames:
                    yield frames
        finally:
            reader.cancel()
            for session in stream.sessions.values():
                self.cp.detach(session)

    async def _read_many(
        self, requests: AsyncIterator[agent_pb2.AgentFrames], stream: _SharedStream, context: grpc.aio.ServicerContext
    ) -> None:
        try:
            async for batch in requests:
                if type(batch) is Malformed:
                    await refuse(context, batch, CONNECT_MANY)
                await self._apply_frames(stream, batch.frames)
        except (asyncio.CancelledError, grpc.aio.AioRpcError, grpc.aio.AbortError):
            pass  # (AbortError: the call was ended with a status, a malformed message say; see shoal.grpcguard)
        except Exception:
            log.exception("shared agent stream failed")
        finally:
            stream.close()

    async def _apply_frames(self, stream: _SharedStream, frames: Sequence[agent_pb2.AgentFrame]) -> None:
        """One message of frames: new conversations first, then every report in it as one batch."""
        #: Channel -> the position of the frame whose Register opens it.
        joining: dict[int, int] = {}
        sessions = stream.sessions
        # (Each field of a frame is read once: a message field read costs a lookup by name.)
        channels = [f.channel for f in frames]
        for i, f in enumerate(frames):
            ch = channels[i]
            if ch not in sessions and ch not in joining and not f.end:
                if f.message.WhichOneof("body") == "register":
                    joining[ch] = i
                else:
                    stream.end(ch, _REGISTER_FIRST)
        if joining:
            await asyncio.gather(*(self._join(stream, ch, frames[i].message.register) for ch, i in joining.items()))
        reports: list[tuple[AgentSession, list[agent_pb2.TaskEvent]]] = []
        start_reports = []
        for i, f in enumerate(frames):
            ch = channels[i]
            if joining and joining.get(ch) == i:
                continue  # the Register just handled
            session = sessions.get(ch)
            if session is None:
                continue
            if f.end:
                del sessions[ch]
                self.cp.detach(session)
                continue
            msg = f.message
            kind = msg.WhichOneof("body")
            if kind == "heartbeat":
                self.cp.heartbeat(session, msg.heartbeat)
            elif kind == "task_events":
                reports.append((session, list(msg.task_events.events)))
            elif kind == "start_task":
                start_reports.append(self.cp.start_task_report(session, msg.start_task.info))
            elif kind == "node_health":
                start_reports.append(self.cp.health_report(session, msg.node_health))
            else:
                self.cp.touch(session)
        if reports:
            await self.turns.enter()
            await self.cp.task_events_many(reports)
        if start_reports:
            await asyncio.gather(*start_reports)

    async def _join(self, stream: _SharedStream, channel: int, reg: agent_pb2.Register) -> None:
        try:
            reg = self.gate.admit(stream.identity, reg)
            stream.sessions[channel] = await self.cp.attach(reg, stream.notifier(channel))
        except Refused as e:
            stream.end(channel, from_refusal(e))

    async def _read(
        self,
        requests: AsyncIterator[agent_pb2.AgentMessage],
        session: AgentSession,
        context: grpc.aio.ServicerContext,
    ) -> None:
        try:
            async for msg in requests:
                if type(msg) is Malformed:
                    await refuse(context, msg, CONNECT)
                kind = msg.WhichOneof("body")
                if kind == "heartbeat":
                    self.cp.heartbeat(session, msg.heartbeat)
                elif kind == "task_events":
                    events = list(msg.task_events.events)
                    await self.turns.enter()
                    await self.cp.task_events(session, events)
                elif kind == "start_task":
                    await self.cp.start_task_report(session, msg.start_task.info)
                elif kind == "node_health":
                    await self.cp.health_report(session, msg.node_health)
                else:
                    self.cp.touch(session)
        except (asyncio.CancelledError, grpc.aio.AioRpcError, grpc.aio.AbortError):
            pass  # (AbortError: the call was ended with a status, a malformed message say; see shoal.grpcguard)
        except Exception:
            log.exception("agent stream for %s failed", session.node_key)
        finally:
            session.close()


class _SharedStream:
    """The server's end of one ConnectMany stream: its nodes' sessions by channel, and what waits to go out."""

    def __init__(self, identity: PeerIdentity | None) -> None:
        #: Who the stream's peer is (its certificate): each conversation's Register is checked against it.
        self.identity = identity
        self.sessions: dict[int, AgentSession] = {}
        #: Sessions with messages waiting, by channel, in the order they became ready.
        self._ready: dict[int, AgentSession] = {}
        #: Conversations the server ended (a rejected Register, say), waiting to go out.
        self._ends: list[agent_pb2.ServerFrame] = []
        self._wake = asyncio.Event()
        self.closed = False

    def notifier(self, channel: int) -> Callable[[AgentSession], None]:
        def ready(session: AgentSession) -> None:
            self._ready[channel] = session
            self._wake.set()

        return ready

    def end(self, channel: int, error: ApiError | None = None) -> None:
        """End the conversation on `channel` (OK, or with `error`)."""
        status = error.to_status() if error is not None else status_pb2.Status()
        self._ends.append(agent_pb2.ServerFrame(channel=channel, end=status))
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def get(self) -> agent_pb2.ServerFrames | None:
        """Everything waiting, as one message (None: the stream is over)."""
        while not self._ready and not self._ends:
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        out = agent_pb2.ServerFrames()
        # Frames are added in place: a message passed to a constructor is copied, once per level.
        add = out.frames.add
        ready, self._ready = self._ready, {}
        for channel, session in ready.items():
            for msg in session.drain():
                if msg is not None:
                    add(channel=channel).message.CopyFrom(msg)
                elif self.sessions.get(channel) is session:
                    # The session is over (Shutdown sent, or the node connected again elsewhere).
                    del self.sessions[channel]
                    add(channel=channel).end.SetInParent()
        out.frames.extend(self._ends)
        self._ends = []
        return out
