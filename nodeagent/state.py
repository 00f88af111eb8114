"""The agent's small persistent state under `<root>/volatile`: running process groups and the node id."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import psutil

from shoal.nodeagent.journal import Journal, write_atomic
from shoal.nodeagent.layout import NODE_ROOT_ENV

log = logging.getLogger(__name__)


def attempt_key(job_id: str, task_id: str, attempt: int) -> str:
    """The key of one attempt in running.json."""
    return f"{job_id}/{task_id}/{attempt}"


class RunningFile:
    """`volatile/running.json`: attempt key → process group id of every live task process.

    The file is a JSON Lines journal (see `shoal.nodeagent.journal`): `{"k": key, "g": pgid}`
    records a started group and `{"k": key}` its end; the live set is the replay.
    """

    def __init__(self, path: Path, *, compact_after: int = 1000) -> None:
        self.path = path
        self._groups: dict[str, int] = {}
        self._journal = Journal(path, compact_after=compact_after)

    def _live(self) -> list[object]:
        return [{"k": k, "g": g} for k, g in sorted(self._groups.items())]

    def add(self, key: str, pgid: int) -> None:
        """Record a started process group."""
        self._groups[key] = pgid
        self._journal.append({"k": key, "g": pgid}, self._live, len(self._groups))

    def remove(self, key: str) -> None:
        """Forget a process group that ended."""
        if self._groups.pop(key, None) is not None:
            self._journal.append({"k": key}, self._live, len(self._groups))

    def flush(self) -> None:
        """Rewrite the journal with only the live groups."""
        self._journal.rewrite(self._live())

    def close(self) -> None:
        """Close the journal's file descriptor."""
        self._journal.close()

    def load(self) -> dict[str, int]:
        """What a previous agent process left behind (replaying the journal)."""
        groups: dict[str, int] = {}
        for rec in self._journal.read():
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
                    if proc.environ().get(NODE_ROOT_ENV) != root:
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
    write_atomic(path, node_id + "\n")
