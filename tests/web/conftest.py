"""The HTTP port's tests: a real in-process server (TLS, account keys), its local agents stopped with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.server.app import ServerConfig, ShoalServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    srv = ShoalServer(ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(stop_agents=True)
