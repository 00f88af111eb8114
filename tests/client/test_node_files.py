"""Node and task files in the client and the CLI: read (and follow), download, properties, delete.

Against the fake API on a real in-process gRPC server (tests/client/fake_server.py), which keeps files
in memory and refuses as the agent does (FILE_IS_DIRECTORY, FILE_PROTECTED, FILE_NOT_FOUND).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click
import pytest

from shoal.client import Client, FailedPrecondition, FileStream, NotFound, PermissionDenied, TaskSpec
from shoal.client.cli import cli
from shoal.v1 import pool_pb2, task_pb2

from .fake_server import FakeServer

pytestmark = pytest.mark.timeout(60)


def _node_file(fake: FakeServer, path: str, data: bytes) -> None:
    def put() -> None:
        fake.state.node_files[("p", "node-1", path)] = data

    fake.call(put)


def _append(fake: FakeServer, path: str, data: bytes) -> None:
    def grow() -> None:
        fake.state.node_files[("p", "node-1", path)] += data

    fake.call(grow)


@pytest.fixture
def node(client: Client, fake: FakeServer) -> None:
    client.pools.create(id="p", target_nodes=1)
    _node_file(fake, "agent.log", b"started\n")
    _node_file(fake, "shared/a/x.txt", b"x")
    _node_file(fake, "shared/a/y.txt", b"yy")


@pytest.fixture
def task(client: Client, fake: FakeServer) -> None:
    client.pools.create(id="p", target_nodes=1)
    client.jobs.create(id="j", pool_id="p")
    client.tasks.add("j", TaskSpec(id="t", command_line="x"))
    fake.call(fake.state.set_running, "j", "t")
    fake.state.files[("j", "t", "stdout.txt")] = b"out\n"
    fake.state.files[("j", "t", "wd/r.dat")] = b"rr"


# --------------------------------------------------------------------------- client


@pytest.mark.usefixtures("node")
def test_read_and_download_a_node_file(client: Client, tmp_path: Path) -> None:
    stream = client.pools.read_node_file("p", "node-1", "agent.log")
    assert isinstance(stream, FileStream)
    assert b"".join(stream) == b"started\n"
    assert b"".join(client.pools.read_node_file("p", "node-1", "agent.log", offset=4)) == b"ted\n"
    target = client.pools.download_node_file("p", "node-1", "agent.log", tmp_path / "d" / "agent.log")
    assert target.read_bytes() == b"started\n"
    with pytest.raises(NotFound) as e:
        client.pools.download_node_file("p", "node-1", "nope.log", tmp_path / "nope.log")
    assert e.value.reason == "FILE_NOT_FOUND"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["agent.log", "d"]  # no partial file left


@pytest.mark.usefixtures("node")
def test_follow_a_node_file_until_cancelled_from_another_thread(client: Client, fake: FakeServer) -> None:
    stream = client.pools.read_node_file("p", "node-1", "agent.log", follow=True)
    assert next(stream) == b"started\n"
    _append(fake, "agent.log", b"more\n")
    assert next(stream) == b"more\n"
    # cancel() from another thread ends a follow blocked waiting for bytes: iteration ends quietly.
    threading.Timer(0.3, stream.cancel).start()
    assert list(stream) == []
    # The server saw the call end.
    for _ in range(500):
        if fake.call(lambda: fake.state.node_follows) == 0:
            break
        threading.Event().wait(0.01)
    assert fake.call(lambda: fake.state.node_follows) == 0
    with client.pools.read_node_file("p", "node-1", "agent.log", follow=True) as again:
        assert next(again) == b"started\nmore\n"


@pytest.mark.usefixtures("node")
def test_node_file_properties_and_delete(client: Client, fake: FakeServer) -> None:
    f = client.pools.node_file_properties("p", "node-1", "shared/a/y.txt")
    assert (f.path, f.size, f.is_directory) == ("shared/a/y.txt", 2, False)
    assert client.pools.node_file_properties("p", "node-1", "shared/a").is_directory
    with pytest.raises(FailedPrecondition) as fp:
        client.pools.delete_node_file("p", "node-1", "shared/a")
    assert fp.value.reason == "FILE_IS_DIRECTORY"
    client.pools.delete_node_file("p", "node-1", "shared/a/x.txt")
    assert [f.path for f in client.pools.node_files("p", "node-1", "shared", recursive=True)] == ["shared/a/y.txt"]
    client.pools.delete_node_file("p", "node-1", "shared/a", recursive=True)
    sent = fake.state.delete_file_requests[-1]
    assert isinstance(sent, pool_pb2.DeleteNodeFileRequest)
    assert (sent.name, sent.path, sent.recursive) == ("pools/p/nodes/node-1", "shared/a", True)
    with pytest.raises(NotFound):
        client.pools.node_file_properties("p", "node-1", "shared/a")
    with pytest.raises(PermissionDenied) as pd:
        client.pools.delete_node_file("p", "node-1", "", recursive=True)
    assert pd.value.reason == "FILE_PROTECTED"


@pytest.mark.usefixtures("task")
def test_task_file_properties_and_delete(client: Client, fake: FakeServer) -> None:
    f = client.tasks.file_properties("j", "t", "stdout.txt")
    assert (f.path, f.size) == ("stdout.txt", 4)
    assert client.tasks.file_properties("j", "t", "wd").is_directory
    with pytest.raises(FailedPrecondition):
        client.tasks.delete_file("j", "t", "wd")
    client.tasks.delete_file("j", "t", "wd", recursive=True)
    sent = fake.state.delete_file_requests[-1]
    assert isinstance(sent, task_pb2.DeleteTaskFileRequest)
    assert (sent.name, sent.path, sent.recursive) == ("jobs/j/tasks/t", "wd", True)
    client.tasks.delete_file("j", "t", "stdout.txt")
    assert client.tasks.files("j", "t") == []
    with pytest.raises(NotFound):
        client.tasks.file_properties("j", "t", "stdout.txt")


# --------------------------------------------------------------------------- CLI


@pytest.mark.usefixtures("node")
def test_cli_node_cat_files_stat_rm(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    assert run("node", "cat", "p", "node-1", "agent.log").stdout_bytes == b"started\n"
    assert run("node", "cat", "p", "node-1", "agent.log", "--offset", "4").stdout_bytes == b"ted\n"
    r = run("node", "cat", "p", "node-1", "agent.log", "--offset", "-1")
    assert r.exit_code == 2
    r = run("node", "files", "p", "node-1", "shared/a", "-o", "json")
    assert [f["path"] for f in json.loads(r.output)] == ["shared/a/x.txt", "shared/a/y.txt"]
    r = run("node", "files", "p", "node-1", "--path", "shared", "-r", "-o", "json")
    assert [f["path"] for f in json.loads(r.output)] == ["shared/a/x.txt", "shared/a/y.txt"]
    assert run("node", "files", "p", "node-1", "shared", "--path", "other").exit_code == 2
    r = run("node", "stat", "p", "node-1", "shared/a/y.txt", "-o", "json")
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert (shown["path"], shown["size"], shown["is_directory"]) == ("shared/a/y.txt", 2, False)
    assert "shared/a/y.txt" in run("node", "stat", "p", "node-1", "shared/a/y.txt").output
    r = run("node", "rm", "p", "node-1", "shared/a")
    assert r.exit_code == 1 and r.stderr.startswith("error: FAILED_PRECONDITION FILE_IS_DIRECTORY: ")
    r = run("node", "rm", "p", "node-1", "shared/a", "-r")
    assert r.exit_code == 0 and "deleted" in r.output
    assert fake.state.delete_file_requests[-1].recursive
    r = run("node", "stat", "p", "node-1", "shared/a")
    assert r.exit_code == 1 and "FILE_NOT_FOUND" in r.stderr


@pytest.mark.usefixtures("node")
def test_cli_node_cat_follow_prints_what_is_appended(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    def grow_then_end() -> None:
        # Once the CLI follows (the fake counts it), append and end the follow once drained (the real
        # server's ends when the caller cancels: Ctrl-C).
        for _ in range(1000):
            if fake.call(lambda: fake.state.node_follows):
                break
            threading.Event().wait(0.01)

        def grow_and_end() -> None:
            fake.state.node_files[("p", "node-1", "agent.log")] += b"appended\n"
            fake.state.ended_follows.add(("p", "node-1", "agent.log"))

        fake.call(grow_and_end)

    threading.Thread(target=grow_then_end).start()
    r = run("node", "cat", "p", "node-1", "agent.log", "-f")
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == b"started\nappended\n"


@pytest.mark.usefixtures("task")
def test_cli_task_stat_and_rm(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    r = run("task", "stat", "j", "t", "stdout.txt", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["size"] == 4
    r = run("task", "rm", "j", "t", "wd")
    assert r.exit_code == 1 and "FILE_IS_DIRECTORY" in r.stderr
    assert run("task", "rm", "j", "t", "wd", "--recursive").exit_code == 0
    assert run("task", "rm", "j", "t", "stdout.txt").exit_code == 0
    assert fake.state.files == {}
    r = run("task", "rm", "j", "t", "")
    assert r.exit_code == 1 and "FILE_PROTECTED" in r.stderr


def test_cli_file_commands_document_every_option(run) -> None:  # type: ignore[no-untyped-def]
    groups = {name: cli.commands[name] for name in ("node", "task")}
    for group, verbs in (("node", ("cat", "files", "stat", "rm")), ("task", ("stat", "rm", "files", "cat"))):
        command = groups[group]
        assert isinstance(command, click.Group)
        for verb in verbs:
            sub = command.commands[verb]
            assert sub.help, f"{group} {verb}"
            for param in sub.params:
                if isinstance(param, click.Option):
                    assert param.help, f"{group} {verb} {param.opts}"
        assert all(v in run(group, "--help").output for v in verbs)
