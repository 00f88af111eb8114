"""`shoal storage` against a real in-process server: downloads make their directory, a container that holds
blobs is deleted only when asked (a terminal) or forced, and transfers show progress on a terminal only.

The CLI is blocking: each scenario runs in a thread while the server's loop serves it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.service.clirun import cli_args, run_on_terminal, runner

pytestmark = pytest.mark.timeout(120)


def _files(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("A")
    (root / "sub" / "b.txt").write_text("BB")
    return root


async def test_download_makes_its_directory_and_parents(server: Any, tmp_path: Path) -> None:
    run = runner(server, tmp_path)
    src = _files(tmp_path / "src")

    def scenario() -> None:
        assert run("storage", "upload", "box", str(src), "--prefix", "data/").exit_code == 0
        deep = tmp_path / "not" / "there" / "yet"
        r = run("storage", "download", "box", "data/a.txt", "-d", str(deep))
        assert r.exit_code == 0, r.output
        assert (deep / "a.txt").read_text() == "A"
        assert r.output == f"downloaded data/a.txt to {deep / 'a.txt'}\n"  # nothing more off a terminal
        r = run("storage", "download", "box", "data/", "--prefix", "-d", str(tmp_path / "all" / "of" / "it"))
        assert r.exit_code == 0, r.output
        assert (tmp_path / "all" / "of" / "it" / "data" / "sub" / "b.txt").read_text() == "BB"
        r = run("storage", "download", "box", "-d", str(tmp_path / "every"))
        assert r.output == f"downloaded 2 blob(s) to {tmp_path / 'every'}\n"
        r = run("storage", "download", "box", "data/sub/b.txt", "--to", str(tmp_path / "named" / "copy.txt"))
        assert r.exit_code == 0, r.output
        assert (tmp_path / "named" / "copy.txt").read_text() == "BB"
        # -d names a directory: an existing file there is an error, and nothing is written.
        (tmp_path / "plain").write_text("keep")
        r = run("storage", "download", "box", "data/a.txt", "-d", str(tmp_path / "plain"))
        assert r.exit_code == 2 and "is a file" in r.output
        assert (tmp_path / "plain").read_text() == "keep"
        r = run("storage", "download", "box", "data/", "--prefix", "--to", str(tmp_path / "x"))
        assert r.exit_code == 2 and "--to" in r.output

    await asyncio.to_thread(scenario)


async def test_delete_of_a_container_with_blobs_needs_force_off_a_terminal(server: Any, tmp_path: Path) -> None:
    run = runner(server, tmp_path)
    src = _files(tmp_path / "src")

    def scenario() -> None:
        run("storage", "upload", "box", str(src))
        r = run("storage", "delete", "box")
        assert r.exit_code == 1
        assert r.stderr == "error: container box holds 2 blob(s): give --force to delete it with them\n"
        assert "box" in run("storage", "list").output
        assert run("storage", "delete", "box", "-f").output == "container box: deleted\n"
        assert "box" not in run("storage", "list").output
        # An empty container goes without a question.
        run("storage", "create", "empty")
        assert run("storage", "delete", "empty").exit_code == 0
        # Blobs by name go without a question too.
        run("storage", "upload", "box", str(src))
        assert run("storage", "delete", "box", "a.txt").output == "deleted 1 blob(s) from box\n"

    await asyncio.to_thread(scenario)


async def test_delete_asks_on_a_terminal(server: Any, tmp_path: Path) -> None:
    run = runner(server, tmp_path)
    root = cli_args(server, tmp_path)
    src = _files(tmp_path / "src")

    def scenario() -> None:
        run("storage", "upload", "box", str(src))
        no = run_on_terminal([*root, "storage", "delete", "box"], answer=("delete it with them?", "n\n"))
        assert no.exit_code == 1, no.output
        assert "container box holds 2 blob(s): delete it with them? [y/N]" in no.output
        assert "not deleted" in no.output
        assert "box" in run("storage", "list").output
        yes = run_on_terminal([*root, "storage", "delete", "box"], answer=("delete it with them?", "y\n"))
        assert yes.exit_code == 0, yes.output
        assert "container box: deleted" in yes.output
        assert "box" not in run("storage", "list").output

    await asyncio.to_thread(scenario)


async def test_transfers_show_progress_on_a_terminal_only(server: Any, tmp_path: Path) -> None:
    run = runner(server, tmp_path)
    root = cli_args(server, tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))

    def scenario() -> None:
        up = run_on_terminal([*root, "storage", "upload", "box", str(big)])
        assert up.exit_code == 0, up.output
        assert "uploading" in up.output and "━" in up.output  # rich's bar
        assert "uploaded 1 blob(s), 3145728 bytes, to box" in up.output
        down = run_on_terminal([*root, "storage", "download", "box", "big.bin", "-d", str(tmp_path / "d")])
        assert down.exit_code == 0, down.output
        assert "downloading" in down.output and "━" in down.output
        assert (tmp_path / "d" / "big.bin").read_bytes() == big.read_bytes()
        # Off a terminal: the summary line alone.
        r = run("storage", "upload", "box", str(big), "--name", "again.bin")
        assert r.stdout == "uploaded 1 blob(s), 3145728 bytes, to box\n" and r.stderr == ""
        r = run("storage", "download", "box", "again.bin", "-d", str(tmp_path / "e"))
        assert r.stdout == f"downloaded again.bin to {tmp_path / 'e' / 'again.bin'}\n" and r.stderr == ""

    await asyncio.to_thread(scenario)
