"""Deleting node and task files for the control plane (NodeService.DeleteFile), never through a link.

Every path is below the node root and opened one directory at a time without following a symbolic
link (`shoal.nodeagent.safeopen`): the parent of what is deleted is opened as a descriptor, and the
last component is removed relative to it. A link is removed as a link (its target is untouched), and a
directory tree is removed through descriptors too (`shutil.rmtree` with `dir_fd`), which never enters
a link met inside it.

Some paths may not be deleted at all (`protected`): the node root, a task's own directory (as Batch,
the files inside it may go at any time, the directory goes with the task's retention or
DeleteTaskFiles), the directories above task directories and the node's fixed directories, and the
agent's own state.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from shoal.nodeagent import safeopen
from shoal.paths import check_relative_path

__all__ = ["FileIsDirectory", "FileProtected", "delete_file", "protected"]

#: The node's fixed directories (`shoal.nodeagent.layout`): their contents may be deleted, not they.
FIXED_DIRS = frozenset({"shared", "startup", "workitems", "applications", "home"})
#: The agent's own state (its identity, journals, certificates, launcher): nothing in it may be deleted.
AGENT_DIRS = frozenset({"volatile", "certs", "bin"})
#: `workitems/<job>/job-1/<task>`: the depth of a task's directory below the node root.
TASK_DIR_DEPTH = 4


class FileProtected(Exception):
    """The path may not be deleted (the message says what it is)."""


class FileIsDirectory(Exception):
    """A directory, and the call did not ask for a recursive delete."""


def protected(scope_rel: str, rel: str, is_dir: bool) -> str | None:
    """What `rel` is when it may not be deleted, else None.

    `scope_rel` is the task's directory ('' for the node root) and `rel` the checked path below it
    ('' for the scope itself); `is_dir`: whether it is a real directory (not a link to one).
    """
    if not rel:
        return "the task's own directory" if scope_rel else "the node's root directory"
    if scope_rel:
        return None  # anything inside a task's directory, at any time
    parts = rel.split("/")
    if parts[0] in AGENT_DIRS:
        return "the agent's own state"
    if len(parts) == 1 and parts[0] in FIXED_DIRS:
        return "one of the node's fixed directories"
    if parts[0] == "workitems" and (len(parts) < TASK_DIR_DEPTH or (len(parts) == TASK_DIR_DEPTH and is_dir)):
        return "a job's or a task's directory (delete the files inside it)"
    return None


def delete_file(root: Path, scope_rel: str, path: str, recursive: bool) -> None:
    """Delete `path` below `scope_rel` below `root`: a file or link, or with `recursive` a directory tree.

    Raises UnsafePathError for a path that climbs, FileProtected (see `protected`), FileIsDirectory
    for a directory without `recursive`, and OSError (ELOOP for a link on the way to it, ENOENT).
    """
    rel = check_relative_path(path, allow_empty=True)
    if not rel:
        raise FileProtected(f"{path or '.'} is {protected(scope_rel, rel, True)}; it may not be deleted")
    full = "/".join(p for p in (scope_rel, rel) if p)
    parent, name = safeopen.split_parent(full)
    fd = safeopen.open_dir(root, parent)
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        is_dir = stat.S_ISDIR(st.st_mode)
        what = protected(scope_rel, rel, is_dir)
        if what is not None:
            raise FileProtected(f"{path or '.'} is {what}; it may not be deleted")
        if not is_dir:
            os.unlink(name, dir_fd=fd)  # a link goes as a link
            return
        if not recursive:
            raise FileIsDirectory(f"{path} is a directory: delete it with recursive")
        # Through descriptors (fd-based rmtree: Linux has os.open dir_fd and scandir on a descriptor):
        # a directory swapped for a link since the stat is refused, and no link inside is entered.
        shutil.rmtree(name, dir_fd=fd)
    finally:
        os.close(fd)
