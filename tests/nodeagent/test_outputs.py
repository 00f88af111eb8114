"""Output file matching: no symlink followed, bounded, off the event loop."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shoal.nodeagent.outputs import (
    UPLOAD_ERR,
    UPLOAD_OUT,
    OutputLimits,
    OutputPatternError,
    UploadLog,
    scan_output_files,
    upload_outputs,
)
from shoal.v1 import common_pb2

COMPLETION = common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION


@pytest.fixture
def task(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "node"
    task_dir = root / "workitems" / "j" / "job-1" / "t"
    wd = task_dir / "wd"
    (wd / "out" / "deep").mkdir(parents=True)
    (wd / "out" / "a.txt").write_text("a")
    (wd / "out" / "deep" / "b.txt").write_text("b")
    (task_dir / "stdout.txt").write_text("o")
    return root, task_dir


def spec(pattern: str, path: str = "") -> common_pb2.OutputFile:
    return common_pb2.OutputFile(file_pattern=pattern, container_name="c", path=path, upload_condition=COMPLETION)


@pytest.mark.timeout(30)
def test_a_link_to_the_root_is_not_followed(task: tuple[Path, Path]) -> None:
    """`ln -s / r` and `**/*`: the pattern sees `r` as a link and never walks the filesystem."""
    root, task_dir = task
    wd = task_dir / "wd"
    (wd / "r").symlink_to("/")
    (wd / "alias").symlink_to(wd / "out")  # a link inside the task directory is not followed either
    (wd / "inner.txt").symlink_to(wd / "out" / "a.txt")
    scan = scan_output_files(spec("**/*"), wd, task_dir, root=root)
    assert [m.blob_name for m in scan.matches] == ["out/a.txt", "out/deep/b.txt"]
    assert scan.skipped_links == ["wd/alias", "wd/inner.txt", "wd/r"]
    # The pattern's fixed part through a link matches nothing.
    assert scan_output_files(spec("r/etc/*"), wd, task_dir, root=root).matches == []
    assert scan_output_files(spec("r/etc/passwd"), wd, task_dir, root=root).matches == []


def test_the_task_directory_itself_swapped_for_a_link_is_refused(task: tuple[Path, Path], tmp_path: Path) -> None:
    root, task_dir = task
    task_dir.rename(tmp_path / "moved")
    task_dir.symlink_to(tmp_path / "moved")
    with pytest.raises(OSError):
        scan_output_files(spec("**/*.txt"), task_dir / "wd", task_dir, root=root)


def test_too_many_files_fails_the_pattern(task: tuple[Path, Path]) -> None:
    root, task_dir = task
    wd = task_dir / "wd"
    for i in range(5):
        (wd / f"f{i}.dat").write_text(str(i))
    limits = OutputLimits(max_files=4)
    with pytest.raises(OutputPatternError, match=r"matches more than 4 files"):
        scan_output_files(spec("*.dat"), wd, task_dir, root=root, limits=limits)
    assert len(scan_output_files(spec("f[0-3].dat"), wd, task_dir, root=root, limits=limits).matches) == 4


def test_depth_entries_and_time_bound_the_walk(task: tuple[Path, Path]) -> None:
    root, task_dir = task
    wd = task_dir / "wd"
    deep = wd / "nest"
    for _ in range(5):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("x")
    with pytest.raises(OutputPatternError, match=r"nested more than 3 deep"):
        scan_output_files(spec("nest/**/*.txt"), wd, task_dir, root=root, limits=OutputLimits(max_depth=3))
    with pytest.raises(OutputPatternError, match=r"more than 4 entries"):
        scan_output_files(spec("**/*.txt"), wd, task_dir, root=root, limits=OutputLimits(max_entries=4))
    with pytest.raises(OutputPatternError, match=r"more than 0s of matching"):
        scan_output_files(spec("**/*.txt"), wd, task_dir, root=root, limits=OutputLimits(max_seconds=0))
    # What the pattern cannot match is not walked: a narrow pattern stays within the bounds.
    for i in range(20):
        (wd / "out" / "deep" / f"n{i}.bin").write_text("n")
    narrow = scan_output_files(spec("out/*.txt"), wd, task_dir, root=root, limits=OutputLimits(max_entries=4))
    assert [m.blob_name for m in narrow.matches] == ["a.txt"]


async def test_a_pattern_past_its_bounds_fails_only_itself(task: tuple[Path, Path], tmp_path: Path) -> None:
    root, task_dir = task
    wd = task_dir / "wd"

    class Storage:
        def __init__(self) -> None:
            self.blobs: dict[str, bytes] = {}

        async def upload_blob(self, container: str, name: str, source) -> common_pb2.OutputFile:  # type: ignore[no-untyped-def]
            self.blobs[name] = source.read()

            class B:
                size = len(self.blobs[name])

            return B()  # type: ignore[return-value]

    storage = Storage()
    err = await upload_outputs(
        [spec("**/*.txt", "all"), spec("../stdout.txt", "so.txt")],
        succeeded=True,
        wd=wd,
        task_dir=task_dir,
        storage=storage,  # type: ignore[arg-type]
        now=datetime.now(UTC),
        root=root,
        limits=OutputLimits(max_files=1),
    )
    assert err is not None and "'**/*.txt' matches more than 1 files" in err
    assert storage.blobs == {"so.txt": b"o"}
    assert "matches more than 1 files" in (task_dir / UPLOAD_ERR).read_text()


def test_the_upload_log_is_never_written_through_a_link(task: tuple[Path, Path], tmp_path: Path) -> None:
    root, task_dir = task
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (task_dir / UPLOAD_OUT).symlink_to(victim)
    UploadLog(task_dir, root).info(datetime.now(UTC), "a line")
    assert victim.read_text() == "untouched"
