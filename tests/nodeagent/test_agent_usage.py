"""What the agent measures of an attempt: CPU over the whole process tree, peak memory, I/O, wall time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.clock import ManualClock
from shoal.nodeagent.config import AgentConfig
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.runner import TaskRunner
from shoal.nodeagent.state import RunningFile
from shoal.nodeagent.usage import Tracked, UsageSampler

pytestmark = pytest.mark.timeout(60)

COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
MiB = 1024 * 1024

#: Burns CPU, holds ~50 MiB for a while and writes an 8 MiB file: run by a child of the task's shell,
#: so the usage must come from the tree, not the direct child (the shell, which only waits).
CHILD = (
    "import os, time\n"
    "b = bytearray(50 * 1024 * 1024)\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"
    "open('out.bin', 'wb').write(os.urandom(8 * 1024 * 1024))\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.4: pass\n"
    "time.sleep(1.5)\n"
)


def _runner(tmp_path: Path, sample_seconds: float) -> tuple[list[agent_pb2.TaskEvent], asyncio.Event, TaskRunner]:
    events: list[agent_pb2.TaskEvent] = []
    changed = asyncio.Event()
    layout = NodeLayout(tmp_path / "node")
    layout.create()

    def emit(e: agent_pb2.TaskEvent) -> None:
        events.append(e)
        changed.set()

    runner = TaskRunner(
        config=AgentConfig(server="x:1", node_root=layout.root, ip="127.0.0.1", usage_sample_seconds=sample_seconds),
        layout=layout,
        clock=ManualClock(),
        emit=emit,
        storage=lambda: None,
        node_identity=lambda: ("n1", "p1"),
        running_file=RunningFile(layout.running_file),
        source_env={"PATH": os.environ["PATH"]},
    )
    return events, changed, runner


async def _completed(events: list[agent_pb2.TaskEvent], changed: asyncio.Event) -> agent_pb2.TaskEvent:
    async def loop() -> agent_pb2.TaskEvent:
        while True:
            for e in events:
                if e.kind == COMPLETED:
                    return e
            changed.clear()
            await changed.wait()

    return await asyncio.wait_for(loop(), 40)


async def test_a_task_tree_is_measured(tmp_path: Path) -> None:
    events, changed, runner = _runner(tmp_path, sample_seconds=0.2)
    sampler = asyncio.create_task(runner.run_sampler())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    try:
        runner.start(
            agent_pb2.TaskAssignment(
                attempt=agent_pb2.AttemptRef(job_id="j", task_id="t", attempt=1),
                # The shell's child does the work, in the background, and the shell waits for it.
                command_line=f"sh -c '{sys.executable} {script} & wait'",
            )
        )
        ev = await _completed(events, changed)
    finally:
        sampler.cancel()
    assert ev.exit_code == 0
    s = ev.stats
    assert s.user_cpu_seconds + s.kernel_cpu_seconds > 0.2
    assert s.peak_memory_bytes >= 40 * MiB
    assert s.wall_clock_seconds >= 1.5
    # rchar/wchar: every byte through write(2), whatever the filesystem.
    assert s.write_bytes >= 8 * MiB
    assert s.write_ops >= 1 and s.read_bytes > 0 and s.read_ops > 0


async def test_a_command_that_never_ran_has_no_statistics(tmp_path: Path) -> None:
    events, changed, runner = _runner(tmp_path, sample_seconds=0)
    runner.start(
        agent_pb2.TaskAssignment(
            attempt=agent_pb2.AttemptRef(job_id="j", task_id="t", attempt=1), command_line="no-such-program-x"
        )
    )
    ev = await _completed(events, changed)
    assert not ev.HasField("stats")


async def test_a_killed_task_reports_what_it_used(tmp_path: Path) -> None:
    events, changed, runner = _runner(tmp_path, sample_seconds=0)
    runner.start(
        agent_pb2.TaskAssignment(
            attempt=agent_pb2.AttemptRef(job_id="j", task_id="t", attempt=1),
            command_line=f"{sys.executable} -c \"import time; open('go', 'w').close(); time.sleep(30)\"",
        )
    )
    wd = tmp_path / "node/workitems/j/job-1/t/wd"
    while not (wd / "go").exists():
        await asyncio.sleep(0.01)
    await runner.kill([agent_pb2.AttemptRef(job_id="j", task_id="t", attempt=1)], delete_files=False)
    ev = await _completed(events, changed)
    assert ev.HasField("stats") and ev.stats.wall_clock_seconds > 0


def test_the_sampler_sums_a_tree_in_one_pass(tmp_path: Path) -> None:
    """One pass attributes a process in a session of its own (an MPI rank) to the group of its parent."""
    import subprocess

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "rank = subprocess.Popen(['setsid', 'sleep', '30'])\n"
            "b = bytearray(30 * 1024 * 1024)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            "print(rank.pid, flush=True)\n"
            "time.sleep(30)\n",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        rank = int(parent.stdout.readline())
        sampler = UsageSampler(1.0)
        tracked = Tracked(lambda: [parent.pid], lambda: [parent.pid])
        sampler.track("a", tracked)
        sampler.sample()
        assert tracked.peak >= 30 * MiB
        exec_usage = tracked.take_exec_usage(parent.pid)
        assert exec_usage is not None and exec_usage.read_bytes > 0
    finally:
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.kill(rank, 9)
        os.killpg(parent.pid, 9)
        parent.wait()
