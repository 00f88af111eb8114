"""UploadNodeLogs through the public API: the control plane checks the request and asks the node's agent,
whose NodeService (the agent's own, over a temporary node root) uploads its log files of the window to the
account's storage through the server's agent port, as a real agent does.

A real in-process server; a joined node whose agent stream is scripted (`ScriptedAgent`) and whose
NodeService is the agent's `NodeFileService` with a `StorageClient` on the agent port, holding the
credential the server's Welcome gave.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2_grpc
from shoal.nodeagent.fileservice import NodeFileService
from shoal.nodeagent.layout import NodeAccess, NodeLayout
from shoal.nodeagent.storage import StorageClient
from shoal.server.app import ShoalServer
from shoal.tlsconfig import server_credentials
from shoal.v1 import pool_pb2, storage_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import refused
from tests.service.test_validation import details
from tests.tlshelp import agent_channel

pytestmark = pytest.mark.timeout(90)

NOW = datetime.now(UTC)


def ts(when: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(when)
    return t


def log_line(when: datetime, text: str) -> bytes:
    """A line as the agent's logging writes it (local time, milliseconds after a comma)."""
    return (when.astimezone().strftime("%Y-%m-%d %H:%M:%S") + f",000 INFO shoal.nodeagent.agent: {text}\n").encode()


def write_log(path: Path, first: datetime, modified: datetime, body: bytes = b"") -> bytes:
    data = log_line(first, "started") + body
    path.write_bytes(data)
    os.utime(path, (modified.timestamp(), modified.timestamp()))
    return data


@dataclass
class LogNode:
    stubs: Stubs
    node: str
    layout: NodeLayout
    agent: ScriptedAgent
    #: What each log file held.
    logs: dict[str, bytes]


@pytest.fixture
async def log_node(server: ShoalServer, tmp_path: Path) -> AsyncIterator[LogNode]:
    layout = NodeLayout(tmp_path / "node")
    layout.create()
    root = layout.root
    logs = {
        # Written from an hour ago until now.
        "agent.log": write_log(root / "agent.log", NOW - timedelta(hours=1), NOW, b"more\n"),
        # Rotated: written three to two days ago.
        "agent.log.1": write_log(root / "agent.log.1", NOW - timedelta(days=3), NOW - timedelta(days=2)),
    }
    # The agent's stdout: no time on its first line (a traceback, say): its start is unknown.
    logs["agent.out"] = b"Traceback (most recent call last):\n  boom\n"
    (root / "agent.out").write_bytes(logs["agent.out"])
    # A link in a log's place is not followed; nor is anything but the agent's logs taken.
    outside = tmp_path / "secret.txt"
    outside.write_text("not for upload")
    (root / "agent.log.2").symlink_to(outside)
    (root / "shared" / "agent.log").write_text("a task's file")
    (root / "notes.txt").write_text("not a log")

    storage_channel = agent_channel(server)
    access = NodeAccess()
    node_server = grpc.aio.server()
    agent_pb2_grpc.add_NodeServiceServicer_to_server(
        NodeFileService(layout, lambda job, task: None, storage=lambda: StorageClient(storage_channel, access=access)),
        node_server,
    )
    ident = server.security.issue_node("logs-node", "p")
    port = node_server.add_secure_port(
        "127.0.0.1:0", server_credentials(ident.cert_pem, ident.key_pem, client_ca_pem=ident.ca_pem)
    )
    await node_server.start()
    agent: ScriptedAgent | None = None
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            await stubs.pools.CreatePool(
                pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
            )
            agent = ScriptedAgent(server, "p", "127.0.0.1", node_service_port=port)
            welcome = await agent.connect()
            # As the agent does at Welcome: its storage calls act for the pool's account.
            access.account, access.credential = welcome.account, welcome.credential
            yield LogNode(stubs, f"pools/p/nodes/{welcome.node_id}", layout, agent, logs)
    finally:
        if agent is not None:
            await agent.close()
        await node_server.stop(None)
        await storage_channel.close()


async def blobs_under(stubs: Stubs, container: str, prefix: str) -> dict[str, bytes]:
    listed = await stubs.storage.ListBlobs(storage_pb2.ListBlobsRequest(container=container, prefix=prefix))
    out = {}
    for b in listed.blobs:
        chunks = stubs.storage.DownloadBlob(storage_pb2.DownloadBlobRequest(container=container, blob_name=b.name))
        out[b.name] = b"".join([c.data async for c in chunks])
    return out


