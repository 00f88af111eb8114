"""Commands and shells on a node (:meth:`PoolsAPI.exec_node`): one bidirectional stream through the server
to the node's agent, as ``kubectl exec`` has it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from shoal.v1 import common_pb2, pool_pb2

from .errors import Unavailable, from_rpc_error

__all__ = ["ExecOutput", "ExecResult", "ExecSession"]


@dataclass(frozen=True)
class ExecOutput:
    """A piece of a command's output, as it came."""

    data: bytes
    """The bytes."""
    stderr: bool = False
    """From the command's stderr (never under a terminal, whose output is all stdout)."""


@dataclass(frozen=True)
class ExecResult:
    """All a finished command wrote, and how it ended."""

    stdout: bytes
    """Its standard output (under a terminal: everything it wrote to the terminal)."""
    stderr: bytes
    """Its standard error."""
    exit_code: int
    """Its exit code, or 128 + the signal that ended it (as a shell reports it)."""
    signal: int = 0
    """The signal that ended it (0: it exited)."""

    @property
    def succeeded(self) -> bool:
        """It exited with 0."""
        return self.exit_code == 0


class ExecSession:
    """A command running on a node: iterate over it for its output (:class:`ExecOutput`) until it ends; then
    :attr:`exit_code` and :attr:`signal` say how. Input, window sizes and signals may be sent meanwhile, from
    any thread. Leaving a ``with`` block (or :meth:`cancel`) ends the call, and the node kills the command.

    Errors (the node is not the account's, or not connected, ...) raise :class:`ShoalError` from iterating.
    """

    def __init__(
        self,
        method: Callable[..., Any],
        start: pool_pb2.ExecNodeStart,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
    ) -> None:
        self._requests: queue.SimpleQueue[pool_pb2.ExecNodeRequest | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._requests.put(pool_pb2.ExecNodeRequest(start=start))
        self._call = method(self._request_stream(), timeout=timeout, metadata=metadata)
        self.exit_code: int | None = None
        """The command's exit code (128 + signal when a signal ended it); None until it ended."""
        self.signal = 0
        """The signal that ended the command (0: none)."""

    def _request_stream(self) -> Iterator[pool_pb2.ExecNodeRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _send(self, request: pool_pb2.ExecNodeRequest) -> None:
        if not self._closed.is_set():
            self._requests.put(request)

    def _end_requests(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._requests.put(None)

    def __iter__(self) -> Iterator[ExecOutput]:
        try:
            for response in self._call:
                kind = response.WhichOneof("body")
                if kind == "stdout":
                    yield ExecOutput(response.stdout)
                elif kind == "stderr":
                    yield ExecOutput(response.stderr, stderr=True)
                elif kind == "exit":
                    self.exit_code = response.exit.exit_code
                    self.signal = response.exit.signal
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None  # type: ignore[arg-type]
        finally:
            self._end_requests()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the command's input (under a terminal: typed into it; Ctrl-C is ``b"\\x03"``)."""
        if data:
            self._send(pool_pb2.ExecNodeRequest(stdin=bytes(data)))

    def close_stdin(self) -> None:
        """End the command's input (under a terminal: the end-of-file character, Ctrl-D, is typed)."""
        self._send(pool_pb2.ExecNodeRequest(stdin_eof=True))

    def resize(self, rows: int, columns: int) -> None:
        """The terminal's new size (the command gets SIGWINCH)."""
        self._send(pool_pb2.ExecNodeRequest(resize=pool_pb2.TerminalSize(rows=rows, columns=columns)))

    def send_signal(self, signum: int) -> None:
        """Send signal ``signum`` to the command's process group (and a terminal's foreground job)."""
        self._send(pool_pb2.ExecNodeRequest(signal=int(signum)))

    def cancel(self) -> None:
        """End the call now: the node kills the command (and whatever it started)."""
        self._end_requests()
        self._call.cancel()

    def wait(self) -> ExecResult:
        """Read everything until the command ends; its output and exit."""
        out: list[bytes] = []
        err: list[bytes] = []
        for chunk in self:
            (err if chunk.stderr else out).append(chunk.data)
        if self.exit_code is None:
            raise Unavailable("the call ended without the command's exit status", reason="NO_EXIT_STATUS")
        return ExecResult(b"".join(out), b"".join(err), self.exit_code, self.signal)

    def __enter__(self) -> ExecSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


def start_request(
    pool_id: str,
    node_id: str,
    command: Sequence[str],
    *,
    tty: bool,
    rows: int,
    columns: int,
    environment: Mapping[str, str] | None,
    elevated: bool,
) -> pool_pb2.ExecNodeStart:
    """The first request of an ExecNode call."""
    return pool_pb2.ExecNodeStart(
        name=f"pools/{pool_id}/nodes/{node_id}",
        argv=list(command),
        tty=tty,
        size=pool_pb2.TerminalSize(rows=rows, columns=columns),
        environment=[common_pb2.EnvironmentSetting(name=k, value=v) for k, v in (environment or {}).items()],
        elevated=elevated,
    )
