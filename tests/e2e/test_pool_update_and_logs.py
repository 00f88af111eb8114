"""UploadNodeLogs and UpdatePool end to end: a real server, its local agents, the Python client.

A node's agent uploads its own logs to a storage container (made for the upload), where they can be
downloaded and are what the agent wrote; a pool's start task changed by UpdatePool leaves the running
node as it is, and a node that joins afterwards (the pool grown by the same call) runs the new one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoal.client import Client, FailedPrecondition, StartTaskSpec
from tests.e2e.harness import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def read_node_file(client: Client, pool_id: str, node_id: str, path: str) -> bytes:
    with client.pools.read_node_file(pool_id, node_id, path) as chunks:
        return b"".join(chunks)


def test_a_nodes_logs_land_in_a_container_and_download(server: ServerProcess, client: Client, tmp_path: Path) -> None:
    client.pools.create(id="p", target_nodes=1)
    (node,) = client.pools.wait_nodes_idle("p", timeout=60)
    assert "node-logs" not in [c.id for c in client.storage.list_containers()]

    up = client.pools.upload_node_logs("p", node.id, "node-logs", start_time=datetime.now(UTC) - timedelta(hours=1))
    assert up.container == "node-logs" and up.virtual_directory_name.startswith(f"p/{node.id}/")
    names = sorted(b.name.rsplit("/", 1)[1] for b in client.storage.list_blobs("node-logs", up.virtual_directory_name))
    # The agent's log, and its stdout and stderr (the local provider keeps them in agent.out).
    assert names == ["agent.log", "agent.out"] and up.number_of_files_uploaded == 2

    paths = client.storage.download_prefix("node-logs", up.virtual_directory_name + "/", tmp_path / "logs")
    got = {p.name: p.read_bytes() for p in paths}
    # What the agent had written when it uploaded: the start of its log as the node has it now.
    now = read_node_file(client, "p", node.id, "agent.log")
    assert got["agent.log"] and now.startswith(got["agent.log"])
    assert b"serving files on" in got["agent.log"]

    # A window that ended before the agent started: its log is not in it.
    old = client.pools.upload_node_logs(
        "p",
        node.id,
        "node-logs",
        start_time=datetime.now(UTC) - timedelta(days=3),
        end_time=datetime.now(UTC) - timedelta(days=2),
    )
    uploaded = [b.name.rsplit("/", 1)[1] for b in client.storage.list_blobs("node-logs", old.virtual_directory_name)]
    assert "agent.log" not in uploaded and old.number_of_files_uploaded == len(uploaded)


def test_a_changed_start_task_runs_on_nodes_that_join_afterwards(server: ServerProcess, client: Client) -> None:
    client.pools.create(id="p", target_nodes=1, start_task=StartTaskSpec(command_line="echo before-update"))
    (first,) = client.pools.wait_nodes_idle("p", timeout=60)
    assert read_node_file(client, "p", first.id, "startup/stdout.txt") == b"before-update\n"
    etag = client.pools.get("p").etag

    updated = client.pools.update(
        "p", start_task=StartTaskSpec(command_line="echo after-update"), metadata={"changed": "yes"}, etag=etag
    )
    assert updated.start_task is not None and updated.start_task.command_line == "echo after-update"
    assert updated.etag != etag and updated.metadata == {"changed": "yes"}

    # A new target through the same call: the new node runs the new start task; the first keeps its own.
    grown = client.pools.update("p", target_nodes=2, etag=updated.etag)
    assert grown.target_nodes == 2
    with pytest.raises(FailedPrecondition) as e:
        client.pools.update("p", target_nodes=3)
    assert e.value.reason == "POOL_RESIZING"
    nodes = client.pools.wait_nodes_idle("p", count=2, timeout=60)
    (second,) = [n for n in nodes if n.id != first.id]
    assert read_node_file(client, "p", second.id, "startup/stdout.txt") == b"after-update\n"
    assert read_node_file(client, "p", first.id, "startup/stdout.txt") == b"before-update\n"
    assert client.pools.node("p", first.id).state in ("idle", "running")

    # Kept across a server restart.
    server.stop()
    server.start()
    with Client.connect(server.address, timeout=30) as again:
        pool = again.pools.get("p")
        assert pool.start_task is not None and pool.start_task.command_line == "echo after-update"
        assert pool.metadata == {"changed": "yes"} and pool.target_nodes == 2
