"""Rebooting and reimaging nodes on a real server with real local agents, through the Python client.

A reboot restarts the node's agent as a new process (the same pid: it execs itself), clears `volatile/`
but its identity, keeps task directories, runs the start task again and the job preparations that ask
to; a reimage wipes the node root and sets the node up as new (start task, certificates, every job
preparation). Each deallocation option's fate for the task running there (REQUEUE: it runs again,
TERMINATE: it fails and is not rerun, TASK_COMPLETION: the reboot waits for it), refusals from states a
node cannot restart from, and a server SIGKILL while a node waits to reboot, with the reboot done after
the restart.

Every pool has two nodes of one slot each, so that "the other node" is where a requeued task goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.client import (
    CertificateReference,
    Client,
    FailedPrecondition,
    InvalidArgument,
    JobPreparationTask,
    Node,
    NodeState,
    StartTaskSpec,
    TaskSpec,
    TaskState,
)
from tests.certfiles import make_pfx
from tests.e2e.harness import ServerProcess, wait_for
from tests.e2e.test_node_scheduling import add, completed, gate, running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

BACK = (NodeState.IDLE, NodeState.OFFLINE)


def start_task(tmp_path: Path) -> StartTaskSpec:
    """A start task that counts its runs per node in ``tmp_path/boots.<node>`` (outside the node root)."""
    return StartTaskSpec(
        command_line=f"/bin/sh -c 'echo run >> {tmp_path}/boots.$SHOAL_NODE_ID'", wait_for_success=True
    )


def boots(tmp_path: Path, node_id: str) -> int:
    path = tmp_path / f"boots.{node_id}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def up(client: Client, tmp_path: Path, **pool: object) -> list[Node]:
    client.pools.create(id="p", target_nodes=2, task_slots_per_node=1, start_task=start_task(tmp_path), **pool)  # type: ignore[arg-type]
    nodes = client.pools.wait_nodes_idle("p", count=2, timeout=60)
    return sorted(nodes, key=lambda n: n.id)


def back(client: Client, node_id: str, before: Node, timeout: float = 60) -> Node:
    """Wait until the node has restarted (a later boot) and is ready again; return it."""
    return wait_for(
        f"node {node_id} back from its restart",
        lambda: (
            (n := client.pools.node("p", node_id)).state in BACK
            and n.last_boot_time is not None
            and before.last_boot_time is not None
            and n.last_boot_time > before.last_boot_time
            and n
        ),
        timeout=timeout,
    )


def test_reboot_requeues_the_task_clears_volatile_keeps_task_dirs_and_reruns_the_start_task(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    a, b = up(client, tmp_path)
    client.jobs.create(id="j", pool_id="p")
    # A finished task's directory on each node (one slot each: two tasks land one per node, or both on
    # one; either way A has one once "done-a" has run there).
    add(client, "j", TaskSpec(id="first", command_line="/bin/true"))
    first = completed(client, "j", "first")
    root = Path(client.pools.node("p", first.node_id).root_directory)
    task_dir = root / "workitems" / "j" / "job-1" / "first"
    assert task_dir.is_dir()
    (root / "volatile" / "leftover").write_text("gone after a reboot")
    pids = server.agent_pids()

    node_id = first.node_id
    other = next(n.id for n in (a, b) if n.id != node_id)
    # The long task runs on the node with the finished task: the other takes none meanwhile.
    client.pools.disable_node_scheduling("p", other)
    cmd, go = gate(tmp_path, "long")
    add(client, "j", TaskSpec(id="long", command_line=cmd))
    t = running(client, "j", "long", node=node_id)
    client.pools.enable_node_scheduling("p", other)
    before = client.pools.node("p", node_id)
    assert boots(tmp_path, node_id) == 1

    node = client.pools.reboot_node("p", node_id)
    assert node.state is NodeState.REBOOTING
    with pytest.raises(FailedPrecondition) as e:
        client.pools.reboot_node("p", node_id)
    assert e.value.reason == "NODE_BEING_REBOOTED"
    # REQUEUE: the task runs again (on the other node, or here once it is back), not counted as a retry.
    again = wait_for("long requeued", lambda: (x := client.tasks.get("j", "long")).attempt > t.attempt and x)
    assert again.requeue_count >= 1
    assert again.retry_count == 0

    after = back(client, node_id, before)
    assert boots(tmp_path, node_id) == 2
    assert after.start_task_info is not None and after.start_task_info.exit_code == 0
    assert not (root / "volatile" / "leftover").exists()
    assert (root / "volatile" / "node-id").read_text().strip() == node_id
    assert task_dir.is_dir(), "a reboot keeps task directories"
    # A new process image in the same process: the provider still watches the same pid.
    assert server.agent_pids()[node_id] == pids[node_id]
    go.touch()
    assert completed(client, "j", "long").exit_code == 0
    # The node takes tasks again.
    add(client, "j", *(TaskSpec(id=f"after{i}", command_line="/bin/true") for i in range(4)))
    assert {completed(client, "j", f"after{i}").exit_code for i in range(4)} == {0}


def test_terminate_fails_the_running_task_and_it_is_not_rerun(client: Client, tmp_path: Path) -> None:
    up(client, tmp_path)
    client.jobs.create(id="j", pool_id="p")
    cmd, _go = gate(tmp_path, "long")
    add(client, "j", TaskSpec(id="long", command_line=cmd))
    t = running(client, "j", "long")
    before = client.pools.node("p", t.node_id)
    client.pools.reboot_node("p", t.node_id, option="terminate")
    done = completed(client, "j", "long")
    assert done.attempt == t.attempt
    assert done.result == "failure"
    back(client, t.node_id, before)
    assert client.tasks.get("j", "long").attempt == t.attempt


def test_task_completion_waits_for_the_task_then_reboots(client: Client, tmp_path: Path) -> None:
    up(client, tmp_path)
    client.jobs.create(id="j", pool_id="p")
    cmd, go = gate(tmp_path, "long")
    add(client, "j", TaskSpec(id="long", command_line=cmd))
    t = running(client, "j", "long")
    before = client.pools.node("p", t.node_id)
    assert client.pools.reboot_node("p", t.node_id, option="taskcompletion").state is NodeState.REBOOTING
    # No new task lands on the rebooting node meanwhile; the task goes on.
    add(client, "j", TaskSpec(id="other", command_line="/bin/true"))
    assert completed(client, "j", "other").node_id != t.node_id
    assert client.tasks.get("j", "long").state is TaskState.RUNNING
    assert client.pools.node("p", t.node_id).state is NodeState.REBOOTING
    go.touch()
    done = completed(client, "j", "long")
    assert (done.attempt, done.exit_code) == (t.attempt, 0)
    back(client, t.node_id, before)
    assert boots(tmp_path, t.node_id) == 2


def test_reimage_wipes_the_root_and_sets_the_node_up_again(client: Client, tmp_path: Path) -> None:
    pfx, thumbprint = make_pfx("reimage", "pw")
    client.certificates.add(pfx, password="pw", format="pfx")
    a, b = up(client, tmp_path, certificate_references=[CertificateReference(thumbprint=thumbprint)])
    prep = JobPreparationTask(
        command_line=f"/bin/sh -c 'echo run >> {tmp_path}/prep.$SHOAL_NODE_ID'",
        rerun_on_node_reboot_after_success=False,
    )
    client.jobs.create(id="j", pool_id="p", job_preparation_task=prep)
    add(client, "j", TaskSpec(id="first", command_line="/bin/true"))
    first = completed(client, "j", "first")
    node_id = first.node_id
    root = Path(client.pools.node("p", node_id).root_directory)
    (root / "shared" / "leftover").write_text("gone after a reimage")
    certs = sorted(p.name for p in (root / "certs").iterdir())
    assert certs, "the certificate is installed"
    before = client.pools.node("p", node_id)

    # A reboot first: the preparation that asks not to run again after one does not.
    client.pools.reboot_node("p", node_id)
    before = back(client, node_id, before)
    assert (root / "shared" / "leftover").exists()
    assert boots(tmp_path, node_id) == 2

    client.pools.reimage_node("p", node_id)
    after = back(client, node_id, before)
    assert boots(tmp_path, node_id) == 3
    assert not (root / "shared" / "leftover").exists()
    assert not (root / "workitems" / "j").exists()
    assert sorted(p.name for p in (root / "certs").iterdir()) == certs
    assert [r.thumbprint for r in after.certificate_references] == [thumbprint]
    assert (root / "agent.log").exists(), "the agent's logs stay"

    # Every job preparation runs again on a reimaged node; the reboot did not rerun it.
    other = next(n.id for n in (a, b) if n.id != node_id)
    client.pools.disable_node_scheduling("p", other)
    add(client, "j", TaskSpec(id="again", command_line="/bin/true"))
    assert completed(client, "j", "again").node_id == node_id
    assert len((tmp_path / f"prep.{node_id}").read_text().splitlines()) == 2


def test_refusals(client: Client, tmp_path: Path) -> None:
    a, _b = up(client, tmp_path)
    assert client.pools.reimage_node("p", a.id).state is NodeState.REIMAGING
    with pytest.raises(FailedPrecondition) as e:
        client.pools.reboot_node("p", a.id)
    assert e.value.reason == "NODE_BEING_REIMAGED"
    with pytest.raises(InvalidArgument):
        client.pools.reboot_node("p", a.id, option="sometime")


def test_a_server_sigkill_during_a_reboot_a_reimage_and_a_removal_leaves_every_node_where_it_can_go_on(
    tmp_path: Path,
) -> None:
    """Three nodes: one reboots once its task ends (TASK_COMPLETION), one is reimaged, one removed; the
    server is SIGKILLed right after. The restarted server finishes all three: the first reboots when
    its task ends, the second is back reimaged, the third is gone and the pool's target with it."""
    srv = ServerProcess(tmp_path / "data", heartbeat_timeout=8.0).start()
    try:
        with Client.connect(srv.address, timeout=30) as client:
            client.pools.create(id="p", target_nodes=3, task_slots_per_node=1, start_task=start_task(tmp_path))
            nodes = sorted(client.pools.wait_nodes_idle("p", count=3, timeout=60), key=lambda n: n.id)
            client.jobs.create(id="j", pool_id="p")
            cmd, go = gate(tmp_path, "long")
            add(client, "j", TaskSpec(id="long", command_line=cmd))
            t = running(client, "j", "long")
            busy = client.pools.node("p", t.node_id)
            reimaged, removed = (n for n in nodes if n.id != busy.id)
            (Path(reimaged.root_directory) / "shared" / "leftover").write_text("x")
            client.pools.reboot_node("p", busy.id, option="taskcompletion")
            client.pools.reimage_node("p", reimaged.id)
            client.pools.remove_nodes("p", [removed.id])
        srv.kill()
        srv = ServerProcess(tmp_path / "data", heartbeat_timeout=8.0, port=srv.port).start()
        with Client.connect(srv.address, timeout=30) as client:
            go.touch()
            done = completed(client, "j", "long")
            assert (done.attempt, done.exit_code) == (t.attempt, 0)
            back(client, busy.id, busy)
            back(client, reimaged.id, reimaged)
            assert not (Path(reimaged.root_directory) / "shared" / "leftover").exists()
            assert (boots(tmp_path, busy.id), boots(tmp_path, reimaged.id)) == (2, 2)
            wait_for("the removed node gone", lambda: removed.id not in {n.id for n in client.pools.nodes("p")})
            pool = client.pools.get("p")
            assert (pool.target_nodes, pool.current_nodes) == (2, 2)
    finally:
        srv.stop()


