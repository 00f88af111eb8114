"""The agent's small persistent state under `<root>/volatile`: running process groups and the node id."""

from __future__ import annotations

import asyncio
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

    Changes made while an event loop runs are written together a few milliseconds later (one
    write for a burst of starts instead of one per task); `flush` writes at once.
    """

    def __init__(self, path: Path, *, coalesce_seconds: float = 0.005) -> None:
        self.path = path
        self._groups: dict[str, int] = {}
        self._coalesce = coalesce_seconds
        self._pending: asyncio.TimerHandle | None = None

    def add(self, key: str, pgid: int) -> None:
        """Record a started process group."""
        self._groups[key] = pgid
        self._changed()

    def remove(self, key: str) -> None:
        """Forget a process group that ended."""
        if self._groups.pop(key, None) is not None:
            self._changed()

    def _changed(self) -> None:
        if self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._save()
            return
        self._pending = loop.call_later(self._coalesce, self.flush)

    def flush(self) -> None:
        """Write the file now."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._save()

    def _save(self) -> None:
        try:
            _write_atomic(self.path, json.dumps(self._groups, sort_keys=True))
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)

    def load(self) -> dict[str, int]:
        """What a previous agent process left behind."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int) and v > 1}

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
