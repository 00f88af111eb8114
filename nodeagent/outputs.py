"""Output files: matching glob patterns in a task directory and uploading them after the task exits."""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import logging
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from shoal.nodeagent import safeopen
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


#: Bounds of matching one output file pattern (see `OutputLimits`).
MAX_OUTPUT_FILES = 10_000
MAX_OUTPUT_ENTRIES = 200_000
MAX_OUTPUT_DEPTH = 64
MAX_OUTPUT_SECONDS = 30.0


@dataclass(frozen=True)
class OutputLimits:
    """How much matching one output file pattern may take before the pattern fails the upload.

    A task decides what its directory holds, so matching is bounded: a pattern that goes past
    any bound uploads nothing and fails the task's upload (FileUploadMiscError) with a message
    naming the bound, instead of walking for ever while the node waits.
    """

    #: Files one pattern may match (and so upload).
    max_files: int = MAX_OUTPUT_FILES
    #: Directory entries looked at (matching or not) while matching one pattern.
    max_entries: int = MAX_OUTPUT_ENTRIES
    #: Directory levels below the pattern's fixed part (`out/` of `out/**/*.txt`).
    max_depth: int = MAX_OUTPUT_DEPTH
    #: Seconds matching one pattern may take.
    max_seconds: float = MAX_OUTPUT_SECONDS


DEFAULT_LIMITS = OutputLimits()


class OutputPatternError(Exception):
    """A pattern matched too much (or its directory could not be read): that pattern uploads nothing."""


@dataclass(frozen=True)
class Match:
    """One file matched by a pattern and the blob name it goes to."""

    source: Path
    blob_name: str
    #: Its path relative to the task directory (what is opened, without following symlinks).
    rel: str = ""


@dataclass(frozen=True)
class Scan:
    """What one pattern matched: the files to upload and the symlinks that were not followed."""

    matches: list[Match]
    skipped_links: list[str]