def test_a_node_whose_root_breaks_is_unusable_until_it_is_mended(client: Client, tmp_path: Path) -> None:
    """A real agent finds its node root unusable (`workitems` cannot be made: a file stands there): the
    node is UNUSABLE with the error NodeRootUnusable and takes no task; mended, it returns to service."""
    a, b = up(client, tmp_path)
    root = Path(a.root_directory)
    (root / "workitems").rename(root / "workitems.kept")
    (root / "workitems").write_text("in the way")
    try:
        node = wait_for(
            "the node unusable",
            lambda: (n := client.pools.node("p", a.id)).state is NodeState.UNUSABLE and n,
            timeout=30,
        )
        assert [e.code for e in node.errors] == ["NodeRootUnusable"]
        assert "workitems" in node.errors[0].message
        client.jobs.create(id="j", pool_id="p")
        add(client, "j", *(TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(3)))
        assert {completed(client, "j", f"t{i}").node_id for i in range(3)} == {b.id}
    finally:
        (root / "workitems").unlink()
        (root / "workitems.kept").rename(root / "workitems")
    node = wait_for(
        "the node usable again", lambda: (n := client.pools.node("p", a.id)).state is NodeState.IDLE and n, timeout=30
    )
    assert node.errors == ()


def test_retained_data_reboots_once_the_task_directories_retention_has_passed(client: Client, tmp_path: Path) -> None:
    from datetime import timedelta

    up(client, tmp_path)
    client.jobs.create(id="j", pool_id="p")
    add(client, "j", TaskSpec(id="kept", command_line="/bin/true", retention_time=timedelta(seconds=5)))
    done = completed(client, "j", "kept")
    before = client.pools.node("p", done.node_id)
    client.pools.reboot_node("p", done.node_id, option="retaineddata")
    after = back(client, done.node_id, before)
    assert done.end_time is not None and after.last_boot_time is not None
    # Not before the directory's retention had passed.
    assert after.last_boot_time >= done.end_time + timedelta(seconds=5)


def test_a_pool_update_reaches_a_node_at_its_reboot(client: Client, tmp_path: Path) -> None:
    """As in Batch: a new start task and new certificates do not touch running nodes; a rebooted node
    runs the new start task and installs the new certificates."""
    a, b = up(client, tmp_path)
    pfx, thumbprint = make_pfx("update", "pw")
    client.certificates.add(pfx, password="pw", format="pfx")
    new_start = StartTaskSpec(command_line=f"/bin/sh -c 'echo new >> {tmp_path}/new.$SHOAL_NODE_ID'")
    client.pools.update("p", start_task=new_start, certificates=[CertificateReference(thumbprint=thumbprint)])
    assert client.pools.node("p", a.id).certificate_references == ()
    client.pools.reboot_node("p", a.id)
    after = back(client, a.id, a)
    assert [r.thumbprint for r in after.certificate_references] == [thumbprint]
    wait_for("the new start task to run", lambda: (tmp_path / f"new.{a.id}").exists())
    assert boots(tmp_path, a.id) == 1, "the old start task did not run again"
    assert not (tmp_path / f"new.{b.id}").exists() and client.pools.node("p", b.id).certificate_references == ()
