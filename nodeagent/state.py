"""The agent's small persistent state under `<root>/volatile`: running process groups and the node id."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def attempt_key(job_id: str, task_id: str, attempt: int) -> str:
    """The key of one attempt in running.json."""
    return f"{job_id}/{task_id}/{attempt}"


class RunningFile:
    """`volatile/running.json`: attempt key → process group id of every live task process.

    The file is JSON Lines, a journal: `{"k": key, "g": pgid}` records a started group and
    `{"k": key}` its end; the live set is the replay. Each change is one appended line (no rename
    per task start or end); the journal is rewritten with only the live groups when it grows.
    """

    def __init__(self, path: Path, *, compact_after: int = 1000) -> None:
        self.path = path
        self._groups: dict[str, int] = {}
        self._fd: int | None = None
        self._lines = 0
        self._compact_after = compact_after

    def add(self, key: str, pgid: int) -> None:
        """Record a started process group."""
        self._groups[key] = pgid
        self._append({"k": key, "g": pgid})

    def remove(self, key: str) -> None:
        """Forget a process group that ended."""
        if self._groups.pop(key, None) is not None:
            self._append({"k": key})

    def flush(self) -> None:
        """Rewrite the journal with only the live groups."""
        self._compact()

    def close(self) -> None:
        """Close the journal's file descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, record: dict[str, object]) -> None:
        if self._fd is None or self._lines >= max(self._compact_after, 4 * len(self._groups)):
            self._compact()
            if record.get("g") is not None:
                return  # the rewrite already holds it
        if self._fd is None:
            return
        try:
            os.write(self._fd, (json.dumps(record) + "\n").encode())
            self._lines += 1
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)

    def _compact(self) -> None:
        self.close()
        text = "".join(json.dumps({"k": k, "g": g}) + "\n" for k, g in sorted(self._groups.items()))
        try:
            _write_atomic(self.path, text)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._lines = len(self._groups)
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)

    def load(self) -> dict[str, int]:
        """What a previous agent process left behind (replaying the journal)."""
        try:
            text = self.path.read_text()
        except OSError:
            return {}
        groups: dict[str, int] = {}
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if not isinstance(rec, dict):
                continue
            if "k" not in rec:  # an older snapshot: {key: pgid, ...}
                groups.update({str(k): v for k, v in rec.items() if isinstance(v, int)})
            elif isinstance(rec.get("g"), int):
                groups[str(rec["k"])] = rec["g"]
            else:
                groups.pop(str(rec["k"]), None)
        return {k: v for k, v in groups.items() if v > 1}

    def kill_orphans(self, node_root: Path) -> list[str]:
        """Kill the process groups a previous agent process left and clear the file.

        Only processes whose environment names this node root are killed, so a reused pid of an
        unrelated process group is left alone. Returns the keys of the attempts that were listed.
        """
        left = self.load()
        if left:
            groups = set(left.values())
            root = str(node_root)
            for proc in psutil.process_iter(["pid"]):
                try:
                    if os.getpgid(proc.pid) not in groups:
                        continue
                    if proc.environ().get("SHOAL_NODE_ROOT_DIR") != root:
                        continue
                    os.kill(proc.pid, signal.SIGKILL)
                    log.info("killed orphan process %d of a previous agent", proc.pid)
                except (OSError, psutil.Error):
                    continue
        self._groups = {}
        self.flush()
        return sorted(left)


def read_node_id(path: Path) -> str:
    """The node id kept by an earlier agent process, or ''."""
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return ""


def write_node_id(path: Path, node_id: str) -> None:
    """Keep the node id for later agent processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, node_id + "\n")