def _split_pattern(pattern: str, wd: Path, task_dir: Path) -> tuple[list[str], list[str]]:
    """The fixed directory part of a pattern (no wildcard in it) and the rest, as components
    relative to the task directory.

    The pattern is normalised lexically ('a/../b' is 'b'): no symlink is ever followed, so
    that is what it means. Raises UnsafePathError when the pattern leaves the task directory.
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
    return parts[:n], parts[n:]


def _hidden(name: str) -> bool:
    return name.startswith(".")


class _Pattern:
    """A glob pattern as `glob.glob(recursive=True)` reads it, matched against relative paths.

    `*`, `?` and `[...]` stay within one name; a `**` component is any number of names (none
    included); a name starting with '.' matches only a pattern name that starts with '.'.
    """

    def __init__(self, parts: list[str]) -> None:
        self.parts = tuple(parts)

    def _name(self, i: int, name: str) -> bool:
        p = self.parts[i]
        return (not _hidden(name) or p.startswith(".")) and fnmatch.fnmatchcase(name, p)

    def matches(self, path: tuple[str, ...]) -> bool:
        """Whether the file at `path` (names below the pattern's fixed directory) matches."""
        memo: dict[tuple[int, int], bool] = {}

        def m(i: int, j: int) -> bool:
            key = (i, j)
            if key not in memo:
                if i == len(self.parts):
                    r = j == len(path)
                elif self.parts[i] == "**":
                    r = m(i + 1, j) or (j < len(path) and not _hidden(path[j]) and m(i, j + 1))
                else:
                    r = j < len(path) and self._name(i, path[j]) and m(i + 1, j + 1)
                memo[key] = r
            return memo[key]

        return m(0, 0)

    def may_contain(self, path: tuple[str, ...]) -> bool:
        """Whether something inside directory `path` could match (else it is not walked)."""
        memo: dict[tuple[int, int], bool] = {}

        def m(i: int, j: int) -> bool:
            key = (i, j)
            if key not in memo:
                if j == len(path):
                    r = i < len(self.parts)
                elif i == len(self.parts):
                    r = False
                elif self.parts[i] == "**":
                    r = m(i + 1, j) or (not _hidden(path[j]) and m(i, j + 1))
                else:
                    r = self._name(i, path[j]) and m(i + 1, j + 1)
                memo[key] = r
            return memo[key]

        return m(0, 0)


def scan_output_files(
    output: common_pb2.OutputFile,
    wd: Path,
    task_dir: Path,
    *,
    root: Path | None = None,
    limits: OutputLimits = DEFAULT_LIMITS,
) -> Scan:
    """Files matched by one output file spec, with their blob names (blocking: run it in a thread).

    `**` matches any depth; names starting with '.' match only when the pattern spells the dot.
    No symlink is followed, to a file or a directory, inside the task directory or out of it
    (they are listed in `skipped_links` when the pattern matches them); with `root`, the task
    directory itself is opened below it the same way. Raises UnsafePathError for a pattern that
    leaves the task directory, OutputPatternError for one that goes past `limits`.
    """
    pattern = output.file_pattern
    fixed, rest = _split_pattern(pattern, wd, task_dir)
    fixed_rel = "/".join(fixed)
    if root is not None:
        task_fd = safeopen.open_dir(root, task_dir.relative_to(root).as_posix())
    else:
        task_fd = os.open(task_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    found: list[tuple[str, str]] = []  # (path below the task directory, path below `fixed`)
    skipped: list[str] = []
    try:
        try:
            base_fd = safeopen.open_dir(task_fd, fixed_rel)
        except FileNotFoundError:
            return Scan([], [])
        except OSError as e:
            if e.errno == errno.ELOOP:
                return Scan([], [fixed_rel])
            if e.errno == errno.ENOTDIR:
                return Scan([], [])
            raise OutputPatternError(f"output file pattern {pattern!r}: {safeopen.describe_error(e, fixed_rel)}") from e
        try:
            matcher = _Pattern(rest)
            entries = safeopen.walk(
                base_fd,
                descend=lambda rel: matcher.may_contain(tuple(rel.split("/"))),
                max_entries=limits.max_entries,
                max_depth=limits.max_depth,
                deadline=time.monotonic() + limits.max_seconds,
            )
            for entry in entries:
                if entry.is_dir or not matcher.matches(tuple(entry.rel.split("/"))):
                    continue
                in_task = f"{fixed_rel}/{entry.rel}" if fixed_rel else entry.rel
                if stat.S_ISLNK(entry.st.st_mode):
                    skipped.append(in_task)
                elif entry.is_file:
                    found.append((in_task, entry.rel))
                    if len(found) > limits.max_files:
                        raise OutputPatternError(
                            f"output file pattern {pattern!r} matches more than {limits.max_files} files; "
                            "nothing was uploaded for it (narrow the pattern)"
                        )
        except safeopen.WalkLimitError as e:
            bound = {
                "entries": f"more than {limits.max_entries} entries to look at",
                "nested": f"directories nested more than {limits.max_depth} deep",
                "long": f"more than {limits.max_seconds:g}s of matching",
            }
            why = next((v for k, v in bound.items() if k in str(e)), str(e))
            raise OutputPatternError(
                f"output file pattern {pattern!r} reaches too far ({why}); nothing was uploaded for it "
                "(narrow the pattern)"
            ) from e
        finally:
            os.close(base_fd)
    finally:
        os.close(task_fd)
    dest = output.path.strip("/")
    if not has_wildcard(pattern) and len(found) == 1:
        in_task, rel = found[0]
        return Scan([Match(task_dir / in_task, dest or PurePosixPath(rel).name, in_task)], skipped)
    return Scan([Match(task_dir / t, f"{dest}/{rel}" if dest else rel, t) for t, rel in found], skipped)


class UploadLog:
    """Writes fileuploadout.txt / fileuploaderr.txt lines in a task directory (never through a symlink)."""

    def __init__(self, task_dir: Path, root: Path | None = None) -> None:
        if root is not None:
            self._base, rel = root, task_dir.relative_to(root).as_posix() + "/"
        else:
            self._base, rel = task_dir, ""
        self._out = rel + UPLOAD_OUT
        self._err = rel + UPLOAD_ERR

    def _append(self, rel: str, line: str) -> None:
        try:
            fd = safeopen.open_beneath(self._base, rel, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o660)
        except (OSError, UnsafePathError) as e:
            log.warning("cannot write %s: %s", rel, e)
            return
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def info(self, when: datetime, line: str) -> None:
        """An upload log line."""
        self._append(self._out, f"{when.isoformat()} {line}\n")

    def error(self, when: datetime, line: str) -> None:
        """An upload error line (also in the out log)."""
        self.info(when, "ERROR " + line)
        self._append(self._err, f"{when.isoformat()} {line}\n")


async def upload_outputs(
    outputs: Iterable[common_pb2.OutputFile],
    *,
    succeeded: bool,
    wd: Path,
    task_dir: Path,
    storage: StorageClient | None,
    now: datetime,
    root: Path | None = None,
    limits: OutputLimits = DEFAULT_LIMITS,
) -> str | None:
    """Upload the outputs whose condition holds; returns an error message on failure, else None.

    Matching runs in a thread (bounded by `limits`) and each file is opened without following
    symlinks (below `root` when given, else below `task_dir`): the event loop never waits on a
    task's directory tree.
    """
    selected = [o for o in outputs if should_upload(o.upload_condition, succeeded)]
    if not selected:
        return None
    ulog = UploadLog(task_dir, root)
    base = root if root is not None else task_dir
    task_rel = task_dir.relative_to(root).as_posix() if root is not None else ""
    errors: list[str] = []

    def fail(msg: str) -> None:
        errors.append(msg)
        ulog.error(now, msg)

    for o in selected:
        try:
            scan = await asyncio.to_thread(scan_output_files, o, wd, task_dir, root=root, limits=limits)
        except (UnsafePathError, OutputPatternError, OSError) as e:
            fail(str(e))
            continue
        for link in scan.skipped_links:
            ulog.info(now, f"skipped {link}: a symbolic link (links are not followed)")
        if not scan.matches:
            ulog.info(now, f"pattern {o.file_pattern!r} matched no files")
        for m in scan.matches:
            if storage is None:
                fail("no storage service available")
                break
            try:
                fd = await asyncio.to_thread(safeopen.open_regular, base, f"{task_rel}/{m.rel}" if task_rel else m.rel)
            except (OSError, UnsafePathError, safeopen.NotARegularFile) as e:
                detail = safeopen.describe_error(e, m.rel) if isinstance(e, OSError) else f"{m.rel}: {e}"
                fail(f"uploading {m.source} to {o.container_name}/{m.blob_name} failed: {detail}")
                continue
            try:
                with os.fdopen(fd, "rb") as f:
                    blob = await storage.upload_blob(o.container_name, m.blob_name, f)
            except Exception as e:
                detail = e.details() if hasattr(e, "details") else str(e)
                fail(f"uploading {m.source} to {o.container_name}/{m.blob_name} failed: {detail}")
            else:
                ulog.info(now, f"uploaded {m.source} to {o.container_name}/{m.blob_name} ({blob.size} bytes)")
    return "; ".join(errors) if errors else None
