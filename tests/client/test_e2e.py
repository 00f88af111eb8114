"""End to end: the client and CLI against a real `shoal up` (control plane + local agents) subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.client import (
    Aborted,
    AlreadyExists,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutputFileSpec,
    ResourceFileSpec,
    ShoalError,
    StartTaskSpec,
    TaskSpec,
)
from shoal.client.cli import cli

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.address = f"127.0.0.1:{_free_port()}"
        env = dict(os.environ, SHOAL_HOME=str(root / "home"))
        self.log = (root / "up.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.client.cli",
                "up",
                "--data-dir",
                str(root / "data"),
                "--listen",
                self.address,
                "--nodes",
                "2",
                "--slots",
                "3",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def saved(self, timeout: float = 60) -> dict[str, str]:
        """The credentials `shoal up` wrote under its SHOAL_HOME (address, keys, CA)."""
        path = self.root / "home" / "credentials.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"shoal up wrote no credentials:\n{self.tail()}")
            time.sleep(0.05)
        data: dict[str, str] = json.loads(path.read_text())
        return data

    def key(self) -> str:
        """The default account's key."""
        return self.saved()["key"]

    def ca_file(self) -> str:
        """The cluster CA certificate, as a file (for the CLI's --ca-cert)."""
        path = self.root / "ca.pem"
        path.write_text(self.saved()["ca_cert"])
        return str(path)

    def connect(self, timeout: float = 30) -> Client:
        """A client of this cluster as its default account."""
        saved = self.saved()
        return Client.connect(self.address, key=saved["key"], ca_cert=saved["ca_cert"].encode(), timeout=timeout)

    def wait_ready(self, client: Client, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoal up exited {self.proc.returncode}:\n{self.tail()}")
            try:
                client.pools.get("local")
                break
            except ShoalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"shoal up did not answer:\n{self.tail()}") from None
                time.sleep(0.2)
        client.pools.wait_nodes_idle("local", count=2, timeout=max(1.0, deadline - time.monotonic()))

    def tail(self) -> str:
        return "\n".join((self.root / "up.log").read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # Whatever happened above, nothing of the group may survive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("shoal-up"))
    try:
        with c.connect(timeout=30) as client:
            c.wait_ready(client)
        yield c
    finally:
        c.stop()


@pytest.fixture
def real(cluster: Cluster) -> Iterator[Client]:
    with cluster.connect(timeout=30) as c:
        yield c


@pytest.mark.timeout(120)
def test_pools_nodes_and_errors(real: Client) -> None:
    local = real.pools.get("local")
    assert local.target_nodes == 2 and local.task_slots_per_node == 3
    assert {n.id for n in real.pools.nodes("local")} == {n.id for n in real.pools.nodes("local", state="idle")}

    marker = "python3 -c \"import os,pathlib; pathlib.Path(os.environ['SHOAL_NODE_SHARED_DIR'],'m').write_text('x')\""
    pool = real.pools.create(
        id="e2e-pool",
        target_nodes=1,
        task_slots_per_node=2,
        start_task=StartTaskSpec(command_line=marker),
        display_name="end to end",
    )
    assert pool.id == "e2e-pool" and pool.name == "pools/e2e-pool"
    assert "e2e-pool" in {p.id for p in real.pools.list()}
    nodes = real.pools.wait_nodes_idle("e2e-pool", timeout=60)
    assert len(nodes) == 1
    node = real.pools.node("e2e-pool", nodes[0].id)
    assert node.start_task_info is not None and node.start_task_info.exit_code == 0
    assert node.pool_id == "e2e-pool"
    shared = real.pools.node_files("e2e-pool", node.id, path="shared")
    assert "m" in {f.path.rsplit("/", 1)[-1] for f in shared}, shared

    with pytest.raises(AlreadyExists) as exists:
        real.pools.create(id="E2E-POOL", target_nodes=1)
    assert exists.value.reason
    with pytest.raises(NotFound) as missing:
        real.pools.get("no-such-pool")
    assert missing.value.reason == "POOL_NOT_FOUND"
    with pytest.raises(InvalidArgument) as bad:
        real.pools.create(id="bad id!", target_nodes=1)
    assert bad.value.reason
    assert any("id" in f for f, _ in bad.value.field_violations)
    real.pools.delete("e2e-pool")


@pytest.mark.timeout(240)
def test_add_many_2000_and_wait(real: Client) -> None:
    real.jobs.create(id="bulk", pool_id="local")
    results = real.tasks.add_many(
        "bulk", (TaskSpec(id=f"t{i:04d}", command_line="/bin/true") for i in range(2000)), chunk_size=700
    )
    assert len(results) == 2000 and all(r.ok for r in results)
    again = real.tasks.add_many("bulk", [TaskSpec(id="t0001", command_line="/bin/true")])
    assert [(r.status, r.error_reason) for r in again] == [("clienterror", "TASK_EXISTS")]
    seen = set()
    for task in real.tasks.wait("bulk", timeout=200):
        assert task.state == "completed"
        seen.add(task.id)
    assert len(seen) == 2000
    counts = real.jobs.task_counts("bulk")
    assert (counts.completed, counts.succeeded, counts.failed) == (2000, 2000, 0)
    assert len(list(real.tasks.list("bulk", state="completed"))) == 2000
    real.jobs.delete("bulk")


@pytest.mark.timeout(120)
def test_files_cat_and_follow(real: Client) -> None:
    real.jobs.create(id="files", pool_id="local")
    real.tasks.add(
        "files",
        TaskSpec(id="slow", command_line="/bin/sh -c 'for i in 1 2 3 4; do echo line $i; sleep 0.3; done'"),
    )
    chunks = list(real.tasks.follow_file("files", "slow", "stdout.txt", timeout=60))
    assert b"".join(chunks) == b"line 1\nline 2\nline 3\nline 4\n"
    [done] = list(real.tasks.wait("files", task_ids=["slow"], timeout=60))
    assert done.succeeded and done.exit_code == 0 and done.node_id
    names = {f.path for f in real.tasks.files("files", "slow")}
    assert {"stdout.txt", "stderr.txt"} <= names
    assert real.tasks.read_file("files", "slow", "stdout.txt") == b"line 1\nline 2\nline 3\nline 4\n"
    with pytest.raises(ShoalError):
        real.tasks.read_file("files", "slow", "../../../etc/passwd")
    real.jobs.delete("files")


@pytest.mark.timeout(120)
def test_storage_resource_and_output_files(real: Client, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("bravo\n")
    real.storage.create_container("e2e-in")
    real.storage.create_container("e2e-out")
    real.storage.upload_directory("e2e-in", src, prefix="data/")
    assert sorted(b.name for b in real.storage.list_blobs("e2e-in")) == ["data/a.txt", "data/sub/b.txt"]
    assert real.storage.download_bytes("e2e-in", "data/sub/b.txt") == b"bravo\n"

    real.jobs.create(id="stage", pool_id="local")
    real.tasks.add(
        "stage",
        TaskSpec(
            id="cat",
            command_line="/bin/sh -c 'mkdir -p out && cat in/data/a.txt in/data/sub/b.txt > out/joined.txt'",
            resource_files=(ResourceFileSpec.from_container("e2e-in", blob_prefix="data/", file_path="in"),),
            output_files=(OutputFileSpec(file_pattern="out/joined.txt", container="e2e-out", path="r/joined.txt"),),
        ),
    )
    [task] = list(real.tasks.wait("stage", timeout=60))
    assert task.succeeded, (task.exit_code, task.failure)
    target = real.storage.download_blob("e2e-out", "r/joined.txt", tmp_path / "dl" / "joined.txt")
    assert target.read_text() == "alpha\nbravo\n"
    got = real.storage.download_prefix("e2e-out", "r/", tmp_path / "all")
    assert [p.name for p in got] == ["joined.txt"]
    real.jobs.delete("stage")
    real.storage.delete_container("e2e-in")
    real.storage.delete_container("e2e-out")
    with pytest.raises(NotFound):
        list(real.storage.list_blobs("e2e-in"))


@pytest.mark.timeout(120)
def test_failures_retries_terminate_reactivate(real: Client) -> None:
    real.jobs.create(id="fails", pool_id="local", max_task_retry_count=1)
    real.tasks.add_many(
        "fails",
        [
            TaskSpec(id="exit3", command_line="/bin/sh -c 'exit 3'"),
            TaskSpec(id="noretry", command_line="/bin/sh -c 'exit 2'", max_task_retry_count=0),
            TaskSpec(
                id="slow", command_line="sleep 30", max_wall_clock_time=timedelta(seconds=1), max_task_retry_count=0
            ),
            TaskSpec(id="missing", command_line="/no/such/program", max_task_retry_count=0),
        ],
    )
    done = {t.id: t for t in real.tasks.wait("fails", timeout=90)}
    assert done["exit3"].failed and done["exit3"].exit_code == 3 and done["exit3"].retry_count == 1
    assert done["exit3"].failure is not None and done["exit3"].failure.code == "FailureExitCode"
    assert done["noretry"].retry_count == 0 and done["noretry"].exit_code == 2
    assert done["slow"].failure is not None and done["slow"].failure.code == "TaskEnded"
    assert done["missing"].failed and done["missing"].failure is not None

    again = real.tasks.reactivate("fails", "noretry")
    assert again.state in ("active", "preparing", "running", "completed")
    [redone] = list(real.tasks.wait("fails", task_ids=["noretry"], timeout=60))
    assert redone.failed and redone.exit_code == 2

    real.tasks.add("fails", TaskSpec(id="long", command_line="sleep 60"))
    deadline = time.monotonic() + 30
    while real.tasks.get("fails", "long").state != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    real.tasks.terminate("fails", "long")
    [ended] = list(real.tasks.wait("fails", task_ids=["long"], timeout=60))
    assert ended.failed
    assert real.jobs.terminate("fails").state in ("terminating", "completed")
    real.jobs.delete("fails")


@pytest.mark.timeout(120)
def test_wait_cancel_from_another_thread(real: Client) -> None:
    real.jobs.create(id="cancel", pool_id="local")
    real.tasks.add("cancel", TaskSpec(id="long", command_line="sleep 60"))
    watch = real.tasks.wait("cancel")
    threading.Timer(0.5, watch.cancel).start()
    started = time.monotonic()
    assert list(watch) == []
    assert time.monotonic() - started < 30
    real.jobs.terminate("cancel")
    real.jobs.delete("cancel")


@pytest.mark.timeout(120)
def test_cli_against_real_server(cluster: Cluster, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(
            cli,
            ["--address", cluster.address, "--key", cluster.key(), "--ca-cert", cluster.ca_file(), *args],
            catch_exceptions=False,
        )
        return r.exit_code, r.stdout, r.stderr

    code, out, _ = run("pool", "list", "-o", "json")
    assert code == 0 and "local" in {p["id"] for p in json.loads(out)}
    code, out, _ = run("node", "list", "local")
    assert (code == 0 and "idle" in out) or "running" in out
    assert run("job", "create", "clijob", "--pool", "local")[0] == 0
    code, out, _ = run("task", "add-many", "clijob", "--count", "20", "--command", "/bin/echo hello {i}")
    assert code == 0 and "added 20 of 20" in out
    code, out, _ = run("task", "wait", "clijob", "--timeout", "60")
    assert code == 0 and "20 succeeded, 0 failed" in out
    code, out, _ = run("job", "counts", "clijob", "-o", "json")
    assert json.loads(out)["succeeded"] == 20
    code, out, _ = run("task", "cat", "clijob", "t13")
    assert out == "hello 13\n"
    code, out, _ = run("task", "list", "clijob", "--state", "completed", "-o", "json")
    assert len(json.loads(out)) == 20
    code, _, err = run("task", "get", "clijob", "nope")
    assert code == 1 and err.startswith("error: NOT_FOUND") and "\n" not in err.strip()
    f = tmp_path / "x.txt"
    f.write_text("payload")
    assert run("storage", "create", "cli-box")[0] == 0
    assert run("storage", "upload", "cli-box", str(f))[0] == 0
    (tmp_path / "dl").mkdir()
    code, out, _ = run("storage", "download", "cli-box", "x.txt", "-d", str(tmp_path / "dl"))
    assert code == 0 and (tmp_path / "dl" / "x.txt").read_text() == "payload"
    assert run("storage", "delete", "cli-box")[0] == 1  # it holds x.txt: --force (off a terminal)
    assert run("storage", "delete", "cli-box", "--force")[0] == 0
    assert run("job", "delete", "clijob")[0] == 0


@pytest.mark.timeout(60)
def test_up_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        with c.connect(timeout=10) as client:
            c.wait_ready(client, timeout=40)
        os.killpg(c.proc.pid, signal.SIGINT)
        assert c.proc.wait(timeout=20) == 0
    finally:
        c.stop()


@pytest.mark.timeout(120)
def test_environment_and_job_auto_termination(real: Client) -> None:
    real.jobs.create(
        id="envjob",
        pool_id="local",
        common_environment={"COMMON": "from-job", "OVERRIDE": "job"},
        on_all_tasks_complete="terminatejob",
    )
    real.tasks.add_many(
        "envjob",
        [
            TaskSpec(
                id="env",
                command_line="/bin/sh -c 'echo $COMMON $OVERRIDE $SHOAL_TASK_ID $AZ_BATCH_JOB_ID'",
                environment={"OVERRIDE": "task"},
            ),
            TaskSpec(id="two-slots", command_line="/bin/true", required_slots=2),
        ],
    )
    done = {t.id: t for t in real.tasks.wait("envjob", timeout=60)}
    assert done["env"].succeeded and done["two-slots"].succeeded
    assert real.tasks.read_file("envjob", "env", "stdout.txt") == b"from-job task env envjob\n"
    deadline = time.monotonic() + 30
    while real.jobs.get("envjob").state != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
    job = real.jobs.get("envjob")
    assert job.state == "completed" and job.terminate_reason
    real.jobs.delete("envjob")


@pytest.mark.timeout(120)
def test_resize_and_delete_pool(real: Client) -> None:
    real.pools.create(id="elastic", target_nodes=1)
    real.pools.wait_nodes_idle("elastic", timeout=60)
    before = real.pools.get("elastic")
    real.pools.resize("elastic", target_nodes=2, etag=before.etag)
    # One resize at a time, as in Batch: the next waits for the pool to be steady.
    with pytest.raises(FailedPrecondition) as busy:
        real.pools.resize("elastic", target_nodes=3)
    assert busy.value.reason == "POOL_RESIZING"
    with pytest.raises(Aborted) as stale:
        real.pools.delete("elastic", etag=before.etag)
    assert stale.value.reason == "ETAG_MISMATCH"
    pool = real.pools.wait_steady("elastic", count=2, timeout=60)
    assert pool.current_nodes == 2
    assert len(real.pools.wait_nodes_idle("elastic", count=2, timeout=60)) == 2
    real.pools.resize("elastic", target_nodes=1)
    steady = real.pools.wait_steady("elastic", timeout=60)
    assert steady.current_nodes == 1
    real.pools.delete("elastic", etag=steady.etag)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            real.pools.get("elastic")
        except NotFound:
            break
        time.sleep(0.2)
    else:
        pytest.fail("pool elastic was not deleted")


@pytest.mark.timeout(180)
def test_multi_instance_task(real: Client) -> None:
    from shoal.client import MultiInstanceSettings

    real.pools.create(id="mpi", target_nodes=2, task_slots_per_node=1, enable_inter_node_communication=True)
    real.pools.wait_nodes_idle("mpi", count=2, timeout=60)
    real.jobs.create(id="mpijob", pool_id="mpi")
    real.tasks.add(
        "mpijob",
        TaskSpec(
            id="gang",
            command_line="/bin/sh -c 'echo hosts=$SHOAL_HOST_LIST'",
            multi_instance_settings=MultiInstanceSettings(
                number_of_instances=2, coordination_command_line="/bin/sh -c 'echo coordinating'"
            ),
        ),
    )
    [task] = list(real.tasks.wait("mpijob", timeout=120))
    assert task.succeeded, (task.exit_code, task.failure)
    subtasks = real.tasks.subtasks("mpijob", "gang")
    assert sorted(st.id for st in subtasks) == [0, 1]
    assert len({st.node_id for st in subtasks}) == 2
    out = real.tasks.read_file("mpijob", "gang", "stdout.txt").decode()
    [hosts] = [line for line in out.splitlines() if line.startswith("hosts=")]
    assert len(hosts.removeprefix("hosts=").split(",")) == 2
    real.jobs.delete("mpijob")
    real.pools.delete("mpi")


def test_etags_make_changes_conditional(real: Client) -> None:
    job = real.jobs.create(id="etags", pool_id="local")
    assert job.etag and real.jobs.get("etags").etag == job.etag
    updated = real.jobs.update("etags", priority=3, etag=job.etag)
    assert updated.priority == 3 and updated.etag != job.etag
    with pytest.raises(Aborted) as stale:
        real.jobs.update("etags", priority=4, etag=job.etag)
    assert stale.value.reason == "ETAG_MISMATCH" and real.jobs.get("etags").priority == 3
    task = real.tasks.add("etags", TaskSpec(id="t", command_line="sleep 30"))
    deadline = time.monotonic() + 30
    while (running := real.tasks.get("etags", "t")).state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.etag != task.etag
    with pytest.raises(Aborted):
        real.tasks.terminate("etags", "t", etag=task.etag)
    ended = real.tasks.terminate("etags", "t", etag=running.etag)
    assert ended.state == "completed" and ended.exit_code == -1073741510
    with pytest.raises(Aborted):
        real.jobs.delete("etags", etag=job.etag)
    real.jobs.delete("etags", etag=real.jobs.get("etags").etag)


@pytest.mark.timeout(120)
def test_accounting_from_the_cli(cluster: Cluster) -> None:
    """A task whose child burns CPU: `task get`, `job stats` and `pool stats` show what it used."""
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        r = runner.invoke(
            cli,
            ["--address", cluster.address, "--key", cluster.key(), "--ca-cert", cluster.ca_file(), *args],
            catch_exceptions=False,
        )
        return r.exit_code, r.stdout

    burn = "import time; t = time.process_time(); [0 for _ in iter(lambda: time.process_time() - t < 0.3, False)]"
    assert run("job", "create", "acct", "--pool", "local")[0] == 0
    # The shell's child does the work; the shell only waits for it.
    code, out = run("task", "add", "acct", "burn", f"sh -c \"{sys.executable} -c '{burn}' & wait\"")
    assert code == 0, out
    code, out = run("task", "wait", "acct", "--timeout", "60")
    assert code == 0 and "1 succeeded" in out
    code, out = run("task", "get", "acct", "burn", "-o", "json")
    task = json.loads(out)
    assert task["last_attempt_stats"]["user_cpu_seconds"] + task["last_attempt_stats"]["kernel_cpu_seconds"] > 0.2
    assert task["stats"]["attempts"] == 1 and task["stats"]["tasks_succeeded"] == 1
    code, out = run("task", "get", "acct", "burn")
    assert code == 0 and "cpu user" in out
    code, out = run("job", "stats", "acct", "-o", "json")
    assert code == 0 and json.loads(out)["usage"]["attempts"] == 1
    code, out = run("job", "stats", "acct")
    assert code == 0 and "peak memory" in out and "MiB" in out
    code, out = run("pool", "stats", "local", "-o", "json")
    assert code == 0 and json.loads(out)["dedicated_node_seconds"] > 0
    assert run("job", "delete", "acct")[0] == 0
