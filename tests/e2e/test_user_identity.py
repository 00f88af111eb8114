"""Tasks as users of their own, end to end (a real `shoal server` and its local agents, as root): a task of
one job cannot read another job's task directory; an ADMIN task can."""

from __future__ import annotations

import pytest

from shoal.v1 import identity_pb2, job_pb2, pool_pb2, task_pb2
from tests.e2e.harness import ServerProcess, sh, wait_for
from tests.taskusers import SKIP_REASON, can_make_users, open_dir

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not can_make_users(), reason=SKIP_REASON),
]

ID = identity_pb2
TASK_SCOPE = ID.UserIdentity(auto_user=ID.AutoUserSpecification(scope=ID.AUTO_USER_SCOPE_TASK))
ADMIN = ID.UserIdentity(auto_user=ID.AutoUserSpecification(elevation_level=ID.ELEVATION_LEVEL_ADMIN))
#: Job `a`'s task's file, as tasks of job `b` on the same node name it.
SECRET = "$SHOAL_NODE_ROOT_DIR/workitems/a/job-1/holder/wd/secret.txt"


def test_a_task_cannot_read_another_jobs_task_directory_an_admin_task_can() -> None:
    # The data directory (and so the node roots) must be reachable by other users: pytest's tmp_path is not.
    with open_dir() as data:
        server = ServerProcess(data / "data").start()
        try:
            server.create_pool("p", nodes=1, slots=4)
            (node,) = server.wait_nodes("p", 1)
            assert node.task_user_isolation and node.agent_user == "root"
            server.create_job("a", "p")
            server.create_job("b", "p")
            holder = sh("echo s3cret > secret.txt; exec sleep 60")
            server.add("a", [task_pb2.TaskSpec(id="holder", command_line=holder, user_identity=TASK_SCOPE)])
            # (Read by the agent, root, through the API.)
            wait_for("job a's secret", lambda: _read(server, "a", "holder", "wd/secret.txt") == b"s3cret\n")
            peek = sh(f"id -u; cat {SECRET}")
            server.add(
                "b",
                [
                    task_pb2.TaskSpec(id="task-scope", command_line=peek, user_identity=TASK_SCOPE),
                    # The default (the pool's non-admin user) is not job a's task's user either.
                    task_pb2.TaskSpec(id="pool-scope", command_line=peek),
                    task_pb2.TaskSpec(id="admin", command_line=peek, user_identity=ADMIN),
                ],
            )
            done = server.wait_job_tasks("b")
            for refused in ("task-scope", "pool-scope"):
                info = done[refused].execution_info
                assert info.exit_code != 0, refused
                assert int(server.read_file("b", refused, "stdout.txt")) != 0
                assert b"Permission denied" in server.read_file("b", refused, "stderr.txt")
            assert done["admin"].execution_info.exit_code == 0
            assert server.read_file("b", "admin", "stdout.txt") == b"0\ns3cret\n"
            server.jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/a"))
            wait_for("job a's end", lambda: server.task("a", "holder").state == task_pb2.TASK_STATE_COMPLETED)
            got = server.pools.GetNode(pool_pb2.GetNodeRequest(name=node.name))
            assert got.task_user_isolation
        finally:
            server.stop()


def _read(server: ServerProcess, job: str, task: str, path: str) -> bytes | None:
    try:
        return server.read_file(job, task, path)
    except Exception:
        return None
