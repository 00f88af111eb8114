"""What a task can reach through the API: never a file outside its directory, never a node's error."""

from __future__ import annotations

import collections
from pathlib import Path

import grpc
import pytest

from shoal.client.errors import from_rpc_error
from shoal.v1 import job_pb2, task_pb2
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

READS = 300


def test_reading_a_file_a_task_swaps_for_a_link_never_gives_the_link_target(server: ServerProcess) -> None:
    """A task swaps `wd/race` between a plain file and a link to /etc/passwd while the client reads it
    through ReadTaskFile: the file's content or a clear error (the link is not followed), never
    /etc/passwd, never NODE_UNAVAILABLE."""
    server.create_pool("p", nodes=1)
    server.wait_nodes("p", 1)
    server.create_job("j", "p")
    swap = (
        "/bin/sh -c 'while :; do echo safe > f.tmp; mv -f f.tmp race; ln -s /etc/passwd l.tmp; "
        "mv -f l.tmp race; rm -f race; ln -s /etc/passwd race; done'"
    )
    server.add("j", [task_pb2.TaskSpec(id="race", command_line=swap)])
    wait_for("the task to run", lambda: server.task("j", "race").state == task_pb2.TASK_STATE_RUNNING)
    outcomes: collections.Counter[str] = collections.Counter()
    for _ in range(READS):
        try:
            data = server.read_file("j", "race", "wd/race")
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            outcomes[f"{err.code.name} {err.reason}"] += 1
        else:
            outcomes["/etc/passwd" if b"root:" in data else f"read {data!r}"] += 1
        try:
            listing = server.tasks.ListTaskFiles(
                task_pb2.ListTaskFilesRequest(name="jobs/j/tasks/race", path="wd"), timeout=30
            )
            outcomes["listed"] += all(f.size < 100 for f in listing.files)
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            outcomes[f"list {err.code.name} {err.reason}"] += 1
    server.jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/j"))
    allowed = {
        "read b'safe\\n'",
        "read b''",
        "NOT_FOUND FILE_NOT_FOUND",
        "PERMISSION_DENIED SYMLINK_NOT_FOLLOWED",
        "listed",
    }
    assert outcomes["/etc/passwd"] == 0, outcomes
    assert set(outcomes) <= allowed, outcomes
    assert outcomes["PERMISSION_DENIED SYMLINK_NOT_FOLLOWED"] > 0, outcomes  # the race was on
    assert outcomes["listed"] == READS


def test_an_output_pattern_through_a_link_to_root_keeps_the_node(server: ServerProcess, tmp_path: Path) -> None:
    """`ln -s / r` with `**/*` uploaded on completion: the task completes, its node stays IDLE (no
    requeue to freeze the next node), and only the file inside the task's directory is uploaded."""
    from shoal.v1 import common_pb2, storage_pb2

    server.create_pool("p", nodes=1)
    server.wait_nodes("p", 1)
    server.create_job("j", "p")
    server.storage.CreateContainer(storage_pb2.CreateContainerRequest(id="out"))
    out = common_pb2.OutputFile(
        file_pattern="**/*",
        container_name="out",
        path="r",
        upload_condition=common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION,
    )
    cmd = "/bin/sh -c 'ln -s / r && echo mine > mine.txt'"
    server.add("j", [task_pb2.TaskSpec(id="t", command_line=cmd, output_files=[out])])
    done = server.wait_job_tasks("j", timeout=60)["t"]
    assert done.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, done.execution_info
    assert done.execution_info.requeue_count == 0
    blobs = server.storage.ListBlobs(storage_pb2.ListBlobsRequest(container="out"))
    assert [b.name for b in blobs.blobs] == ["r/mine.txt"]
    log = server.read_file("j", "t", "fileuploadout.txt").decode()
    assert "skipped wd/r: a symbolic link" in log
