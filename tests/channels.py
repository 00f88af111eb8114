"""Channels to a test server that authenticate as its default account (or its administrator).

A server writes `<data dir>/credentials.json` (what `shoal up` gives a user); tests read it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc

from shoal.client.credentials import authenticated, from_file

ADMIN = "_admin"


def credentials(data_dir: Path) -> dict[str, Any]:
    """The credentials file a server wrote into `data_dir`."""
    data: dict[str, Any] = json.loads((Path(data_dir) / "credentials.json").read_text())
    return data


def metadata_of(creds: dict[str, Any], *, admin: bool = False) -> tuple[tuple[str, str], ...]:
    """The metadata that authenticates a call as the default account (or the administrator)."""
    if admin:
        return (("shoal-account", ADMIN), ("authorization", f"Bearer {creds['admin_key']}"))
    return (("shoal-account", creds["account"]), ("authorization", f"Bearer {creds['key']}"))


def _with_aio(details: Any, metadata: Sequence[tuple[str, str]]) -> Any:
    # (grpc.aio's streaming calls want a `Metadata`, and drop a plain tuple.)
    return details._replace(metadata=grpc.aio.Metadata(*tuple(details.metadata or ()), *metadata))


class _AioUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_aio(details, self.metadata), request)


class _AioUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_aio(details, self.metadata), request)


class _AioStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_aio(details, self.metadata), requests)


class _AioStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_aio(details, self.metadata), requests)


def aio_interceptors(metadata: Sequence[tuple[str, str]]) -> list[Any]:
    """Interceptors adding `metadata` to every call (grpc.aio files each under one kind only: one per kind)."""
    return [_AioUnaryUnary(metadata), _AioUnaryStream(metadata), _AioStreamUnary(metadata), _AioStreamStream(metadata)]


def bare_aio_channel(
    address: str, data_dir: Path, *, interceptors: Sequence[Any] = (), options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to the server that keeps its data in `data_dir`: TLS as the server speaks it,
    with `interceptors` (no credentials unless they add them)."""
    creds = credentials(data_dir)
    if creds.get("tls"):
        tls = grpc.ssl_channel_credentials(root_certificates=str(creds["ca_cert"]).encode())
        return grpc.aio.secure_channel(address, tls, options=list(options), interceptors=list(interceptors))
    return grpc.aio.insecure_channel(address, options=list(options), interceptors=list(interceptors))


def aio_channel(
    address: str, data_dir: Path, *, admin: bool = False, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to the server that keeps its data in `data_dir`, authenticated."""
    md = metadata_of(credentials(data_dir), admin=admin)
    return bare_aio_channel(address, data_dir, interceptors=aio_interceptors(md), options=options)


def sync_channel(
    address: str, data_dir: Path, *, admin: bool = False, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A blocking channel to the server that keeps its data in `data_dir`, authenticated."""
    found = from_file(Path(data_dir) / "credentials.json", admin=admin)
    return authenticated(replace(found, address=address).channel(options), found)


def server_channel(server: Any, *, admin: bool = False) -> grpc.aio.Channel:
    """An asyncio channel to an in-process `ShoalServer`, authenticated as its default account."""
    return aio_channel(server.address, server.data_dir, admin=admin)
