"""Fixtures for client tests: a fake Shoal API on a real in-process gRPC server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result

from shoal.client import Client
from shoal.client.cli import cli

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


@pytest.fixture
def run(fake: FakeServer) -> Callable[..., Result]:
    """``run("job", "list")``: the CLI through click's CliRunner against the fake server."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--address", fake.address, *args], input=input, catch_exceptions=False)

    return invoke
