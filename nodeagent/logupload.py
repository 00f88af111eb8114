"""UploadLogs: the agent's own log files of a time window, uploaded to a storage container of its account.

The logs are the files directly in the node root that the agent and its provider write: `agent.log` (the
agent's log, `shoal.nodeagent.__main__.setup_logging`), `agent.out` (its stdout and stderr, and its
watchdog's, where the local provider started it) and their rotated copies (`agent.log.1`,
`agent.log-20250101`). A file goes up when its time span meets the window: it was written to at or after
the window's start (its modification time) and its first line was written at or before the window's end
(a first line without a time counts as written at the start of time). Each is opened below the root
without following a symlink (`shoal.nodeagent.safeopen`): a link named `agent.log` is not a log, and no
link leads the upload out of the root. What a file holds when the upload starts is what goes up (the
agent's own log grows while it uploads).

The container is created when it is missing (Batch wants a container that exists; making it is
friendlier, and the node's credential may: it acts for the pool's account).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from shoal.nodeagent import safeopen
from shoal.nodeagent.storage import StorageClient
from shoal.paths import UnsafePathError

#: The names of the agent's log files in the node root (rotated copies by number or by date).
LOG_NAME_RE = re.compile(r"^agent\.(log|out)(\.[0-9]{1,6}|-[0-9]{8,14})?$")
#: The most files one upload takes (the newest first): a root full of rotated logs is not uploaded whole.
MAX_LOG_FILES = 100
#: Bytes of a file's start read for the time of its first line.
HEAD_BYTES = 256
#: The time a log line starts with (`logging`'s `asctime`: local time, milliseconds after a comma).
_ASCTIME_RE = re.compile(rb"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:,(\d{3}))?")


class LogUploadError(Exception):
    """The logs could not be uploaded (the message says which file, and why)."""


@dataclass(frozen=True)
class LogSpan:
    """When a log file was written: its first line's time (None: unknown) and its last modification."""

    first: datetime | None
    modified: datetime


def is_log_name(name: str) -> bool:
    """Whether `name` (in the node root) is one of the agent's log files."""
    return LOG_NAME_RE.fullmatch(name) is not None


def first_line_time(head: bytes) -> datetime | None:
    """The time a log file's first line starts with (read as the machine's local time), or None."""
    m = _ASCTIME_RE.match(head)
    if m is None:
        return None
    try:
        when = datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    millis = int(m.group(2)) if m.group(2) else 0
    return when.replace(microsecond=millis * 1000).astimezone(UTC)


def in_window(span: LogSpan, start: datetime, end: datetime | None) -> bool:
    """Whether a file written over `span` holds lines of [start, end] (`end` None: until now)."""
    if span.modified < start:
        return False
    return end is None or span.first is None or span.first <= end


def candidates(root: Path) -> list[str]:
    """The agent's log files directly in `root` (regular files only, not links), newest first, at most
    `MAX_LOG_FILES` (blocking: run it in a thread)."""
    found: list[tuple[int, str]] = []
    with os.scandir(root) as entries:
        for e in entries:
            if not is_log_name(e.name):
                continue
            st = e.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime_ns, e.name))
    found.sort(reverse=True)
    return [name for _, name in found[:MAX_LOG_FILES]]


class _Snapshot(io.RawIOBase):
    """The first `size` bytes of an open file, read from its own offset (what the file held when opened)."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._left = size
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        if want <= 0:
            return b""
        data = os.pread(self._fd, want, self._offset)
        self._offset += len(data)
        self._left = 0 if not data else self._left - len(data)
        return data


def _open_log(root: Path, name: str) -> tuple[int, LogSpan, int]:
    """Open log file `name` below `root` (no link followed): its descriptor, time span and size now."""
    fd = safeopen.open_regular(root, name)
    try:
        st = os.fstat(fd)
        head = os.pread(fd, HEAD_BYTES, 0)
    except BaseException:
        os.close(fd)
        raise
    span = LogSpan(first_line_time(head), datetime.fromtimestamp(st.st_mtime, UTC))
    return fd, span, st.st_size


async def upload_logs(
    root: Path,
    storage: StorageClient,
    container: str,
    virtual_directory: str,
    start: datetime,
    end: datetime | None,
    *,
    names: Sequence[str] | None = None,
) -> int:
    """Upload the agent's log files in `root` whose span meets [start, end] to `container` (created if
    missing) as `<virtual_directory>/<name>`; returns how many went up. Raises LogUploadError.

    `names`: the files to consider (default: `candidates(root)`); a file gone meanwhile is skipped.
    """
    if names is None:
        try:
            names = await asyncio.to_thread(candidates, root)
        except OSError as e:
            raise LogUploadError(f"cannot list the node root: {safeopen.describe_error(e, '.')}") from e
    chosen: list[tuple[str, int, int]] = []
    try:
        for name in names:
            try:
                fd, span, size = await asyncio.to_thread(_open_log, root, name)
            except FileNotFoundError:
                continue  # rotated away meanwhile
            except (OSError, UnsafePathError, safeopen.NotARegularFile) as e:
                detail = safeopen.describe_error(e, name) if isinstance(e, OSError) else f"{name}: {e}"
                raise LogUploadError(f"cannot read {detail}") from e
            if in_window(span, start, end):
                chosen.append((name, fd, size))
            else:
                os.close(fd)
        try:
            await storage.create_container(container)
        except Exception as e:
            raise LogUploadError(f"cannot create container {container!r}: {_details(e)}") from e
        for name, fd, size in chosen:
            blob = f"{virtual_directory}/{name}"
            try:
                await storage.upload_blob(container, blob, cast(BinaryIO, _Snapshot(fd, size)))
            except Exception as e:
                raise LogUploadError(f"uploading {name} to {container}/{blob} failed: {_details(e)}") from e
        return len(chosen)
    finally:
        for _, fd, _ in chosen:
            os.close(fd)


def _details(e: Exception) -> str:
    details = getattr(e, "details", None)
    return str(details() if callable(details) else e)
