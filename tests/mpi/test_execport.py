"""The exec port's framed protocol, end to end: the real shim programs against the real endpoint.

Every test of a shim runs twice: with the `python -IS` program and with the compiled one (`mpi/shim.c`),
each as the agent writes it (`write_launcher`); they must behave alike."""

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
from shoal.mpi.launch import SHIM_NAME, parse_agent_map
from shoal.nodeagent.mpilauncher import write_launcher
from shoal.tlsconfig import NODE_TLS_NAME
from tests.mpi.exec_client import exec_call
from tests.mpi.exec_server import ExecOnly, compiled_shim, serve, shim_env
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
def python_launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `python -IS` program the agent writes where it cannot build the compiled one."""
    directory = write_launcher(tmp_path_factory.mktemp("bin"), compiled=False)
    assert directory is not None
    return directory / SHIM_NAME


@pytest.fixture(scope="module")
def compiled_launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled program the agent writes where it can build it (skipped where it cannot)."""
    built = compiled_shim()
    directory = write_launcher(tmp_path_factory.mktemp("bin"))
    assert directory is not None
    path = directory / SHIM_NAME
    assert path.read_bytes() == built.read_bytes()
    return path


@pytest.fixture(params=["python", "compiled"])
def launcher(request: pytest.FixtureRequest) -> Path:
    """Each shim in turn, as MPI instances find it first on PATH."""
    return request.getfixturevalue(f"{request.param}_launcher")


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


def test_the_python_launcher_starts_without_site(python_launcher: Path) -> None:
    first = python_launcher.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"


def test_the_compiled_launcher_is_a_program(compiled_launcher: Path) -> None:
    assert compiled_launcher.read_bytes()[:4] == b"\x7fELF"


@pytest.mark.timeout(30)
def test_what_is_wrong_before_connecting(launcher: Path) -> None:
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(launcher), *args], env=_env(1, **env), capture_output=True, text=True, timeout=20)

    out = run("h9", "true")
    assert out.returncode == 255 and "h9 is not a node of this task" in out.stderr
    out = run("-p")  # an option that takes a value, and then nothing
    assert out.returncode == 1 and "no host given" in out.stderr
    out = run("h1", "true", SHOAL_AGENT_CA_FILE="")
    assert out.returncode == 255 and "SHOAL_AGENT_CA_FILE is not set" in out.stderr


@pytest.mark.timeout(30)
def test_an_agent_that_does_not_listen(launcher: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    out = subprocess.run([str(launcher), "h1", "true"], env=_env(port), capture_output=True, text=True, timeout=20)
    assert out.returncode == 255 and f"cannot reach the agent of h1 at {HOST}:{port}" in out.stderr


@pytest.mark.timeout(30)
def test_ssh_options_user_and_the_attempt_identity(endpoint, launcher: Path) -> None:
    port, svc = endpoint
    env = _env(port, SHOAL_JOB_ID="job-é", SHOAL_TASK_ID='t"1', SHOAL_TASK_ATTEMPT="3")
    out = subprocess.run(
        [str(launcher), "-p", "22", "-o", "BatchMode=yes", "-x", "-T", "someone@h1", "echo", "a  b", "é"],
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # The words joined by one space and run by a shell, as ssh does.
    assert out.stdout == "a b é\n".encode()
    [call] = svc.calls
    assert (call.job_id, call.task_id, call.attempt) == ("job-é", 't"1', 3)
    assert call.argv == ["/bin/sh", "-c", "echo a  b é"]


@pytest.mark.timeout(30)
def test_any_bytes_reach_the_command_as_they_are(endpoint, launcher: Path) -> None:
    port, _svc = endpoint
    # Not UTF-8, quotes, a backslash, a control character: the agent runs exactly these bytes.
    word = b'\xff\xfe q"b\\c \x01 \xc3\xa9'
    out = subprocess.run(
        [os.fsencode(launcher), b"h1", b"printf '%s' '" + word + b"'"],
        env=_env(port),
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == word


@pytest.mark.timeout(60)
def test_much_output_and_stdin_at_its_end_or_closed(endpoint, launcher: Path) -> None:
    port, _svc = endpoint
    # Megabytes on both streams at once (many frames each), with stdin /dev/null (cat ends at once), then
    # with no stdin at all (fd 0 closed: nothing is sent, the command does not read it).
    big = "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2"
    for script, closed in ((f"{big}; cat; echo end", False), (f"{big}; echo end", True)):
        argv = [str(launcher), "h1", script]
        if closed:
            argv = ["/bin/sh", "-c", 'exec "$0" "$@" <&-', *argv]
        proc = subprocess.run(
            argv,
            env=_env(port),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=40,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-500:]
        assert proc.stdout == b"\0" * 3_000_000 + b"end\n"
        assert proc.stderr == b"\0" * 2_000_000


@pytest.mark.timeout(30)
def test_the_status_of_a_command_killed_by_a_signal(endpoint, launcher: Path) -> None:
    port, _svc = endpoint
    out = subprocess.run([str(launcher), "h1", "kill -9 $$"], env=_env(port), capture_output=True, timeout=20)
    assert out.returncode == 128 + signal.SIGKILL, out.stderr


@pytest.mark.timeout(30)
async def test_a_malformed_hello_is_refused_and_runs_nothing(endpoint) -> None:
    port, svc = endpoint
    for hello in ({"attempt": [], "argv": ["true"]}, {"argv": "true"}, {"argv": [], "secret": "test-secret"}):
        out = await exec_call(f"{HOST}:{port}", hello)
        assert out.refusal["code"] == "INVALID_ARGUMENT" and out.exit_code is None, out
    assert svc.started == []
