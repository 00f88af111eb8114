"""Helpers for tests of tasks that run as users of their own: directories those users can reach, and
removing the users a test run's agents made."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shoal.nodeagent.passwd import COMMENT


def can_make_users() -> bool:
    """Root with useradd: agents run tasks as users of their own."""
    return os.geteuid() == 0 and shutil.which("useradd") is not None


#: The reason tests of task users give when they skip.
SKIP_REASON = "tasks run as users of their own only under a root agent with useradd (this run is not root)"


@contextlib.contextmanager
def open_dir() -> Iterator[Path]:
    """A new directory in the system's temporary directory that every user can reach (mode 0755): pytest's
    own (`tmp_path`) is closed to other users (mode 0700), so an agent rooted there runs tasks as itself."""
    path = Path(tempfile.mkdtemp(prefix="shoal-users-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_test_users(prefix: str) -> list[str]:
    """`userdel` every user named `<prefix>-...` with Shoal's comment (and its group); the names removed."""
    if not can_make_users() or shutil.which("userdel") is None:
        return []
    removed = []
    for pw in pwd.getpwall():
        if pw.pw_name.startswith(prefix + "-") and pw.pw_gecos == COMMENT:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["userdel", pw.pw_name], capture_output=True, check=False, timeout=30)
                removed.append(pw.pw_name)
    return removed
