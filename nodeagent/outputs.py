"""Output files: matching glob patterns in a task directory and uploading them after the task exits."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from shoal.nodeagent.storage import StorageClient
from shoal.paths import UnsafePathError
from shoal.v1 import common_pb2

log = logging.getLogger(__name__)

_WILDCARDS = frozenset("*?[")
UPLOAD_OUT = "fileuploadout.txt"
UPLOAD_ERR = "fileuploaderr.txt"

Cond = common_pb2.OutputFileUploadCondition


def has_wildcard(pattern: str) -> bool:
    """True when the pattern contains a glob character."""
    return any(c in _WILDCARDS for c in pattern)


def should_upload(condition: int, succeeded: bool) -> bool:
    """Whether an output file with this condition is uploaded for a task that (did not) succeed."""
    if condition == Cond.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION:
        return True
    if condition == Cond.OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE:
        return not succeeded
    return succeeded  # UNSPECIFIED means TASK_SUCCESS


@dataclass(frozen=True)
class Match:
    """One file matched by a pattern and the blob name it goes to."""

    source: Path
    blob_name: str


def _split_pattern(pattern: str, wd: Path, task_dir: Path) -> tuple[Path, str]:
    """The directory a pattern starts from (no wildcard in it) and the rest of the pattern.

    Raises UnsafePathError when the pattern leaves the task directory.
    """
    if not pattern or "\x00" in pattern or "\\" in pattern:
        raise UnsafePathError(f"invalid output file pattern {pattern!r}")
    top = os.path.normpath(str(task_dir))
    joined = os.path.normpath(os.path.join(str(wd), pattern))
    if not joined.startswith(top + os.sep):
        raise UnsafePathError(f"output file pattern {pattern!r} leaves the task directory")
    parts = joined[len(top) + 1 :].split(os.sep)
    n = 0
    while n < len(parts) - 1 and not has_wildcard(parts[n]):
        n += 1
    return Path(top, *parts[:n]), "/".join(parts[n:])


def match_output_files(output: common_pb2.OutputFile, wd: Path, task_dir: Path) -> list[Match]:
    """Files matched by one output file spec, with their blob names.

    `**` matches any depth; names starting with '.' match only when the pattern spells the dot.
    Symlinks that resolve outside the task directory are skipped. Raises UnsafePathError for a
    pattern that leaves the task directory.
    """
    pattern = output.file_pattern
    base, rest = _split_pattern(pattern, wd, task_dir)
    top = task_dir.resolve()
    found: list[tuple[Path, str]] = []
    if base.is_dir():
        for rel in sorted(glob.glob(rest, root_dir=base, recursive=True)):
            p = base / rel
            if not p.is_file():
                continue
            real = p.resolve()
            if top not in real.parents:
                log.warning("skipping %s: it resolves outside the task directory", p)
                continue
            found.append((p, PurePosixPath(*Path(rel).parts).as_posix()))
    dest = output.path.strip("/")
    if not has_wildcard(pattern) and len(found) == 1:
        return [Match(found[0][0], dest or found[0][0].name)]
    return [Match(p, f"{dest}/{rel}" if dest else rel) for p, rel in found]


class UploadLog:
    """Writes fileuploadout.txt / fileuploaderr.txt lines in a task directory."""

    def __init__(self, task_dir: Path) -> None:
        self._out = task_dir / UPLOAD_OUT
        self._err = task_dir / UPLOAD_ERR

    def info(self, when: datetime, line: str) -> None:
        """An upload log line."""
        with open(self._out, "a") as f:
            f.write(f"{when.isoformat()} {line}\n")

    def error(self, when: datetime, line: str) -> None:
        """An upload error line (also in the out log)."""
        self.info(when, "ERROR " + line)
        with open(self._err, "a") as f:
            f.write(f"{when.isoformat()} {line}\n")


async def upload_outputs(
    outputs: Iterable[common_pb2.OutputFile],
    *,
    succeeded: bool,
    wd: Path,
    task_dir: Path,
    storage: StorageClient | None,
    now: datetime,
) -> str | None:
    """Upload the outputs whose condition holds; returns an error message on failure, else None."""
    selected = [o for o in outputs if should_upload(o.upload_condition, succeeded)]
    if not selected:
        return None
    ulog = UploadLog(task_dir)
    errors: list[str] = []
    for o in selected:
        try:
            matches = match_output_files(o, wd, task_dir)
        except (UnsafePathError, OSError) as e:
            errors.append(str(e))
            ulog.error(now, str(e))
            continue
        if not matches:
            ulog.info(now, f"pattern {o.file_pattern!r} matched no files")
        for m in matches:
            if storage is None:
                msg = "no storage service available"
                errors.append(msg)
                ulog.error(now, msg)
                break
            try:
                blob = await storage.upload_blob(o.container_name, m.blob_name, m.source)
            except Exception as e:
                detail = e.details() if hasattr(e, "details") else str(e)
                msg = f"uploading {m.source} to {o.container_name}/{m.blob_name} failed: {detail}"
                errors.append(msg)
                ulog.error(now, msg)
            else:
                ulog.info(now, f"uploaded {m.source} to {o.container_name}/{m.blob_name} ({blob.size} bytes)")
    return "; ".join(errors) if errors else None
