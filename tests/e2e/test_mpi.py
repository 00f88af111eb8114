"""Multi-instance (MPI) tasks with real agents, a real Hydra mpiexec and real mpi4py ranks."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import psutil
import pytest
from google.protobuf import duration_pb2

from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.nodeagent.mpilauncher import build_shim
from shoal.v1 import common_pb2, job_pb2, pool_pb2, storage_pb2, task_pb2
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

if shutil.which("mpiexec", path=str(Path(sys.executable).parent)) is None:
    pytest.skip("the mpich wheel is not installed", allow_module_level=True)

APP = b"""
import os, signal, sys, time
from mpi4py import MPI
c = MPI.COMM_WORLD
if len(sys.argv) > 1 and sys.argv[1] == "crash":
    c.allreduce(1)
    if c.Get_rank() == 3:
        os.kill(os.getpid(), signal.SIGSEGV)  # a real crash, in the middle of the computation
    time.sleep(0.2)
if len(sys.argv) > 1 and sys.argv[1] == "sleep":
    time.sleep(600)
total = c.allreduce(c.Get_rank() + 1)
print(f"rank {c.Get_rank()} of {c.Get_size()} sum {total}", flush=True)
"""

HEAT = (Path(__file__).resolve().parents[2] / "examples" / "mpi" / "heat.py").read_bytes()


def upload(srv: ServerProcess, name: str, data: bytes) -> None:
    srv.storage.CreateContainer(storage_pb2.CreateContainerRequest(id="mpi-apps", exist_ok=True))
    srv.storage.UploadBlob(
        iter([storage_pb2.UploadBlobRequest(container="mpi-apps", blob_name=name, data=data, finish=True)])
    )


def mpi_task(
    task_id: str,
    nodes: int,
    ppn: int,
    program: str,
    *,
    coordination: str = "/bin/true",
    retries: int = 0,
    wall_clock: int = 0,
) -> task_pb2.TaskSpec:
    n = nodes * ppn
    cmd = (
        f"/bin/sh -c 'mpiexec -hosts $SHOAL_HOST_LIST -ppn {ppn} -n {n} -wdir $SHOAL_TASK_SHARED_DIR python {program}'"
    )
    constraints = common_pb2.TaskConstraints(max_task_retry_count=retries)
    if wall_clock:
        constraints.max_wall_clock_time.CopyFrom(duration_pb2.Duration(seconds=wall_clock))
    return task_pb2.TaskSpec(
        id=task_id,
        command_line=cmd,
        constraints=constraints,
        multi_instance_settings=task_pb2.MultiInstanceSettings(
            number_of_instances=nodes,
            coordination_command_line=coordination,
            common_resource_files=[common_pb2.ResourceFile(storage_container_name="mpi-apps", file_path=".")],
        ),
    )


@pytest.fixture
def mpi_server(tmp_path: Path):
    srv = ServerProcess(tmp_path / "data", heartbeat_timeout=3.0).start()
    upload(srv, "app.py", APP)
    upload(srv, "heat.py", HEAT)
    srv.create_pool("mpi", nodes=3, slots=1, enable_inter_node_communication=True)
    srv.wait_nodes("mpi", 3)
    srv.create_job("j", "mpi")
    try:
        yield srv
    finally:
        srv.stop()


def test_allreduce_over_two_and_three_nodes_and_heat_matches_serial(mpi_server: ServerProcess) -> None:
    srv = mpi_server
    srv.add(
        "j", [mpi_task("two", 2, 2, "app.py"), mpi_task("three", 3, 2, "app.py"), mpi_task("heat", 2, 2, "heat.py")]
    )
    done = srv.wait_job_tasks("j", timeout=120)
    for tid, ranks in (("two", 4), ("three", 6)):
        t = done[tid]
        assert t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, t
        out = srv.read_file("j", tid, "stdout.txt").decode()
        expected = ranks * (ranks + 1) // 2
        assert sorted(out.split("rank ")[1:]) == sorted(f"{r} of {ranks} sum {expected}\n" for r in range(ranks)), out
        subs = srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name=f"jobs/j/tasks/{tid}")).subtasks
        assert len({s.node_info.node_id for s in subs}) == len(subs) == ranks // 2
        # Every instance ended with the primary, which succeeded: each did its part.
        assert all(
            s.state == task_pb2.SUBTASK_STATE_COMPLETED
            and s.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
            and s.exit_code == 0
            and not s.HasField("failure_info")
            for s in subs
        ), subs
    heat = srv.read_file("j", "heat", "stdout.txt").decode()
    assert "4 ranks" in heat and "OK" in heat, heat
    # The proxies went through the compiled shim where it can be built here (the agents' build, cached).
    shims = list(srv.data_dir.glob("**/bin/shoal-mpi-launch"))
    assert len(shims) == 3
    compiled = build_shim() is not None
    assert all((s.read_bytes()[:4] == b"\x7fELF") == compiled for s in shims), shims


def test_failing_coordination_and_crashing_rank_fail_the_task(mpi_server: ServerProcess) -> None:
    srv = mpi_server
    srv.add(
        "j",
        [
            mpi_task(
                "coord",
                2,
                1,
                "app.py",
                coordination="/bin/sh -c 'test $SHOAL_INSTANCE_INDEX = 0 || exit 4'",
                retries=1,
            ),
            mpi_task("crash", 2, 2, "app.py crash"),
        ],
    )
    done = srv.wait_job_tasks("j", timeout=120)
    coord = done["coord"].execution_info
    assert coord.result == common_pb2.TASK_EXECUTION_RESULT_FAILURE
    assert coord.exit_code == 4 and coord.retry_count == 1
    assert "instance 1" in coord.failure_info.message
    crash = done["crash"].execution_info
    assert crash.result == common_pb2.TASK_EXECUTION_RESULT_FAILURE and crash.exit_code != 0


def _ranks_alive(data_dir: str) -> list[psutil.Process]:
    """The `app.py sleep` ranks of this test's cluster still running (their cwd is under its data dir)."""
    out = []
    for p in psutil.process_iter(["cmdline", "cwd", "status"]):
        cmd = p.info["cmdline"] or []
        mine = (p.info["cwd"] or "").startswith(data_dir) and p.info["status"] != psutil.STATUS_ZOMBIE
        if "app.py" in cmd and "sleep" in cmd and mine:
            out.append(p)
    return out


