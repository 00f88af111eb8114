"""A pool of real agents runs real commands: the Batch workflow end to end."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.v1 import common_pb2, job_pb2, pool_pb2, storage_pb2, task_pb2
from tests.e2e.harness import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def upload(srv: ServerProcess, container: str, name: str, data: bytes) -> None:
    srv.storage.CreateContainer(storage_pb2.CreateContainerRequest(id=container, exist_ok=True))
    srv.storage.UploadBlob(
        iter([storage_pb2.UploadBlobRequest(container=container, blob_name=name, data=data, finish=True)])
    )


def download(srv: ServerProcess, container: str, name: str) -> bytes:
    return b"".join(
        c.data for c in srv.storage.DownloadBlob(storage_pb2.DownloadBlobRequest(container=container, blob_name=name))
    )


def spec(task_id: str, cmd: str, **kw: object) -> task_pb2.TaskSpec:
    return task_pb2.TaskSpec(id=task_id, command_line=cmd, **kw)


def test_tasks_run_with_files_env_retries_and_failures(server: ServerProcess) -> None:
    upload(server, "inputs", "data/a.txt", b"hello from storage\n")
    start = common_pb2.StartTask(
        command_line="/bin/sh -c 'echo ready > $SHOAL_NODE_SHARED_DIR/started'", wait_for_success=True
    )
    server.create_pool("p", nodes=2, slots=2, start_task=start)
    nodes = server.wait_nodes("p", 2)
    assert {n.ip_address for n in nodes} <= {f"127.0.1.{i}" for i in range(1, 255)}
    assert all(n.start_task_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS for n in nodes)
    server.create_job(
        "j", "p", common_environment_settings=[common_pb2.EnvironmentSetting(name="GREETING", value="hi")]
    )
    server.storage.CreateContainer(storage_pb2.CreateContainerRequest(id="outputs", exist_ok=True))
    specs = [
        spec(
            "files",
            "/bin/sh -c 'cat data/a.txt > out.txt; echo $GREETING $SHOAL_TASK_ID $AZ_BATCH_JOB_ID; "
            "cat $SHOAL_NODE_SHARED_DIR/started'",
            resource_files=[
                common_pb2.ResourceFile(storage_container_name="inputs", blob_prefix="data/", file_path=".")
            ],
            output_files=[
                common_pb2.OutputFile(file_pattern="out.txt", container_name="outputs", path="files/out.txt")
            ],
        ),
        spec("noshell", "echo $HOME 'two words'"),
        spec("fails", "/bin/sh -c 'exit 3'", constraints=common_pb2.TaskConstraints(max_task_retry_count=2)),
        spec(
            "retry-once",
            "/bin/sh -c 'test -f $SHOAL_NODE_SHARED_DIR/../../marker-$SHOAL_JOB_ID && exit 0; "
            "touch $SHOAL_NODE_SHARED_DIR/../../marker-$SHOAL_JOB_ID; exit 1'",
            constraints=common_pb2.TaskConstraints(max_task_retry_count=3),
        ),
        spec("notfound", "/no/such/program --flag", constraints=common_pb2.TaskConstraints(max_task_retry_count=3)),
        spec(
            "wallclock",
            "/bin/sh -c 'sleep 60 & sleep 60'",
            constraints=common_pb2.TaskConstraints(
                max_wall_clock_time=duration_pb2.Duration(seconds=1), max_task_retry_count=2
            ),
        ),
        spec(
            "missingblob",
            "/bin/true",
            resource_files=[common_pb2.ResourceFile(storage_container_name="inputs", blob_prefix="nope/")],
        ),
    ]
    result = server.add("j", specs)
    assert all(r.status == task_pb2.ADD_TASK_STATUS_SUCCESS for r in result.results)
    done = server.wait_job_tasks("j", timeout=90)

    ok = done["files"]
    assert ok.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    assert ok.execution_info.exit_code == 0
    assert ok.node_info.node_id in {n.id for n in nodes}
    assert download(server, "outputs", "files/out.txt") == b"hello from storage\n"
    assert server.read_file("j", "files", "stdout.txt") == b"hi files j\nready\n"
    names = {
        f.path
        for f in server.tasks.ListTaskFiles(
            task_pb2.ListTaskFilesRequest(name="jobs/j/tasks/files", recursive=True)
        ).files
    }
    assert {"stdout.txt", "stderr.txt", "wd/out.txt", "wd/data/a.txt"} <= names

    # No shell: $HOME is passed through literally, quotes are honoured.
    assert server.read_file("j", "noshell", "stdout.txt") == b"$HOME two words\n"

    f = done["fails"].execution_info
    assert (f.exit_code, f.retry_count, f.failure_info.code) == (3, 2, "FailureExitCode")
    assert f.failure_info.category == common_pb2.ERROR_CATEGORY_USER_ERROR

    r = done["retry-once"].execution_info
    assert (r.result, r.retry_count) == (common_pb2.TASK_EXECUTION_RESULT_SUCCESS, 1)

    nf = done["notfound"].execution_info
    assert nf.failure_info.code == "CommandProgramNotFound"
    assert nf.retry_count == 0 and not nf.HasField("exit_code")

    wc = done["wallclock"].execution_info
    assert wc.failure_info.code == "TaskEnded"
    assert wc.failure_info.category == common_pb2.ERROR_CATEGORY_SERVER_ERROR
    # Batch's 0xC000013A, whichever signal ended it (not 143 from the SIGTERM).
    assert wc.exit_code == TERMINATED_EXIT_CODE
    assert wc.retry_count == 0
    assert (wc.end_time.ToDatetime() - wc.start_time.ToDatetime()).total_seconds() < 10

    assert done["missingblob"].execution_info.failure_info.code == "BlobNotFound"

    counts = server.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    assert (counts.completed, counts.succeeded, counts.failed) == (7, 3, 4)
    node = server.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p/nodes/{ok.node_info.node_id}"))
    assert node.total_tasks_run >= 1 and len(node.recent_tasks) >= 1


def test_resize_up_and_down_and_delete_pool(server: ServerProcess) -> None:
    from tests.e2e.harness import wait_for
    from tests.service.test_validation import details

    server.create_pool("r", nodes=1)
    # As in Batch, a pool takes one resize at a time: its node is still being made.
    with pytest.raises(grpc.RpcError) as refused:
        server.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/r", target_nodes=3))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(refused.value)[0] == "POOL_RESIZING"
    server.wait_nodes("r", 1)
    server.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/r", target_nodes=3))
    server.wait_nodes("r", 3)
    pids = server.agent_pids()
    assert len(pids) == 3
    roots = {n.id: Path(n.root_directory) for n in server.nodes("r")}
    assert all(root.is_dir() and root.parent == server.data_dir / "nodes" for root in roots.values())
    server.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/r", target_nodes=1))

    wait_for("pool to shrink", lambda: len(server.nodes("r")) == 1)
    wait_for("agents to exit", lambda: len(server.agent_pids()) == 1, timeout=20)
    (kept,) = (n.id for n in server.nodes("r"))
    # As in Batch, every file of a removed node is deleted.
    gone = [root for node_id, root in roots.items() if node_id != kept]
    wait_for("the removed nodes' directories to be deleted", lambda: not any(r.exists() for r in gone), timeout=20)
    assert roots[kept].is_dir()
    pool = server.pools.GetPool(pool_pb2.GetPoolRequest(name="pools/r"))
    assert pool.allocation_state == pool_pb2.ALLOCATION_STATE_STEADY and pool.current_nodes == 1
    server.pools.DeletePool(pool_pb2.DeletePoolRequest(name="pools/r"))
    wait_for("pool to be gone", lambda: not server.pools.ListPools(pool_pb2.ListPoolsRequest()).pools, timeout=20)
    wait_for("agents to exit", lambda: not server.agent_pids(), timeout=20)
    wait_for("the last node's directory to be deleted", lambda: not roots[kept].exists(), timeout=20)
