"""A file streamed from a node: :class:`FileStream` (the bytes, cancellable from any thread) and the
atomic write of such a stream to a local file."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from .errors import from_rpc_error

__all__ = ["FileStream", "delete_timeout", "write_atomically"]

#: The least time a delete is given (the server gives the node two minutes for a large directory tree).
DELETE_SECONDS = 120.0


def delete_timeout(timeout: float | None) -> float | None:
    """The timeout of a file delete: the client's, but at least `DELETE_SECONDS` (None: none)."""
    return None if timeout is None else max(timeout, DELETE_SECONDS)


class FileStream(Iterator[bytes]):
    """The bytes of a node's or a task's file, chunk by chunk, as the server sends them.

    Without ``follow`` it ends at the end of the file. With ``follow`` it goes on as the file grows,
    until :meth:`cancel` (from any thread), :meth:`close`, the end of a ``with`` block, or its timeout
    (:class:`DeadlineExceeded`). Cancelled, iteration ends quietly. Errors are :class:`ShoalError`\\ s.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._cancelled = threading.Event()

    def __iter__(self) -> FileStream:
        return self

    def __next__(self) -> bytes:
        while True:
            try:
                chunk = next(self._call)
            except grpc.RpcError as e:
                if self._cancelled.is_set() or e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                    raise StopIteration from None
                raise from_rpc_error(e) from None
            if chunk.data:
                return bytes(chunk.data)

    def cancel(self) -> None:
        """Stop the stream (the server stops reading the file); iteration ends quietly."""
        self._cancelled.set()
        self._call.cancel()

    def close(self) -> None:
        """The same as :meth:`cancel`."""
        self.cancel()

    def __enter__(self) -> FileStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()


def write_atomically(chunks: Iterable[bytes], local_path: str | os.PathLike[str]) -> Path:
    """Write ``chunks`` to ``local_path`` through a temporary file beside it, renamed at the end (a failed
    download leaves no partial file behind)."""
    path = Path(local_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with tmp.open("wb") as f:
            for data in chunks:
                f.write(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
