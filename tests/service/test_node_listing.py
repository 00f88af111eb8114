"""Listing a node's files is bounded: a huge tree is a clear error for the client, never NODE_UNAVAILABLE.

A real agent NodeService (in process, on loopback) answers the control plane's own channel to it
(`NodeChannels`), whose errors are what the client receives.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from shoal import agenterrors
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.nodeagent.fileservice import ListingLimits, NodeFileService
from shoal.nodeagent.layout import NodeLayout
from shoal.server.api.errors import ApiError
from shoal.server.api.nodefiles import NodeChannels
from shoal.server.domain.records import NodeRec
from shoal.v1 import pool_pb2
from tests.tlshelp import node_service_credentials, server_role_credentials

pytestmark = pytest.mark.timeout(120)


class Node:
    """An agent's NodeService and the control plane's channel to it."""

    def __init__(self, root: Path, limits: ListingLimits) -> None:
        self.layout = NodeLayout(root)
        self.layout.create()
        self.limits = limits
        self.channels = NodeChannels(server_role_credentials())
        self.server = grpc.aio.server()
        self.rec = NodeRec("n", pool_pb2.Node(id="n", pool_id="p", ip_address="127.0.0.1"))

    async def start(self) -> None:
        service = NodeFileService(self.layout, lambda _j, _t: None, listing_limits=self.limits)
        agent_pb2_grpc.add_NodeServiceServicer_to_server(service, self.server)
        self.rec.node_service_port = self.server.add_secure_port("127.0.0.1:0", node_service_credentials())
        await self.server.start()

    async def stop(self) -> None:
        await self.channels.close()
        await self.server.stop(None)

    async def list(self, path: str, *, recursive: bool) -> list[str]:
        stub = agent_pb2_grpc.NodeServiceStub(self.channels.get(self.rec))
        request = agent_pb2.ListFilesRequest(scope=agent_pb2.FILE_SCOPE_NODE, path=path, recursive=recursive)
        resp = await self.channels.call(stub.ListFiles(request, timeout=60))
        return [f.path for f in resp.files]


@pytest.fixture
def limits() -> ListingLimits:
    return ListingLimits()


@pytest.fixture
async def node(tmp_path: Path, limits: ListingLimits) -> AsyncIterator[Node]:
    n = Node(tmp_path / "node", limits)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def too_many(node: Node, path: str, *, recursive: bool) -> ApiError:
    with pytest.raises(ApiError) as ei:
        await node.list(path, recursive=recursive)
    e = ei.value
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, agenterrors.TOO_MANY_FILES), e
    return e


async def test_a_listing_larger_than_a_message_is_too_many_files_not_node_unavailable(node: Node) -> None:
    """A task made more files (long names) than one answer holds: the listing's bytes pass the bound."""
    big = node.layout.root / "big"
    big.mkdir()
    count = 45_000
    for i in range(count):
        os.close(os.open(big / f"{i:06d}-{'x' * 190}", os.O_CREAT | os.O_WRONLY, 0o600))
    e = await too_many(node, "big", recursive=False)
    assert "MiB" in e.message and "list a subdirectory" in e.message
    await too_many(node, "", recursive=True)
    # The node answers the next call as ever.
    assert await node.list("shared", recursive=True) == []
    # An agent that does not bound its listings (an older one) sends an answer too large for the
    # control plane's channel: the same clear error.
    unbounded = Node(node.layout.root, ListingLimits(size=1 << 40))
    await unbounded.start()
    try:
        e = await too_many(unbounded, "big", recursive=False)
        assert "too large" in e.message
    finally:
        await unbounded.stop()


@pytest.mark.parametrize("limits", [ListingLimits(entries=20, depth=4)])
async def test_a_listing_past_its_entry_or_depth_bound_is_too_many_files(node: Node) -> None:
    root = node.layout.root / "shared"
    for d in ("a", "b", "c"):
        (root / d).mkdir()
        for i in range(5):
            (root / d / f"f{i}").write_text("x")
    assert len(await node.list("shared", recursive=True)) == 3 + 15
    for i in range(5, 8):
        (root / "a" / f"f{i}").write_text("x")
    e = await too_many(node, "shared", recursive=True)
    assert "more than 20 entries" in e.message
    assert sorted(await node.list("shared", recursive=False)) == ["shared/a", "shared/b", "shared/c"]
    for i in range(20):
        (root / f"g{i}").write_text("x")
    await too_many(node, "shared", recursive=False)  # one directory of too many entries
    deep = node.layout.root / "startup" / "1" / "2" / "3" / "4" / "5"
    deep.mkdir(parents=True)
    e = await too_many(node, "startup", recursive=True)
    assert "nested more than 4 deep" in e.message
    assert await node.list("startup/1/2", recursive=True) == ["startup/1/2/3", "startup/1/2/3/4", "startup/1/2/3/4/5"]
