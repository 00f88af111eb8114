"""Fixtures for client tests: a fake Shoal API on a real in-process gRPC server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoal.client import Client

from .fake_server import FakeServer


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    c = Client.connect(fake.address, timeout=10)
    try:
        yield c
    finally:
        c.close()
