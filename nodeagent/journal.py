"""An append-only file of JSON lines whose replay is the live state, rewritten when mostly dead.

The agent keeps small, often-changing state this way (running process groups,
retention deadlines): each change is one `write` to an open descriptor, where
rewriting a file per change (or creating a file per task) would cost a file
creation each time, which on some filesystems costs as much as the task.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (written to a temporary file first, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Journal:
    """The file side of a journal; its owner keeps the live entries and says what they are."""

    def __init__(self, path: Path, *, compact_after: int) -> None:
        self.path = path
        self._fd: int | None = None
        self._lines = 0
        self._compact_after = compact_after

    def read(self) -> list[object]:
        """Every record in the file, in order (a torn last line is skipped)."""
        try:
            text = self.path.read_text()
        except OSError:
            return []
        records: list[object] = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        self._lines = len(records)
        return records

    def append(self, record: object, live: Callable[[], Iterable[object]], live_count: int) -> None:
        """Append `record`; or, when the file has grown past `compact_after` and twice the live
        entries (or is not open yet), rewrite it with just `live()`, which includes `record`'s effect."""
        if self._fd is None or self._lines > max(self._compact_after, 2 * live_count):
            self.rewrite(live())
            return
        try:
            os.write(self._fd, (json.dumps(record) + "\n").encode())
            self._lines += 1
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)

    def rewrite(self, live: Iterable[object]) -> None:
        """Replace the file with only these records and keep it open for appending."""
        self.close()
        records = list(live)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in records))
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._lines = len(records)
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)

    def close(self) -> None:
        """Close the file descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
