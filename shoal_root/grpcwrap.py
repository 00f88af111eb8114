"""Rewriting a grpc.aio server's method handlers once, as services are added to it: the one mechanism under
the request guard (`shoal.grpcguard`), the authentication of public calls (`shoal.server.api.auth`) and
their instrumentation (`shoal.server.observability.rpc`).

A `RewritingRegistrar` stands for the server (or another registrar) where ``add_*Servicer_to_server`` would
take it; every method handler added through it, registered or generic (each generic one once, on its first
call), goes through its `HandlerRewrite`. `rewrapped` builds a handler of the same kind around a new
behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

Behavior = Callable[..., Any]
#: ``(handler, "/package.Service/Method") -> handler``: what a registrar does to each method's handler.
HandlerRewrite = Callable[[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler]

#: (request streaming, response streaming) -> the handler's behaviour attribute, and the maker of a handler.
_KINDS: dict[tuple[bool, bool], tuple[str, Callable[..., grpc.RpcMethodHandler]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def rewrapped(
    handler: grpc.RpcMethodHandler,
    behavior_for: Callable[[Behavior, bool], Behavior | None],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour replaced by ``behavior_for(behavior, request_streaming)`` (and its request
    deserializer by `request_deserializer`, when given); `handler` itself when that gives None."""
    streaming = (bool(handler.request_streaming), bool(handler.response_streaming))
    attr, make = _KINDS[streaming]
    behavior = behavior_for(getattr(handler, attr), streaming[0])
    if behavior is None:
        return handler
    return make(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _RewritingGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are rewritten, each once."""

    def __init__(self, inner: grpc.GenericRpcHandler, rewrite: HandlerRewrite) -> None:
        self._inner = inner
        self._rewrite = rewrite
        self._done: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        done = self._done.get(method)
        if done is not None:
            return done
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        done = self._done[method] = self._rewrite(handler, method)
        return done


class RewritingRegistrar:
    """Stands for `server` (a `grpc.aio.Server` or another registrar) while services are added to it: each
    method handler goes through `rewrite` first."""

    def __init__(self, server: Any, rewrite: HandlerRewrite) -> None:
        self.server = server
        self.rewrite = rewrite

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers([_RewritingGenericHandler(h, self.rewrite) for h in generic_rpc_handlers])

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Any]) -> None:
        self.server.add_registered_method_handlers(
            service_name, {name: self.rewrite(h, f"/{service_name}/{name}") for name, h in method_handlers.items()}
        )
