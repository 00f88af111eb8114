"""Several pretend hosts on one machine, for multi-host tests (root only; see /work/shared/reference/TEST_HOSTS.md).

Host ``i`` is a network namespace with one veth, ``eth0``, into a bridge that lives in a namespace of its
own, and the address ``<subnet>.i`` (a 127.x address: nothing leaves the machine, and the route_localnet
sysctl lets 127/8 travel over a non-loopback interface). Its first process (`tests/e2e/hostinit.py`) is
PID 1 of a PID namespace and holds the host's mount, UTS and IPC namespaces: its own disk at the same
absolute path as every other host's (`Hosts.root`), the other hosts' disks hidden, its own ``/etc``
(users, ``/etc/hosts``), hostname, ``/dev/shm`` and boot id. `Hosts.popen` runs a process on a host by
entering all of those.

Killing a host's first process kills everything that runs on the host, so `Hosts.close` leaves nothing
behind: no process, no namespace, no user on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

INIT = Path(__file__).with_name("hostinit.py")
#: Namespaces of this module are named `<PREFIX><pid of the test process>-...` (two runs never collide).
PREFIX = "shoalmh"


def unavailable() -> str | None:
    """Why pretend hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to make network, mount and PID namespaces"
    for tool in ("ip", "nsenter", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20, check=False)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    # Root without the capabilities (a container) cannot make them either.
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "true"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make namespaces here: {probe.stderr.strip()}"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay filesystem (each host's own /etc)"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def remove_stale_namespaces() -> None:
    """Delete namespaces of this module left by a test process that no longer exists (a killed run)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        owner = name[len(PREFIX) :].split("-", 1)[0]
        if name.startswith(PREFIX) and owner.isdigit() and not psutil.pid_exists(int(owner)):
            with contextlib.suppress(OSError):
                _ip("netns", "del", name)


class Hosts:
    """`count` pretend hosts, numbered from 1, with disks under `base`."""

    def __init__(self, base: Path, count: int, *, subnet: str = "127.0.6", root: Path = Path("/srv/shoal")) -> None:
        self.base = base
        self.count = count
        self.subnet = subnet
        self.tag = f"{PREFIX}{os.getpid()}"
        #: The path at which every host sees its own disk (only inside the hosts; its parent is a tmpfs there).
        self.root = root
        self._inits: dict[int, subprocess.Popen[bytes]] = {}
        self._init_pids: dict[int, int] = {}
        self._namespaces: list[str] = []
        self._started: list[subprocess.Popen[bytes]] = []

    # -- names ---------------------------------------------------------------------------

    def address(self, i: int) -> str:
        """Host `i`'s address."""
        return f"{self.subnet}.{i}"

    def hostname(self, i: int) -> str:
        return f"host{i}"

    def disk(self, i: int) -> Path:
        """Host `i`'s disk, as this (the test's) process sees it; host `i` sees it at `root`."""
        return self.base / "hosts" / f"h{i}" / "disk"

    def on_disk(self, i: int, path: Path) -> Path:
        """Where this process finds `path` (a path under `root`, as host `i` sees it)."""
        return self.disk(i) / path.relative_to(self.root)

    def _netns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    # -- making and removing -------------------------------------------------------------

    def start(self) -> Hosts:
        """Make the network and start every host's first process."""
        remove_stale_namespaces()
        switch = self._netns("sw")
        _ip("netns", "add", switch)
        self._namespaces.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        net = f"{self.subnet}.0/24"
        for i in range(1, self.count + 1):
            ns = self._netns(f"h{i}")
            _ip("netns", "add", ns)
            self._namespaces.append(ns)
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", switch)
            _ip("-n", switch, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", switch, "link", "set", f"p{i}", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # 127/8 on a non-loopback interface is dropped as "martian" without route_localnet.
            _ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
            _ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/32", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", net, "dev", "eth0", "src", self.address(i))
        etc_hosts = "127.0.0.1 localhost\n" + "".join(
            f"{self.address(i)} {self.hostname(i)}\n" for i in range(1, self.count + 1)
        )
        for i in range(1, self.count + 1):
            self._start_init(i, etc_hosts)
        return self

    def _start_init(self, i: int, etc_hosts: str) -> None:
        disk = self.disk(i)
        disk.mkdir(parents=True, exist_ok=True)
        disk.chmod(0o755)
        argv = [
            "nsenter",
            f"--net=/run/netns/{self._netns(f'h{i}')}",
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
            sys.executable,
            str(INIT),
            "--name",
            self.hostname(i),
            "--disk",
            str(disk),
            "--root",
            str(self.root),
            "--hide",
            str(self.base / "hosts"),
            "--etc",
            str(disk.parent / "etc"),
            "--hosts-file",
            etc_hosts,
            "--reachable",
            sys.executable,
        ]
        init = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=None, start_new_session=True)
        self._inits[i] = init
        assert init.stdout is not None
        line = init.stdout.readline()
        if line.strip() != b"ready":
            raise OSError(f"host {i} did not start (exit {init.poll()})")
        # `nsenter` exec'd `unshare`, whose only child is the host's PID 1.
        (child,) = psutil.Process(init.pid).children()
        self._init_pids[i] = child.pid

    def close(self) -> None:
        """Kill every host (and so everything that ran on it), then remove the namespaces."""
        for init in self._inits.values():
            # `--kill-child`: unshare's death SIGKILLs the host's PID 1, which takes its namespace with it.
            with contextlib.suppress(ProcessLookupError):
                init.kill()
        for init in self._inits.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                init.wait(timeout=20)
            if init.stdout is not None:
                init.stdout.close()
        for p in self._started:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        for ns in reversed(self._namespaces):
            with contextlib.suppress(OSError):
                _ip("netns", "del", ns)
        self._namespaces.clear()

    def __enter__(self) -> Hosts:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running processes on a host -----------------------------------------------------

    def _enter(self, i: int) -> list[str]:
        pid = str(self._init_pids[i])
        return ["nsenter", "-t", pid, "--net", "--mount", "--uts", "--ipc", "--pid", "--wd=/", "--"]

    def popen(
        self,
        i: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: IO[bytes] | int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on host `i` (stopped by `close` at the latest)."""
        p = subprocess.Popen(
            [*self._enter(i), *argv],
            env=dict(env) if env is not None else None,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,
        )
        self._started.append(p)
        return p

    def run(
        self, i: int, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on host `i` to its end: its exit code, stdout and stderr."""
        return subprocess.run(
            [*self._enter(i), *argv],
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 15) -> int | None:
        """SIGTERM a process `popen` started (the one on the host, not `nsenter`); its exit code."""
        if p.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(p.pid).children():
                    child.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
        return p.poll()
