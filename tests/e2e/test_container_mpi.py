"""A multi-instance task in containers through the public API: a real `shoal server` and its local agents,
a pool whose container configuration lists the kit's MPI image, and a task whose container settings name
it. The primary's container runs MPICH's Hydra `mpiexec`; Hydra starts its proxy on each node through
`shoal-mpi-launch`, which that node's agent Execs into the task's container there; one mpi4py rank per
node computes an allreduce. Skipped, with the reason, where the engine or the image cannot be had here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.nodeagent.containers import node_label
from shoal.v1 import common_pb2, task_pb2
from tests import containerkit
from tests.e2e.harness import ServerProcess
from tests.e2e.test_mpi import upload
from tests.nodeagent.test_agent_container_mpi4py import APP, COORDINATION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture
def image() -> str:
    problem = containerkit.engine_problem() or containerkit.mpi_problem()
    if problem:
        pytest.skip(f"no MPI image here: {problem}")
    return containerkit.mpi_image()


@pytest.fixture
def container_server(tmp_path: Path, image: str) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", heartbeat_timeout=3.0).start()
    try:
        upload(srv, "app.py", APP)
        config = common_pb2.ContainerConfiguration(container_image_names=[image])
        srv.create_pool("cmpi", nodes=2, slots=1, enable_inter_node_communication=True, container_configuration=config)
        srv.wait_nodes("cmpi", 2)
        srv.create_job("j", "cmpi")
        yield srv
    finally:
        # The agents' node roots, known by their launcher shims, before the server's stop takes its agents.
        roots = {shim.parent.parent for shim in srv.data_dir.glob("**/bin/shoal-mpi-launch")}
        srv.stop()
        for root in roots:
            listed = containerkit.podman("ps", "--all", "--quiet", "--filter", f"label={node_label(root)}")
            if listed.stdout.split():
                containerkit.podman("rm", "--force", "--ignore", "--time", "0", *listed.stdout.split())


def test_mpi4py_ranks_run_in_the_task_containers_of_two_nodes(container_server: ServerProcess, image: str) -> None:
    srv = container_server
    command = (
        f"/bin/sh -c 'mpiexec -hosts $SHOAL_HOST_LIST -ppn 1 -n 2 {containerkit.MPI_LOOPBACK_OPTIONS} "
        "-wdir $SHOAL_TASK_SHARED_DIR python3 app.py'"
    )
    spec = task_pb2.TaskSpec(
        id="ranks",
        command_line=command,
        container_settings=common_pb2.TaskContainerSettings(image_name=image),
        multi_instance_settings=task_pb2.MultiInstanceSettings(
            number_of_instances=2,
            coordination_command_line=COORDINATION,
            common_resource_files=[common_pb2.ResourceFile(storage_container_name="mpi-apps", file_path=".")],
        ),
    )
    srv.add("j", [spec])
    task = srv.wait_job_tasks("j", timeout=180)["ranks"]
    out = srv.read_file("j", "ranks", "stdout.txt").decode()
    info = task.execution_info
    assert info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, (
        task,
        out,
        srv.read_file("j", "ranks", "stderr.txt"),
    )
    assert info.container_info.container_id and info.container_info.state
    # Each rank ran in the task's container of its own node, under the image's Python.
    assert sorted(line for line in out.splitlines() if line.startswith("rank ")) == [
        "rank 0 of 2 sum 3 container True instance 0 python /usr/bin/python3",
        "rank 1 of 2 sum 3 container True instance 1 python /usr/bin/python3",
    ], out
    subs = srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/ranks")).subtasks
    assert len({s.node_info.node_id for s in subs}) == len(subs) == 2
    assert all(s.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS and s.exit_code == 0 for s in subs), subs
