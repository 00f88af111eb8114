"""The client against a fake API on a real in-process gRPC server: paging, bulk add, watching, files, storage."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from shoal.client import (
    Client,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    TaskSpec,
    resolve_address,
)

from .fake_server import FakeServer


def _job(client: Client, job_id: str = "j") -> None:
    client.pools.create(id="p", target_nodes=2, task_slots_per_node=2)
    client.jobs.create(id=job_id, pool_id="p")


def test_address_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    assert resolve_address() == "127.0.0.1:7420"
    (tmp_path / "server.json").write_text(json.dumps({"address": "127.0.0.1:9999"}))
    assert resolve_address() == "127.0.0.1:9999"
    monkeypatch.setenv("SHOAL_ADDRESS", "127.0.0.1:8888")
    assert resolve_address() == "127.0.0.1:8888"
    assert resolve_address("10.0.0.1:1") == "10.0.0.1:1"
    (tmp_path / "server.json").write_text("not json")
    monkeypatch.delenv("SHOAL_ADDRESS")
    assert resolve_address() == "127.0.0.1:7420"


def test_connect_uses_server_json(fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    (tmp_path / "server.json").write_text(json.dumps({"address": fake.address}))
    with Client.connect() as c:
        assert c.address == fake.address
        c.wait_ready(timeout=20)
        assert list(c.pools.list()) == []


def test_pools_list_follows_pages(client: Client, fake: FakeServer) -> None:
    for i in range(5):
        client.pools.create(id=f"p{i}", target_nodes=1, display_name=f"pool {i}")
    pools = list(client.pools.list())
    assert [p.id for p in pools] == [f"p{i}" for i in range(5)]
    assert pools[0].display_name == "pool 0"
    assert len(fake.state.page_size_seen) == 3


def test_pool_create_sends_start_task_and_request_id(client: Client, fake: FakeServer) -> None:
    from shoal.client import StartTaskSpec

    pool = client.pools.create(
        id="st",
        target_nodes=3,
        task_slots_per_node=4,
        start_task=StartTaskSpec(command_line="setup.sh", environment={"A": "b"}),
        enable_inter_node_communication=True,
    )
    assert pool.start_task is not None and pool.start_task.wait_for_success
    assert pool.enable_inter_node_communication
    assert pool.task_slots_per_node == 4
    nodes = list(client.pools.nodes("st"))
    assert [n.id for n in nodes] == ["node-1", "node-2", "node-3"]
    assert client.pools.node("st", "node-2").ip_address == "127.0.1.2"
    assert [n.id for n in client.pools.wait_nodes_idle("st", timeout=5)] == ["node-1", "node-2", "node-3"]
    assert client.pools.wait_steady("st", timeout=5).current_nodes == 3
    resized = client.pools.resize("st", target_nodes=5)
    assert resized.target_nodes == 5
    with pytest.raises(DeadlineExceeded):
        client.pools.wait_steady("st", timeout=0.3, poll_interval=0.05)
    assert client.pools.delete("st").state == "deleting"


def test_wait_nodes_cancellable(client: Client) -> None:
    from shoal.client import Cancelled

    client.pools.create(id="c", target_nodes=1)
    client.pools.resize("c", target_nodes=4)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        client.pools.wait_nodes_idle("c", cancel=cancel, poll_interval=0.05)
    assert time.monotonic() - started < 30


def test_jobs(client: Client) -> None:
    from datetime import timedelta

    client.pools.create(id="p", target_nodes=1)
    job = client.jobs.create(
        id="j1",
        pool_id="p",
        priority=10,
        max_task_retry_count=2,
        common_environment={"X": "1"},
        on_all_tasks_complete="terminatejob",
        max_wall_clock_time=timedelta(minutes=1),
    )
    assert job.priority == 10 and job.max_task_retry_count == 2
    assert job.common_environment == {"X": "1"}
    assert job.on_all_tasks_complete == "terminatejob"
    assert job.max_wall_clock_time == timedelta(minutes=1)
    client.jobs.create(id="j2", pool_id="p")
    assert [j.id for j in client.jobs.list()] == ["j1", "j2"]
    assert client.jobs.update("j1", priority=-5).priority == -5
    assert client.jobs.terminate("j2").terminate_reason == "UserTerminate"
    assert [j.id for j in client.jobs.list(state="completed")] == ["j2"]
    with pytest.raises(InvalidArgument):
        client.jobs.update("j1")
    with pytest.raises(InvalidArgument):
        client.jobs.create(id="j3", pool_id="p", on_all_tasks_complete="explode")
    client.jobs.delete("j1")
    with pytest.raises(NotFound):
        client.jobs.get("j1")


def test_add_many_chunks_and_reports_existing(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add("j", TaskSpec(id="t3", command_line="x"))
    seen: list[int] = []
    results = client.tasks.add_many(
        "j",
        (TaskSpec(id=f"t{i}", command_line=f"echo {i}") for i in range(25)),
        chunk_size=10,
        on_chunk=lambda rs: seen.append(len(rs)),
    )
    assert [r.task_id for r in results] == [f"t{i}" for i in range(25)]
    assert fake.state.add_tasks_requests == [10, 10, 5]  # in order
    assert seen == [10, 10, 5]
    bad = [r for r in results if not r.ok]
    assert [(r.task_id, r.status, r.error_reason) for r in bad] == [("t3", "clienterror", "TASK_EXISTS")]
    assert client.jobs.task_counts("j").active == 25


def test_add_many_invalid_chunk_raises(client: Client) -> None:
    _job(client)
    with pytest.raises(InvalidArgument) as e:
        client.tasks.add_many("j", [TaskSpec(id="ok", command_line="x"), TaskSpec(id="no way", command_line="x")])
    assert e.value.field_violations == [("tasks[1].id", "bad id")]
    assert client.tasks.add_many("j", []) == []


def test_list_tasks_pages_and_state(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add_many("j", [TaskSpec(id=f"t{i}", command_line="x") for i in range(7)])
    fake.call(fake.state.complete, "j", "t1", 0)
    fake.call(fake.state.complete, "j", "t2", 4)
    assert len(list(client.tasks.list("j"))) == 7
    done = list(client.tasks.list("j", state="completed"))
    assert [t.id for t in done] == ["t1", "t2"]
    assert done[1].exit_code == 4 and done[1].failure is not None
    assert client.tasks.get("j", "t1").succeeded


def test_wait_yields_completions_from_stream(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add_many("j", [TaskSpec(id=f"t{i}", command_line="x") for i in range(5)])
    fake.call(fake.state.complete, "j", "t0", 0)

    def finish_rest() -> None:
        time.sleep(0.2)
        fake.call(fake.state.set_running, "j", "t1")
        for i in range(1, 5):
            fake.call(fake.state.complete, "j", f"t{i}", 0 if i % 2 else 3)

    threading.Thread(target=finish_rest).start()
    watch = client.tasks.wait("j", timeout=10)
    got = [(t.id, t.result) for t in watch]
    assert sorted(got) == [
        ("t0", "success"),
        ("t1", "success"),
        ("t2", "failure"),
        ("t3", "success"),
        ("t4", "failure"),
    ]
    assert got[0] == ("t0", "success")  # already completed: from the snapshot
    assert watch.total == 5 and watch.completed == 5


def test_wait_for_some_ids(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add_many("j", [TaskSpec(id=f"t{i}", command_line="x") for i in range(4)])
    threading.Timer(0.1, lambda: fake.call(fake.state.complete, "j", "t2", 0)).start()
    assert [t.id for t in client.tasks.wait("j", task_ids=["t2"], timeout=10)] == ["t2"]
    with pytest.raises(NotFound):
        list(client.tasks.wait("j", task_ids=["missing"], timeout=10))


def test_wait_on_empty_job_returns(client: Client) -> None:
    _job(client)
    assert list(client.tasks.wait("j", timeout=5)) == []


def test_wait_timeout_and_cancel(client: Client) -> None:
    _job(client)
    client.tasks.add("j", TaskSpec(id="t", command_line="x"))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as e:
        list(client.tasks.wait("j", timeout=0.5))
    assert e.value.reason == "WAIT_TIMEOUT"
    watch = client.tasks.wait("j")
    threading.Timer(0.3, watch.cancel).start()
    assert list(watch) == []
    assert time.monotonic() - started < 30


def test_files_read_and_follow(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add("j", TaskSpec(id="t", command_line="x"))
    fake.call(fake.state.set_running, "j", "t")
    fake.state.files[("j", "t", "stdout.txt")] = b"hello world\n"
    fake.state.files[("j", "t", "wd/out.dat")] = b"\x00\x01"
    files = client.tasks.files("j", "t")
    assert [(f.path, f.size) for f in files] == [("stdout.txt", 12), ("wd/out.dat", 2)]
    assert client.tasks.read_file("j", "t", "stdout.txt") == b"hello world\n"
    assert client.tasks.read_file("j", "t", "stdout.txt", offset=6) == b"world\n"

    def grow_then_finish() -> None:
        time.sleep(0.2)

        def grow() -> None:
            fake.state.files[("j", "t", "stdout.txt")] += b"more\n"

        fake.call(grow)
        time.sleep(0.1)
        fake.call(fake.state.complete, "j", "t", 0)

    threading.Thread(target=grow_then_finish).start()
    data = b"".join(client.tasks.follow_file("j", "t", "stdout.txt", timeout=10))
    assert data == b"hello world\nmore\n"


def test_storage_round_trip(client: Client, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.txt").write_text("bravo" * 1000)
    (tmp_path / "single.bin").write_bytes(b"")
    assert client.storage.create_container("inputs").id == "inputs"
    client.storage.create_container("inputs")  # exist_ok
    blobs = client.storage.upload_directory("inputs", src, prefix="in/")
    assert sorted(b.name for b in blobs) == ["in/a.txt", "in/sub/b.txt"]
    assert client.storage.upload_file("inputs", tmp_path / "single.bin").size == 0
    assert client.storage.upload_file("inputs", tmp_path / "single.bin", "x/y.bin").name == "x/y.bin"
    assert [b.name for b in client.storage.list_blobs("inputs", prefix="in/")] == ["in/a.txt", "in/sub/b.txt"]
    out = client.storage.download_blob("inputs", "in/sub/b.txt", tmp_path / "dl" / "b.txt")
    assert out.read_text() == "bravo" * 1000
    paths = client.storage.download_prefix("inputs", "in/", tmp_path / "all")
    assert sorted(p.relative_to(tmp_path / "all").as_posix() for p in paths) == ["in/a.txt", "in/sub/b.txt"]
    assert client.storage.download_bytes("inputs", "single.bin") == b""
    client.storage.delete_blob("inputs", "single.bin")
    with pytest.raises(NotFound):
        client.storage.delete_blob("inputs", "single.bin")
    assert [c.id for c in client.storage.list_containers()] == ["inputs"]
    client.storage.delete_container("inputs")
    with pytest.raises(InvalidArgument):
        client.storage.upload_file("inputs", tmp_path / "nope")


def test_key_is_sent_as_metadata(fake: FakeServer) -> None:
    with Client.connect(fake.address, key="sekrit") as c:
        c.pools.create(id="k", target_nodes=0)
    assert fake.state.metadata_seen[-1]["authorization"] == "Bearer sekrit"


def test_follow_waits_for_the_task_to_start(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add("j", TaskSpec(id="t", command_line="x"))

    def start_then_finish() -> None:
        time.sleep(0.3)
        fake.call(fake.state.set_running, "j", "t")
        time.sleep(0.3)
        fake.state.files[("j", "t", "stdout.txt")] = b"started\n"
        time.sleep(0.2)
        fake.call(fake.state.complete, "j", "t", 0)

    threading.Thread(target=start_then_finish).start()
    assert b"".join(client.tasks.follow_file("j", "t", "stdout.txt", timeout=10)) == b"started\n"


def test_follow_gives_up_when_the_task_never_ran(client: Client, fake: FakeServer) -> None:
    from shoal.client import FailedPrecondition

    _job(client)
    client.tasks.add("j", TaskSpec(id="t", command_line="x"))
    with pytest.raises(DeadlineExceeded):
        list(client.tasks.follow_file("j", "t", "stdout.txt", timeout=0.5))
    with pytest.raises(FailedPrecondition) as e:
        client.tasks.read_file("j", "t", "stdout.txt")
    assert e.value.reason == "TASK_FILES_UNAVAILABLE"
    client.tasks.terminate("j", "t")
    with pytest.raises(NotFound):
        list(client.tasks.follow_file("j", "t", "stdout.txt", timeout=5))


def test_wait_watches_again_when_the_stream_ends(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add_many("j", [TaskSpec(id=f"t{i}", command_line="x") for i in range(3)])
    fake.call(fake.state.complete, "j", "t0", 0)
    fake.state.end_next_watch_after_initial = True

    def finish() -> None:
        time.sleep(0.4)
        fake.call(fake.state.complete, "j", "t1", 0)
        fake.call(fake.state.complete, "j", "t2", 0)

    threading.Thread(target=finish).start()
    ids = [t.id for t in client.tasks.wait("j", timeout=10)]
    assert sorted(ids) == ["t0", "t1", "t2"]
    assert ids.count("t0") == 1  # not yielded again from the second snapshot
    assert fake.state.watch_calls >= 2


def test_wait_nodes_idle_reports_start_task_failure(client: Client, fake: FakeServer) -> None:
    from shoal.client import FailedPrecondition, StartTaskSpec
    from shoal.v1 import pool_pb2

    client.pools.create(id="sf", target_nodes=2, start_task=StartTaskSpec(command_line="false"))

    def fail_nodes() -> None:
        for n in fake.state.nodes["sf"]:
            n.state = pool_pb2.NODE_STATE_START_TASK_FAILED

    fake.call(fail_nodes)
    with pytest.raises(FailedPrecondition) as e:
        client.pools.wait_nodes_idle("sf", timeout=5)
    assert e.value.reason == "START_TASK_FAILED"
    assert "node-1" in str(e.value)


def test_leaving_a_wait_early_ends_the_stream(client: Client, fake: FakeServer) -> None:
    _job(client)
    client.tasks.add_many("j", [TaskSpec(id=f"t{i}", command_line="x") for i in range(3)])
    fake.call(fake.state.complete, "j", "t0", 0)
    with client.tasks.wait("j", timeout=10) as watch:
        first = next(watch)
        assert first.id == "t0"
        assert watch.completed == 1
    deadline = time.monotonic() + 5
    while fake.call(lambda: len(fake.state.watchers)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.call(lambda: len(fake.state.watchers)) == 0


def test_uploads_create_a_missing_container(client: Client, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(NotFound) as e:
        client.storage.upload_file("fresh", f, create_container=False)
    assert e.value.reason == "CONTAINER_NOT_FOUND"
    assert client.storage.upload_file("fresh", f).name == "f.txt"
    assert client.storage.upload_bytes("other", "b.bin", b"\x00" * 10).size == 10
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_text("a")
    assert [b.name for b in client.storage.upload_directory("third", d)] == ["a"]
    assert sorted(c.id for c in client.storage.list_containers()) == ["fresh", "other", "third"]
