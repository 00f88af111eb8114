"""Serve a directory over http(s) on 127.0.0.1 for tests of http resource files.

    from tests.httpserver import serve_directory

    with serve_directory(tmp_path) as base_url:        # "http://127.0.0.1:PORT"
        fetch(f"{base_url}/inputs/data.csv?sig=ignored")

The server runs in a background thread on an ephemeral port and stops when the block
ends. Pass an `ssl.SSLContext` (server side, with a certificate loaded) to serve https.
Use :class:`DirectoryServer` directly to see which paths were requested.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without writing a log line per request; records each request path."""

    requests: list[str]
    lock: threading.Lock

    def __init__(self, *args: Any, requests: list[str], lock: threading.Lock, **kwargs: Any) -> None:
        self.requests = requests
        self.lock = lock
        super().__init__(*args, **kwargs)

    def send_head(self) -> Any:
        with self.lock:
            self.requests.append(self.path)
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class DirectoryServer:
    """An http(s) server for one directory, on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self, path: str | os.PathLike[str], ssl_context: ssl.SSLContext | None = None) -> None:
        self.path = Path(path)
        self.requests: list[str] = []
        """Request paths (with query strings) in the order they arrived, for GET and HEAD."""
        self._lock = threading.Lock()
        handler = functools.partial(_QuietHandler, directory=str(self.path), requests=self.requests, lock=self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if ssl_context is not None else "http"
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (or https), without a trailing slash."""
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def url(self, relative: str) -> str:
        """The URL of a file relative to the served directory."""
        return f"{self.base_url}/{relative.lstrip('/')}"

    def start(self) -> None:
        """Start serving in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> DirectoryServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_directory(path: str | os.PathLike[str], ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve `path` while the block runs; yields the base URL (no trailing slash)."""
    with DirectoryServer(path, ssl_context) as server:
        yield server.base_url
