"""Deleting a removed node's root directory never reaches outside it (links are removed, not followed),
and waits until its agent's watchdog has killed every task."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sys
from pathlib import Path

import pytest

from shoal import rootlock
from shoal.paths import remove_tree as remove_node_root
from shoal.server.domain.records import NodeRec
from shoal.server.providers.local import LocalProvider
from shoal.v1 import pool_pb2


def provider(data_dir: Path) -> LocalProvider:
    # `node_removed`'s path checks need no control plane.
    return LocalProvider(None, data_dir=data_dir, server_address="127.0.0.1:1")  # type: ignore[arg-type]


def node(node_id: str, root: object) -> NodeRec:
    rec = NodeRec(node_id.lower(), pool_pb2.Node(id=node_id, pool_id="p"))
    if root is not None:
        rec.internal["root"] = str(root)
    return rec


def test_links_in_a_node_root_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "keep.txt").write_text("not the node's")
    (outside / "deep" / "keep.txt").write_text("not the node's")
    root = tmp_path / "data" / "nodes" / "node-1"
    wd = root / "workitems" / "j" / "job-1" / "t" / "wd"
    wd.mkdir(parents=True)
    (wd / "out.txt").write_text("the node's")
    (wd / "to-dir").symlink_to(outside)
    (wd / "to-file").symlink_to(outside / "keep.txt")
    (wd / "to-root").symlink_to("/")
    # A task may leave a directory it made unreadable and unwritable.
    locked = wd / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "f").write_text("x")
    os.chmod(locked / "inner", 0o000)
    os.chmod(locked, 0o500)

    remove_node_root(root)

    assert not root.exists()
    assert (outside / "keep.txt").read_text() == "not the node's"
    assert (outside / "deep" / "keep.txt").read_text() == "not the node's"


def test_a_node_root_that_is_a_link_is_unlinked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    root = tmp_path / "nodes" / "node-2"
    root.parent.mkdir()
    root.symlink_to(outside)
    remove_node_root(root)
    assert not root.is_symlink() and (outside / "keep.txt").exists()


@pytest.mark.parametrize(
    ("node_id", "recorded"),
    [
        ("node-1", None),  # a joined node: the provider never made its directory
        ("node-1", "/tmp/elsewhere/node-1"),  # recorded somewhere else than the provider's directory
        ("..", "{data}/nodes/.."),
        ("a/b", "{data}/nodes/a/b"),
    ],
)
def test_only_the_providers_own_node_directory_is_ever_removed(tmp_path: Path, node_id: str, recorded) -> None:
    data = tmp_path / "data"
    (data / "nodes").mkdir(parents=True)
    root = recorded.format(data=data) if recorded else None
    assert provider(data)._own_root(node(node_id, root)) is None


def test_the_providers_own_node_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "nodes").mkdir(parents=True)
    p = provider(data)
    assert p._own_root(node("node-7", data / "nodes" / "node-7")) == data / "nodes" / "node-7"
    # `nodes` itself replaced by a link out of the data directory: nothing is removed through it.
    (data / "nodes").rmdir()
    (tmp_path / "other").mkdir()
    (data / "nodes").symlink_to(tmp_path / "other")
    assert p._own_root(node("node-7", data / "nodes" / "node-7")) is None


LOCK_HOLDER = """
import fcntl, os, sys, threading, time
root = sys.argv[1]
fd = os.open(os.path.join(root, "volatile", "agent.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("locked", flush=True)
while not stop.is_set():
    # A task the watchdog has not killed yet, making files again.
    os.makedirs(os.path.join(root, "workitems", "j", "job-1", "t", "wd"), exist_ok=True)
    time.sleep(0.005)
"""


async def _hold_lock(root: Path) -> asyncio.subprocess.Process:
    """A process that holds `root`'s lock, as a dead agent's watchdog does while it kills the agent's
    tasks, and (standing for such a task) makes files in the root until its stdin closes."""
    (root / "volatile").mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCK_HOLDER, str(root), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"locked\n"
    return proc


@pytest.mark.timeout(30)
async def test_a_node_root_is_deleted_once_its_agents_watchdog_is_done(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = data / "nodes" / "node-1"
    holder = await _hold_lock(root)
    try:
        removal = asyncio.create_task(provider(data)._remove_root("node-1", "node-1", 0, root))
        done, _ = await asyncio.wait({removal}, timeout=0.5)
        assert not done  # it waits for the lock
        assert holder.stdin is not None
        holder.stdin.close()  # the watchdog has killed every task and exits
        assert await asyncio.wait_for(holder.wait(), 10) == 0
        await asyncio.wait_for(removal, 10)
        assert not root.exists()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


@pytest.mark.timeout(30)
async def test_a_node_root_whose_lock_stays_held_is_deleted_after_the_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    root = data / "nodes" / "node-1"
    (root / "volatile").mkdir(parents=True)
    lock = os.open(root / "volatile" / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # never released while the provider waits
        p = LocalProvider(None, data_dir=data, server_address="127.0.0.1:1", root_lock_timeout=0.2)  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="shoal.provider.local"):
            await asyncio.wait_for(p._remove_root("node-1", "node-1", 0, root), 10)
        assert not root.exists()
        assert "still locked" in caplog.text
    finally:
        os.close(lock)


def test_a_lock_file_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    """A task replaced the lock file (or `volatile`) with a link: nothing outside the root is opened."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "agent.lock").write_text("")
    for link in ("volatile", "volatile/agent.lock"):
        root = tmp_path / link.replace("/", "-")
        (root / "volatile").mkdir(parents=True)
        if link == "volatile":
            (root / "volatile").rmdir()
            (root / "volatile").symlink_to(outside)
        else:
            (root / "volatile" / "agent.lock").symlink_to(outside / "agent.lock")
        assert rootlock.open_existing_lock(root) is None
    assert rootlock.open_existing_lock(tmp_path / "none") is None
