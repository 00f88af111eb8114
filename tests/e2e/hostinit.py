"""The first process of one pretend host (see `tests.e2e.nshosts`): run as PID 1 of the host's PID namespace.

It makes the host's view of the filesystem in its own mount namespace, then only reaps children until it
is told to stop; when it exits, the kernel kills every process left in the host's PID namespace.

- ``--disk DIR`` is mounted (bound) at ``--root DIR`` (on a tmpfs over its parent, e.g. ``/srv``, so that
  nothing is made outside the namespace): the same absolute path on every host, each host seeing its
  own directory there, as each real machine has its own ``/var/lib/...``. Its parents are open to every
  user, as on a real machine (a root agent then runs tasks as users of their own).
- ``--hide DIR`` (the directory holding every host's disk) is covered by an empty tmpfs afterwards, so
  that no host sees another's files.
- ``/etc`` becomes an overlay whose upper layer is the host's own (``--etc DIR``): users a root agent
  makes exist on that host only, and ``/etc/hosts`` names the hosts of the test network.
- The hostname is ``--name``; ``/dev/shm`` is a tmpfs of the host's own (and the host has an IPC namespace
  of its own, made by whoever starts this); ``/proc/sys/kernel/random/boot_id`` is the host's own. MPI
  libraries (UCX) take a peer with the same boot id for one on the same machine and try shared memory.

- ``--reachable PATH`` (the Python that runs Shoal): where a directory above it is closed to other users
  (``/root``, for a Python installed under root's home), that directory is covered by a tmpfs open to
  all that holds only the way to PATH, as if Shoal were installed where every user can run it (a root
  agent runs tasks as other users, and they run the agent's Python: `shoal-mpi-launch`, the SDK).

Prints ``ready`` on stdout once all that is done.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def setup(name: str, disk: Path, root: Path, hide: Path, etc: Path, hosts_file: str) -> None:
    """Make this mount and UTS namespace look like host `name`'s."""
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "hostroot", str(root.parent))
    root.mkdir(mode=0o755)
    _mount("--bind", str(disk), str(root))
    upper, work = etc / "upper", etc / "work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    (upper / "hosts").write_text(hosts_file)
    (upper / "hostname").write_text(name + "\n")
    _mount("-t", "overlay", "overlay", "-o", f"lowerdir=/etc,upperdir={upper},workdir={work}", "/etc")
    boot_id = etc / "boot_id"
    boot_id.write_text(f"{uuid.uuid4()}\n")
    _mount("--bind", "-o", "ro", str(boot_id), "/proc/sys/kernel/random/boot_id")
    _mount("-t", "tmpfs", "-o", "mode=1777", "shm", "/dev/shm")
    # Last: the other hosts' disks (and this one's by its own path) go out of sight.
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "hidden", str(hide))
    socket.sethostname(name)


def open_way_to(path: Path) -> None:
    """Make `path` reachable by every user on this host (see the module's docstring)."""
    closed = next((p for p in reversed(path.parents) if not os.stat(p).st_mode & stat.S_IXOTH), None)
    if closed is None:
        return
    keep = closed / path.relative_to(closed).parts[0]
    fd = os.open(keep, os.O_PATH)
    try:
        _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "open", str(closed))
        keep.mkdir(mode=0o755)
        # Not canonicalized: the name of the fd is the covered path, its inode the one to keep.
        subprocess.run(
            ["mount", "--no-canonicalize", "--bind", f"/proc/self/fd/{fd}", str(keep)], check=True, pass_fds=(fd,)
        )
    finally:
        os.close(fd)


def reap_forever() -> None:
    """Reap every child (orphans are re-parented to PID 1) until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--disk", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--hide", type=Path, required=True)
    ap.add_argument("--etc", type=Path, required=True)
    ap.add_argument("--hosts-file", required=True, help="the contents of /etc/hosts")
    ap.add_argument("--reachable", type=Path, default=None)
    a = ap.parse_args()
    setup(a.name, a.disk, a.root, a.hide, a.etc, a.hosts_file)
    if a.reachable is not None:
        open_way_to(a.reachable.resolve())
    print("ready", flush=True)
    reap_forever()


if __name__ == "__main__":
    main()
