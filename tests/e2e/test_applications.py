"""Application packages end to end: a real `shoal server` and its local agents, driven by the `shoal` CLI:
`shoal app create`, `shoal app upload` of a directory (zipped by the client), a pool with `--app-package`,
and a task with its own `--app-package` running a program out of the package; after a SIGKILL of the
server, its applications are there, and a package uploaded before it (never deployed) reaches a task."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.client.cli import cli
from tests.e2e.harness import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def test_cli_uploads_a_package_and_tasks_run_from_it(server: ServerProcess, tmp_path: Path) -> None:
    creds = json.loads((server.data_dir / "credentials.json").read_text())
    ca = tmp_path / "ca.pem"
    ca.write_text(creds["ca_cert"])
    runner = CliRunner()

    def run(*args: str) -> str:
        r = runner.invoke(
            cli,
            ["--address", server.address, "--key", creds["key"], "--ca-cert", str(ca), *args],
            catch_exceptions=False,
        )
        assert r.exit_code == 0, (args, r.stdout, r.stderr)
        return r.stdout

    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    hello = tools / "bin" / "hello.sh"
    hello.write_text('#!/bin/sh\necho "hello from $1"\n')
    hello.chmod(0o755)
    data = tmp_path / "data.txt"
    data.write_text("42\n")

    run("app", "create", "tools")
    out = run("app", "upload", "tools", "1.0", str(tools), "--set-default", "-o", "json")
    assert json.loads(out)[0]["state"] == "active"
    run("app", "create", "data")
    # (A tar.gz: the server finds its format.)
    with tarfile.open(tmp_path / "data.tgz", "w:gz") as tf:
        tf.add(data, "data.txt")
    run("app", "upload", "data", "7", str(tmp_path / "data.tgz"))
    listed = json.loads(run("app", "list", "-o", "json"))
    assert {(a["id"], a["default_version"]) for a in listed} == {("tools", "1.0"), ("data", "")}

    run("pool", "create", "p", "--nodes", "1", "--app-package", "tools", "--wait", "30")
    run("job", "create", "j", "--pool", "p")
    run(
        "task",
        "add",
        "j",
        "t",
        '/bin/sh -c "$AZ_BATCH_APP_PACKAGE_tools/bin/hello.sh $(cat $AZ_BATCH_APP_PACKAGE_data_7/data.txt)"',
        "--app-package",
        "data:7",
    )
    done = server.wait_job_tasks("j", timeout=30)
    assert done["t"].execution_info.exit_code == 0, server.read_file("j", "t", "stderr.txt")
    assert server.read_file("j", "t", "stdout.txt") == b"hello from 42\n"

    eight = tmp_path / "eight"
    eight.mkdir()
    (eight / "data.txt").write_text("eight\n")
    run("app", "upload", "data", "8", str(eight), "--format", "zip")
    server.kill()
    again = ServerProcess(server.data_dir, port=server.port).start()
    try:
        got = json.loads(run("app", "get", "data", "-o", "json"))
        assert got["versions"] == ["7", "8"], got
        run(
            "task",
            "add",
            "j",
            "t2",
            '/bin/sh -c "cat $AZ_BATCH_APP_PACKAGE_data_8/data.txt"',
            "--app-package",
            "data:8",
        )
        done = again.wait_job_tasks("j", timeout=45)
        assert done["t2"].execution_info.exit_code == 0, again.read_file("j", "t2", "stderr.txt")
        assert again.read_file("j", "t2", "stdout.txt") == b"eight\n"
    finally:
        again.stop()
