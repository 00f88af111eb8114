"""`make demo` stays green: run examples/demo.py end to end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_demo_runs_green(tmp_path: Path) -> None:
    env = dict(os.environ, SHOAL_HOME=str(tmp_path / "home"), COLUMNS="120")
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=220)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # The demo runs `shoal up` in its own session; if the demo was killed, stop that too.
        info = tmp_path / "demo" / "cluster" / "server.json"
        with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError, PermissionError):
            os.killpg(int(json.loads(info.read_text())["pid"]), signal.SIGKILL)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "demo OK" in text
    assert "failed: FailureExitCode" in text and "failed: TaskEnded" in text
