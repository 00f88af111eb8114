"""Authentication and authorization of every public call, before its servicer runs.

Each method has a policy (`policy_of`): health checking is open; AccountService needs the
administrator; the resource services (pools, jobs, tasks, storage) and reflection need an account key
or a task credential, and a request naming another account's pool or job is answered as if it did not
exist (`tenancy`). The caller's principal is put in a context variable for the servicer (`caller()`).

Credentials travel as gRPC metadata: ``shoal-account: NAME`` (``_admin`` for the administrator) and
``authorization: Bearer KEY``. A missing or wrong credential is UNAUTHENTICATED; a valid one that does not
allow the method is PERMISSION_DENIED. Neither message repeats what was sent.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import AsyncIterator, Iterable, Sequence
from enum import Enum
from typing import Any

import grpc

from shoal.grpcwrap import Behavior, RewritingRegistrar, rewrapped
from shoal.server.accounts.model import ANYONE, Principal
from shoal.server.accounts.registry import AccountRegistry
from shoal.server.api import tenancy
from shoal.server.api.errors import abort
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import PermissionDenied, Refused
from shoal.server.domain.ids import key

ACCOUNT_HEADER = "shoal-account"
AUTHORIZATION_HEADER = "authorization"
BEARER = "Bearer "

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("shoal_principal", default=ANYONE)


def caller() -> Principal:
    """The principal of the request being served (the default account's on a plaintext server)."""
    return _current.get()


class Policy(Enum):
    """What a method asks of its caller."""

    OPEN = "open"
    #: Any valid credential (the administrator's too).
    ANY = "any"
    ADMIN = "admin"
    TENANT = "tenant"


_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
_ANY_PREFIXES = ("/grpc.reflection.",)
_ADMIN_PREFIXES = ("/shoal.v1.AccountService/",)


def policy_of(method: str, open_prefixes: Sequence[str] = ()) -> Policy:
    """The policy of `method` (`/package.Service/Method`); `open_prefixes` adds open methods."""
    if method.startswith(_OPEN_PREFIXES) or method.startswith(tuple(open_prefixes)):
        return Policy.OPEN
    if method.startswith(_ADMIN_PREFIXES):
        return Policy.ADMIN
    if method.startswith(_ANY_PREFIXES):
        return Policy.ANY
    return Policy.TENANT


class Authenticator:
    """Turns a call's metadata into a principal and checks it against the method's policy."""

    def __init__(self, registry: AccountRegistry | None, cp: ControlPlane) -> None:
        #: None on a plaintext server: every caller is `ANYONE` (the default account, and administration).
        self.registry = registry
        self.cp = cp

    def principal(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """Who the call comes from (or Unauthenticated)."""
        if self.registry is None:
            return ANYONE
        account = secret = ""
        for k, v in metadata or ():
            if isinstance(v, bytes):
                continue
            if k == ACCOUNT_HEADER:
                account = v
            elif k == AUTHORIZATION_HEADER and v.startswith(BEARER):
                secret = v[len(BEARER) :].strip()
        return self.registry.authenticate(account, secret, self._node_of_account)

    def _node_of_account(self, account: str, pool_id: str, node_id: str) -> bool:
        pool = self.cp.pools.get(key(pool_id))
        return pool is not None and tenancy.owner(pool.proto) == account and key(node_id) in pool.nodes

    def admit(self, policy: Policy, metadata: Iterable[tuple[str, str | bytes]] | None, request: Any) -> Principal:
        """The principal allowed to make this call, or a refusal."""
        principal = self.principal(metadata)
        if policy is Policy.ADMIN and not principal.may_administer:
            raise PermissionDenied("PERMISSION_DENIED", "managing accounts needs the administrator credential")
        if policy is Policy.TENANT:
            if not principal.holds_resources:
                raise PermissionDenied(
                    "PERMISSION_DENIED", "the administrator credential manages accounts; use an account's key"
                )
            if request is not None:
                tenancy.check_references(principal, self.cp, request)
        return principal


async def _admitted(auth: Authenticator, policy: Policy, context: grpc.aio.ServicerContext, request: Any) -> Principal:  # type: ignore[type-arg]
    """The admitted principal, or the call ends with the refusal."""
    try:
        return auth.admit(policy, context.invocation_metadata(), request)
    except Refused as e:
        await abort(context, e)
        raise  # (abort never returns)


def _wrap_unary_request(behavior: Behavior, policy: Policy, auth: Authenticator) -> Behavior | None:
    if inspect.isasyncgenfunction(behavior):

        async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # type: ignore[type-arg]
            principal = await _admitted(auth, policy, context, request)
            token = _current.set(principal)
            try:
                async with contextlib.aclosing(behavior(request, context)) as responses:
                    async for response in responses:
                        yield response
            finally:
                _current.reset(token)

        return stream_out
    if inspect.iscoroutinefunction(behavior):

        async def one(request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
            principal = await _admitted(auth, policy, context, request)
            token = _current.set(principal)
            try:
                return await behavior(request, context)
            finally:
                _current.reset(token)

        return one
    return None


def _wrap_stream_request(behavior: Behavior, policy: Policy, auth: Authenticator) -> Behavior | None:
    if inspect.isasyncgenfunction(behavior):

        async def stream_out(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:  # type: ignore[type-arg]
            principal = await _admitted(auth, policy, context, None)
            token = _current.set(principal)
            try:
                async with contextlib.aclosing(behavior(requests, context)) as responses:
                    async for response in responses:
                        yield response
            finally:
                _current.reset(token)

        return stream_out
    if inspect.iscoroutinefunction(behavior):

        async def one(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
            principal = await _admitted(auth, policy, context, None)
            token = _current.set(principal)
            try:
                return await behavior(requests, context)
            finally:
                _current.reset(token)

        return one
    return None


def authenticated_handler(
    handler: grpc.RpcMethodHandler, method: str, auth: Authenticator, open_prefixes: Sequence[str] = ()
) -> grpc.RpcMethodHandler:
    """`handler` whose behaviour first admits its caller (open methods are returned as they are)."""
    policy = policy_of(method, open_prefixes)
    if handler is None or policy is Policy.OPEN:
        return handler
    return rewrapped(
        handler,
        lambda behavior, request_streaming: (_wrap_stream_request if request_streaming else _wrap_unary_request)(
            behavior, policy, auth
        ),
    )


class AuthenticatingRegistrar(RewritingRegistrar):
    """Stands for a server (or another registrar) while services are added: every method admits its caller."""

    def __init__(self, inner: Any, auth: Authenticator, open_prefixes: Sequence[str] = ()) -> None:
        opened = tuple(open_prefixes)
        super().__init__(inner, lambda handler, method: authenticated_handler(handler, method, auth, opened))
