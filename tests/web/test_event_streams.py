"""The dashboard's server-sent event streams end, and close what they follow, when the page leaves: here a
real aiohttp server and a socket that stops reading and then goes, with an endless source in place of the
API's stream (what is tested is the stream's plumbing, `Dashboard._events`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from shoal.server.web.dashboard import Dashboard
from shoal.server.web.gateway import Gateway

pytestmark = pytest.mark.timeout(60)


class Source:
    """An endless stream of events that says how many it gave and when it was closed."""

    def __init__(self) -> None:
        self.given = 0
        self.closed = asyncio.Event()

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        try:
            while True:
                self.given += 1
                yield "text", {"text": "x" * 16384}
        finally:
            self.closed.set()


async def _serve(dashboard: Dashboard, source: Source, handled: asyncio.Event) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await dashboard._events(request, source.events())
        finally:
            handled.set()

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _until(condition: Any, what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_backed_up_stream_ends_and_closes_its_source_when_the_page_leaves() -> None:
    dashboard = Dashboard(Gateway("127.0.0.1:1", None), CollectorRegistry())
    source, handled = Source(), asyncio.Event()
    runner, port = await _serve(dashboard, source, handled)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        # The page reads no more: the events back up until the source waits on the full queue (the source
        # gives at once, so it runs only to refill it).
        await _until(lambda: source.given > 256, "the queue to fill")
        writer.transport.abort()  # (the page goes)
        async with asyncio.timeout(20):
            await source.closed.wait()
            await handled.wait()
    finally:
        await runner.cleanup()
