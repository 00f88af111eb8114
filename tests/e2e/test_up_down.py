"""`shoal up --detach` and `shoal down` with real processes: a server and its local agents in the background,
used, refused a second time, stopped (with its agents), and stopped again (nothing to do); a foreground
`shoal up` stopped by `shoal down` from elsewhere; a detached start that fails leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Shoal:
    """`python -m shoal.client.cli ...` with its own $SHOAL_HOME."""

    def __init__(self, root: Path) -> None:
        self.env = dict(os.environ, SHOAL_HOME=str(root / "home"), SHOAL_LOG_LEVEL="INFO")

    def __call__(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shoal.client.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "shoal.client.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )


def test_up_detach_then_down(tmp_path: Path) -> None:
    shoal = Shoal(tmp_path)
    data = tmp_path / "data"
    address = f"127.0.0.1:{free_port()}"
    up = shoal("up", "--detach", "--data-dir", str(data), "--listen", address, "--nodes", "1", "--slots", "2")
    pid = 0
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        first = up.stdout.splitlines()[0]
        assert first.startswith("shoal up: running in the background (pid ")
        pid = int(first.rsplit("pid ", 1)[1].rstrip(")"))
        assert f"server:   {address}, local pool 'local' of 1 node(s) x 2 slot(s)" in up.stdout
        assert f"logs:     {data / 'shoal-up.log'}" in up.stdout
        assert f"stop it:  shoal down --data-dir {data}" in up.stdout
        assert (data / "shoal-up.pid").read_text().strip() == str(pid)
        server = psutil.Process(pid)
        assert os.getsid(pid) == pid  # a session of its own: no terminal, no SIGHUP
        assert "shoal server listening on" in (data / "shoal-up.log").read_text()

        # The CLI finds it (the credentials it saved), and it runs work on its local agent.
        assert "local" in shoal("pool", "list").stdout
        assert shoal("job", "create", "j", "--pool", "local").returncode == 0
        assert shoal("task", "add", "j", "t", "echo hi").returncode == 0
        waited = shoal("task", "wait", "j", "--timeout", "60s", "-q", "--check")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert shoal("task", "cat", "j", "t").stdout == "hi\n"
        agents = wait_for(
            "its agent", lambda: [p for p in server.children(recursive=True) if "nodeagent" in " ".join(p.cmdline())]
        )

        again = shoal("up", "--detach", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}")
        assert again.returncode == 1
        assert f"already running on {data} (pid {pid})" in again.stderr

        down = shoal("down")  # (the data directory of the server started last)
        assert down.returncode == 0, down.stdout + down.stderr
        assert down.stdout.startswith(f"shoal down: stopped shoal up (pid {pid}) on {data}")
        assert _gone(pid)
        assert all(_gone(a.pid) for a in agents)
        assert not (data / "shoal-up.pid").exists()
        assert "stopping..." in (data / "shoal-up.log").read_text()

        down = shoal("down", "--data-dir", str(data))
        assert (down.returncode, down.stdout) == (0, f"shoal down: nothing runs on {data}\n")
    finally:
        if pid and not _gone(pid):
            psutil.Process(pid).kill()


def test_down_stops_a_foreground_up(tmp_path: Path) -> None:
    shoal = Shoal(tmp_path)
    data = tmp_path / "data"
    proc = shoal.popen("up", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}", "--nodes", "1",
                       log=tmp_path / "up.log")  # fmt: skip
    try:
        wait_for("its pid file", lambda: (data / "shoal-up.pid").exists(), timeout=60)
        assert (data / "shoal-up.pid").read_text().strip() == str(proc.pid)
        wait_for("the local pool", lambda: "local" in shoal("pool", "list").stdout, timeout=60, every=0.5)
        refused = shoal("up", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}")
        assert refused.returncode == 1 and "already running" in refused.stderr
        down = shoal("down", "--data-dir", str(data), "--timeout", "30s")
        assert down.returncode == 0, down.stdout + down.stderr
        assert proc.wait(timeout=30) == 0
        assert not (data / "shoal-up.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_detached_start_that_fails_leaves_nothing(tmp_path: Path) -> None:
    shoal = Shoal(tmp_path)
    data = tmp_path / "data"
    # Beyond loopback without authentication is refused: the server exits at once.
    started = time.monotonic()
    up = shoal("up", "--detach", "--data-dir", str(data), "--listen", f"0.0.0.0:{free_port()}", "--insecure-plaintext")
    assert up.returncode == 1
    assert "shoal up exited with code 2" in up.stderr and "loopback" in up.stderr
    assert time.monotonic() - started < 60
    assert not (data / "shoal-up.pid").exists()
    down = shoal("down", "--data-dir", str(data))
    assert (down.returncode, down.stdout) == (0, f"shoal down: nothing runs on {data}\n")


def test_down_with_nothing_ever_started(tmp_path: Path) -> None:
    down = Shoal(tmp_path)("down")
    assert down.returncode == 0
    assert down.stdout == "shoal down: nothing to stop (no server was started here; give --data-dir)\n"
