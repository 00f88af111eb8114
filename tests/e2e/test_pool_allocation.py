"""Removing named nodes and stopping a resize, end to end (a real `shoal server`, its local agents, the CLI)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from shoal.client import Client, TaskSpec
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def _cli(server: ServerProcess, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_remove_a_busy_node_then_stop_a_resize(server: ServerProcess, client: Client) -> None:
    client.pools.create(id="p", target_nodes=3, task_slots_per_node=1)
    client.pools.wait_steady("p", count=3, timeout=60)
    client.pools.wait_nodes_idle("p", count=3, timeout=60)
    client.jobs.create(id="j", pool_id="p")
    client.tasks.add("j", TaskSpec(id="long", command_line="/bin/sh -c 'sleep 20'"))
    busy = wait_for("the task to run", lambda: client.tasks.get("j", "long").node_id or None)
    pids = server.agent_pids()
    # The CLI removes exactly that node; its task is requeued onto another.
    out = _cli(server, "node", "remove", "p", busy, "--deallocation", "requeue")
    assert "target 2" in out
    moved = wait_for(
        "the task on another node",
        lambda: (t := client.tasks.get("j", "long")).node_id not in ("", busy) and t.state.value == "running" and t,
        timeout=60,
    )
    assert moved.requeue_count >= 1 and moved.retry_count == 0
    pool = client.pools.wait_steady("p", count=2, timeout=60)
    assert pool.target_nodes == 2 and busy not in {n.id for n in client.pools.nodes("p")}
    if busy in pids:
        wait_for("the removed node's agent to exit", lambda: not psutil.pid_exists(pids[busy]) or None)
    # A resize stopped at once: what is made stays, the pool settles there with ResizeStopped.
    # (Stopped from here, at once: a CLI process starting on a busy machine may come after the resize is
    # done, and find nothing to stop. The CLI shows the outcome.)
    client.pools.resize("p", target_nodes=5)
    client.pools.stop_resize("p")
    pool = client.pools.wait_steady("p", timeout=60)
    assert "ResizeStopped" in _cli(server, "pool", "get", "p")
    assert 2 <= pool.target_nodes <= 5 and pool.current_nodes == pool.target_nodes
    assert [e.code for e in pool.resize_errors] == ["ResizeStopped"]
    client.jobs.terminate("j")
