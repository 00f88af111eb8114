"""Commands and shells on a node end to end: a real server and its local agent, the `shoal` CLI as a
process (`node exec` with its exit status, stdin piped), the Python client, and `node shell` driven
through a real pseudo-terminal as a person would type into it (raw mode, window size, Ctrl-C, exit).
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import time

import pytest

from shoal.client import Client, NotFound
from tests.e2e.harness import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def cli(server: ServerProcess, *args: str) -> list[str]:
    return [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args]


def test_exec_cli_and_client(server: ServerProcess, client: Client) -> None:
    server.create_pool("p", 1)
    (node,) = server.wait_nodes("p", 1)
    done = subprocess.run(
        cli(server, "node", "exec", "p", node.id, "--", "sh", "-c", "echo out; echo err >&2; exit 7"),
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (7, b"out\n", b"err\n"), done
    # Input piped in with -i; a variable with -e.
    done = subprocess.run(
        cli(server, "node", "exec", "-i", "-e", "X=1", "p", node.id, "--", "sh", "-c", 'cat; echo "$X"'),
        input=b"piped\n",
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, b"piped\n1\n"), done
    # A node that is not there: the CLI says so and exits 1.
    done = subprocess.run(cli(server, "node", "exec", "p", "nope", "--", "true"), capture_output=True, timeout=60)
    assert done.returncode == 1 and b"NODE_NOT_FOUND" in done.stderr, done

    # The Python client.
    result = client.pools.exec_node("p", node.id, ["sh", "-c", "echo $SHOAL_POOL_ID; exit 2"]).wait()
    assert (result.stdout, result.exit_code, result.succeeded) == (b"p\n", 2, False)
    with pytest.raises(NotFound):
        client.pools.exec_node("nope", node.id, ["true"]).wait()


def read_until(fd: int, wanted: tuple[bytes, ...], seen: bytearray, timeout: float = 30.0) -> None:
    """Read the terminal's master into `seen` until it holds one of `wanted` (or the terminal closes)."""
    deadline = time.monotonic() + timeout
    while not any(w in seen for w in wanted):
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {wanted} in {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the CLI has exited, nothing holds the terminal
            return
        if not data:
            return
        seen += data


@pytest.mark.skipif(shutil.which("setsid") is None, reason="needs util-linux setsid")
def test_shell_through_a_terminal(server: ServerProcess) -> None:
    server.create_pool("p", 1)
    (node,) = server.wait_nodes("p", 1)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 91, 0, 0))
    # The CLI in a session of its own whose controlling terminal is this one, as in a terminal window.
    proc = subprocess.Popen(
        ["setsid", "--ctty", *cli(server, "node", "shell", "p", node.id)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=dict(os.environ, TERM="xterm"),
    )
    os.close(slave)
    seen = bytearray()
    try:
        prompts = (b"$ ", b"# ")
        read_until(master, prompts, seen)
        # The remote terminal has the local one's size.
        os.write(master, b"stty size; echo $TERM\r")
        read_until(master, (b"33 91\r\nxterm\r\n",), seen)
        # Ctrl-C (a byte: the local terminal is raw) interrupts the remote sleep, not the CLI.
        start = time.monotonic()
        os.write(master, b"echo sleeping; sleep 60\r")
        read_until(master, (b"sleeping\r\n",), seen)
        os.write(master, b"\x03")
        del seen[:]
        read_until(master, prompts, seen)
        assert time.monotonic() - start < 50
        os.write(master, b"echo hi; exit 3\r")
        read_until(master, (b"never",), seen, timeout=60)  # to the end of the CLI's output
        assert proc.wait(timeout=30) == 3, bytes(seen)
        assert b"hi\r\n" in seen, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
