"""A multi-instance task in the kit's MPI image, on two real agents and the node's real engine: the
application command runs MPICH's Hydra `mpiexec` in the primary's container; Hydra starts its proxy on each
host through `shoal-mpi-launch` (the variables the agent sets for a multi-instance task), which the other
agent Execs into its instance's container; one mpi4py rank per instance computes an allreduce. Skipped,
with the reason, where the engine or the image cannot be had here."""

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

pytestmark = pytest.mark.timeout(180)

#: Each instance's coordination command marks its own container's file system with its index (the ranks'
#: variables are not theirs: Hydra gives every rank mpiexec's environment).
COORDINATION = "sh -c 'echo $SHOAL_INSTANCE_INDEX > /tmp/shoal-instance'"
#: Each rank says where it runs: in a container of the task (the idle first process the agent mounts
#: there), in which instance's, with which Python, and the sum of the ranks' numbers plus one.
APP = b"""
import os, sys
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.Get_rank() + 1)
here = os.path.exists("/.shoal-pause")
with open("/tmp/shoal-instance") as f:
    instance = f.read().strip()
print(f"rank {c.Get_rank()} of {c.Get_size()} sum {total} container {here} instance {instance} "
      f"python {sys.executable}", flush=True)
"""


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    problem = containerkit.engine_problem() or containerkit.mpi_problem()
    if problem:
        pytest.skip(f"no MPI image here: {problem}")
    yield containerkit.mpi_image()
    for node in ("node0", "node1"):
        remove_node_containers(tmp_path / node)


async def test_mpiexec_runs_an_mpi4py_rank_in_each_instance_container(two_nodes, tmp_path: Path, image: str) -> None:
    planes, _agents = two_nodes
    for ps in planes:
        ps.storage.put("common", "c/app.py", APP)
    # Hydra's proxies go through the shim (HYDRA_LAUNCHER_EXEC, found first on PATH); one rank per host.
    command = (
        f"sh -c 'mpiexec -hosts $SHOAL_HOST_LIST -ppn 1 -n 2 {containerkit.MPI_LOOPBACK_OPTIONS} "
        "-wdir $SHOAL_TASK_SHARED_DIR python3 c/app.py'"
    )
    settings = common_pb2.TaskContainerSettings(image_name=image)
    assignments = _assignments(planes, tmp_path, command, COORDINATION, container=settings)
    for ps, a in zip(planes, assignments, strict=True):
        await _send(ps, agent_pb2.ServerMessage(start_tasks=agent_pb2.StartTasks(command_id=1, tasks=[a])))
    for ps in planes:
        await ps.plane.wait_event("mi", COORDINATED, timeout=60)

    ref = agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=0)
    await _send(planes[0], agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(command_id=2, attempt=ref)))
    done = await planes[0].plane.wait_event("mi", COMPLETED, timeout=120)
    shared = tmp_path / "node0" / "workitems" / "j" / "job-1" / "mi"
    out = (shared / "stdout.txt").read_text()
    err = (shared / "stderr.txt").read_text()
    assert done.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, (done, out, err)
    assert done.container_info.container_id
    # Each rank ran in its own instance's container, under the image's Python (not the node's).
    assert sorted(line for line in out.splitlines() if line.startswith("rank ")) == [
        "rank 0 of 2 sum 3 container True instance 0 python /usr/bin/python3",
        "rank 1 of 2 sum 3 container True instance 1 python /usr/bin/python3",
    ], (out, err)

    ref1 = agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=1)
    await _send(planes[1], agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(command_id=3, attempts=[ref1])))
    ended = await planes[1].plane.wait_event("mi", COMPLETED, timeout=60)
    assert ended.failure_info.code == "TaskEnded"
