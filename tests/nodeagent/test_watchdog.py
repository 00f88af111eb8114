"""A killed agent's tasks die with it (the watchdog), in a cgroup where the machine allows and without one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import psutil
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import watchdog
from shoal.nodeagent.agent import EXIT_ROOT_BUSY, Agent
from shoal.nodeagent.config import AgentConfig
from shoal.nodeagent.state import RunningFile
from tests.nodeagent.test_agent_process import _spawn_agent, _start, _until

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING

#: Processes a task leaves in every way a task can: in its group, in a session of its own (setsid),
#: double-forked (reparented to init), and (only a cgroup catches this one) with an empty environment.
TASK = "/bin/sh -c 'sleep 1001 & setsid sleep 1002 & (sleep 1003 &) ; env -i setsid sleep 1004 & sleep 1005'"
MARKERS = ("1001", "1002", "1003", "1004", "1005")


def cgroups_work(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    cg = watchdog.make_task_cgroup(probe)
    if cg is None:
        return False
    cg.rmdir()
    return True


def task_processes(markers: tuple[str, ...] = MARKERS) -> dict[str, psutil.Process]:
    """The task's sleeps, by marker (each marker's sleep is the test's own: no other process sleeps that long)."""
    found = {}
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if len(cmd) == 2 and cmd[0].endswith("sleep") and cmd[1] in markers:
            found[cmd[1]] = p
    return found


@pytest.fixture
def cgroup_parent(tmp_path: Path):
    """A cgroup of the test's own to stand for an agent's parent cgroup: removing the leftovers in it
    never touches the cgroups of agents that other test runs on this machine have just made."""
    if not cgroups_work(tmp_path):
        pytest.skip("cgroup v2 is not writable here")
    own = watchdog.cgroup2_dir_of_self()
    assert own is not None
    parent = own / f"shoal-test-{os.getpid()}-{tmp_path.name}"
    parent.mkdir()
    yield parent
    watchdog.kill_cgroup(parent, wait=2)


@pytest.fixture
def no_leftovers():
    yield
    for p in task_processes().values():
        with contextlib.suppress(psutil.Error):
            p.kill()


@pytest.mark.parametrize("mode", ["cgroup", "process-groups"])
@pytest.mark.timeout(60)
async def test_a_killed_agents_tasks_die_with_it(plane_server, tmp_path: Path, mode: str, no_leftovers) -> None:
    if mode == "cgroup" and not cgroups_work(tmp_path):
        pytest.skip("cgroup v2 is not writable here")
    plane = plane_server.plane
    node_root = tmp_path / "node"
    extra = ("--no-task-cgroup",) if mode == "process-groups" else ()
    agent = await _spawn_agent(plane_server.address, node_root, *extra)
    try:
        await plane.wait_for(lambda: plane.registers)
        await plane.send(_start("t", TASK))
        await plane.wait_event("t", RUNNING)
        await asyncio.wait_for(_until(lambda: len(task_processes()) == len(MARKERS)), 10)
        procs = task_processes()
        cgroup = node_root.parent / "no-cgroup"
        if mode == "cgroup":
            parent = watchdog.cgroup2_dir_of_self()
            assert parent is not None
            cgroup = parent / watchdog.task_cgroup_name(node_root)
            assert str(procs["1004"].pid) in (cgroup / "cgroup.procs").read_text().split()
        agent.kill()  # SIGKILL: the agent can do nothing more
        await agent.wait()
        expected = set(MARKERS) if mode == "cgroup" else set(MARKERS) - {"1004"}
        _gone, alive = await asyncio.to_thread(psutil.wait_procs, [procs[m] for m in expected], 10)
        assert alive == [], [p.cmdline() for p in alive]
        if mode == "cgroup":
            await asyncio.wait_for(_until(lambda: not cgroup.exists()), 10)
        # The next agent on the root still sees the attempt the dead one ran (it keeps its directory).
        second = await _spawn_agent(plane_server.address, node_root, *extra)
        try:
            await plane.wait_for(lambda: len(plane.registers) >= 2)
            assert not plane.registers[1].running
            assert RunningFile(node_root / "volatile" / "running.json").load() == {}
            assert '"j", "t"]' in (node_root / "volatile/retention.jsonl").read_text()
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 20) == 0
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


@pytest.mark.timeout(60)
async def test_a_second_agent_on_a_root_in_use_exits(plane_server, tmp_path: Path) -> None:
    node_root = tmp_path / "node"
    first = await _spawn_agent(plane_server.address, node_root)
    try:
        await plane_server.plane.wait_for(lambda: plane_server.plane.registers)
        cfg = AgentConfig(server=plane_server.address, node_root=node_root, ip="127.0.0.1", root_lock_timeout=0.3)
        assert await asyncio.wait_for(Agent(cfg).run(), 20) == EXIT_ROOT_BUSY
    finally:
        first.kill()
        await first.wait()


