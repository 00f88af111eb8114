"""Deleting a removed node's root directory never reaches outside it (links are removed, not followed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.server.domain.records import NodeRec
from shoal.server.providers.local import LocalProvider, remove_node_root
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
