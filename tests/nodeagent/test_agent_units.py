"""Unit tests of the node agent's pieces: env, commands, processes, outputs, staging, retention."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.clock import ManualClock
from shoal.nodeagent import envvars, process, retention
from shoal.nodeagent.__main__ import parse_config
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.outbox import Outbox
from shoal.nodeagent.outputs import scan_output_files, should_upload
from shoal.nodeagent.staging import StagingError, container_file_path, parse_file_mode, stage_resource_files
from shoal.nodeagent.state import RunningFile
from shoal.paths import UnsafePathError
from shoal.v1 import common_pb2

# ---- environment ---------------------------------------------------------------------------------


def test_task_env(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path)
    source = {"PATH": "/x/bin:/usr/bin", "HOME": "/home/u", "SECRET_TOKEN": "s", "LANG": "C.UTF-8"}
    settings = [
        common_pb2.EnvironmentSetting(name="A", value="1"),
        common_pb2.EnvironmentSetting(name="A", value="2"),
        common_pb2.EnvironmentSetting(name="SHOAL_TASK_ID", value="spoofed"),
    ]
    td = layout.task_dir("j", "t")
    env = envvars.task_env(
        source,
        settings,
        layout=layout,
        node_id="n1",
        pool_id="p1",
        job_id="j",
        task_id="t",
        attempt=3,
        task_dir=td,
        working_dir=td / "wd",
    )
    assert env["PATH"] == "/x/bin:/usr/bin" and env["HOME"] == "/home/u" and env["LANG"] == "C.UTF-8"
    assert "SECRET_TOKEN" not in env
    assert env["A"] == "2"
    assert env["SHOAL_TASK_ATTEMPT"] == "3"
    for name, value in {
        "NODE_ROOT_DIR": str(tmp_path),
        "NODE_SHARED_DIR": str(tmp_path / "shared"),
        "NODE_STARTUP_DIR": str(tmp_path / "startup"),
        "NODE_ID": "n1",
        "POOL_ID": "p1",
        "JOB_ID": "j",
        "TASK_ID": "t",
        "TASK_DIR": str(tmp_path / "workitems/j/job-1/t"),
        "TASK_WORKING_DIR": str(tmp_path / "workitems/j/job-1/t/wd"),
    }.items():
        assert env["SHOAL_" + name] == value
        assert env["AZ_BATCH_" + name] == value


def test_start_task_env_has_no_job(tmp_path: Path) -> None:
    env = envvars.start_task_env({}, [], layout=NodeLayout(tmp_path), node_id="n", pool_id="p")
    assert "SHOAL_JOB_ID" not in env and "AZ_BATCH_TASK_ID" not in env
    assert env["AZ_BATCH_TASK_WORKING_DIR"] == str(tmp_path / "startup" / "wd")
    assert env["PATH"]


def test_unsafe_ids_are_refused(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path)
    for job, task in (("..", "t"), ("j", "../x"), ("a/b", "t"), ("j", ""), ("j", "/t")):
        with pytest.raises(UnsafePathError):
            layout.task_dir(job, task)


# ---- command line and processes --------------------------------------------------------------------


def test_split_command() -> None:
    assert process.split_command("""echo 'a b' "c $HOME" d\\ e""") == ["echo", "a b", "c $HOME", "d e"]
    for bad in ("", "   ", "echo 'unbalanced"):
        with pytest.raises(process.LaunchError) as ei:
            process.split_command(bad)
        assert ei.value.code == "CommandLaunchFailed"


def test_exit_code_of() -> None:
    assert process.exit_code_of(0) == 0
    assert process.exit_code_of(3) == 3
    assert process.exit_code_of(-signal.SIGKILL) == 137
    assert process.exit_code_of(-signal.SIGTERM) == 143


def _spawn(tmp_path: Path, command: str):
    return process.spawn(
        command, cwd=tmp_path, env={"PATH": os.environ["PATH"]}, stdout=tmp_path / "o", stderr=tmp_path / "e"
    )


async def _run(tmp_path: Path, command: str, **kw) -> process.ProcessResult:
    proc = _spawn(tmp_path, command)
    return await process.wait_with_limit(proc, clock=kw.pop("clock", ManualClock()), **kw)


async def test_exit_codes_and_output(tmp_path: Path) -> None:
    r = await _run(tmp_path, "sh -c 'echo out; echo err >&2; exit 7'")
    assert (r.exit_code, r.timed_out) == (7, False)
    assert (tmp_path / "o").read_text() == "out\n" and (tmp_path / "e").read_text() == "err\n"
    assert (await _run(tmp_path, "true")).exit_code == 0
    assert (await _run(tmp_path, "sh -c 'kill -TERM $$'")).exit_code == 143


async def test_no_shell_expansion(tmp_path: Path) -> None:
    await _run(tmp_path, "echo $HOME '*' ; ls")
    assert (tmp_path / "o").read_text() == "$HOME * ; ls\n"


def test_program_not_found_and_not_executable(tmp_path: Path) -> None:
    with pytest.raises(process.LaunchError) as ei:
        _spawn(tmp_path, "definitely-not-a-program-xyz arg")
    assert ei.value.code == "CommandProgramNotFound"
    with pytest.raises(process.LaunchError) as ei:
        _spawn(tmp_path, "./missing.sh")
    assert ei.value.code == "CommandProgramNotFound"
    script = tmp_path / "noexec.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(process.LaunchError) as ei:
        _spawn(tmp_path, "./noexec.sh")
    assert ei.value.code == "CommandLaunchFailed"


async def test_wall_clock_kills_whole_tree(tmp_path: Path) -> None:
    clock = ManualClock()
    proc = _spawn(tmp_path, "sh -c 'sleep 100 & echo $! > bg.pid; sleep 100'")
    pgid = proc.pid
    assert os.getpgid(proc.pid) == pgid  # its own process group
    task = asyncio.create_task(process.wait_with_limit(proc, clock=clock, max_wall_clock_seconds=10, grace_seconds=2))
    while not (tmp_path / "bg.pid").exists() or not (tmp_path / "bg.pid").read_text().strip():
        await asyncio.sleep(0.01)
    bg = int((tmp_path / "bg.pid").read_text())
    for _ in range(5):  # let the limit timer start sleeping on the clock
        await asyncio.sleep(0)
    clock.advance(5)
    await asyncio.sleep(0.05)
    assert not task.done()
    clock.advance(5)
    result = await asyncio.wait_for(task, 10)
    assert result.timed_out and result.exit_code == 143
    assert not process.group_alive(pgid)
    # The background sleep was killed too (it may linger as a zombie until init reaps it).
    try:
        stat = Path(f"/proc/{bg}/stat").read_text()
    except FileNotFoundError:
        stat = ""
    assert not stat or stat[stat.rfind(")") + 2] in "ZX"


async def test_kill_group_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "sh -c 'trap \"\" TERM; touch ready; while true; do sleep 0.05; done'")
    while not (tmp_path / "ready").exists():
        await asyncio.sleep(0.01)
    waiter = asyncio.create_task(process.wait_process(proc))
    await process.kill_group(proc.pid, grace_seconds=0.2)
    assert await asyncio.wait_for(waiter, 10) == -signal.SIGKILL


async def test_wait_process_does_not_block_loop(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "sleep 0.3")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    assert await process.wait_process(proc) == 0
    t.cancel()
    assert ticks > 5


# ---- output files ----------------------------------------------------------------------------------


@pytest.fixture
def task_tree(tmp_path: Path) -> tuple[Path, Path]:
    task_dir = tmp_path / "node" / "workitems" / "j" / "job-1" / "t"
    wd = task_dir / "wd"
    (wd / "out" / "deep").mkdir(parents=True)
    (wd / "out" / "a.txt").write_text("a")
    (wd / "out" / "deep" / "b.txt").write_text("b")
    (wd / "out" / ".hidden.txt").write_text("h")
    (wd / "top.log").write_text("t")
    (task_dir / "stdout.txt").write_text("o")
    (task_dir / "stderr.txt").write_text("e")
    (tmp_path / "secret.txt").write_text("s")
    (wd / "link.txt").symlink_to(tmp_path / "secret.txt")
    return task_dir, wd


def _names(pattern: str, path: str, task_tree: tuple[Path, Path]) -> list[str]:
    task_dir, wd = task_tree
    spec = common_pb2.OutputFile(file_pattern=pattern, container_name="c", path=path)
    return [m.blob_name for m in scan_output_files(spec, wd, task_dir).matches]


def test_output_globs(task_tree: tuple[Path, Path]) -> None:
    assert _names("out/**/*.txt", "res", task_tree) == ["res/a.txt", "res/deep/b.txt"]
    assert _names("**/*.txt", "", task_tree) == ["out/a.txt", "out/deep/b.txt"]
    assert _names("out/*.txt", "x/", task_tree) == ["x/a.txt"]
    assert _names("out/.hidden.txt", "h.txt", task_tree) == ["h.txt"]
    assert _names("out/.*.txt", "h", task_tree) == ["h/.hidden.txt"]
    assert _names("top.log", "logs/top.log", task_tree) == ["logs/top.log"]
    assert _names("top.log", "", task_tree) == ["top.log"]
    assert _names("../stdout.txt", "logs/so.txt", task_tree) == ["logs/so.txt"]
    assert _names("../std*.txt", "logs", task_tree) == ["logs/stderr.txt", "logs/stdout.txt"]
    assert _names("t?p.[a-l]og", "p", task_tree) == ["p/top.log"]
    assert _names("nothing*", "p", task_tree) == []
    assert _names("missing.txt", "p", task_tree) == []
    assert _names("link.txt", "p", task_tree) == []  # resolves outside the task directory


def test_output_escapes(task_tree: tuple[Path, Path]) -> None:
    task_dir, _ = task_tree
    for bad in ("../../secret.txt", "../../*", "/etc/passwd", "..", "../", "", "a\\b", "../../../**/*.txt"):
        with pytest.raises(UnsafePathError):
            _names(bad, "p", task_tree)
    # An absolute pattern inside the task directory is allowed.
    assert _names(str(task_dir / "stdout.txt"), "so", task_tree) == ["so"]


def test_upload_conditions() -> None:
    C = common_pb2
    assert should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_UNSPECIFIED, True)
    assert not should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_UNSPECIFIED, False)
    assert should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_TASK_SUCCESS, True)
    assert should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE, False)
    assert not should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE, True)
    assert should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION, True)
    assert should_upload(C.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION, False)


# ---- staging ---------------------------------------------------------------------------------------


def test_a_staged_blob_keeps_its_full_name_under_the_file_path() -> None:
    """As in Batch: the prefix selects blobs, the file path is a directory, the blob name is kept."""
    assert container_file_path(".", "mpi/heat.py") == "mpi/heat.py"  # prefix "mpi/h" cut nothing
    assert container_file_path("", "data/a/b.txt") == "data/a/b.txt"
    assert container_file_path("in", "data/a.txt") == "in/data/a.txt"
    assert container_file_path("in/", "x.txt") == "in/x.txt"
    with pytest.raises(StagingError) as ei:
        container_file_path("..", "x.txt")
    assert ei.value.code == "BlobNotFound"


def test_file_mode() -> None:
    assert parse_file_mode("") == 0o770
    assert parse_file_mode("0755") == 0o755
    with pytest.raises(StagingError):
        parse_file_mode("rwx")


async def test_staging_path_escape_is_blob_not_found(tmp_path: Path) -> None:
    for rf in (
        common_pb2.ResourceFile(http_url="http://127.0.0.1:1/x", file_path="../x"),
        common_pb2.ResourceFile(storage_container_name="c", file_path="../up"),
    ):
        with pytest.raises(StagingError) as ei:
            await stage_resource_files([rf], tmp_path, None, root=tmp_path)
        assert ei.value.code == "BlobNotFound"


async def test_http_staging(tmp_path: Path) -> None:
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    (root / "f.txt").write_text("hello")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        wd = tmp_path / "wd"
        wd.mkdir()
        await stage_resource_files(
            [common_pb2.ResourceFile(http_url=f"{base}/f.txt", file_path="in/g.txt", file_mode="0640")],
            wd,
            None,
            root=tmp_path,
        )
        assert (wd / "in" / "g.txt").read_text() == "hello"
        assert (wd / "in" / "g.txt").stat().st_mode & 0o777 == 0o640
        with pytest.raises(StagingError) as ei:
            await stage_resource_files(
                [common_pb2.ResourceFile(http_url=f"{base}/nope", file_path="n")], wd, None, root=tmp_path
            )
        assert ei.value.code == "BlobNotFound"
    finally:
        httpd.shutdown()


# ---- outbox, retention, running file, command line ------------------------------------------------


def test_running_file_journal(tmp_path: Path) -> None:
    rf = RunningFile(tmp_path / "running.json", compact_after=5)
    for i in range(20):
        rf.add(f"j/t{i}/1", 1000 + i)
        if i % 2:
            rf.remove(f"j/t{i}/1")
    expected = {f"j/t{i}/1": 1000 + i for i in range(0, 20, 2)}
    assert RunningFile(rf.path).load() == expected
    assert len(rf.path.read_text().splitlines()) <= 4 * len(expected) + 1  # compacted on the way
    with open(rf.path, "a") as f:
        f.write('{"k": "j/torn')  # a crash in the middle of a line
    assert RunningFile(rf.path).load() == expected
    rf.path.write_text('{"j/old/1": 77}')  # the older single-object form
    assert RunningFile(rf.path).load() == {"j/old/1": 77}
    rf.close()


def test_outbox() -> None:
    ob = Outbox()
    ids = [ob.add(agent_pb2.TaskEvent()) for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [e.event_id for e in ob.after(2, 2)] == [3, 4]
    assert ob.ack(3) == 3
    assert [e.event_id for e in ob.pending()] == [4, 5]
    assert ob.ack(3) == 0 and len(ob) == 2
    ob.ack(10)
    assert len(ob) == 0 and ob.last_id == 5


def test_outbox_folds_unsent_running_into_completed() -> None:
    def ev(task: str, kind: int) -> agent_pb2.TaskEvent:
        return agent_pb2.TaskEvent(attempt=agent_pb2.AttemptRef(job_id="j", task_id=task, attempt=1), kind=kind)

    running, completed = agent_pb2.TASK_EVENT_KIND_RUNNING, agent_pb2.TASK_EVENT_KIND_COMPLETED
    ob = Outbox()
    ob.add(ev("sent", running))
    ob.mark_sent(ob.last_id)
    ob.add(ev("short", running))
    ob.add(ev("other", running))
    ob.add(ev("short", completed))  # its RUNNING never went out: dropped
    ob.add(ev("sent", completed))  # its RUNNING went out: both stay
    kinds = [(e.attempt.task_id, e.kind) for e in ob.pending()]
    assert kinds == [("sent", running), ("other", running), ("short", completed), ("sent", completed)]
    assert [e.event_id for e in ob.after(1, 10)] == [3, 4, 5]
    ob.ack(5)
    assert len(ob) == 0


def test_retention_journal(tmp_path: Path) -> None:
    clock = ManualClock()
    layout = NodeLayout(tmp_path)
    journal = retention.RetentionJournal(layout.retention_file, compact_after=4)
    for t in ("old", "new", "running"):
        layout.task_dir("j", t).mkdir(parents=True)
    journal.record("j", "old", clock.now() + timedelta(seconds=10))
    journal.record("j", "new", clock.now() + timedelta(seconds=100))
    journal.record("j", "running", clock.now())  # e.g. a later attempt is running now
    active = {("j", "running")}
    assert journal.due(clock.now(), lambda j, t: (j, t) in active) == []
    clock.advance(11)
    due = journal.due(clock.now(), lambda j, t: (j, t) in active)
    assert due == [("j", "old")]
    assert retention.remove_task_dirs(layout.task_dir(*ref) for ref in due) == [layout.task_dir("j", "old")]
    journal.forget(due)
    # A later completion of the same task replaces its deadline, also after a restart (replay).
    journal.record("j", "new", clock.now() + timedelta(seconds=500))
    journal.close()
    again = retention.RetentionJournal(layout.retention_file, compact_after=4)
    assert again.deadline("j", "old") is None
    assert again.deadline("j", "new") == (clock.now() + timedelta(seconds=500)).timestamp()
    for i in range(10):  # grows past compact_after: rewritten with the live entries only
        again.record("j", "new", clock.now() + timedelta(seconds=i))
    assert len(layout.retention_file.read_text().splitlines()) <= 4
    clock.advance(1000)
    due = again.due(clock.now(), lambda j, t: False)
    assert sorted(due) == [("j", "new"), ("j", "running")]
    retention.remove_task_dirs(layout.task_dir(*ref) for ref in due)
    again.forget(due)
    assert not (tmp_path / "workitems" / "j").exists()
    # A torn last line (a crash mid-append) is ignored.
    with open(layout.retention_file, "a") as f:
        f.write('[12.5, "j", "x"]\n[1')
    assert retention.RetentionJournal(layout.retention_file).deadline("j", "x") == 12.5


async def test_running_file_kills_orphans(tmp_path: Path) -> None:
    rf = RunningFile(tmp_path / "running.json")
    env = {"PATH": os.environ["PATH"], "SHOAL_NODE_ROOT_DIR": str(tmp_path)}
    mine = process.spawn("sleep 100", cwd=tmp_path, env=env, stdout=tmp_path / "o", stderr=tmp_path / "e")
    other_env = dict(env, SHOAL_NODE_ROOT_DIR="/elsewhere")
    other = process.spawn("sleep 100", cwd=tmp_path, env=other_env, stdout=tmp_path / "o", stderr=tmp_path / "e")
    try:
        rf.add("j/t/1", mine.pid)
        rf.add("j/u/1", other.pid)
        assert RunningFile(rf.path).load() == {"j/t/1": mine.pid, "j/u/1": other.pid}
        assert RunningFile(rf.path).kill_orphans(tmp_path) == ["j/t/1", "j/u/1"]
        assert await asyncio.wait_for(process.wait_process(mine), 10) == -signal.SIGKILL
        assert other.poll() is None  # not ours: left alone
        assert RunningFile(rf.path).load() == {}
    finally:
        other.kill()
        other.wait()


def test_parse_config(tmp_path: Path) -> None:
    cfg, level = parse_config(
        ["--server", "127.0.0.1:5", "--node-root", str(tmp_path), "--ip", "127.0.1.4", "--pool", "p"]
    )
    assert (cfg.server, cfg.ip, cfg.pool_id, level) == ("127.0.0.1:5", "127.0.1.4", "p", "INFO")
    assert cfg.orphan_timeout == 300.0
    with pytest.raises(SystemExit):
        parse_config(["--server", "s:1", "--node-root", str(tmp_path), "--ip", "192.168.1.4"])
    cfg, _ = parse_config(
        ["--server", "s:1", "--node-root", str(tmp_path), "--ip", "192.168.1.4", "--allow-non-loopback"]
    )
    assert cfg.allow_non_loopback


def test_multi_instance_env(tmp_path: Path) -> None:
    import sys

    mi = agent_pb2.MultiInstance(
        instance_index=1,
        number_of_instances=2,
        host_list=["127.0.1.1", "127.0.1.2"],
        agent_addresses=["127.0.1.1:5", "127.0.1.2:6"],
    )
    env = envvars.multi_instance_env(mi, tmp_path / "shared", "/usr/bin:/bin")
    assert env["SHOAL_HOST_LIST"] == env["AZ_BATCH_HOST_LIST"] == "127.0.1.1,127.0.1.2"
    assert env["AZ_BATCH_NODE_LIST"] == "127.0.1.1;127.0.1.2"
    assert env["SHOAL_IS_CURRENT_NODE_MASTER"] == "false"
    assert env["SHOAL_TASK_SHARED_DIR"] == str(tmp_path / "shared")
    assert env["SHOAL_MPI_AGENTS"] == "127.0.1.1=127.0.1.1:5,127.0.1.2=127.0.1.2:6"
    assert env["HYDRA_LAUNCHER_EXEC"] == "shoal-mpi-launch"
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin", "/bin"]


def test_a_command_never_writes_its_output_through_a_link(tmp_path: Path) -> None:
    """An earlier command of the task (a coordination command) put a link where stdout.txt goes."""
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "stdout.txt").symlink_to(victim)
    with pytest.raises(process.LaunchError) as ei:
        process.spawn(
            "echo hi", cwd=tmp_path, env={}, stdout=tmp_path / "stdout.txt", stderr=tmp_path / "e", append=True
        )
    assert ei.value.code == "CommandLaunchFailed" and "stdout.txt" in ei.value.message
    assert victim.read_text() == "untouched"


def test_resetting_a_shared_task_directory_replaces_links_not_their_targets(tmp_path: Path) -> None:
    from shoal.nodeagent.taskdirs import reset_task_dir

    victim = tmp_path / "victim"
    victim.write_text("untouched")
    task_dir = tmp_path / "shared"
    (task_dir / "wd").mkdir(parents=True)
    (task_dir / "stdout.txt").symlink_to(victim)
    (task_dir / "stderr.txt").write_text("old")
    reset_task_dir(task_dir)
    assert victim.read_text() == "untouched"
    assert not (task_dir / "stdout.txt").is_symlink() and (task_dir / "stdout.txt").read_text() == ""
    assert (task_dir / "stderr.txt").read_text() == ""


def test_the_node_root_of_a_task_directory() -> None:
    """A multi-instance task's shared directory (the primary's task directory) is staged from its node root."""
    from shoal.nodeagent.layout import NodeLayout, root_of_task_dir

    layout = NodeLayout(Path("/data/nodes/node-1"))
    assert root_of_task_dir(layout.task_dir("j", "t"), "j", "t") == layout.root
    assert root_of_task_dir(Path("/data/nodes/node-2/workitems/j/job-1/t"), "j", "t") == Path("/data/nodes/node-2")
    assert root_of_task_dir(Path("/data/nodes/node-2/workitems/j/job-1/u"), "j", "t") is None
    assert root_of_task_dir(Path("/workitems/j/x/t"), "j", "t") is None


def test_every_task_is_told_the_servers_address_without_a_batch_name(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path, "127.0.0.1:7420")
    env = envvars.task_env(
        {},
        [],
        layout=layout,
        node_id="n",
        pool_id="p",
        job_id="j",
        task_id="t",
        attempt=1,
        task_dir=tmp_path / "t",
        working_dir=tmp_path / "t" / "wd",
    )
    assert env["SHOAL_ADDRESS"] == "127.0.0.1:7420" and "AZ_BATCH_ADDRESS" not in env
    assert "SHOAL_ADDRESS" not in envvars.task_env(
        {},
        [],
        layout=NodeLayout(tmp_path),
        node_id="n",
        pool_id="p",
        job_id="j",
        task_id="t",
        attempt=1,
        task_dir=tmp_path / "t",
        working_dir=tmp_path / "t" / "wd",
    )
