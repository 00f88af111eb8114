"""The exec port's framed protocol, end to end: the real shim program against the real endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.mpi import shim
from shoal.mpi.launch import parse_agent_map
from shoal.nodeagent.mpilauncher import write_launcher
from shoal.tlsconfig import NODE_TLS_NAME
from tests.mpi.exec_client import exec_call
from tests.mpi.exec_server import ExecOnly, serve, shim_env
from tests.tlshelp import other_ca

HOST = "127.0.0.1"


@pytest.fixture
def endpoint() -> Iterator[tuple[int, ExecOnly]]:
    server, port, svc = serve(HOST)
    try:
        yield port, svc
    finally:
        server.stop(None)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `python -IS` program the agent writes (the one MPI instances find first on PATH)."""
    directory = write_launcher(tmp_path_factory.mktemp("bin"))
    assert directory is not None
    return directory / "shoal-mpi-launch"


def _env(port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(shim_env())
    env["SHOAL_MPI_AGENTS"] = f"h1={HOST}:{port}"
    env.update(extra)
    return env


def test_the_shim_agrees_with_the_package() -> None:
    assert shim.NODE_TLS_NAME == NODE_TLS_NAME
    value = "a=1.2.3.4:5, b = [::1]:6"
    assert shim.agent_map(value) == parse_agent_map(value)
    assert shim.host_port("[::1]:6") == ("::1", 6)


@pytest.mark.timeout(30)
def test_stdin_stdout_stderr_and_exit_code_are_relayed(endpoint, launcher: Path) -> None:
    port, svc = endpoint
    out = subprocess.run(
        [str(launcher), "-x", "h1", "cat; echo to-err >&2; exit 7"],
        input=b"in1 in2\n" * 50_000,
        env=_env(port),
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 7, out.stderr
    assert out.stdout == b"in1 in2\n" * 50_000
    assert out.stderr == b"to-err\n"
    assert [c.argv for c in svc.calls] == [["/bin/sh", "-c", "cat; echo to-err >&2; exit 7"]]


@pytest.mark.timeout(30)
def test_a_call_without_the_secret_or_with_another_is_refused(endpoint, launcher: Path, tmp_path: Path) -> None:
    port, svc = endpoint
    for secret in ("", "wrong-secret"):
        out = subprocess.run(
            [str(launcher), "h1", f"touch {tmp_path / 'ran'}"],
            env=_env(port, SHOAL_EXEC_SECRET=secret),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert out.returncode == 255
        assert "PERMISSION_DENIED (EXEC_SECRET_MISMATCH)" in out.stderr
        assert not secret or secret not in out.stderr
    assert svc.started == [] and not (tmp_path / "ran").exists()


@pytest.mark.timeout(30)
def test_a_plaintext_caller_is_refused(endpoint) -> None:
    port, svc = endpoint
    hello = {"job_id": "j", "task_id": "t", "attempt": 1, "argv": ["true"], "secret": "test-secret"}
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(shim.frame(shim.HELLO, json.dumps(hello).encode()))
        answer = b""
        while chunk := s.recv(4096):  # the TLS handshake fails: the endpoint closes, saying nothing in frames
            answer += chunk
    assert shim.EXIT not in answer[:1] and svc.calls == [] and svc.started == []


@pytest.mark.timeout(30)
def test_an_agent_of_another_ca_is_not_trusted(launcher: Path) -> None:
    server, port, svc = serve(HOST, ca=other_ca())
    try:
        out = subprocess.run([str(launcher), "h1", "true"], env=_env(port), capture_output=True, text=True, timeout=20)
    finally:
        server.stop(None)
    assert out.returncode == 255 and "CERTIFICATE_VERIFY_FAILED" in out.stderr
    assert svc.calls == []


@pytest.mark.timeout(30)
def test_the_command_dies_with_the_shim(endpoint, launcher: Path) -> None:
    port, svc = endpoint
    proc = subprocess.Popen(
        [str(launcher), "h1", "echo started; exec sleep 60"],
        env=_env(port),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    [pgid] = svc.started
    os.killpg(pgid, 0)  # running
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the remote command outlived the shim"
        time.sleep(0.02)
    assert proc.returncode == -signal.SIGKILL


def test_the_launcher_starts_without_site(launcher: Path) -> None:
    first = launcher.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"
    out = subprocess.run([str(launcher), "h9", "true"], env=_env(1), capture_output=True, text=True, check=False)
    assert out.returncode == 255 and "h9 is not a node of this task" in out.stderr


@pytest.mark.timeout(30)
async def test_a_malformed_hello_is_refused_and_runs_nothing(endpoint) -> None:
    port, svc = endpoint
    for hello in ({"attempt": [], "argv": ["true"]}, {"argv": "true"}, {"argv": [], "secret": "test-secret"}):
        out = await exec_call(f"{HOST}:{port}", hello)
        assert out.refusal["code"] == "INVALID_ARGUMENT" and out.exit_code is None, out
    assert svc.started == []