def test_wall_clock_ends_every_rank_on_every_node(mpi_server: ServerProcess) -> None:
    srv = mpi_server
    srv.add("j", [mpi_task("long", 2, 2, "app.py sleep", wall_clock=3)])
    wait_for("ranks to start", lambda: len(_ranks_alive(str(srv.data_dir))) >= 4, timeout=60)
    done = srv.wait_job_tasks("j", timeout=60)
    assert done["long"].execution_info.failure_info.code == "TaskEnded"
    assert done["long"].execution_info.exit_code == TERMINATED_EXIT_CODE
    (_, sub) = srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/long")).subtasks
    assert sub.result == common_pb2.TASK_EXECUTION_RESULT_FAILURE and sub.failure_info.code == "TaskEnded"
    assert "primary" in sub.failure_info.message
    wait_for("every rank to be gone", lambda: not _ranks_alive(str(srv.data_dir)), timeout=20)


def test_agent_killed_mid_task_retries_it_on_other_nodes(mpi_server: ServerProcess) -> None:
    srv = mpi_server
    srv.add("j", [mpi_task("victim", 2, 1, "app.py sleep")])
    t = wait_for("ranks running", lambda: len(_ranks_alive(str(srv.data_dir))) >= 2 and srv.task("j", "victim"))
    subs = srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/victim")).subtasks
    lost = subs[1].node_info.node_id
    os.kill(srv.agent_pids()[lost], signal.SIGKILL)
    again = wait_for(
        "the task on a fresh gang",
        lambda: (x := srv.task("j", "victim")).attempt > t.attempt and x.state == task_pb2.TASK_STATE_RUNNING and x,
        timeout=60,
    )
    assert again.execution_info.requeue_count == 1
    new_nodes = {
        s.node_info.node_id
        for s in srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/victim")).subtasks
    }
    assert lost not in new_nodes
    srv.tasks.TerminateTask(task_pb2.TerminateTaskRequest(name="jobs/j/tasks/victim"))
    wait_for("every rank to be gone", lambda: not _ranks_alive(str(srv.data_dir)), timeout=20)


