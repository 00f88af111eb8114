"""Starting a command as another user without slowing the agent down.

`subprocess.Popen(user=..., group=...)` cannot use vfork (glibc's set*id calls in a vfork child would
change the parent's threads), so it forks: it copies the agent's page tables and blocks the agent's event
loop meanwhile, 1.5 to 4 ms per task at the agent's size against about 0.5 ms for a vfork. So the agent
vforks a tiny program that drops to the user and then runs the command in the same process (no extra
process, one extra exec):

1. `launch-as`, a 20-line C program (below) compiled once per machine into the cache directory
   (`cbuild`: `/var/cache/shoal` or `$SHOAL_CACHE_DIR`, root's only) where a C compiler is found; its exec costs
   about 0.2 ms;
2. else `setpriv` (util-linux), about 1 ms (it loads shared libraries);
3. else `Popen(user=...)`.

The command's path is looked up by the agent beforehand (as Popen would: in the task's PATH, or relative
to its working directory), so that a missing program is still `CommandProgramNotFound`; one the user may
not run makes the helper exit 126 (127 if it vanished) with a line on stderr, as a shell does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from shoal.nodeagent.cbuild import build_program

log = logging.getLogger(__name__)

HELPER_SOURCE: Final = r"""
/* launch-as UID GID PATH ARGV0 [ARG...]: become UID:GID with no supplementary group, then exec PATH. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char *end;
    unsigned long uid, gid;
    int e;
    if (argc < 5) { fputs("usage: launch-as UID GID PATH ARGV0 [ARG...]\n", stderr); return 126; }
    uid = strtoul(argv[1], &end, 10);
    if (*end || !*argv[1]) return 126;
    gid = strtoul(argv[2], &end, 10);
    if (*end || !*argv[2]) return 126;
    if (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0) {
        fprintf(stderr, "shoal: cannot become user %lu: %s\n", uid, strerror(errno));
        return 126;
    }
    if (uid != 0 && setuid(0) == 0) { fputs("shoal: root privileges were not dropped\n", stderr); return 126; }
    execv(argv[3], argv + 4);
    e = errno;
    fprintf(stderr, "shoal: cannot run %s: %s\n", argv[3], strerror(e));
    return e == ENOENT ? 127 : 126;
}
"""
#: The user the built helper is tried with before it is used.
NOBODY: Final = 65534


def _works(helper: Path) -> bool:
    done = subprocess.run(
        [str(helper), str(NOBODY), str(NOBODY), "/bin/sh", "sh", "-c", "test $(id -u) = 65534"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 0


def build_helper(directory: Path | None = None) -> Path | None:
    """The compiled helper, built if missing (`cbuild`); None where it cannot be (no compiler, not root,
    unsafe dir)."""
    if os.geteuid() != 0:
        return None
    return build_program("launch-as", HELPER_SOURCE, works=_works, directory=directory)


class Launcher:
    """How commands are started as another user (see the module's docstring)."""

    def __init__(self) -> None:
        self.helper: str | None = None
        self.setpriv: str | None = shutil.which("setpriv")

    def prepare(self, directory: Path | None = None) -> None:
        """Find or build the helper (blocking: run it in a thread, once, at the agent's start)."""
        built = build_helper(directory)
        self.helper = str(built) if built is not None else None
        log.info("tasks start as their users through %s", self.helper or self.setpriv or "Popen(user=...)")

    def wrap(self, uid: int, gid: int, path: str, argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
        """The argv to spawn (with vfork) and Popen's extra arguments, to run `path` with `argv` as uid:gid."""
        if self.helper is not None:
            return [self.helper, str(uid), str(gid), path, *argv], {}
        if self.setpriv is not None:
            return [self.setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", path, *argv[1:]], {}
        return [path, *argv[1:]], {"user": uid, "group": gid, "extra_groups": []}


#: The agent's one launcher.
LAUNCHER = Launcher()


def find_program(name: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """The file `name` runs, as Popen would find it: relative to `cwd` with a '/', else in env's PATH."""
    if "/" in name:
        path = name if name.startswith("/") else str(cwd / name)
        return path if os.path.isfile(path) else None
    for d in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        if not os.path.isabs(candidate):
            candidate = str(cwd / candidate)
        with contextlib.suppress(OSError):
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None
