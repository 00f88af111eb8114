"""The lock of a node root, `volatile/agent.lock`: whoever holds it is using the root.

An agent takes it before anything else and shares it with its watchdog, which keeps it until it
has killed every process the agent left (see `shoal.nodeagent.watchdog`). So once the lock is
free, no agent and none of its tasks are left on the root: a restarted agent waits for it, and
so does the local provider before it deletes the root of a node that left (tasks still being
killed could make files again while it deletes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from pathlib import Path

#: The lock file, relative to the node root.
LOCK_FILE = ("volatile", "agent.lock")
POLL_SECONDS = 0.05


def try_lock(fd: int) -> bool:
    """Take the lock on descriptor `fd` if it is free (an exclusive flock); whether it was taken."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def wait_for_lock(fd: int, timeout: float) -> bool:
    """Take the lock on `fd`, waiting up to `timeout` seconds (blocking: call it in a thread from
    asyncio code); whether it was taken."""
    deadline = time.monotonic() + timeout
    while not try_lock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def open_existing_lock(root: Path) -> int | None:
    """A descriptor of the lock file of node root `root`, or None when there is none (no agent ever
    ran there) or a link or anything but a regular file stands in its place or on the way to it.

    Nothing is created and no link is followed (a task may have put links anywhere in the root);
    opened without blocking, so that a FIFO cannot hang the caller.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for name in LOCK_FILE[:-1]:
            nxt = os.open(name, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        lock = os.open(LOCK_FILE[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        if stat.S_ISREG(os.fstat(lock).st_mode):
            return lock
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.close(lock)
    return None
