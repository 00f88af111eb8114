"""Requests whose bytes are not a message of their method's type: INVALID_ARGUMENT `MALFORMED_REQUEST`.

grpc decodes each request message before the servicer sees it, and when that fails it answers
UNKNOWN and logs a traceback at ERROR, once per request: anyone who can send bytes can fill the
log. :func:`guarded` gives a stand-in for a `grpc.aio.Server` to add services through
(`add_FooServicer_to_server(servicer, guarded(server))`); it wraps every method handler once, at
registration, so that nothing is added per call:

- the request deserializer returns a :class:`Malformed` value instead of raising;
- the behaviour ends a call whose request (or any message of whose request stream) is
  `Malformed` with INVALID_ARGUMENT, ErrorInfo reason `MALFORMED_REQUEST`, before the servicer
  sees it; valid messages pass through untouched.

A method named in `self_checked` keeps only the first: its servicer checks each message itself
(`type(message) is Malformed`, then :func:`refuse`). The agents' streams do so: there each message
is a task's report or start, and the generators the second would add in each direction cost a few
per cent of the dispatch rate with a stream per node.

Refusals are logged as one WARNING line at most every `LOG_INTERVAL_SECONDS`, with the number
refused since the last line.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from shoal.grpcwrap import Behavior, RewritingRegistrar, rewrapped

log = logging.getLogger("shoal.grpc")

MALFORMED_REQUEST = "MALFORMED_REQUEST"
ERROR_DOMAIN = "shoal.v1"
LOG_INTERVAL_SECONDS = 60.0
#: Characters of a client's value, or of a decoder's complaint, an error repeats (also `shoal.server.api.errors`).
MAX_DETAIL_CHARS = 200


class Malformed:
    """What the guarded deserializer gives for bytes that do not decode: why, and what was expected."""

    __slots__ = ("error", "type_name")

    def __init__(self, type_name: str, error: Exception) -> None:
        self.type_name = type_name
        self.error = error


class RefusalLog:
    """Logs refused requests as one line at most every `interval` seconds (on `clock`), with the count."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._unlogged = 0
        #: Refusals since this log was made.
        self.total = 0

    def refused(self, method: str, why: str) -> None:
        """Count one refusal; log it (with those counted since the last line) if the interval has passed."""
        self.total += 1
        self._unlogged += 1
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return
        if self._last is None:
            log.warning("refused a malformed request to %s: %s", method, why)
        else:
            log.warning(
                "refused %d malformed request(s) in the last %.0f s; the latest to %s: %s",
                self._unlogged,
                now - self._last,
                method,
                why,
            )
        self._last = now
        self._unlogged = 0


#: The process's refusal log (one per process: the point is one line, whatever the number of servers).
REFUSALS = RefusalLog()


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    type_name = _type_name(deserializer)

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # any failure to decode means the bytes are not such a message
            return Malformed(type_name, e)

    return decode


def malformed_status(bad: Malformed) -> status_pb2.Status:
    """INVALID_ARGUMENT `MALFORMED_REQUEST` for `bad`, as a `google.rpc.Status` with its ErrorInfo."""
    why = str(bad.error)[:MAX_DETAIL_CHARS] or type(bad.error).__name__
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=MALFORMED_REQUEST, domain=ERROR_DOMAIN))
    return status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT,
        message=f"the request is not a valid {bad.type_name} message ({why})",
        details=[info],
    )


async def refuse(context: grpc.aio.ServicerContext, bad: Malformed, method: str) -> None:  # type: ignore[type-arg]
    """End the call with INVALID_ARGUMENT `MALFORMED_REQUEST` for `bad` (raises grpc's AbortError), and count it."""
    REFUSALS.refused(method, f"not a valid {bad.type_name} ({str(bad.error)[:MAX_DETAIL_CHARS]})")
    # Raises grpc's AbortError, which ends the call with this status.
    await context.abort_with_status(rpc_status.to_status(malformed_status(bad)))  # type: ignore[attr-defined]


async def _checked(
    requests: AsyncIterator[Any],
    context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    method: str,
) -> AsyncIterator[Any]:
    async for message in requests:
        if type(message) is Malformed:
            await refuse(context, message, method)
        yield message


def _guard_unary_request(behavior: Behavior, method: str) -> Behavior | None:
    if inspect.isasyncgenfunction(behavior):

        async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # type: ignore[type-arg]
            if type(request) is Malformed:
                await refuse(context, request, method)
            # (aclosing: when the call ends, the servicer's generator is closed now, not when collected.)
            async with contextlib.aclosing(behavior(request, context)) as responses:
                async for response in responses:
                    yield response

        return stream_out
    if inspect.iscoroutinefunction(behavior):

        async def one(request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
            if type(request) is Malformed:
                await refuse(context, request, method)
            return await behavior(request, context)

        return one
    return None


def _guard_stream_request(behavior: Behavior, method: str) -> Behavior | None:
    if inspect.isasyncgenfunction(behavior):

        async def stream_out(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # type: ignore[type-arg]
            async with contextlib.aclosing(behavior(_checked(requests, context, method), context)) as responses:
                async for response in responses:
                    yield response

        return stream_out
    if inspect.iscoroutinefunction(behavior):

        async def one(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
            return await behavior(_checked(requests, context, method), context)

        return one
    return None


def guard_handler(
    handler: grpc.RpcMethodHandler, method: str, self_checked: frozenset[str] = frozenset()
) -> grpc.RpcMethodHandler:
    """`handler` with a deserializer that never raises and a behaviour that refuses what it could not decode
    (unless `method` is in `self_checked`: its servicer refuses a `Malformed` message itself).

    A handler without a deserializer (raw bytes), or whose behaviour is not async, is returned as it is.
    """
    if handler is None or handler.request_deserializer is None:
        return handler

    def behavior_for(behavior: Behavior, request_streaming: bool) -> Behavior | None:
        if method in self_checked:
            return behavior
        return (_guard_stream_request if request_streaming else _guard_unary_request)(behavior, method)

    return rewrapped(handler, behavior_for, _safe(handler.request_deserializer))


class GuardedRegistrar(RewritingRegistrar):
    """Stands for a `grpc.aio.Server` while services are added to it; see the module's docstring."""

    def __init__(self, server: grpc.aio.Server, self_checked: frozenset[str] = frozenset()) -> None:
        super().__init__(server, lambda handler, method: guard_handler(handler, method, self_checked))
        self.self_checked = self_checked


def guarded(server: grpc.aio.Server, self_checked: frozenset[str] = frozenset()) -> Any:
    """A stand-in for `server` to pass to `add_*Servicer_to_server`: its methods refuse undecodable requests
    (those named in `self_checked`, as `/package.Service/Method`, refuse them in their servicer)."""
    return GuardedRegistrar(server, self_checked)
