"""Giving a directory the agent made to a task's user, without ever following a link.

The agent (root) makes each directory first and gives it away last, children before their parent: while
the parent is still root's, no task can swap a child for a link, and the child is opened with O_NOFOLLOW
and changed through its descriptor all the same (a `chown` by path would follow a link to, say,
/etc/shadow and hand it to the task's user).
"""

from __future__ import annotations

import os
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def give(path: Path, owner: tuple[int, int], mode: int) -> None:
    """Make directory `path` `owner`'s (uid, gid), with `mode`. OSError (ELOOP, ENOTDIR) for a link."""
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def give_tree(top: Path, children: list[Path], owner: tuple[int, int], mode: int) -> None:
    """`children` (directories in `top`), then `top`, to `owner` with `mode`."""
    for child in children:
        give(child, owner, mode)
    give(top, owner, mode)


ROOT = (0, 0)
