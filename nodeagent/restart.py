"""Restarting a node's agent for RebootNode and ReimageNode (the server's `Restart`).

The agent kills every task and stops as at a shutdown; then, still holding its root's lock, it clears
`volatile/` (a reboot) or wipes the whole root (a reimage), keeping only what makes the node itself:
its id, its certificate and key, the lock, its logs. It writes the restart's id to `volatile/restarted`
and starts again as a new process (`os.execv` of the same command line: the same pid, so a provider
that watches it sees it still alive). The new process reports the id in its Register and the server
ends the restart (`shoal.server.lifecycle.restarts`).

A reboot keeps task directories and their retention deadlines (a real reboot keeps the disk), and the
job preparations the server names (`keep_preparations`: `rerun_on_node_reboot_after_success` false);
the others run again. A reimage keeps nothing of the node's work.

Everything is removed without following a symbolic link: a task may leave links to anywhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.jobtasks import JobTaskRecords
from shoal.nodeagent.layout import NodeLayout
from shoal.paths import remove_tree

#: `volatile/restarted`: the id of the restart the next process was started by.
MARKER = "restarted"
#: What a reboot keeps in `volatile/`: the lock (held), the node's id and identity, task directories'
#: deadlines (the directories stay), the job task journal (filtered), the marker.
REBOOT_KEEPS = frozenset({"agent.lock", "node-id", "tls", "retention.jsonl", "jobtasks.jsonl", MARKER})
#: What a reimage keeps in `volatile/`.
REIMAGE_KEEPS = frozenset({"agent.lock", "node-id", "tls", MARKER})
#: What a reimage keeps at the root besides `volatile/`: the agent's logs (a troubleshooter needs them;
#: UploadNodeLogs sends them).
ROOT_KEEPS_PREFIXES = ("agent.log", "agent.out")


def _clear(directory: Path, keep: Collection[str], keep_prefixes: tuple[str, ...] = ()) -> None:
    """Remove every entry of `directory` but those named in `keep` or starting with `keep_prefixes`."""
    if directory.is_symlink() or not directory.is_dir():
        remove_tree(directory)
        return
    for entry in directory.iterdir():
        if entry.name in keep or (keep_prefixes and entry.name.startswith(keep_prefixes)):
            continue
        remove_tree(entry)


def _inside(path: Path, root: Path) -> tuple[str, ...]:
    """The parts of `path` below `root` (both resolved), or () when it is not below it."""
    try:
        return path.relative_to(root).parts
    except ValueError:
        return ()


def prepare(layout: NodeLayout, restart: agent_pb2.Restart, *, tls_dir: Path | None = None) -> None:
    """Do to the node root what `restart` asks, then mark it done. Call it with the root's lock held,
    every task killed and the journals closed. `tls_dir`: the identity's directory when it is not the
    default `volatile/tls` (outside the root, it is never touched; inside it, it is kept)."""
    # The root as the operator named it may be a link: what is cleared is the directory it leads to.
    layout = NodeLayout(layout.root.resolve(), layout.server_address)
    keep_root, keep_volatile = {"volatile"}, set(REIMAGE_KEEPS if restart.reimage else REBOOT_KEEPS)
    if tls_dir is not None:
        inside = _inside(tls_dir.resolve(), layout.root)
        if inside:
            keep_root.add(inside[0])
            if inside[0] == "volatile" and len(inside) > 1:
                keep_volatile.add(inside[1])
    if restart.reimage:
        _clear(layout.root, keep_root, ROOT_KEEPS_PREFIXES)
        _clear(layout.volatile, keep_volatile)
    else:
        _clear(layout.volatile, keep_volatile)
        records = JobTaskRecords(layout.job_tasks_file)
        try:
            records.forget_preparations(set(restart.keep_preparations))
        finally:
            records.close()
    layout.create()
    (layout.volatile / MARKER).write_text(restart.restart_id)


def done_restart(layout: NodeLayout) -> str:
    """The id of the restart this process was started by (empty: none)."""
    try:
        return (layout.volatile / MARKER).read_text().strip()
    except OSError:
        return ""


def forget_restart(layout: NodeLayout) -> None:
    """The server has heard of the restart (a Welcome came): the next start is not one."""
    with contextlib.suppress(OSError):
        (layout.volatile / MARKER).unlink()


def exec_again(argv: list[str]) -> None:
    """Replace this process with a new agent of the same command line (`python -m shoal.nodeagent ARGV`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "shoal.nodeagent", *argv])
