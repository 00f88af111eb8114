"""A server that starts deletes the directories of local nodes that are no longer in its store.

The server may be killed between committing a node's removal and deleting its files, and nodes
that left before nodes recorded their roots were never deleted: their directories are found at
start, and go, while a live node's, anything not made by the local provider, and whatever a
link leads to stay.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

import pytest

from shoal.server.app import ServerConfig, ShoalServer
from shoal.server.providers.local import TRASH
from shoal.v1 import pool_pb2

pytestmark = pytest.mark.timeout(90)


def config(data: Path) -> ServerConfig:
    return ServerConfig(data_dir=data, listen="127.0.0.1:0", publish_address=False)


def node_root(data: Path, node_id: str, *files: str) -> Path:
    root = data / "nodes" / node_id
    for f in ("volatile/agent.lock", "workitems/j/job-1/t/wd/out.txt", *files):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    return root


async def _until(pred, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def connected(server: ShoalServer) -> None:
    await _until(lambda: all(n.session is not None for n in server.cp.nodes.values()))


async def test_directories_of_nodes_no_longer_in_the_store_are_deleted_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ShoalServer(config(data))
    await first.start()
    try:
        await first.cp.create_pool(pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1))
        (live,) = [n.proto.id for n in first.cp.nodes.values()]
        await connected(first)  # then it stops at once when told to
    finally:
        await first.stop(stop_agents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not a node's")

    gone = node_root(data, "node-90")  # removed from the store, its files never deleted
    trash = node_root(data, f"{TRASH}/node-3.0badf00d").parent  # moved aside by an earlier start, not deleted yet
    used = node_root(data, "node-91")  # no node in the store, but an agent uses it: left alone
    lock = os.open(used / "volatile" / "agent.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    (data / "nodes" / "node-92").symlink_to(outside)  # never made by the provider
    (data / "nodes" / "notes.txt").write_text("the user's")  # not a node id
    second = ShoalServer(config(data))
    try:
        await second.start()
        assert not gone.exists()
        await _until(lambda: not trash.exists())
        assert (data / "nodes" / live).is_dir()  # a node of a local pool
        assert used.is_dir()
        assert (data / "nodes" / "node-92").is_symlink() and (outside / "keep.txt").read_text() == "not a node's"
        assert (data / "nodes" / "notes.txt").read_text() == "the user's"
        await connected(second)
    finally:
        os.close(lock)
        await second.stop(stop_agents=True)
