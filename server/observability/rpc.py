"""Every gRPC call of the server counted by method and status code, timed, and logged with its fields.

`InstrumentingRegistrar` stands for a `grpc.aio.Server` while services are added to it (as
`shoal.grpcguard.guarded` does), innermost, so that it sees every call, those the guard or the
authentication refuse too. It wraps each method handler once, at registration; per call it adds:

- a count when the call starts and one when it ends, with its status code (``OK`` unless the servicer
  set or aborted with another; ``UNKNOWN`` for an exception, ``CANCELLED`` for a call cancelled);
- the handling time of a unary call (a stream lasts as long as its client wants);
- the call's log fields (`shoal.logs.bind`): the method, the account it claims (the ``shoal-account``
  header; a refused call is logged with the account it claimed), the request's ``request_id`` and the
  resource it names (``name`` or ``parent``), and the secrets of the request (registry and node user
  passwords, a certificate's password) registered so that no log line can show them.

The counters are plain ints in dictionaries read at scrape time (`RpcStats.collect`): the calls run on
the event loop's thread, and so does the scrape. Methods in `skip` (the agents' streams: one call per
node for its life, where a wrapper would cost for each message) are left as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shoal import logs
from shoal.grpcwrap import Behavior, RewritingRegistrar, rewrapped
from shoal.server.observability.histogram import Histogram

#: Seconds: the handling time of unary calls (a list of a few items to an AddTasks of 100,000).
HANDLING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Top-level string fields of a request that name what it is about (logged as `resource`), in order.
RESOURCE_FIELDS = ("name", "parent")
ACCOUNT_HEADER = "shoal-account"


def _split(method: str) -> tuple[str, str]:
    """(``package.Service``, ``Method``) of ``/package.Service/Method``."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _kind(request_streaming: bool, response_streaming: bool) -> str:
    return {
        (False, False): "unary",
        (False, True): "server_stream",
        (True, False): "client_stream",
        (True, True): "bidi_stream",
    }[(request_streaming, response_streaming)]


class MethodStats:
    """One method's counters (its labels are made once)."""

    __slots__ = ("codes", "handling", "labels", "started")

    def __init__(self, service: str, method: str, kind: str) -> None:
        self.labels = (service, method, kind)
        self.started = 0
        #: Status code name -> calls that ended with it.
        self.codes: dict[str, int] = {}
        #: Unary calls only.
        self.handling: Histogram | None = Histogram(HANDLING_BUCKETS) if kind == "unary" else None

    def ended(self, code: str, seconds: float) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        if self.handling is not None:
            self.handling.observe(seconds)


class RpcStats(Collector):
    """The counters of every instrumented method, as Prometheus metrics."""

    def __init__(self) -> None:
        self.methods: dict[str, MethodStats] = {}

    def method(self, full_name: str, kind: str) -> MethodStats:
        stats = self.methods.get(full_name)
        if stats is None:
            stats = self.methods[full_name] = MethodStats(*_split(full_name), kind)
        return stats

    def collect(self) -> Iterator[Metric]:
        labels = ["grpc_service", "grpc_method", "grpc_type"]
        started = CounterMetricFamily(
            "shoal_grpc_server_started", "gRPC calls the server started, by method.", labels=labels
        )
        handled = CounterMetricFamily(
            "shoal_grpc_server_handled",
            "gRPC calls the server ended, by method and status code (OK, NOT_FOUND, UNAUTHENTICATED, ...).",
            labels=[*labels, "grpc_code"],
        )
        handling = HistogramMetricFamily(
            "shoal_grpc_server_handling_seconds",
            "How long the server took to answer unary gRPC calls, by method.",
            labels=labels,
        )
        for stats in list(self.methods.values()):
            started.add_metric(list(stats.labels), stats.started)
            for code, n in list(stats.codes.items()):
                handled.add_metric([*stats.labels, code], n)
            # (A method's time once it has been called: a hundred methods' empty buckets say nothing.)
            if stats.handling is not None and stats.started:
                buckets, total = stats.handling.snapshot()
                handling.add_metric(list(stats.labels), buckets=buckets, sum_value=total)
        yield started
        yield handled
        yield handling


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:  # type: ignore[type-arg]
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is None:
        return "OK"
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN"


