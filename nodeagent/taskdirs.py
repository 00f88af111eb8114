"""A task's directory on its node: made fresh, or reset for another attempt, owned by the task's user.

Everything inside is reached through descriptors without following links: tasks (and, with task users,
other processes of the same user) may have left links there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

from shoal.nodeagent import ownership
from shoal.nodeagent.layout import working_dir

#: The files every task directory has from the start, which the task's output goes to.
OUTPUT_FILES = ("stdout.txt", "stderr.txt")


def reset_task_dir(task_dir: Path, owner: tuple[int, int] | None = None) -> None:
    """A fresh wd/ and empty stdout/stderr, keeping the rest (a multi-instance shared directory).

    Everything inside is reached through the directory's descriptor, no link followed: instances on one
    machine share the directory (and, with task users, their pool's user, whose processes may be in it).
    """
    os.makedirs(task_dir, exist_ok=True)
    dir_fd = os.open(task_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            st = os.lstat("wd", dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree("wd", dir_fd=dir_fd)
            else:
                os.unlink("wd", dir_fd=dir_fd)
        os.mkdir("wd", 0o700 if owner is not None else 0o777, dir_fd=dir_fd)
        for name in OUTPUT_FILES:
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o660, dir_fd=dir_fd)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                # An instance sharing the directory left a link there: replace the link, not its target.
                os.unlink(name, dir_fd=dir_fd)
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o660, dir_fd=dir_fd)
            if owner is not None:
                os.fchown(fd, *owner)
            os.close(fd)
        if owner is not None:
            wd_fd = os.open("wd", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                os.fchown(wd_fd, *owner)
            finally:
                os.close(wd_fd)
            os.fchown(dir_fd, *owner)
            os.fchmod(dir_fd, 0o700)
    finally:
        os.close(dir_fd)


def touch_outputs(task_dir: Path) -> None:
    """Make stdout.txt and stderr.txt if missing (never truncating one)."""
    for name in OUTPUT_FILES:
        with contextlib.suppress(OSError):
            os.close(os.open(task_dir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o660))


def make_task_dir(task_dir: Path, wd: Path, owner: tuple[int, int] | None = None) -> bool:
    """Make a new task directory and its wd/; False (and nothing changed) when one is already there.

    The usual case is two mkdir calls, cheaper on the event loop than a round trip through a thread (two
    chown calls more for a task of another user: both directories are then its alone, mode 0700).
    stdout.txt and stderr.txt are made when the command starts (`process.spawn`), as in Batch.
    """
    mode = 0o777 if owner is None else 0o700
    try:
        os.mkdir(task_dir, mode)
    except FileExistsError:
        return False
    except FileNotFoundError:
        os.makedirs(task_dir.parent, exist_ok=True)  # the job's first task on this node
        os.mkdir(task_dir, mode)
    os.mkdir(wd, mode)
    if owner is not None:
        ownership.give_tree(task_dir, [wd], owner, mode)
    return True


def fresh_task_dir(task_dir: Path, owner: tuple[int, int] | None = None) -> None:
    """Replace a task directory left by an earlier attempt with a new, empty one."""
    if task_dir.exists():
        shutil.rmtree(task_dir)
    os.makedirs(task_dir.parent, exist_ok=True)
    make_task_dir(task_dir, working_dir(task_dir), owner)
