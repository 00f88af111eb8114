"""`shoal-mpi-launch`: the remote-exec shim that MPI launchers call instead of ssh.

Hydra calls it as ``shoal-mpi-launch [-x] [extra args] HOST CMD...`` and Open MPI
as ``shoal-mpi-launch HOST CMD...``. The shim finds the agent of HOST in
``SHOAL_MPI_AGENTS`` and asks it to run CMD with ``/bin/sh -c`` inside this
task's instance on that node: its directories, environment, process group and
wall clock. It relays stdin, stdout and stderr and exits with the command's
status, living exactly as long as the proxy (Hydra fails with "Launch proxy
failed" if the shim exits early); when the shim dies, the agent kills the command.

The agent's exec port speaks TLS with the node's certificate: the shim trusts
only the cluster CA (``SHOAL_AGENT_CA_FILE``), checks the name ``shoal-node``,
and proves it belongs to the attempt with the attempt's secret
(``SHOAL_EXEC_SECRET``), both in the environment the agent gave the attempt.

Cheap by design: this module imports nothing but the standard library (no gRPC,
no protobuf, not even the `shoal` package), because it starts once per MPI
proxy and its start-up is the launch's overhead. The agent writes it, as it is,
under a ``#!python -IS`` line (`launcher_script`) into a directory it puts
first on the instance's PATH, where it cannot build the same program in C
(`mpi/shim.c`, faster still; keep the two alike, tests/mpi/test_execport.py runs
both). So the protocol is a small framed one over TLS (see "Wire format" below;
the agent's side is `shoal.nodeagent.execport`).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import ssl
import struct
import sys
from collections.abc import Iterator

# ---- Wire format ---------------------------------------------------------------------------------
# Every message is a frame: one byte of kind, a big-endian uint32 length, the payload. The caller
# sends HELLO first (a JSON object: job_id, task_id, attempt, secret, argv, optional env), then
# STDIN frames and one STDIN_EOF, and keeps the connection open while it wants the command to live.
# The agent answers STDOUT/STDERR frames as output comes, then EXIT (the status in ASCII digits)
# and closes; or REFUSED (a JSON object: code, reason, message) and closes, running nothing.

HELLO = b"H"
STDIN = b"I"
STDIN_EOF = b"E"
STDOUT = b"O"
STDERR = b"R"
EXIT = b"X"
REFUSED = b"F"

#: The largest frame either side accepts (a hello, a chunk of output).
MAX_FRAME = 1 << 20
HEADER = struct.Struct(">cI")
READ_SIZE = 64 * 1024

#: The name every agent's certificate carries (`shoal.tlsconfig.NODE_TLS_NAME`; a test keeps them equal).
NODE_TLS_NAME = "shoal-node"

# ssh options that take a value; anything else starting with '-' is a flag.
_SSH_OPTIONS_WITH_VALUE = set("bcDEeFIiJLlmOopQRSWw")


class WireError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame, ready to send."""
    return HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Splits a byte stream into (kind, payload) frames, whatever the chunking."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The frames completed by `data`."""
        self._buf += data
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if length > MAX_FRAME:
                raise WireError(f"a frame of {length} bytes")
            end = HEADER.size + length
            if len(self._buf) < end:
                return
            payload = bytes(self._buf[HEADER.size : end])
            del self._buf[:end]
            yield kind, payload


# ---- Arguments and environment -------------------------------------------------------------------