@pytest.mark.timeout(60)
async def test_a_watchdog_that_dies_is_replaced(plane_server, run_agent) -> None:
    agent, _ = await run_agent()
    await plane_server.plane.wait_for(lambda: plane_server.plane.registers)
    assert agent.watchdog is not None
    first = agent.watchdog.proc
    os.kill(first.pid, signal.SIGKILL)

    def replaced() -> bool:
        assert agent.watchdog is not None
        return agent.watchdog.proc is not first and agent.watchdog.proc.poll() is None

    await asyncio.wait_for(_until(replaced), 10)


def test_empty_agent_cgroups_left_behind_are_removed(tmp_path: Path, cgroup_parent: Path) -> None:
    """When an agent and its watchdog were both killed, the next agent to start removes their empty cgroup."""
    parent = cgroup_parent
    for name in ("dead", "alive"):
        (tmp_path / name).mkdir()
    empty = parent / watchdog.task_cgroup_name(tmp_path / "dead")
    busy = parent / watchdog.task_cgroup_name(tmp_path / "alive")
    empty.mkdir()
    busy.mkdir()
    sleeper = psutil.Popen(["sleep", "1006"])
    try:
        watchdog.enter_cgroup(busy, sleeper.pid)
        watchdog.remove_stale_cgroups(parent, older_than=3600)
        assert empty.exists()  # too young: it may belong to an agent about to enter it
        watchdog.remove_stale_cgroups(parent, older_than=-1)
        assert not empty.exists() and busy.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        for cg in (empty, busy):
            with contextlib.suppress(OSError):
                watchdog.kill_cgroup(cg)


def _escaped_sleeper(cgroup: Path, marker: str) -> psutil.Popen:
    """A process of the agent's cgroup that made a cgroup of its own inside it (two levels down) and moved
    there, as a task running as the agent's user can: the agent's cgroup itself then has no process."""
    deep = cgroup / "escape" / "deeper"
    deep.mkdir(parents=True)
    sleeper = psutil.Popen(["sleep", marker])
    watchdog.enter_cgroup(deep, sleeper.pid)
    assert (cgroup / "cgroup.procs").read_text().split() == []
    return sleeper


@pytest.mark.parametrize("kill_file", [True, False], ids=["cgroup.kill", "freeze-and-kill"])
@pytest.mark.timeout(30)
def test_a_task_in_a_child_cgroup_it_made_dies_too(tmp_path: Path, kill_file: bool) -> None:
    if not cgroups_work(tmp_path):
        pytest.skip("cgroup v2 is not writable here")
    root = tmp_path / "node"
    root.mkdir()
    cgroup = watchdog.make_task_cgroup(root)
    assert cgroup is not None
    sleeper = _escaped_sleeper(cgroup, "1008")
    try:
        assert watchdog.kill_cgroup(cgroup, wait=5, use_kill_file=kill_file) == 1
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
        assert not cgroup.exists()  # its child cgroups were removed first
    finally:
        with contextlib.suppress(psutil.Error):
            sleeper.kill()
        with contextlib.suppress(OSError):
            watchdog.kill_cgroup(cgroup, wait=1)


def test_a_leftover_agent_cgroup_with_child_cgroups_is_removed(tmp_path: Path, cgroup_parent: Path) -> None:
    """An empty leftover whose task had made child cgroups in it goes too (bottom up)."""
    parent = cgroup_parent
    (tmp_path / "dead").mkdir()
    leftover = parent / watchdog.task_cgroup_name(tmp_path / "dead")
    (leftover / "a" / "b").mkdir(parents=True)
    try:
        watchdog.remove_stale_cgroups(parent, older_than=-1)
        assert not leftover.exists()
    finally:
        with contextlib.suppress(OSError):
            watchdog.kill_cgroup(leftover, wait=1)


def test_the_cgroup_name_tells_apart_directories_of_the_same_path(tmp_path: Path) -> None:
    """Two agents whose roots have the same path in different mount namespaces (each sees its own
    directory there) and share a cgroup parent must not take each other's cgroup for a leftover."""
    root = tmp_path / "node"
    root.mkdir()
    first = watchdog.task_cgroup_name(root)
    assert watchdog.task_cgroup_name(root) == first  # a restarted agent of the same root finds its own
    other = tmp_path / "other"
    other.mkdir()
    root.rename(tmp_path / "moved")
    other.rename(root)  # another directory at the same path
    assert watchdog.task_cgroup_name(root) != first
