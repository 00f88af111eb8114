"""What a restart does to a node root (`shoal.nodeagent.restart.prepare`), on real files: a reboot clears
`volatile/` but the node's identity, its task directories' deadlines and the preparations the server
keeps; a reimage wipes the root but the node's identity and the agent's logs; neither follows a link
out of the root; the marker names the restart done until the server has heard of it."""

from __future__ import annotations

import os
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import restart
from shoal.nodeagent.jobtasks import JobTaskRecords
from shoal.nodeagent.layout import NodeLayout
from shoal.v1 import common_pb2

PREP = agent_pb2.JOB_TASK_KIND_PREPARATION
RELEASE = agent_pb2.JOB_TASK_KIND_RELEASE
OK = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILED = common_pb2.TASK_EXECUTION_RESULT_FAILURE


def node(tmp_path: Path) -> tuple[NodeLayout, Path]:
    """A node root with something everywhere, and a directory outside it that a task's link points to."""
    layout = NodeLayout(tmp_path / "root")
    layout.create()
    v = layout.volatile
    (v / "agent.lock").write_text("")
    (v / "node-id").write_text("n1")
    (v / "tls").mkdir()
    (v / "tls" / "node.key").write_text("key")
    (v / "running.json").write_text("{}")
    (v / "junk").write_text("x")
    (layout.shared / "data").write_text("shared")
    task = layout.task_dir("j", "t")
    task.mkdir(parents=True)
    (task / "stdout.txt").write_text("out")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    os.symlink(outside, task / "link")
    os.symlink(outside, layout.root / "link")
    (layout.root / "agent.log").write_text("log")
    (layout.root / "certs").mkdir()
    (layout.root / "certs" / "sha1-ab.pem").write_text("pem")
    records = JobTaskRecords(layout.job_tasks_file)
    for job, result in (("again", OK), ("kept", OK), ("failed", FAILED)):
        records.put(job, PREP, agent_pb2.TaskEvent(result=result))
    records.put("again", RELEASE, agent_pb2.TaskEvent(result=OK))
    records.close()
    return layout, outside


def test_a_reboot_clears_volatile_but_the_node_s_identity_and_keeps_its_work(tmp_path: Path) -> None:
    layout, outside = node(tmp_path)
    restart.prepare(layout, agent_pb2.Restart(restart_id="r1", keep_preparations=["kept"]))
    v = layout.volatile
    assert sorted(p.name for p in v.iterdir()) == sorted(
        ["agent.lock", "node-id", "tls", "jobtasks.jsonl", restart.MARKER]
    )
    assert (v / "tls" / "node.key").read_text() == "key"
    assert (layout.shared / "data").exists()
    assert (layout.task_dir("j", "t") / "stdout.txt").exists()
    assert (layout.root / "certs" / "sha1-ab.pem").exists()
    records = JobTaskRecords(layout.job_tasks_file)
    try:
        # The successful preparation that asks to run again after a reboot is forgotten; the kept one
        # and the failed one stay, and so do releases.
        assert records.get("again", PREP) is None
        assert records.get("kept", PREP) is not None
        assert records.get("failed", PREP) is not None
        assert records.get("again", RELEASE) is not None
    finally:
        records.close()
    assert restart.done_restart(layout) == "r1"
    restart.forget_restart(layout)
    assert restart.done_restart(layout) == ""
    assert (outside / "precious").read_text() == "keep me"


def test_a_reimage_wipes_the_root_but_identity_and_logs_and_follows_no_link(tmp_path: Path) -> None:
    layout, outside = node(tmp_path)
    os.chmod(layout.task_dir("j", "t"), 0o500)  # a task left its directory unwritable
    restart.prepare(layout, agent_pb2.Restart(restart_id="r2", reimage=True, keep_preparations=["kept"]))
    root = layout.root
    assert sorted(p.name for p in root.iterdir()) == sorted(["agent.log", "volatile", "shared", "startup", "workitems"])
    assert list(layout.workitems.iterdir()) == [] and list(layout.shared.iterdir()) == []
    assert sorted(p.name for p in layout.volatile.iterdir()) == sorted(["agent.lock", "node-id", "tls", restart.MARKER])
    assert (outside / "precious").read_text() == "keep me"
    assert restart.done_restart(layout) == "r2"


def test_an_identity_directory_at_the_root_stays_through_a_reimage(tmp_path: Path) -> None:
    layout, _ = node(tmp_path)
    tls = layout.root / "identity"
    tls.mkdir()
    (tls / "node.crt").write_text("crt")
    restart.prepare(layout, agent_pb2.Restart(restart_id="r3", reimage=True), tls_dir=tls)
    assert (tls / "node.crt").read_text() == "crt"


def test_a_reimage_through_a_linked_root_wipes_what_it_leads_to_and_keeps_an_identity_in_volatile(
    tmp_path: Path,
) -> None:
    layout, _ = node(tmp_path)
    (layout.volatile / "id").mkdir()
    (layout.volatile / "id" / "node.crt").write_text("crt")
    link = tmp_path / "link-to-root"
    os.symlink(layout.root, link)
    restart.prepare(
        NodeLayout(link), agent_pb2.Restart(restart_id="r4", reimage=True), tls_dir=link / "volatile" / "id"
    )
    assert link.is_symlink(), "the link the operator named stays"
    assert (layout.volatile / "node-id").read_text() == "n1"
    assert (layout.volatile / "id" / "node.crt").read_text() == "crt"
    assert not (layout.shared / "data").exists()
    # A reboot keeps it too.
    restart.prepare(NodeLayout(link), agent_pb2.Restart(restart_id="r5"), tls_dir=layout.volatile / "id")
    assert (layout.volatile / "id" / "node.crt").read_text() == "crt"
