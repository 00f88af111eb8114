"""Disabling and enabling a node's scheduling on a real server with real local agents, through the Python
client: each option's fate for the task running on the node (REQUEUE: it runs again on the other node;
TERMINATE: it is killed and fails, not rerun; TASK_COMPLETION: it finishes), the node OFFLINE once no task
runs there and no new task on it while disabled, refusals from the same state, node counts, and a server
SIGKILL and restart that leaves a disabled node disabled.

Every pool has two nodes of one slot each, so that "the other node" is the only place a task can go.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from shoal.client import (
    Client,
    FailedPrecondition,
    Node,
    NodeCounts,
    NodeState,
    SchedulingState,
    Task,
    TaskSpec,
    TaskState,
)
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

ALREADY = "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE"


def up(client: Client, job_id: str = "j", **job: object) -> list[str]:
    """Pool ``p`` of two one-slot nodes, both idle, and job ``job_id`` on it; the node ids."""
    client.pools.create(id="p", target_nodes=2, task_slots_per_node=1)
    nodes = client.pools.wait_nodes_idle("p", count=2, timeout=60)
    client.jobs.create(id=job_id, pool_id="p", **job)  # type: ignore[arg-type]
    return sorted(n.id for n in nodes)


def add(client: Client, job_id: str, *specs: TaskSpec) -> None:
    results = client.tasks.add_many(job_id, specs)
    assert all(r.ok for r in results), results


def running(client: Client, job_id: str, task_id: str, *, node: str | None = None, timeout: float = 30) -> Task:
    """Wait until the task runs (on ``node`` when given) and return it."""
    return wait_for(
        f"{job_id}/{task_id} running" + (f" on {node}" if node else ""),
        lambda: (
            (t := client.tasks.get(job_id, task_id)).state == TaskState.RUNNING
            and (node is None or t.node_id == node)
            and t
        ),
        timeout=timeout,
    )


def completed(client: Client, job_id: str, task_id: str, timeout: float = 30) -> Task:
    return wait_for(
        f"{job_id}/{task_id} completed",
        lambda: (t := client.tasks.get(job_id, task_id)).state == TaskState.COMPLETED and t,
        timeout=timeout,
    )


def node_is(client: Client, node_id: str, state: NodeState, scheduling: SchedulingState, timeout: float = 30) -> Node:
    """Wait until the node is in ``state`` with ``scheduling`` and return it."""
    return wait_for(
        f"node {node_id} {state} and scheduling {scheduling}",
        lambda: (n := client.pools.node("p", node_id)).state == state and n.scheduling_state == scheduling and n,
        timeout=timeout,
    )


def counts(client: Client) -> NodeCounts | None:
    return next((c.dedicated for c in client.pools.node_counts() if c.pool_id == "p"), None)


def pid_file_command(tmp_path: Path, name: str, seconds: int) -> str:
    """A command that writes its pid to ``<name>.<attempt>`` and sleeps ``seconds`` in that same process."""
    return f"/bin/sh -c 'echo $$ > {tmp_path}/{name}.$SHOAL_TASK_ATTEMPT; exec sleep {seconds}'"


def pid_of(tmp_path: Path, name: str, attempt: int) -> int:
    """The pid the attempt wrote (waiting for it to be written)."""
    path = tmp_path / f"{name}.{attempt}"
    text: str = wait_for(f"{path.name} written", lambda: path.read_text().strip() if path.exists() else None)
    return int(text)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def gate(tmp_path: Path, name: str) -> tuple[str, Path]:
    """A command that runs until the test creates a file, and that file: a task that ends on the test's word."""
    go = tmp_path / f"{name}.go"
    return f"/bin/sh -c 'while [ ! -e {go} ]; do sleep 0.05; done'", go


def test_requeue_moves_the_task_to_the_other_node_and_the_node_takes_none_until_enabled(
    client: Client, tmp_path: Path
) -> None:
    up(client)
    add(client, "j", TaskSpec(id="long", command_line=pid_file_command(tmp_path, "long", 30)))
    first = running(client, "j", "long")
    first_pid = pid_of(tmp_path, "long", first.attempt)
    a = first.node_id
    b = next(n.id for n in client.pools.nodes("p") if n.id != a)

    node = client.pools.disable_node_scheduling("p", a, option="requeue")
    assert node.scheduling_state is SchedulingState.DISABLED

    # The task is stopped on A and runs again on B: a new attempt, no retry counted.
    moved = running(client, "j", "long", node=b)
    assert moved.attempt > first.attempt
    assert moved.retry_count == 0 and moved.requeue_count == first.requeue_count + 1
    # The first attempt's process on A was stopped; the new one runs.
    wait_for("the first attempt's process to end", lambda: gone(first_pid))
    assert not gone(pid_of(tmp_path, "long", moved.attempt))
    off = client.pools.wait_node_state("p", a, NodeState.OFFLINE, timeout=30)
    assert off.scheduling_state is SchedulingState.DISABLED
    assert off.running_tasks_count == 0 and off.running_task_slots == 0

    # Refusals from the same state, for the disabled node and for an enabled one.
    with pytest.raises(FailedPrecondition) as e:
        client.pools.disable_node_scheduling("p", a, option="terminate")
    assert e.value.reason == ALREADY
    with pytest.raises(FailedPrecondition) as e:
        client.pools.enable_node_scheduling("p", b)
    assert e.value.reason == ALREADY

    # Nothing new lands on A: with B busy, new tasks wait; once B frees up they all run there.
    add(client, "j", *(TaskSpec(id=f"s{i}", command_line="/bin/true") for i in range(3)))
    assert client.tasks.get("j", "s0").state == TaskState.ACTIVE
    assert client.pools.node("p", a).state == NodeState.OFFLINE
    client.tasks.terminate("j", "long")
    done = [completed(client, "j", f"s{i}") for i in range(3)]
    assert [(t.node_id, t.exit_code) for t in done] == [(b, 0)] * 3

    # Node counts: A offline, B idle.
    c = wait_for("counts of 1 idle and 1 offline", lambda: (c := counts(client)) and c.idle == 1 and c)
    assert c.by_state() == {"idle": 1, "offline": 1} and c.total == 2

    # Enabled again, A is idle and takes tasks: two at once run on both nodes.
    node = client.pools.enable_node_scheduling("p", a)
    assert node.scheduling_state is SchedulingState.ENABLED
    node_is(client, a, NodeState.IDLE, SchedulingState.ENABLED)
    cmd, go = gate(tmp_path, "pair")
    add(client, "j", TaskSpec(id="x", command_line=cmd), TaskSpec(id="y", command_line=cmd))
    pair = [running(client, "j", t) for t in ("x", "y")]
    assert {t.node_id for t in pair} == {a, b}
    go.touch()
    assert all(completed(client, "j", t).exit_code == 0 for t in ("x", "y"))
    wait_for("counts of 2 idle", lambda: (c := counts(client)) and c.idle == 2 and c.by_state() == {"idle": 2})