def split_args(argv: list[str]) -> tuple[str, list[str]]:
    """(host, command words) from an ssh-style argument list."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and len(argv[i]) > 1:
        opt = argv[i]
        i += 1
        if len(opt) == 2 and opt[1] in _SSH_OPTIONS_WITH_VALUE:
            i += 1
    if i >= len(argv):
        raise SystemExit("shoal-mpi-launch: no host given")
    host = argv[i]
    if "@" in host:
        host = host.split("@", 1)[1]
    return host, argv[i + 1 :]


def agent_map(value: str) -> dict[str, str]:
    """`SHOAL_MPI_AGENTS` (`host=ip:port,...`) as a mapping (as `shoal.mpi.launch.parse_agent_map`)."""
    out: dict[str, str] = {}
    for item in value.split(","):
        if "=" in item:
            host, addr = item.split("=", 1)
            out[host.strip()] = addr.strip()
    return out


def host_port(address: str) -> tuple[str, int]:
    """`ip:port` or `[v6]:port` as (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


# ---- The client ----------------------------------------------------------------------------------


def connect(address: str, ca_file: str, *, timeout: float = 30.0) -> ssl.SSLSocket:
    """A TLS connection to an agent's exec port that trusts only `ca_file` and wants `shoal-node`."""
    context = ssl.create_default_context(cafile=ca_file)  # with a CA file: that CA alone
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(host_port(address), timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return context.wrap_socket(raw, server_hostname=NODE_TLS_NAME)
    except BaseException:
        raw.close()
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def relay(sock: ssl.SSLSocket, stdin_fd: int | None, stdout_fd: int, stderr_fd: int) -> int:
    """Relay stdin to the command and its output back until it exits; its exit status (255 when refused
    or cut off). One thread: an SSL socket must not be read and written from two at once."""
    sock.setblocking(False)
    sel = selectors.PollSelector()  # poll, unlike epoll, takes /dev/null and regular files too
    sel.register(sock, selectors.EVENT_READ, None)
    if stdin_fd is not None:
        sel.register(stdin_fd, selectors.EVENT_READ, None)
    pending = bytearray()
    frames = FrameReader()
    stdin_paused = False
    try:
        while True:
            if stdin_fd is not None and stdin_paused != (len(pending) >= MAX_FRAME):
                # The agent is slow to take stdin: stop reading it until it has.
                stdin_paused = not stdin_paused
                if stdin_paused:
                    sel.unregister(stdin_fd)
                else:
                    sel.register(stdin_fd, selectors.EVENT_READ, None)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            sel.modify(sock, events, None)
            for key, mask in sel.select():
                if key.fd == stdin_fd:
                    data = b""
                    with contextlib.suppress(OSError):
                        data = os.read(stdin_fd, READ_SIZE)
                    pending += frame(STDIN, data) if data else frame(STDIN_EOF)
                    if not data:
                        sel.unregister(stdin_fd)
                        stdin_fd = None
                    continue
                if mask & selectors.EVENT_WRITE:
                    _send_some(sock, pending)
                if mask & selectors.EVENT_READ:
                    for chunk in _recv_all(sock):
                        if not chunk:
                            print("shoal-mpi-launch: the agent closed the connection", file=sys.stderr)
                            return 255
                        for kind, payload in frames.feed(chunk):
                            if kind == STDOUT:
                                _write_all(stdout_fd, payload)
                            elif kind == STDERR:
                                _write_all(stderr_fd, payload)
                            elif kind == EXIT:
                                return int(payload)
                            elif kind == REFUSED:
                                why = json.loads(payload)
                                print(
                                    f"shoal-mpi-launch: {why.get('code')} ({why.get('reason')}): {why.get('message')}",
                                    file=sys.stderr,
                                )
                                return 255
    finally:
        sel.close()


def _send_some(sock: ssl.SSLSocket, pending: bytearray) -> None:
    with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
        del pending[: sock.send(pending)]


def _recv_all(sock: ssl.SSLSocket) -> Iterator[bytes]:
    """What the socket has now, record by record; b"" at the end of the stream."""
    while True:
        try:
            data = sock.recv(READ_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except (ConnectionError, ssl.SSLEOFError):
            data = b""
        yield data
        if not data:
            return


def main(argv: list[str] | None = None) -> int:
    """Run the command on the host's agent; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    host, words = split_args(args)
    env = os.environ
    address = agent_map(env.get("SHOAL_MPI_AGENTS", "")).get(host)
    if address is None:
        known = sorted(agent_map(env.get("SHOAL_MPI_AGENTS", "")))
        print(f"shoal-mpi-launch: {host} is not a node of this task ({known})", file=sys.stderr)
        return 255
    ca_file = env.get("SHOAL_AGENT_CA_FILE", "")
    if not ca_file:
        print("shoal-mpi-launch: SHOAL_AGENT_CA_FILE is not set: run inside a Shoal task", file=sys.stderr)
        return 255
    hello = {
        "job_id": env.get("SHOAL_JOB_ID", ""),
        "task_id": env.get("SHOAL_TASK_ID", ""),
        "attempt": int(env.get("SHOAL_TASK_ATTEMPT", "0") or 0),
        "argv": ["/bin/sh", "-c", " ".join(words)],
        "secret": env.get("SHOAL_EXEC_SECRET", ""),
    }
    try:
        sock = connect(address, ca_file)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a wrong CA, a wrong name
        print(f"shoal-mpi-launch: cannot reach the agent of {host} at {address}: {e}", file=sys.stderr)
        return 255
    with sock:
        try:
            sock.sendall(frame(HELLO, json.dumps(hello).encode()))
            return relay(sock, sys.stdin.fileno() if sys.stdin is not None else None, 1, 2)
        except (OSError, WireError, ValueError) as e:
            print(f"shoal-mpi-launch: {host}: {e}", file=sys.stderr)
            return 255


def launcher_script(python: str) -> str | None:
    """This module as a program run by `python -IS` (no site, no user variables: the cheapest start),
    or None where `python`'s path cannot be a `#!` line (spaces, or too long for the kernel)."""
    if any(c.isspace() for c in python) or len(python) > 200:
        return None
    with open(__file__, encoding="utf-8") as f:
        source = f.read()
    return f"#!{python} -IS\n{source}"


if __name__ == "__main__":
    sys.exit(main())
