"""A real in-process grpc.aio control plane on loopback with a temporary database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from shoal.server.app import ServerConfig, ShoalServer
from shoal.v1 import job_pb2_grpc, pool_pb2_grpc, storage_pb2_grpc, task_pb2_grpc
from tests.channels import server_channel


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.pools = pool_pb2_grpc.PoolServiceStub(channel)
        self.jobs = job_pb2_grpc.JobServiceStub(channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(channel)


async def start_server(data_dir: Path) -> ShoalServer:
    """A server on a loopback port keeping its data in `data_dir` (started again on it: a restart)."""
    srv = ShoalServer(ServerConfig(data_dir=data_dir, listen="127.0.0.1:0", publish_address=False))
    await srv.start()
    return srv


@contextlib.asynccontextmanager
async def configured_server(data_dir: Path, **config: Any) -> AsyncIterator[ShoalServer]:
    """A server on a loopback port with `config` (ServerConfig's fields), stopped with its agents after."""
    srv = ShoalServer(ServerConfig(data_dir=data_dir, listen="127.0.0.1:0", publish_address=False, **config))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(stop_agents=True)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    srv = await start_server(tmp_path / "data")
    try:
        yield srv
    finally:
        await srv.stop(stop_agents=True)


@pytest.fixture
async def stubs(server: ShoalServer) -> AsyncIterator[Stubs]:
    async with server_channel(server) as channel:
        yield Stubs(channel)
