"""The agent's C programs: built once into a cache directory of its own, or not at all (the callers fall back)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.mpi.launch import SHIM_NAME
from shoal.nodeagent.cbuild import build_program
from shoal.nodeagent.mpilauncher import write_launcher

HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'

pytestmark = pytest.mark.timeout(120)


def _says_hello(program: Path) -> bool:
    return subprocess.run([str(program)], capture_output=True, check=False).stdout == b"hello\n"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    d = tmp_path / "cache"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    return d


def test_built_once_then_found(cache: Path) -> None:
    first = build_program("hello", HELLO, works=_says_hello, directory=cache)
    assert first is not None and _says_hello(first) and first.parent == cache
    mtime = first.stat().st_mtime_ns
    assert build_program("hello", HELLO, works=_says_hello, directory=cache) == first
    assert first.stat().st_mtime_ns == mtime  # not built again
    # Another source: another program beside it.
    other = build_program("hello", HELLO.replace("hello", "hullo"), works=lambda p: True, directory=cache)
    assert other is not None and other != first


def test_what_does_not_compile_or_work_is_not_kept(cache: Path) -> None:
    assert build_program("broken", "int main(void) { return x; }", works=lambda p: True, directory=cache) is None
    assert build_program("hello", HELLO, works=lambda p: False, directory=cache) is None
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []


def test_a_directory_others_may_write_is_not_used(cache: Path) -> None:
    cache.chmod(0o777)
    assert build_program("hello", HELLO, works=_says_hello, directory=cache) is None


def test_the_agent_writes_the_python_shim_when_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_MPI_SHIM", "python")
    directory = write_launcher(tmp_path / "bin")
    assert directory is not None
    assert (directory / SHIM_NAME).read_bytes().startswith(b"#!")
