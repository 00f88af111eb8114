"""The `shoal` CLI through click's CliRunner against a fake API on a real in-process gRPC server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.client.cli import cli

from .fake_server import FakeServer


def test_help_lists_resources() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for word in ("pool", "node", "job", "task", "storage", "server", "up", "agent"):
        assert word in result.output


def test_pool_create_list_get_json(run) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "pool", "create", "p1", "--nodes", "2", "--slots", "3", "--start-task", "echo hi", "--start-task-env", "A=b"
    )
    assert r.exit_code == 0, r.output
    assert "p1" in r.output
    r = run("pool", "list", "-o", "json")
    data = json.loads(r.output)
    assert data[0]["id"] == "p1"
    assert data[0]["task_slots_per_node"] == 3
    assert data[0]["start_task"]["command_line"] == "echo hi"
    assert data[0]["start_task"]["environment"] == {"A": "b"}
    assert data[0]["state"] == "active"
    r = run("pool", "get", "p1")
    assert r.exit_code == 0 and "pools/p1" in r.output
    r = run("pool", "nodes", "p1", "-o", "json")
    assert [n["id"] for n in json.loads(r.output)] == ["node-1", "node-2"]
    r = run("node", "list", "p1", "--state", "idle")
    assert "node-1" in r.output and "node-2" in r.output
    r = run("node", "get", "p1", "node-2", "-o", "json")
    assert json.loads(r.output)["ip_address"] == "127.0.1.2"
    r = run("pool", "resize", "p1", "--nodes", "4", "-o", "json")
    assert json.loads(r.output)[0]["target_nodes"] == 4
    r = run("pool", "delete", "p1")
    assert r.exit_code == 0 and "deleting" in r.output


def test_errors_are_one_line_with_reason_and_exit_1(run) -> None:  # type: ignore[no-untyped-def]
    r = run("pool", "get", "nope")
    assert r.exit_code == 1
    assert r.stderr.strip() == "error: NOT_FOUND POOL_NOT_FOUND: pool nope not found"
    assert "Traceback" not in r.output
    r = run("pool", "create", "bad id", "--slots", "999")
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: INVALID_ARGUMENT INVALID_POOL: bad pool [")
    assert "pool.id: " in line and "pool.task_slots_per_node: 0..256" in line


def test_unreachable_server_is_one_line() -> None:
    fake = FakeServer().start()
    address = fake.address
    fake.stop()
    r = CliRunner().invoke(cli, ["--address", address, "pool", "list"])
    assert r.exit_code == 1
    assert r.stderr.startswith("error: UNAVAILABLE")
    assert r.stderr.count("\n") == 1


def test_job_commands(run) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    r = run(
        "job", "create", "j1", "--pool", "p", "--priority", "5", "--env", "A=1", "--env", "B=x=y",
        "--on-all-tasks-complete", "terminatejob", "--max-wall-clock", "60", "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    job = json.loads(r.output)[0]
    assert job["common_environment"] == {"A": "1", "B": "x=y"}
    assert job["max_wall_clock_time"] == 60.0
    assert job["on_all_tasks_complete"] == "terminatejob"
    r = run("job", "create", "j2", "--pool", "p", "--env", "novalue")
    assert r.exit_code == 2 and "NAME=VALUE" in r.output
    assert "j1" in run("job", "list").output
    assert json.loads(run("job", "get", "j1", "-o", "json").output)["priority"] == 5
    r = run("job", "counts", "j1", "-o", "json")
    assert json.loads(r.output) == {
        "active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0,
        "waiting_on_dependencies": 0, "blocked": 0, "waiting": None,
    }  # fmt: skip
    assert "completed" in run("job", "terminate", "j1").output
    assert run("job", "terminate", "j1").exit_code == 1
    assert run("job", "delete", "j1").exit_code == 0


def test_task_add_and_add_many(run, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    run("job", "create", "j", "--pool", "p")
    r = run(
        "task", "add", "j", "first", "python3 app.py --in in/a.txt", "--env", "K=v", "--resource", "inputs:data/:in",
        "--resource", "https://example.com/x=x.bin", "--output-file", "out/*:outputs:t0/:completion",
        "--max-retries", "2", "--max-wall-clock", "1.5", "--slots", "2", "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    spec = json.loads(r.output)[0]["spec"]
    assert spec["resource_files"][0] == {
        "file_path": "in",
        "storage_container": "inputs",
        "blob_prefix": "data/",
        "http_url": "",
        "file_mode": "",
    }
    assert spec["resource_files"][1]["http_url"] == "https://example.com/x"
    assert spec["output_files"][0]["upload_condition"] == "completion"
    assert spec["max_wall_clock_time"] == 1.5 and spec["max_task_retry_count"] == 2 and spec["required_slots"] == 2

    r = run("task", "add-many", "j", "--count", "12", "--command", "echo {i}", "--chunk-size", "5")
    assert r.exit_code == 0, r.output
    assert "added 12 of 12" in r.output
    assert fake.state.add_tasks_requests == [5, 5, 2]  # in order
    assert json.loads(run("task", "get", "j", "t11", "-o", "json").output)["spec"]["command_line"] == "echo 11"

    lines = tmp_path / "tasks.jsonl"
    lines.write_text(
        "\n".join(
            [
                json.dumps({"id": "f1", "command_line": "a", "environment": {"X": "1"}}),
                "# a comment",
                "",
                json.dumps({"id": "first", "command_line": "dup"}),
            ]
        )
    )
    r = run("task", "add-many", "j", "-f", str(lines))
    assert r.exit_code == 1
    assert "added 1 of 2" in r.stdout
    assert "first: clienterror TASK_EXISTS" in r.stderr

    r = run("task", "add-many", "j", "-f", "-", "-o", "json", input='{"id": "s1", "command_line": "x"}\n')
    assert json.loads(r.output) == {"added": 1, "failed": 0, "seconds": json.loads(r.output)["seconds"], "errors": []}

    r = run("task", "add-many", "j", "-f", "-", input='{"id": "s2"}\n')
    assert r.exit_code == 1 and "<stdin>:1" in r.stderr and "INVALID_TASK_SPEC" in r.stderr
    r = run("task", "add-many", "j", "-f", "-", input="not json\n")
    assert r.exit_code == 1 and "INVALID_TASK_FILE" in r.stderr
    r = run("task", "add-many", "j")
    assert r.exit_code == 2


def test_task_list_state_and_lifecycle(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    run("job", "create", "j", "--pool", "p")
    run("task", "add-many", "j", "--count", "4", "--command", "run {i}")
    fake.call(fake.state.complete, "j", "t1", 3)
    r = run("task", "list", "j", "--state", "completed", "-o", "json")
    data = json.loads(r.output)
    assert [t["id"] for t in data] == ["t1"]
    assert data[0]["failure"]["code"] == "FailureExitCode" and data[0]["exit_code"] == 3
    r = run("task", "list", "j")
    assert r.exit_code == 0 and "FailureExitCode" in r.output and "t3" in r.output
    assert len(json.loads(run("task", "list", "j", "--limit", "2", "-o", "json").output)) == 2
    assert "active" in run("task", "reactivate", "j", "t1").output
    r = run("task", "reactivate", "j", "t2")
    assert r.exit_code == 1 and "FAILED_PRECONDITION TASK_NOT_FAILED" in r.stderr
    assert "completed" in run("task", "terminate", "j", "t2").output
    assert "deleted" in run("task", "delete", "j", "t2").output
    assert run("task", "get", "j", "t2").exit_code == 1
    assert run("task", "list", "j", "--state", "sleeping").exit_code == 2


def test_task_wait_progress(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    run("job", "create", "j", "--pool", "p")
    run("task", "add-many", "j", "--count", "3", "--command", "x")

    def finish() -> None:
        time.sleep(0.2)
        for i in range(3):
            fake.call(fake.state.complete, "j", f"t{i}", 0 if i else 1)

    threading.Thread(target=finish).start()
    r = run("task", "wait", "j", "--timeout", "10")
    assert r.exit_code == 0, r.output
    assert "3 task(s) completed: 2 succeeded, 1 failed" in r.output
    r = run("job", "wait", "j", "-q")
    assert "3 task(s) completed" in r.output and r.exit_code == 0
    r = run("job", "wait", "j", "-q", "--check")
    assert r.exit_code == 1
    run("task", "add", "j", "late", "x")
    r = run("task", "wait", "j", "late", "--timeout", "0.3", "-q")
    assert r.exit_code == 1 and "DEADLINE_EXCEEDED WAIT_TIMEOUT" in r.stderr


def test_task_files_and_cat(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    run("job", "create", "j", "--pool", "p")
    run("task", "add", "j", "t", "x")
    fake.call(fake.state.set_running, "j", "t")
    fake.state.files[("j", "t", "stdout.txt")] = b"line one\n"
    fake.state.files[("j", "t", "stderr.txt")] = b""
    r = run("task", "files", "j", "t", "-o", "json")
    assert [f["path"] for f in json.loads(r.output)] == ["stderr.txt", "stdout.txt"]
    assert "stdout.txt" in run("task", "files", "j", "t").output
    assert run("task", "cat", "j", "t").stdout_bytes == b"line one\n"
    fake.call(fake.state.complete, "j", "t", 0)
    assert run("task", "cat", "j", "t", "stdout.txt", "--follow").stdout_bytes == b"line one\n"
    r = run("task", "cat", "j", "t", "nope.txt")
    assert r.exit_code == 1 and "FILE_NOT_FOUND" in r.stderr


def test_storage_commands(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("A")
    (d / "sub" / "b.txt").write_text("BB")
    single = tmp_path / "one.txt"
    single.write_text("one")
    assert run("storage", "create", "inputs").exit_code == 0
    r = run("storage", "create", "inputs", "--fail-if-exists")
    assert r.exit_code == 1 and "CONTAINER_EXISTS" in r.stderr
    r = run("storage", "upload", "inputs", str(d), "--prefix", "data/")
    assert "uploaded 2 blob(s), 3 bytes" in r.output
    r = run("storage", "upload", "inputs", str(single), "--name", "named.txt")
    assert r.exit_code == 0
    r = run("storage", "list", "inputs", "-o", "json")
    assert [b["name"] for b in json.loads(r.output)] == ["data/a.txt", "data/sub/b.txt", "named.txt"]
    assert "inputs" in run("storage", "list").output
    out = tmp_path / "out"
    out.mkdir()
    r = run("storage", "download", "inputs", "named.txt", "-d", str(out))
    assert r.exit_code == 0 and (out / "named.txt").read_text() == "one"
    r = run("storage", "download", "inputs", "data/", "--prefix", "-d", str(out))
    assert "downloaded 2 blob(s)" in r.output
    assert (out / "data" / "sub" / "b.txt").read_text() == "BB"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    r = run("storage", "download", "inputs", "data/", "--prefix", "-d", str(blocker / "below"))
    assert r.exit_code == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "deleted 1 blob(s)" in run("storage", "delete", "inputs", "named.txt").output
    r = run("storage", "delete", "inputs")
    assert r.exit_code == 1 and "holds 2 blob(s): give --force" in r.stderr
    assert "inputs" in run("storage", "list").output
    assert "deleted" in run("storage", "delete", "inputs", "--force").output
    r = run("storage", "list", "inputs")
    assert r.exit_code == 1 and "CONTAINER_NOT_FOUND" in r.stderr


def test_agent_passes_arguments_through(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: list[list[str]] = []
    module = types.ModuleType("shoal.nodeagent.__main__")

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shoal.nodeagent.__main__", module)
    r = CliRunner().invoke(cli, ["agent", "--server", "x:1", "--node-id", "n1", "--help", "pos"])
    assert r.exit_code == 7
    assert seen == [["--server", "x:1", "--node-id", "n1", "--help", "pos"]]


def test_server_and_up_delegate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import types

    calls: list[tuple[str, dict[str, object]]] = []
    module = types.ModuleType("shoal.server.app")

    def main_server(**kw: object) -> int:
        calls.append(("server", kw))
        return 0

    def main_up(**kw: object) -> int:
        calls.append(("up", kw))
        return 3

    module.main_server = main_server  # type: ignore[attr-defined]
    module.main_up = main_up  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shoal.server.app", module)
    r = CliRunner().invoke(cli, ["server", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:1"])
    assert r.exit_code == 0
    r = CliRunner().invoke(
        cli,
        [
            "up",
            "--data-dir",
            str(tmp_path),
            "--nodes",
            "3",
            "--slots",
            "2",
            "--allow-non-loopback-without-authentication",
        ],
    )
    assert r.exit_code == 3
    assert calls == [
        (
            "server",
            {
                "data_dir": tmp_path,
                "listen": "127.0.0.1:1",
                "allow_non_loopback": False,
                "secure": True,
                "tls_cert": None,
                "tls_key": None,
                "agent_listen": "",
                "agent_advertise": "",
                "http_listen": "",
                "dispatch_ahead": 16,
                "spot_preemption_rate": 0.0,
                "spot_recovery_seconds": 30.0,
                "spot_seed": None,
                "schedule_min_seconds": 60.0,
                "log_format": "",
            },
        ),
        (
            "up",
            {
                "data_dir": tmp_path,
                "listen": "127.0.0.1:7420",
                "nodes": 3,
                "slots": 2,
                "pool_id": "local",
                "allow_non_loopback": True,
                "secure": True,
                "agent_listen": "",
                "http_listen": "",
                "log_format": "",
            },
        ),
    ]


def test_module_entry_point_and_fast_start() -> None:
    code = (
        "import sys, runpy; sys.argv=['shoal','--help']\n"
        "try:\n runpy.run_module('shoal.client.cli', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "assert 'shoal.server.app' not in sys.modules and 'rich.table' not in sys.modules, sorted(sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Usage: shoal" in r.stdout


def test_task_add_multi_instance_and_subtasks(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    from shoal.v1 import task_pb2

    run("pool", "create", "p", "--nodes", "2", "--inter-node")
    run("job", "create", "j", "--pool", "p")
    r = run(
        "task", "add", "j", "mpi", "mpiexec -n 2 hostname", "--instances", "2",
        "--coordination-command", "/bin/true", "--common-resource", "apps:mpi/", "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    mi = json.loads(r.output)[0]["spec"]["multi_instance_settings"]
    assert mi["number_of_instances"] == 2 and mi["coordination_command_line"] == "/bin/true"
    assert mi["common_resource_files"][0]["storage_container"] == "apps"
    r = run("task", "add", "j", "bad", "x", "--coordination-command", "y")
    assert r.exit_code == 2

    def add_subtasks() -> None:
        t = fake.state.tasks["j"]["mpi"]
        for i in range(2):
            st = t.subtasks.add(id=i, state=task_pb2.SUBTASK_STATE_RUNNING)
            st.node_info.node_id = f"node-{i + 1}"

    fake.call(add_subtasks)
    r = run("task", "subtasks", "j", "mpi", "-o", "json")
    assert [(s["id"], s["node_id"], s["state"]) for s in json.loads(r.output)] == [
        (0, "node-1", "running"),
        (1, "node-2", "running"),
    ]
    assert "node-2" in run("task", "subtasks", "j", "mpi").output


def test_server_command_default_dispatch_ahead_is_the_servers() -> None:
    from shoal.client.cli import server_cmd
    from shoal.server.controlplane import DEFAULT_DISPATCH_AHEAD

    option = next(p for p in server_cmd.params if p.name == "dispatch_ahead")
    assert option.default == DEFAULT_DISPATCH_AHEAD


def test_pool_create_offers_exactly_the_providers_the_server_takes(run) -> None:  # type: ignore[no-untyped-def]
    from shoal.pool_providers import POOL_PROVIDERS
    from shoal.server.api.validation import check_pool
    from shoal.v1 import pool_pb2

    result = CliRunner().invoke(cli, ["pool", "create", "--help"])
    assert result.exit_code == 0
    assert "[local|join]" in result.output
    assert "slurm" not in result.output
    # The server takes each of them, and nothing else.
    for provider in POOL_PROVIDERS:
        assert check_pool(pool_pb2.Pool(id="p", provider=provider)) == []
    assert [f for f, _ in check_pool(pool_pb2.Pool(id="p", provider="slurm"))] == ["pool.provider"]
    r = run("pool", "create", "p1", "--provider", "slurm")
    assert r.exit_code == 2 and "'slurm' is not one of 'local', 'join'" in r.output
    r = run("pool", "create", "p2", "--provider", "join")
    assert r.exit_code == 0, r.output