def test_a_reboot_in_the_middle_of_a_gang_requeues_it_whole(mpi_server: ServerProcess) -> None:
    srv = mpi_server
    srv.add("j", [mpi_task("gang", 2, 1, "app.py sleep")])
    t = wait_for("ranks running", lambda: len(_ranks_alive(str(srv.data_dir))) >= 2 and srv.task("j", "gang"))
    subs = srv.tasks.ListSubtasks(task_pb2.ListSubtasksRequest(name="jobs/j/tasks/gang")).subtasks
    rebooted = subs[1].node_info.node_id
    before = srv.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/mpi/nodes/{rebooted}"))
    node = srv.pools.RebootNode(pool_pb2.RebootNodeRequest(name=f"pools/mpi/nodes/{rebooted}"))
    assert node.state == pool_pb2.NODE_STATE_REBOOTING
    # Every instance of the attempt ends (the primary's too), and the gang runs again as a new attempt.
    again = wait_for(
        "the gang again",
        lambda: (x := srv.task("j", "gang")).attempt > t.attempt and x.state == task_pb2.TASK_STATE_RUNNING and x,
        timeout=60,
    )
    assert again.execution_info.requeue_count == 1 and again.execution_info.retry_count == 0
    wait_for(
        "the rebooted node back",
        lambda: (
            (
                n := srv.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/mpi/nodes/{rebooted}"))
            ).last_boot_time.ToNanoseconds()
            > before.last_boot_time.ToNanoseconds()
            and n.state in (pool_pb2.NODE_STATE_IDLE, pool_pb2.NODE_STATE_RUNNING)
        ),
        timeout=60,
    )
    srv.tasks.TerminateTask(task_pb2.TerminateTaskRequest(name="jobs/j/tasks/gang"))
    wait_for("every rank to be gone", lambda: not _ranks_alive(str(srv.data_dir)), timeout=20)


def test_gang_runs_while_ordinary_tasks_compete(mpi_server: ServerProcess) -> None:
    srv = mpi_server
    ordinary = [task_pb2.TaskSpec(id=f"o{i}", command_line="sleep 0.3") for i in range(12)]
    srv.add("j", [*ordinary[:6], mpi_task("gang", 3, 1, "app.py"), *ordinary[6:]])
    done = srv.wait_job_tasks("j", timeout=120)
    assert all(t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS for t in done.values())
    gang = done["gang"].execution_info
    later = [done[f"o{i}"].execution_info.start_time.ToDatetime() for i in range(6, 12)]
    # Work queued after the gang did not overtake it once nodes were held for it.
    assert sum(s < gang.start_time.ToDatetime() for s in later) <= 2
    counts = srv.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    assert counts.succeeded == 13
    assert srv.pools.GetPool(pool_pb2.GetPoolRequest(name="pools/mpi")).current_nodes == 3


def test_shoal_run_one_line(mpi_server: ServerProcess, tmp_path: Path) -> None:
    import subprocess

    app = tmp_path / "hello.py"
    app.write_bytes(APP)
    cli = [sys.executable, "-m", "shoal.client.cli", "--address", mpi_server.address, "run", "--pool", "mpi"]
    out = subprocess.run(
        [*cli, "--nodes", "2", "--ppn", "2", "--file", str(app), "--", "python", "hello.py"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("rank ")[1:]) == [f"{r} of 4 sum 10\n" for r in range(4)], out.stdout
    failed = subprocess.run(
        [*cli, "--nodes", "2", "--", "python", "-c", "import sys; sys.exit(3)"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert failed.returncode == 3
    assert "FailureExitCode" in failed.stderr