def test_terminate_kills_the_task_which_fails_and_is_not_rerun(client: Client, tmp_path: Path) -> None:
    # Retries allowed: a terminated task must not use them.
    up(client, max_task_retry_count=3)
    add(client, "j", TaskSpec(id="victim", command_line=pid_file_command(tmp_path, "victim", 30)))
    first = running(client, "j", "victim")
    pid = pid_of(tmp_path, "victim", first.attempt)
    a = first.node_id

    client.pools.disable_node_scheduling("p", a, option="terminate")
    # Well before its 30 s: the process was killed.
    done = completed(client, "j", "victim", timeout=20)
    wait_for("the task's process to end", lambda: gone(pid))
    assert done.result == "failure" and done.failure is not None
    assert done.node_id == a and done.attempt == first.attempt and done.retry_count == 0
    node = client.pools.wait_node_state("p", a, NodeState.OFFLINE, timeout=30)
    assert node.scheduling_state is SchedulingState.DISABLED and node.running_tasks_count == 0
    # It ran once (one attempt wrote its pid), and is not running anywhere now.
    assert [p.name for p in tmp_path.glob("victim.*")] == [f"victim.{first.attempt}"]
    assert all(n.running_tasks_count == 0 for n in client.pools.nodes("p"))
    assert client.tasks.get("j", "victim").state == TaskState.COMPLETED


def test_task_completion_lets_the_task_finish_while_new_tasks_go_elsewhere(client: Client, tmp_path: Path) -> None:
    up(client)
    cmd, go = gate(tmp_path, "short")
    add(client, "j", TaskSpec(id="short", command_line=cmd))
    first = running(client, "j", "short")
    a = first.node_id
    b = next(n.id for n in client.pools.nodes("p") if n.id != a)

    node = client.pools.disable_node_scheduling("p", a, option="taskcompletion")
    # Still running its task, with scheduling disabled.
    assert node.scheduling_state is SchedulingState.DISABLED
    assert node.state == NodeState.RUNNING
    add(client, "j", TaskSpec(id="second", command_line="/bin/true"))
    second = completed(client, "j", "second")
    assert (second.node_id, second.exit_code) == (b, 0)
    node = client.pools.node("p", a)
    assert (node.state, node.scheduling_state, node.running_tasks_count) == (
        NodeState.RUNNING,
        SchedulingState.DISABLED,
        1,
    )
    assert client.tasks.get("j", "short").state == TaskState.RUNNING

    go.touch()
    done = completed(client, "j", "short")
    assert (done.result, done.exit_code, done.node_id, done.attempt) == ("success", 0, a, first.attempt)
    node_is(client, a, NodeState.OFFLINE, SchedulingState.DISABLED)
    c = wait_for("counts of 1 idle and 1 offline", lambda: (c := counts(client)) and c.idle == 1 and c)
    assert c.by_state() == {"idle": 1, "offline": 1}


def test_a_disabled_node_stays_disabled_and_offline_over_a_server_restart(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", heartbeat_timeout=8.0).start()
    try:
        with Client.connect(srv.address, timeout=30) as client:
            a, b = up(client)
            client.pools.disable_node_scheduling("p", a)
            node_is(client, a, NodeState.OFFLINE, SchedulingState.DISABLED)
        srv.kill()
        srv = ServerProcess(tmp_path / "data", heartbeat_timeout=8.0, port=srv.port).start()
        with Client.connect(srv.address, timeout=30) as client:
            # Both agents lived on and report again; A is still disabled and offline, B idle.
            node_is(client, b, NodeState.IDLE, SchedulingState.ENABLED)
            before = client.pools.node("p", a).last_heartbeat_time
            wait_for(
                "A's agent to report to the new server", lambda: client.pools.node("p", a).last_heartbeat_time != before
            )
            node = client.pools.node("p", a)
            assert (node.state, node.scheduling_state) == (NodeState.OFFLINE, SchedulingState.DISABLED)
            add(client, "j", *(TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(3)))
            assert [completed(client, "j", f"t{i}").node_id for i in range(3)] == [b] * 3
            assert client.pools.node("p", a).state == NodeState.OFFLINE
            with pytest.raises(FailedPrecondition) as e:
                client.pools.disable_node_scheduling("p", a)
            assert e.value.reason == ALREADY
            client.pools.enable_node_scheduling("p", a)
            node_is(client, a, NodeState.IDLE, SchedulingState.ENABLED)
    finally:
        srv.stop()
