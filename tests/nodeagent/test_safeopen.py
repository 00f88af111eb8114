"""shoal.nodeagent.safeopen: no symlink is ever followed, with openat2 and with the O_NOFOLLOW walk."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.nodeagent import safeopen
from shoal.paths import UnsafePathError


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "openat2":
        safeopen.use_openat2(True)
        if not safeopen.openat2_available():
            pytest.skip("this kernel has no openat2")
    else:
        safeopen.use_openat2(False)
    try:
        yield request.param
    finally:
        safeopen.use_openat2(True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """base/{a.txt, d/b.txt, d/e/c.txt, link-file -> ../secret, link-dir -> ../outside, d/up -> .., abs -> /etc}"""
    base = tmp_path / "base"
    (base / "d" / "e").mkdir(parents=True)
    (base / "a.txt").write_text("a")
    (base / "d" / "b.txt").write_text("b")
    (base / "d" / "e" / "c.txt").write_text("c")
    (tmp_path / "secret").write_text("secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.txt").write_text("outside")
    (base / "link-file").symlink_to(tmp_path / "secret")
    (base / "link-dir").symlink_to(tmp_path / "outside")
    (base / "inner-link").symlink_to(base / "a.txt")  # even a link that stays inside is not followed
    (base / "d" / "up").symlink_to("..")
    (base / "abs").symlink_to("/etc")
    return base


def read(base: Path | int, rel: str) -> bytes:
    fd = safeopen.open_beneath(base, rel)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_plain_files_open(mode: str, tree: Path) -> None:
    assert read(tree, "a.txt") == b"a"
    assert read(tree, "d/e/c.txt") == b"c"
    assert read(tree, "./d//b.txt") == b"b"
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert read(fd, "d/b.txt") == b"b"
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "rel",
    ["link-file", "link-dir/x.txt", "inner-link", "d/up/a.txt", "abs/passwd", "link-dir", "d/up"],
)
def test_a_symlink_at_any_component_is_refused(mode: str, tree: Path, rel: str) -> None:
    with pytest.raises(OSError) as ei:
        read(tree, rel)
    assert ei.value.errno == errno.ELOOP
    assert "symbolic link" in safeopen.describe_error(ei.value, rel)


@pytest.mark.parametrize("rel", ["../secret", "d/../../secret", "/etc/passwd", "d/..", "a\\b", "a\x00b"])
def test_dotdot_and_absolute_paths_are_refused_before_the_kernel(mode: str, tree: Path, rel: str) -> None:
    with pytest.raises(UnsafePathError):
        read(tree, rel)


def test_missing_and_not_a_directory(mode: str, tree: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read(tree, "nope.txt")
    with pytest.raises(OSError) as ei:
        read(tree, "a.txt/x")
    assert ei.value.errno == errno.ENOTDIR
    with pytest.raises(OSError) as ei:
        safeopen.open_dir(tree, "a.txt")
    assert ei.value.errno == errno.ENOTDIR


def test_the_base_itself_and_lstat(mode: str, tree: Path) -> None:
    fd = safeopen.open_dir(tree, "")
    try:
        assert sorted(os.listdir(fd))[0] == "a.txt"
    finally:
        os.close(fd)
    assert safeopen.lstat_beneath(tree, "link-file").st_mode & 0o170000 == 0o120000  # the link itself
    assert safeopen.lstat_beneath(tree, "d/b.txt").st_size == 1
    with pytest.raises(OSError) as ei:
        safeopen.lstat_beneath(tree, "link-dir/x.txt")
    assert ei.value.errno == errno.ELOOP


def test_makedirs_never_goes_through_a_link(mode: str, tree: Path, tmp_path: Path) -> None:
    fd = safeopen.makedirs_beneath(tree, "new/deeper")
    os.close(fd)
    assert (tree / "new" / "deeper").is_dir()
    with pytest.raises(OSError) as ei:
        safeopen.makedirs_beneath(tree, "link-dir/made")
    assert ei.value.errno == errno.ELOOP
    assert not (tmp_path / "outside" / "made").exists()


def test_create_refuses_a_final_symlink(mode: str, tree: Path, tmp_path: Path) -> None:
    with pytest.raises(OSError) as ei:
        safeopen.open_beneath(tree, "link-file", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    assert ei.value.errno == errno.ELOOP
    assert (tmp_path / "secret").read_text() == "secret"


def test_walk_never_enters_a_symlink_and_is_bounded(mode: str, tree: Path) -> None:
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        entries = {e.rel: e for e in safeopen.walk(fd)}
        assert set(entries) == {
            "a.txt",
            "abs",
            "d",
            "d/b.txt",
            "d/e",
            "d/e/c.txt",
            "d/up",
            "inner-link",
            "link-dir",
            "link-file",
        }
        assert entries["d"].is_dir and not entries["link-dir"].is_dir and not entries["link-file"].is_file
        assert [e.rel for e in safeopen.walk(fd, descend=lambda rel: rel != "d")][:3] == ["a.txt", "abs", "d"]
        with pytest.raises(safeopen.WalkLimitError):
            list(safeopen.walk(fd, max_entries=3))
        with pytest.raises(safeopen.WalkLimitError):
            list(safeopen.walk(fd, max_depth=1))
        with pytest.raises(safeopen.WalkLimitError):
            list(safeopen.walk(fd, deadline=time.monotonic() - 1))
    finally:
        os.close(fd)


def test_a_directory_past_the_entry_bound_is_refused_while_it_is_read(tmp_path: Path) -> None:
    """A task's directory of millions of entries is not read whole (and sorted) before the bound is
    checked: nothing of it is looked at once the bound is passed."""
    for i in range(50):
        (tmp_path / f"f{i:02d}").write_text("")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    seen: list[str] = []
    try:
        with pytest.raises(safeopen.WalkLimitError, match="more than 10 entries"):
            for e in safeopen.walk(fd, max_entries=10):
                seen.append(e.rel)
    finally:
        os.close(fd)
    assert seen == []
