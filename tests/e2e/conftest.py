"""Fixtures that run real server and agent processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.client import Client
from tests.e2e.harness import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    """A Python client of `server`."""
    c = Client.connect(server.address, timeout=30)
    try:
        yield c
    finally:
        c.close()
