"""A task's directory goes when its retention runs out, and reading it then says so (Batch's TaskFilesCleanedup)."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2

from shoal.client import NotFound, TaskFilesCleanedUp
from shoal.client.errors import from_rpc_error
from shoal.v1 import common_pb2, task_pb2
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_files_read_after_retention_answer_task_files_cleaned_up(server: ServerProcess) -> None:
    server.create_pool("p", nodes=1)
    server.wait_nodes("p", 1)
    server.create_job("j", "p")
    keep = common_pb2.TaskConstraints(retention_time=duration_pb2.Duration(seconds=2))
    server.add(
        "j",
        [
            task_pb2.TaskSpec(id="brief", command_line="/bin/echo hello", constraints=keep),
            task_pb2.TaskSpec(id="kept", command_line="/bin/echo kept"),
        ],
    )
    done = server.wait_job_tasks("j", timeout=60)
    completed_at = time.monotonic()
    assert server.read_file("j", "brief", "stdout.txt") == b"hello\n"
    # A file that is not there, while the task's directory is, is just not found.
    with pytest.raises(grpc.RpcError) as ei:
        server.read_file("j", "kept", "nope.txt")
    assert from_rpc_error(ei.value).reason == "FILE_NOT_FOUND"

    def cleaned() -> str:
        try:
            server.read_file("j", "brief", "stdout.txt")
        except grpc.RpcError as e:
            return from_rpc_error(e).reason
        return ""

    # The sweep follows the earliest deadline: well within the old 60 s sweep period.
    reason = wait_for("the directory to be cleaned up", cleaned, timeout=15, every=0.1)
    assert reason == "TASK_FILES_CLEANED_UP"
    assert time.monotonic() - completed_at < 15
    err = None
    try:
        server.tasks.ListTaskFiles(task_pb2.ListTaskFilesRequest(name="jobs/j/tasks/brief"), timeout=30)
    except grpc.RpcError as e:
        err = from_rpc_error(e)
    assert isinstance(err, TaskFilesCleanedUp) and isinstance(err, NotFound)
    assert err.code == grpc.StatusCode.NOT_FOUND and "retention" in err.message
    assert done["kept"].state == task_pb2.TASK_STATE_COMPLETED
    assert server.read_file("j", "kept", "stdout.txt") == b"kept\n"
