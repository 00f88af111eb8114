"""A multi-instance task in containers, on two real agents and the node's real engine: every instance runs
in the image (its coordination command, the application, and what `shoal-mpi-launch` Execs into it, as
MPI launchers start their proxies). Skipped, with the reason, where the engine cannot run here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2
from tests import containerkit

from .test_agent_containers import remove_node_containers
from .test_agent_multi_instance import COMPLETED, COORDINATED, _assignments, _send, two_nodes

__all__ = ["two_nodes"]  # (the fixture, used by name)

pytestmark = pytest.mark.timeout(120)

#: Only inside an instance's container: the idle first process the agent mounts there.
IN_CONTAINER = "test -x /.shoal-pause"


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    problem = containerkit.engine_problem()
    if problem:
        pytest.skip(f"no container engine here: {problem}")
    yield containerkit.busybox_image()
    for node in ("node0", "node1"):
        remove_node_containers(tmp_path / node)


async def test_every_instance_runs_in_the_image(two_nodes, tmp_path: Path, image: str) -> None:
    planes, _agents = two_nodes
    for ps in planes:
        ps.storage.put("common", "c/common.txt", b"common\n")
    coordination = (
        f"sh -c '{IN_CONTAINER} && echo coord > $SHOAL_TASK_SHARED_DIR/coord-$SHOAL_INSTANCE_INDEX; "
        "(sleep 100 > /dev/null 2>&1 &)'"
    )
    command = (
        f"sh -c '{IN_CONTAINER} && echo primary-in-container; cat $SHOAL_TASK_SHARED_DIR/c/common.txt; "
        # (As ssh does, the launcher joins its words into one command line for a shell on the other side.)
        f'shoal-mpi-launch 127.0.1.2 {IN_CONTAINER} "&&" echo remote-in-container \\$SHOAL_INSTANCE_INDEX; '
        "echo rc=$?'"
    )
    settings = common_pb2.TaskContainerSettings(image_name=image)
    assignments = _assignments(planes, tmp_path, command, coordination, container=settings)
    for ps, a in zip(planes, assignments, strict=True):
        await _send(ps, agent_pb2.ServerMessage(start_tasks=agent_pb2.StartTasks(command_id=1, tasks=[a])))
    for ps in planes:
        await ps.plane.wait_event("mi", COORDINATED, timeout=60)
    shared = tmp_path / "node0" / "workitems" / "j" / "job-1" / "mi"
    assert (shared / "coord-0").read_text() == (shared / "coord-1").read_text() == "coord\n"

    ref = agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=0)
    await _send(planes[0], agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(command_id=2, attempt=ref)))
    done = await planes[0].plane.wait_event("mi", COMPLETED, timeout=60)
    out = (shared / "stdout.txt").read_text()
    assert done.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, (done, out, (shared / "stderr.txt").read_text())
    assert "primary-in-container\ncommon\nremote-in-container 1\nrc=0\n" in out, (shared / "stderr.txt").read_text()
    assert done.container_info.container_id

    ref1 = agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=1)
    await _send(planes[1], agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(command_id=3, attempts=[ref1])))
    ended = await planes[1].plane.wait_event("mi", COMPLETED, timeout=60)
    assert ended.failure_info.code == "TaskEnded"
