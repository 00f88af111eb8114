"""TaskRunner on its own, with a ManualClock and no control plane."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.clock import ManualClock
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.nodeagent.config import AgentConfig
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.runner import TaskRunner
from shoal.nodeagent.state import RunningFile
from shoal.v1 import common_pb2

COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED


def _runner(
    tmp_path: Path,
) -> tuple[ManualClock, list[agent_pb2.TaskEvent], asyncio.Event, TaskRunner]:
    """A runner on a manual clock, the events it emits, and an event set at each one."""
    clock = ManualClock()
    events: list[agent_pb2.TaskEvent] = []
    changed = asyncio.Event()
    layout = NodeLayout(tmp_path / "node")
    layout.create()

    def emit(e: agent_pb2.TaskEvent) -> None:
        events.append(e)
        changed.set()

    runner = TaskRunner(
        config=AgentConfig(server="x:1", node_root=layout.root, ip="127.0.0.1", kill_grace_seconds=0.5),
        layout=layout,
        clock=clock,
        emit=emit,
        storage=lambda: None,
        node_identity=lambda: ("n1", "p1"),
        running_file=RunningFile(layout.running_file),
        source_env={"PATH": os.environ["PATH"]},
    )
    return clock, events, changed, runner


async def _completed(events, changed: asyncio.Event, task_id: str) -> agent_pb2.TaskEvent:
    async def loop() -> agent_pb2.TaskEvent:
        while True:
            for e in events:
                if e.kind == COMPLETED and e.attempt.task_id == task_id:
                    return e
            changed.clear()
            await changed.wait()

    return await asyncio.wait_for(loop(), 20)


async def test_wall_clock_on_the_injected_clock_and_retention(tmp_path: Path) -> None:
    clock, events, changed, runner = _runner(tmp_path)
    a = agent_pb2.TaskAssignment(
        attempt=agent_pb2.AttemptRef(job_id="j", task_id="t", attempt=2),
        command_line="sh -c 'touch started; sleep 100'",
        max_wall_clock_seconds=60,
        retention_seconds=120,
        required_slots=2,
    )
    runner.start(a)
    assert events[0].kind == agent_pb2.TASK_EVENT_KIND_RUNNING  # at once
    assert runner.running_slots() == 2 and runner.is_task_active("j", "t")
    wd = tmp_path / "node/workitems/j/job-1/t/wd"
    while not (wd / "started").exists():
        await asyncio.sleep(0.01)
    clock.advance(59)
    await asyncio.sleep(0.05)
    assert not [e for e in events if e.kind == COMPLETED]
    clock.advance(1)
    c = await _completed(events, changed, "t")
    assert c.failure_info.code == "TaskEnded" and c.failure_info.category == common_pb2.ERROR_CATEGORY_SERVER_ERROR
    # Batch's code for a task it ended (0xC000013A), not the 143 of the SIGTERM that ended it.
    assert c.exit_code == TERMINATED_EXIT_CODE == -1073741510 and c.result == common_pb2.TASK_EXECUTION_RESULT_FAILURE
    assert runner.running_slots() == 0 and not runner.is_task_active("j", "t")
    task_dir = wd.parent
    assert runner.retention.deadline("j", "t") == (clock.now() + timedelta(seconds=120)).timestamp()
    assert await runner.sweep() == []
    clock.advance(121)
    assert await runner.sweep() == [task_dir]
    assert not task_dir.exists()


async def test_kill_during_staging_and_unsafe_ids(tmp_path: Path) -> None:
    _clock, events, changed, runner = _runner(tmp_path)
    bad = agent_pb2.TaskAssignment(
        attempt=agent_pb2.AttemptRef(job_id="..", task_id="t", attempt=1), command_line="true"
    )
    runner.start(bad)
    c = await _completed(events, changed, "t")
    assert c.failure_info.code == "ResourceDirectoryCreateFailed" and not c.HasField("exit_code")

    # A resource file from an http server that never answers: killed while staging.
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        port = sock.getsockname()[1]
        slow = agent_pb2.TaskAssignment(
            attempt=agent_pb2.AttemptRef(job_id="j", task_id="slow", attempt=1),
            command_line="true",
            resource_files=[common_pb2.ResourceFile(http_url=f"http://127.0.0.1:{port}/f", file_path="f")],
        )
        runner.start(slow)
        await asyncio.sleep(0.1)
        await asyncio.wait_for(runner.kill([slow.attempt], delete_files=False), 10)
        c = await _completed(events, changed, "slow")
        assert c.failure_info.code == "TaskEnded" and not c.HasField("exit_code")
        # Its command never started; its output files are there all the same, empty.
        slow_dir = Path(c.task_root_directory)
        assert (slow_dir / "stdout.txt").read_bytes() == b"" and (slow_dir / "stderr.txt").read_bytes() == b""
    finally:
        sock.close()


async def test_attempts_beyond_the_slots_wait_in_order_and_can_be_withdrawn(tmp_path: Path) -> None:
    _clock, events, changed, runner = _runner(tmp_path)
    runner.set_slots(1)

    def assignment(task_id: str, command: str) -> agent_pb2.TaskAssignment:
        return agent_pb2.TaskAssignment(
            attempt=agent_pb2.AttemptRef(job_id="j", task_id=task_id, attempt=1), command_line=command
        )

    running = agent_pb2.TASK_EVENT_KIND_RUNNING
    runner.start(assignment("a", "sleep 100"))
    runner.start(assignment("b", "true"))
    runner.start(assignment("c", "true"))
    # Only `a` runs; b and c wait for the slot, reported as accepted but not RUNNING.
    assert [(e.attempt.task_id, e.kind) for e in events] == [("a", running)]
    assert runner.running_slots() == 1 and runner.waiting() == 2
    assert {r.task_id for r in runner.active_attempts()} == {"a", "b", "c"}
    # A waiting attempt that is killed never runs: it completes as ended.
    await runner.kill([agent_pb2.AttemptRef(job_id="j", task_id="b", attempt=1)], delete_files=False)
    b = await _completed(events, changed, "b")
    assert b.failure_info.code == "TaskEnded" and not b.HasField("exit_code")
    assert not (tmp_path / "node/workitems/j/job-1/b").exists()
    # The slot frees: c starts at once, without anyone asking.
    await runner.kill([agent_pb2.AttemptRef(job_id="j", task_id="a", attempt=1)], delete_files=False)
    c = await _completed(events, changed, "c")
    assert c.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS and c.exit_code == 0
    kinds = [(e.attempt.task_id, e.kind) for e in events]
    assert kinds.index(("a", COMPLETED)) < kinds.index(("c", running))
    assert runner.running_slots() == 0 and runner.waiting() == 0


async def test_a_subtask_leaves_the_wall_clock_to_its_primary(tmp_path: Path) -> None:
    """An instance other than the primary outlives the task's limit by a margin: the primary's end ends it."""
    from shoal.nodeagent.runner import SUBTASK_WALL_CLOCK_MARGIN

    clock, events, changed, runner = _runner(tmp_path)
    a = agent_pb2.TaskAssignment(
        attempt=agent_pb2.AttemptRef(job_id="j", task_id="mpi", attempt=1, instance=1),
        command_line="never-run-on-a-subtask",
        max_wall_clock_seconds=60,
        multi_instance=agent_pb2.MultiInstance(
            instance_index=1,
            number_of_instances=2,
            coordination_command_line="true",
            task_shared_dir=str(tmp_path / "shared"),
        ),
    )
    runner.start(a)
    while not [e for e in events if e.kind == agent_pb2.TASK_EVENT_KIND_COORDINATED]:
        changed.clear()
        await asyncio.wait_for(changed.wait(), 20)
    clock.advance(60 + SUBTASK_WALL_CLOCK_MARGIN / 2)
    await asyncio.sleep(0.05)
    assert not [e for e in events if e.kind == COMPLETED]
    clock.advance(SUBTASK_WALL_CLOCK_MARGIN)
    c = await _completed(events, changed, "mpi")
    assert c.failure_info.code == "TaskEnded" and c.exit_code == TERMINATED_EXIT_CODE


async def _until(pred, timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


async def test_the_sweeper_wakes_at_the_earliest_retention_deadline(tmp_path: Path) -> None:
    """Not up to a sweep period late: a directory goes when its retention runs out, on the injected clock."""
    clock, events, changed, runner = _runner(tmp_path)
    sweeper = asyncio.create_task(runner.run_sweeper(max_wait=3600))
    try:
        dirs = {}
        for task_id, keep in (("late", 500), ("soon", 30)):  # the second comes due first
            runner.start(
                agent_pb2.TaskAssignment(
                    attempt=agent_pb2.AttemptRef(job_id="j", task_id=task_id, attempt=1),
                    command_line="true",
                    retention_seconds=keep,
                )
            )
            await _completed(events, changed, task_id)
            dirs[task_id] = tmp_path / "node/workitems/j/job-1" / task_id
        await asyncio.sleep(0.05)
        assert dirs["soon"].exists()
        clock.advance(29)
        await asyncio.sleep(0.05)
        assert dirs["soon"].exists()
        clock.advance(1)
        await _until(lambda: not dirs["soon"].exists())
        assert dirs["late"].exists() and runner.retention.next_deadline() == runner.retention.deadline("j", "late")
        clock.advance(470)
        await _until(lambda: not dirs["late"].exists())
        assert runner.retention.next_deadline() is None
    finally:
        sweeper.cancel()


def test_next_sweep_delay() -> None:
    from shoal.nodeagent.retention import next_sweep_delay

    assert next_sweep_delay(None, 100.0, 60.0) == 60.0
    assert next_sweep_delay(130.0, 100.0, 60.0) == 30.0
    assert next_sweep_delay(90.0, 100.0, 60.0) == 0.0
    assert next_sweep_delay(1e12, 100.0, 60.0) == 60.0