async def test_the_logs_of_the_window_land_in_the_container(log_node: LogNode) -> None:
    stubs = log_node.stubs
    containers = await stubs.storage.ListContainers(storage_pb2.ListContainersRequest())
    assert "node-logs" not in [c.id for c in containers.containers]
    answer = await stubs.pools.UploadNodeLogs(
        pool_pb2.UploadNodeLogsRequest(
            name=log_node.node, container="node-logs", start_time=ts(NOW - timedelta(hours=2))
        )
    )
    directory = answer.virtual_directory_name
    pool_id, node_id, stamp = directory.split("/")
    assert (pool_id, f"pools/p/nodes/{node_id}") == ("p", log_node.node)
    when, unique = stamp.split("-")
    made = datetime.strptime(when, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    assert abs(made - datetime.now(UTC)) < timedelta(minutes=5) and len(unique) == 8
    assert answer.number_of_files_uploaded == 2
    got = await blobs_under(stubs, "node-logs", directory + "/")
    logs = log_node.logs
    assert got == {f"{directory}/agent.log": logs["agent.log"], f"{directory}/agent.out": logs["agent.out"]}

    # An older window: the rotated log, and the stdout whose start is unknown; each upload has its own directory.
    again = await stubs.pools.UploadNodeLogs(
        pool_pb2.UploadNodeLogsRequest(
            name=log_node.node,
            container="node-logs",
            start_time=ts(NOW - timedelta(days=4)),
            end_time=ts(NOW - timedelta(days=2, hours=12)),
        )
    )
    assert again.virtual_directory_name != directory and again.number_of_files_uploaded == 2
    got = await blobs_under(stubs, "node-logs", again.virtual_directory_name + "/")
    assert sorted(name.rsplit("/", 1)[1] for name in got) == ["agent.log.1", "agent.out"]
    assert got[f"{again.virtual_directory_name}/agent.log.1"] == logs["agent.log.1"]

    # A window after every write: nothing to upload.
    none = await stubs.pools.UploadNodeLogs(
        pool_pb2.UploadNodeLogsRequest(
            name=log_node.node, container="node-logs", start_time=ts(NOW + timedelta(days=1))
        )
    )
    assert none.number_of_files_uploaded == 0
    assert await blobs_under(stubs, "node-logs", none.virtual_directory_name + "/") == {}


async def test_bad_requests_name_their_field(log_node: LogNode) -> None:
    pools = log_node.stubs.pools
    start = ts(NOW)
    cases = [
        (pool_pb2.UploadNodeLogsRequest(name=log_node.node, container="Bad_Name", start_time=start), "container"),
        (pool_pb2.UploadNodeLogsRequest(name=log_node.node, container=""), "container"),
        (pool_pb2.UploadNodeLogsRequest(name=log_node.node, container="logs"), "start_time"),
        (
            pool_pb2.UploadNodeLogsRequest(
                name=log_node.node, container="logs", start_time=start, end_time=ts(NOW - timedelta(seconds=1))
            ),
            "end_time",
        ),
    ]
    for request, field in cases:
        err = await refused(pools.UploadNodeLogs(request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD_NODE_LOGS")
        assert field in [f for f, _ in details(err)[1]], (field, details(err))
    await refused(
        pools.UploadNodeLogs(pool_pb2.UploadNodeLogsRequest(name="pools/p", container="logs", start_time=start)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_NAME",
    )
    await refused(
        pools.UploadNodeLogs(
            pool_pb2.UploadNodeLogsRequest(name="pools/p/nodes/nope", container="logs", start_time=start)
        ),
        grpc.StatusCode.NOT_FOUND,
        "NODE_NOT_FOUND",
    )


async def test_a_node_not_connected_is_refused(server: ShoalServer, log_node: LogNode) -> None:
    await log_node.agent.close()
    node = server.cp.node("p", log_node.node.rsplit("/", 1)[1])
    async with asyncio.timeout(20):
        while node.connected:
            await asyncio.sleep(0.02)
    await refused(
        log_node.stubs.pools.UploadNodeLogs(
            pool_pb2.UploadNodeLogsRequest(name=log_node.node, container="logs", start_time=ts(NOW))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NODE_NOT_CONNECTED",
    )
