"""Controlling tasks and jobs on real agents: follow output, terminate, delete, reactivate, priorities."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def spec(task_id: str, cmd: str, **kw: object) -> task_pb2.TaskSpec:
    return task_pb2.TaskSpec(id=task_id, command_line=cmd, **kw)


def state(srv: ServerProcess, job: str, task: str) -> int:
    return srv.task(job, task).state


def test_follow_terminate_delete_and_reactivate(server: ServerProcess, http_dir: tuple[Path, str]) -> None:
    root, base = http_dir
    (root / "tool.sh").write_text("echo fetched over http\n")
    server.create_pool("p", nodes=1, slots=3)
    server.wait_nodes("p", 1)
    server.create_job("j", "p")
    server.add(
        "j",
        [
            spec(
                "talker",
                "/bin/sh -c 'for i in 1 2 3; do echo line $i; sleep 0.3; done; sh tool.sh'",
                resource_files=[common_pb2.ResourceFile(http_url=f"{base}/tool.sh", file_path="tool.sh")],
            ),
            spec("sleeper", "sleep 60"),
            spec("bad", "/bin/sh -c 'exit 7'"),
        ],
    )
    wait_for("talker running", lambda: state(server, "j", "talker") == task_pb2.TASK_STATE_RUNNING)
    chunks = server.tasks.ReadTaskFile(
        task_pb2.ReadTaskFileRequest(name="jobs/j/tasks/talker", path="stdout.txt", follow=True), timeout=30
    )
    followed = b"".join(c.data for c in chunks)
    assert followed == b"line 1\nline 2\nline 3\nfetched over http\n"

    wait_for("sleeper running", lambda: state(server, "j", "sleeper") == task_pb2.TASK_STATE_RUNNING)
    t = server.tasks.TerminateTask(task_pb2.TerminateTaskRequest(name="jobs/j/tasks/sleeper"))
    assert t.state == task_pb2.TASK_STATE_COMPLETED
    assert t.execution_info.failure_info.code == "TaskEnded"
    assert t.execution_info.exit_code == TERMINATED_EXIT_CODE
    node = server.nodes("p")[0]
    wait_for("sleeper's slot to be free", lambda: server.nodes("p")[0].running_task_slots == 0, timeout=20)

    bad = wait_for("bad to fail", lambda: (t := server.task("j", "bad")).state == task_pb2.TASK_STATE_COMPLETED and t)
    assert bad.execution_info.exit_code == 7
    server.tasks.ReactivateTask(task_pb2.ReactivateTaskRequest(name="jobs/j/tasks/bad"))
    again = wait_for(
        "bad to fail again",
        lambda: (t := server.task("j", "bad")).state == task_pb2.TASK_STATE_COMPLETED and t.attempt == 2 and t,
    )
    assert again.execution_info.exit_code == 7 and again.execution_info.retry_count == 0
    with pytest.raises(grpc.RpcError) as e:
        server.tasks.ReactivateTask(task_pb2.ReactivateTaskRequest(name="jobs/j/tasks/talker"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    task_dir = Path(node.root_directory) / "workitems" / "j" / "job-1" / "talker"
    assert (task_dir / "stdout.txt").exists()
    server.tasks.DeleteTask(task_pb2.DeleteTaskRequest(name="jobs/j/tasks/talker"))
    wait_for("talker's directory to be removed", lambda: not task_dir.exists(), timeout=20)
    with pytest.raises(grpc.RpcError) as e:
        server.task("j", "talker")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    server.jobs.DeleteJob(job_pb2.DeleteJobRequest(name="jobs/j"))
    wait_for("job directory to be removed", lambda: not (Path(node.root_directory) / "workitems" / "j").exists())


def test_priority_terminate_job_and_all_tasks_complete(server: ServerProcess) -> None:
    server.create_pool("p", nodes=1, slots=1)
    server.wait_nodes("p", 1)
    server.create_job("blocker", "p")
    server.add("blocker", [spec("hold", "sleep 1")])
    wait_for("hold running", lambda: state(server, "blocker", "hold") == task_pb2.TASK_STATE_RUNNING)
    # Added while the only slot is taken: the high-priority job must go first.
    server.create_job("low", "p", priority=-10)
    server.add("low", [spec(f"l{i}", "/bin/true") for i in range(3)])
    server.create_job("high", "p", priority=100, on_all_tasks_complete=job_pb2.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB)
    server.add("high", [spec(f"h{i}", "/bin/true") for i in range(3)])
    high = server.wait_job_tasks("high")
    low = server.wait_job_tasks("low")
    last_high = max(t.execution_info.start_time.ToDatetime() for t in high.values())
    first_low = min(t.execution_info.start_time.ToDatetime() for t in low.values())
    assert last_high <= first_low
    job = wait_for(
        "high to complete",
        lambda: (
            (j := server.jobs.GetJob(job_pb2.GetJobRequest(name="jobs/high"))).state == job_pb2.JOB_STATE_COMPLETED
            and j
        ),
    )
    assert job.execution_info.terminate_reason == "AllTasksComplete"

    server.add("low", [spec("long", "sleep 60"), spec("queued", "/bin/true")])
    wait_for("long running", lambda: state(server, "low", "long") == task_pb2.TASK_STATE_RUNNING)
    j = server.jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/low"))
    assert j.state == job_pb2.JOB_STATE_COMPLETED and j.execution_info.terminate_reason == "UserTerminate"
    assert state(server, "low", "long") == task_pb2.TASK_STATE_COMPLETED
    assert server.task("low", "long").execution_info.failure_info.code == "TaskEnded"
    with pytest.raises(grpc.RpcError) as e:
        server.add("low", [spec("late", "/bin/true")])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    node = server.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p/nodes/{server.nodes('p')[0].id}"))
    assert node.total_tasks_run >= 7
