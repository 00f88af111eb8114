"""The agent as a child process (`python -m shoal.nodeagent`), as the local provider starts it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import process
from shoal.nodeagent.state import RunningFile
from tests.tlshelp import give_node_identity

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING


async def _spawn_agent(address: str, node_root: Path, *extra: str) -> asyncio.subprocess.Process:
    # Its certificate where it looks for it, as the local provider puts it there.
    give_node_identity(node_root, "node-1", "pool1", agent_address=address)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shoal.nodeagent",
        "--server",
        address,
        "--node-root",
        str(node_root),
        "--ip",
        "127.0.1.7",
        "--pool",
        "pool1",
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _until(pred) -> None:
    while not pred():
        await asyncio.sleep(0.02)


def _running_groups(node_root: Path) -> dict[str, int]:
    return RunningFile(node_root / "volatile" / "running.json").load()


def _start(task_id: str, command: str) -> agent_pb2.ServerMessage:
    return agent_pb2.ServerMessage(
        start_tasks=agent_pb2.StartTasks(
            command_id=1,
            tasks=[
                agent_pb2.TaskAssignment(
                    attempt=agent_pb2.AttemptRef(job_id="j", task_id=task_id, attempt=1),
                    command_line=command,
                    required_slots=1,
                )
            ],
        )
    )


async def _run_task(plane, node_root: Path, task_id: str) -> int:
    await plane.send(_start(task_id, "sh -c 'sleep 100 & sleep 100'"))
    await plane.wait_event(task_id, RUNNING)
    await asyncio.wait_for(_until(lambda: f"j/{task_id}/1" in _running_groups(node_root)), 10)
    pgid = _running_groups(node_root)[f"j/{task_id}/1"]
    assert process.group_alive(pgid)
    return pgid


async def test_shutdown_message(plane_server, tmp_path: Path) -> None:
    plane = plane_server.plane
    node_root = tmp_path / "node"
    agent = await _spawn_agent(plane_server.address, node_root)
    try:
        reg = (await plane.wait_for(lambda: plane.registers))[0]
        assert reg.ip_address == "127.0.1.7" and reg.pool_id == "pool1"
        pgid = await _run_task(plane, node_root, "t")
        await plane.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="bye")))
        assert await asyncio.wait_for(agent.wait(), 20) == 0
        await asyncio.wait_for(_until(lambda: not process.group_alive(pgid)), 10)
        assert "agent node-1 (boot" in (node_root / "agent.log").read_text()  # (named by its certificate)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


async def test_sigterm(plane_server, tmp_path: Path) -> None:
    plane = plane_server.plane
    node_root = tmp_path / "node"
    agent = await _spawn_agent(plane_server.address, node_root)
    try:
        await plane.wait_for(lambda: plane.registers)
        pgid = await _run_task(plane, node_root, "t")
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 20) == 0
        await asyncio.wait_for(_until(lambda: not process.group_alive(pgid)), 10)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


async def test_restarted_agent_kills_orphans(plane_server, tmp_path: Path) -> None:
    """Without a watchdog (or if it died with the agent), a restarted agent kills what the last one left."""
    plane = plane_server.plane
    node_root = tmp_path / "node"
    agent = await _spawn_agent(plane_server.address, node_root, "--no-watchdog")
    second = None
    try:
        first_reg = (await plane.wait_for(lambda: plane.registers))[0]
        pgid = await _run_task(plane, node_root, "t")
        agent.kill()  # SIGKILL: the task is left behind
        await agent.wait()
        assert process.group_alive(pgid)

        second = await _spawn_agent(plane_server.address, node_root, "--no-watchdog")
        await plane.wait_for(lambda: len(plane.registers) >= 2)
        reg = plane.registers[1]
        assert reg.boot_id != first_reg.boot_id
        assert reg.node_id == "node-1"  # kept under volatile/node-id
        assert not reg.running and not reg.pending_events
        await asyncio.wait_for(_until(lambda: not process.group_alive(pgid)), 10)
        assert _running_groups(node_root) == {}
        # Swept after the default retention: the journal names it.
        assert '"j", "t"]' in (node_root / "volatile/retention.jsonl").read_text()
        second.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(second.wait(), 20) == 0
    finally:
        for p in (agent, second):
            if p is not None and p.returncode is None:
                p.kill()
                await p.wait()
        # Never leave a task behind, whatever failed.
        for g in _running_groups(node_root).values():
            if process.group_alive(g):
                os.killpg(g, signal.SIGKILL)
