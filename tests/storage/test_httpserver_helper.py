"""The tests/httpserver.py helper serves files and stops cleanly."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.httpserver import DirectoryServer, serve_directory


def test_serve_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.bin").write_bytes(b"\x00\x01payload")
    with serve_directory(tmp_path) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{base_url}/sub/data.bin?sig=abc", timeout=10) as resp:
            assert resp.status == 200
            assert resp.read() == b"\x00\x01payload"
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(f"{base_url}/missing", timeout=10)
        assert ei.value.code == 404
        ei.value.close()
        port = int(base_url.rsplit(":", 1)[1])
    # The port is released when the block ends.
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.settimeout(10)
        s.connect(("127.0.0.1", port))


def test_directory_server_records_requests(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    with DirectoryServer(tmp_path) as server:
        with urllib.request.urlopen(server.url("a.txt"), timeout=10) as resp:
            assert resp.read() == b"A"
        assert server.requests == ["/a.txt"]
