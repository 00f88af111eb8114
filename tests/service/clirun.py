"""The `shoal` CLI against a real in-process server: through click's CliRunner (off a terminal), or as a
child process on a pseudo-terminal (to see what a person at a terminal sees, and to answer its questions)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from shoal.client.cli import cli
from tests.channels import credentials


def cli_args(server: Any, tmp_path: Path) -> list[str]:
    """The root options that reach `server` as its default account."""
    creds = credentials(server.data_dir)
    args = ["--address", server.address, "--account", creds["account"], "--key", creds["key"]]
    if creds.get("ca_cert"):
        ca = tmp_path / "server-ca.pem"
        ca.write_text(creds["ca_cert"])
        args += ["--ca-cert", str(ca)]
    return args


def runner(server: Any, tmp_path: Path) -> Callable[..., Result]:
    """``run("storage", "list")``: the CLI through CliRunner (stdin and stdout are not terminals)."""
    args = cli_args(server, tmp_path)
    click_runner = CliRunner()

    def run(*more: str, input: str | None = None) -> Result:
        return click_runner.invoke(cli, [*args, *more], input=input, catch_exceptions=False)

    return run


@dataclass
class PtyResult:
    """What a command printed on its terminal (stdout and stderr, as a person sees them) and its exit code."""

    output: str
    exit_code: int


def run_on_terminal(
    args: list[str], *, answer: tuple[str, str] | None = None, timeout: float = 60.0, cwd: Path | None = None
) -> PtyResult:
    """`python -m shoal.client.cli ARGS` with a pseudo-terminal as stdin, stdout and stderr.

    ``answer``: (prompt, reply): when the output shows ``prompt``, type ``reply``. Call it from a thread
    while the test's loop serves the in-process server.
    """
    main, child = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.client.cli", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=cwd,
        close_fds=True,
    )
    os.close(child)
    out = b""
    answered = answer is None
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"`shoal {' '.join(args)}` still running after {timeout}s: {out!r}")
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the child's side is closed
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                out += chunk
                if not answered and answer is not None and answer[0].encode() in out:
                    os.write(main, answer[1].encode())
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return PtyResult(out.decode(errors="replace").replace("\r\n", "\n"), code)
