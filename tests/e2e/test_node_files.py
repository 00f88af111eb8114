"""Node and task files end to end: a real server and its local agent, through the Python client.

Following `agent.log` shows the lines the agent writes while it follows (a task over its wall clock
limit makes the agent log one), and cancelling the follow makes the agent let go of the file; a
task's output file is described and deleted (the task's directory stays); a file a task left in the
node's shared directory is deleted, and a link there goes as a link.
"""

from __future__ import annotations

import time
from datetime import timedelta

import psutil
import pytest

from shoal.client import Client, FailedPrecondition, NotFound, PermissionDenied, TaskSpec
from tests.e2e.harness import ServerProcess, sh, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def agent_log_descriptors(server: ServerProcess, node_id: str) -> int:
    """How many descriptors the node's agent holds on its agent.log (its own log handler holds one)."""
    agent = psutil.Process(server.agent_pids()[node_id])
    return sum(1 for f in agent.open_files() if f.path.endswith("/agent.log"))


def test_follow_agent_log_then_task_and_node_files(server: ServerProcess, client: Client) -> None:
    server.create_pool("p", 1)
    (node,) = server.wait_nodes("p", 1)
    client.jobs.create(id="j", pool_id="p")
    before = agent_log_descriptors(server, node.id)

    # Follow agent.log; a task killed at its wall clock limit makes the agent log a line meanwhile.
    seen = b""
    with client.pools.read_node_file("p", node.id, "agent.log", follow=True, timeout=120) as log:
        seen += next(log)
        assert seen  # what the agent logged so far
        wait_for("the agent to follow its log", lambda: agent_log_descriptors(server, node.id) == before + 1)
        client.tasks.add(
            "j",
            TaskSpec(id="slow", command_line="sleep 60", max_wall_clock_time=timedelta(seconds=1)),
        )
        for chunk in log:
            seen += chunk
            if b"exceeded its wall clock limit" in seen:
                break
    assert b"exceeded its wall clock limit" in seen
    # Cancelled: the server cancels its call to the agent, and the agent closes the file.
    wait_for("the agent to stop following", lambda: agent_log_descriptors(server, node.id) == before)
    assert client.pools.node_file_properties("p", node.id, "agent.log").size >= len(seen)

    # A task's output file: its properties, then it is deleted; the task's directory stays.
    script = "mkdir -p out && printf 12345 > out/result.txt && printf x > $SHOAL_NODE_SHARED_DIR/left.txt"
    script += " && ln -s /etc/passwd $SHOAL_NODE_SHARED_DIR/passwd"
    client.tasks.add("j", TaskSpec(id="out", command_line=sh(script)))
    done = {t.id: t for t in client.tasks.wait("j", timeout=60)}
    assert done["out"].exit_code == 0, done["out"]
    f = client.tasks.file_properties("j", "out", "wd/out/result.txt")
    assert (f.size, f.is_directory) == (5, False)
    with pytest.raises(FailedPrecondition) as e:
        client.tasks.delete_file("j", "out", "wd/out")
    assert e.value.reason == "FILE_IS_DIRECTORY"
    client.tasks.delete_file("j", "out", "wd/out/result.txt")
    with pytest.raises(NotFound):
        client.tasks.file_properties("j", "out", "wd/out/result.txt")
    with pytest.raises(PermissionDenied) as pd:
        client.tasks.delete_file("j", "out", "", recursive=True)
    assert pd.value.reason == "FILE_PROTECTED"
    assert {x.path for x in client.tasks.files("j", "out")} >= {"stdout.txt", "wd"}

    # A node file the task left behind, and a link: deleted as themselves.
    assert client.pools.node_file_properties("p", node.id, "shared/left.txt").size == 1
    link = client.pools.node_file_properties("p", node.id, "shared/passwd")
    assert link.size == len("/etc/passwd")  # the link, not /etc/passwd
    client.pools.delete_node_file("p", node.id, "shared/left.txt")
    client.pools.delete_node_file("p", node.id, "shared/passwd")
    assert client.pools.node_files("p", node.id, "shared") == []
    with pytest.raises(NotFound):
        client.pools.node_file_properties("p", node.id, "shared/left.txt")
    with open("/etc/passwd", "rb") as passwd:
        assert passwd.read(5)
    # The node serves its files as ever.
    started = time.monotonic()
    assert b"".join(client.pools.read_node_file("p", node.id, "agent.log")).startswith(seen[:100])
    assert time.monotonic() - started < 30
