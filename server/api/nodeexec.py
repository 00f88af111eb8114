"""ExecNode: a command or a shell on a node, relayed between the caller and the node's agent.

The caller's first request must be `start` (else INVALID_ARGUMENT with a violation of `start`), naming a
node of a pool of the caller's account: another account's pool is answered as a missing one (NOT_FOUND
POOL_NOT_FOUND, see `tenancy`), an unknown node NOT_FOUND NODE_NOT_FOUND, a node whose agent is not
connected FAILED_PRECONDITION NODE_NOT_CONNECTED. Then the requests go to the agent's
NodeService.ExecNode over the control plane's mutual TLS channel (`nodefiles.NodeChannels`) and its
answers come back as they are, the last one the command's exit. When the caller goes away (or the call
ends otherwise), the agent's call is cancelled, and the agent kills the command's process group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from shoal import agenterrors
from shoal.agent.v1 import agent_pb2_grpc
from shoal.server.api import tenancy
from shoal.server.api.auth import caller
from shoal.server.api.errors import ApiError, failed_precondition, invalid
from shoal.server.api.nodefiles import NodeChannels, agent_reason
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import parse_name
from shoal.v1 import pool_pb2

#: Bounds of a start request: arguments, their bytes, environment variables (as a Linux exec takes).
MAX_ARGS = 4096
MAX_ARGV_BYTES = 128 * 1024
MAX_ENVIRONMENT = 1000
#: A terminal's rows and columns fit 16 bits (struct winsize).
MAX_TERMINAL_SIZE = 0xFFFF
#: Signals a request may send (Linux: 1..64).
MAX_SIGNAL = 64


def start_problems(start: pool_pb2.ExecNodeStart) -> list[tuple[str, str]]:
    """The field violations of a `start` (its name is checked apart, by `parse_name`)."""
    v: list[tuple[str, str]] = []
    if len(start.argv) > MAX_ARGS:
        v.append(("start.argv", f"at most {MAX_ARGS} arguments"))
    if sum(len(a.encode()) + 1 for a in start.argv) > MAX_ARGV_BYTES:
        v.append(("start.argv", f"at most {MAX_ARGV_BYTES} bytes in all"))
    for i, a in enumerate(start.argv):
        if "\x00" in a:
            v.append((f"start.argv[{i}]", "must not contain NUL"))
    if start.argv and not start.argv[0]:
        v.append(("start.argv[0]", "must name a program (leave argv empty for the login shell)"))
    if len(start.environment) > MAX_ENVIRONMENT:
        v.append(("start.environment", f"at most {MAX_ENVIRONMENT} variables"))
    for i, s in enumerate(start.environment):
        if not s.name or "=" in s.name or "\x00" in s.name:
            v.append((f"start.environment[{i}].name", "must be non-empty, without '=' or NUL"))
        if "\x00" in s.value:
            v.append((f"start.environment[{i}].value", "must not contain NUL"))
    v += size_problems(start.size, "start.size")
    return v


def size_problems(size: pool_pb2.TerminalSize, field: str) -> list[tuple[str, str]]:
    """A terminal size's violations: rows and columns in 0..65535."""
    return [
        (f"{field}.{name}", f"must be at most {MAX_TERMINAL_SIZE}")
        for name in ("rows", "columns")
        if getattr(size, name) > MAX_TERMINAL_SIZE
    ]


def later_problems(request: pool_pb2.ExecNodeRequest) -> list[tuple[str, str]]:
    """The violations of a request after the first: none may start again, sizes and signals in range."""
    body = request.WhichOneof("body")
    if body == "start":
        return [("start", "only the first request starts the command")]
    if body == "resize":
        return size_problems(request.resize, "resize")
    if body == "signal" and not 0 < request.signal <= MAX_SIGNAL:
        return [("signal", f"must be a signal number, 1 to {MAX_SIGNAL}")]
    return []


def translate(e: grpc.aio.AioRpcError) -> ApiError:
    """An agent's error as the caller should see it: its ExecNode refusals as they are, an agent without
    ExecNode FAILED_PRECONDITION NODE_EXEC_UNSUPPORTED, anything else UNAVAILABLE NODE_UNAVAILABLE (the
    node could not serve the call)."""
    reason = agent_reason(e)
    if reason in agenterrors.EXEC_REASONS:
        return ApiError(e.code(), reason, e.details() or "")
    if e.code() == grpc.StatusCode.UNIMPLEMENTED:
        message = "the node's agent cannot run commands (an older agent, or one started without them)"
        return failed_precondition("NODE_EXEC_UNSUPPORTED", message)
    return ApiError(grpc.StatusCode.UNAVAILABLE, "NODE_UNAVAILABLE", f"the node did not answer: {e.details()}")


async def _forward(
    requests: AsyncIterator[pool_pb2.ExecNodeRequest],
    call: grpc.aio.StreamStreamCall,  # type: ignore[type-arg]
    refusal: list[ApiError],
) -> None:
    """The caller's later requests, to the agent; the caller's end of input is the agent's. A bad request
    ends the call (its refusal is kept in `refusal`)."""
    try:
        async for request in requests:
            v = later_problems(request)
            if v:
                refusal.append(invalid("INVALID_EXEC_REQUEST", v))
                call.cancel()
                return
            await call.write(request)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        # The agent's call ended first: its answer (or error) is read by `relay`.
        return


async def relay(
    cp: ControlPlane, channels: NodeChannels, requests: AsyncIterator[pool_pb2.ExecNodeRequest]
) -> AsyncGenerator[pool_pb2.ExecNodeResponse, None]:
    """The body of PoolService.ExecNode (see the module's docstring). Raises ApiError and refusals."""
    first = await anext(aiter(requests), None)
    if first is None or first.WhichOneof("body") != "start":
        raise invalid("INVALID_EXEC_REQUEST", [("start", "the first request must be start")])
    start = first.start
    pid, nid = parse_name(start.name, "pools", "nodes", field="start.name")
    # (Streaming requests pass authentication without their message: the pool's owner is checked here.)
    tenancy.check_references(caller(), cp, start)
    v = start_problems(start)
    if v:
        raise invalid("INVALID_EXEC_REQUEST", v)
    node = cp.node(pid, nid)
    if not node.connected or not node.node_service_port:
        raise failed_precondition("NODE_NOT_CONNECTED", f"node {nid!r} is not connected")
    call = agent_pb2_grpc.NodeServiceStub(channels.get(node)).ExecNode()
    refusal: list[ApiError] = []
    forward: asyncio.Task[None] | None = None
    try:
        await call.write(first)
        forward = asyncio.create_task(_forward(requests, call, refusal))
        async for response in call:
            yield response
    except grpc.aio.AioRpcError as e:
        if refusal:
            raise refusal[0] from None
        raise translate(e) from None
    except asyncio.CancelledError:
        # `_forward` cancelled the agent's call (a bad request), or the caller went away (this task is
        # being cancelled: that goes on).
        task = asyncio.current_task()
        if refusal and task is not None and not task.cancelling():
            raise refusal[0] from None
        raise
    finally:
        # The caller went away, or the command ended: the agent's call ends (and the command with it).
        call.cancel()
        if forward is not None:
            forward.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait([forward])
    if refusal:
        raise refusal[0]