def _account(context: grpc.aio.ServicerContext) -> str:  # type: ignore[type-arg]
    for k, v in context.invocation_metadata() or ():
        if k == ACCOUNT_HEADER and isinstance(v, str):
            return v
    return ""


class _CallFields:
    """What a method's requests say about themselves (found once per method, read once per call)."""

    def __init__(self, method: str) -> None:
        self.method = method
        names: set[str] = set()
        descriptor = _request_descriptor(method)
        if descriptor is not None:
            names = {f.name for f in descriptor.fields if f.type == f.TYPE_STRING and not logs.is_repeated(f)}
        self.resource_fields = [f for f in RESOURCE_FIELDS if f in names]
        self.request_id = "request_id" in names
        #: Whether a request may carry a password (registered as a secret before anything is logged).
        self.secrets = descriptor is not None and logs.holds_secrets(descriptor)

    def bind(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
        fields: dict[str, object] = {"method": self.method, "account": _account(context)}
        if request is not None and hasattr(request, "ListFields"):
            if self.secrets:
                logs.register_message_secrets(request)
            for f in self.resource_fields:
                value = getattr(request, f)
                if value:
                    fields["resource"] = value
                    break
            if self.request_id:
                fields["request_id"] = request.request_id
        return logs.bind(**fields)


def _request_descriptor(method: str) -> Descriptor | None:
    """The request message type of ``/package.Service/Method``, from the generated code's descriptors
    (the guard has wrapped the deserializer by the time a handler comes here); None when unknown."""
    service, name = _split(method)
    try:
        found = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    return found.input_type  # type: ignore[no-any-return]


def _counted(behavior: Behavior, stats: MethodStats, fields: _CallFields, request_streaming: bool) -> Behavior | None:
    """`behavior` counted, logged with its fields and (unary calls) timed; None when it is not async.

    A streaming request has no request to read fields from when the call starts; a call that streams
    responses or requests is not timed (it lasts as long as its client wants)."""

    def first(request: Any) -> Any:
        return None if request_streaming else request

    if inspect.isasyncgenfunction(behavior):

        async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # type: ignore[type-arg]
            stats.started += 1
            token = fields.bind(first(request), context)
            error: BaseException | None = None
            try:
                async with contextlib.aclosing(behavior(request, context)) as responses:
                    async for response in responses:
                        yield response
            except BaseException as e:
                error = e
                raise
            finally:
                stats.ended(_code_of(context, error), 0.0)
                logs.unbind(token)

        return stream_out
    if inspect.iscoroutinefunction(behavior):

        async def one(request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
            stats.started += 1
            token = fields.bind(first(request), context)
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as e:
                error = e
                raise
            finally:
                stats.ended(_code_of(context, error), 0.0 if request_streaming else time.perf_counter() - start)
                logs.unbind(token)

        return one
    return None


def instrumented_handler(
    handler: grpc.RpcMethodHandler, method: str, stats: RpcStats, skip: Iterable[str] = ()
) -> grpc.RpcMethodHandler:
    """`handler` whose behaviour is counted, timed and logged with its fields (see the module's docstring);
    a method in `skip`, or one whose behaviour is not async, is returned as it is."""
    if handler is None or method in skip:
        return handler
    method_stats = stats.method(method, _kind(bool(handler.request_streaming), bool(handler.response_streaming)))
    fields = _CallFields(method)
    return rewrapped(
        handler, lambda behavior, request_streaming: _counted(behavior, method_stats, fields, request_streaming)
    )


class InstrumentingRegistrar(RewritingRegistrar):
    """Stands for a `grpc.aio.Server` while services are added to it: every method is counted (see the
    module's docstring). Pass it where the server would go (`guarded(registrar)`, innermost)."""

    def __init__(self, server: Any, stats: RpcStats, skip: Iterable[str] = ()) -> None:
        skipped = frozenset(skip)
        super().__init__(server, lambda handler, method: instrumented_handler(handler, method, stats, skipped))
        self.stats = stats
