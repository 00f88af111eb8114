"""Node users (AddNodeUser): the login accounts the server lists for this node, made real, and the SSH probe.

The server keeps each node's users and sends the whole list (in Welcome, and as `ServerMessage.node_users`
after each change); the agent makes exactly those exist, as a reconcile step that can run again at any
time:

- a listed user missing from the machine is made with `useradd` (a home under /home, a login shell), and
  every listed user gets its password hash (`chpasswd -e`: the plaintext never reaches the node; no
  password is `*`, which no password matches but which does not lock the account against SSH keys), its
  SSH key as the whole of `~/.ssh/authorized_keys` (0600, in a 0700 `.ssh`, owned by the user, written
  through directory descriptors that never follow a symlink the user may have put there), its expiry on
  the account (`usermod -e`, to the day: the account stops working at the start of the day after the
  expiry time) and, when the agent's clock passes the expiry time, its removal by the agent itself;
- an admin is a member of the machine's `sudo` group (or `wheel`): what that allows is the machine's
  sudoers' business (Debian's lets the group run anything as root, once `sudo` is installed). Where the
  machine has neither group, an admin is an ordinary user and the log says so;
- a user this node made that is no longer listed (deleted, expired) is removed with `userdel --remove`
  after its processes are killed; and every one of them when the server tells the agent to stop
  (Shutdown: the node left its pool, or a local server stops its nodes; a node that starts again is
  welcomed with its list and makes them again).

Only users this node made are ever changed or removed: each carries a comment (GECOS) naming the node
root it was made for (`comment`), so an existing user of the same name that is not this node's (the
machine's own, the task users of `shoal.nodeagent.users`, or another local node's) is left alone and the
listed user is not made here (logged). The comment is in /etc/passwd, not under the node root, so a
reboot or a reimage of the node keeps track of them.

Only an agent running as root can make users: any other logs that the node's users are not made.

Everything that changes accounts blocks (processes, files): it runs in a thread, one pass at a time;
a list that arrives during a pass is applied by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import logging
import os
import pwd
import stat
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import passwd

log = logging.getLogger(__name__)

#: The port an SSH server is looked for on, unless the agent is told another (`--ssh-port`).
DEFAULT_SSH_PORT: Final = 22
#: How long the probe waits for a connection and for the server's first line.
PROBE_TIMEOUT: Final = 1.0
#: Groups whose members may act as root, in the order they are looked for.
ADMIN_GROUPS: Final = ("sudo", "wheel")
#: What a password hash starts with (SHA-512 crypt): anything else is not set.
HASH_PREFIX: Final = "$6$"
#: The password field of a user without a password: matches none, yet is not a locked account.
NO_PASSWORD: Final = "*"
SHELLS: Final = ("/bin/bash", "/bin/sh")
#: Home directories of node users.
HOME_BASE: Final = "/home"
SECONDS_PER_DAY: Final = 86400


async def probe_ssh(ip: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether an SSH server answers at `ip:port`: it accepts a connection and its first line says "SSH-"
    (RFC 4253 §4.2: the server sends its version first)."""
    if port <= 0:
        return False
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, ValueError):
        return False
    return line.startswith(b"SSH-")


def comment(node_root: Path) -> str:
    """The comment (GECOS) of the users the node with root `node_root` makes."""
    digest = hashlib.sha256(str(node_root.absolute()).encode()).hexdigest()[:12]
    return f"Shoal node user {digest}"


@dataclass(frozen=True)
class Wanted:
    """One user as the server lists it."""

    name: str
    is_admin: bool
    #: Seconds since the epoch when the account stops working.
    expiry: float
    password_hash: str
    ssh_public_key: str

    @classmethod
    def of(cls, spec: agent_pb2.NodeUserSpec) -> Wanted:
        return cls(
            name=spec.name,
            is_admin=spec.is_admin,
            expiry=spec.expiry_time.seconds + spec.expiry_time.nanos / 1e9,
            password_hash=spec.password_hash,
            ssh_public_key=spec.ssh_public_key,
        )


class NodeUserError(Exception):
    """A user could not be made, changed or removed."""


# ---------------------------------------------------------------- one pass (blocking)


def _run(argv: list[str], stdin: str | None = None) -> None:
    """Run an account tool (again while another holds the account files' lock); NodeUserError if it fails."""
    if stdin is None:
        done = passwd.run_tool(argv)
    else:
        for _ in range(passwd.LOCK_RETRIES):
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
            if done.returncode != 10:
                break
            time.sleep(0.05)
    if done.returncode != 0:
        raise NodeUserError(f"{argv[0]} failed: {done.stderr.strip() or f'exit {done.returncode}'}")


def ours(marker: str) -> list[pwd.struct_passwd]:
    """The machine's users that carry `marker` (this node's)."""
    return [pw for pw in pwd.getpwall() if pw.pw_gecos == marker]


def _expire_date(expiry: float) -> str:
    """`usermod -e`'s date: the first day the account no longer works (the one after the expiry, unless
    the expiry is at midnight UTC)."""
    day = -(-int(expiry) // SECONDS_PER_DAY)
    return time.strftime("%Y-%m-%d", time.gmtime(day * SECONDS_PER_DAY))


def _admin_group() -> str:
    for name in ADMIN_GROUPS:
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            return name
    return ""


def remove_user(name: str) -> None:
    """Kill the user's processes and remove it with its home."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for p in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, OSError):
            uids = p.info["uids"]
            if uids is not None and uid in (uids.real, uids.effective):
                p.kill()
    done = passwd.run_tool(["userdel", "--remove", name])
    # 6: no such user (gone meanwhile); 12: the home could not be removed (the account is gone all the same).
    if done.returncode not in (0, 6, 12):
        raise NodeUserError(f"userdel {name} failed: {done.stderr.strip() or f'exit {done.returncode}'}")


def _make(user: Wanted, marker: str) -> pwd.struct_passwd:
    shell = next((s for s in SHELLS if os.path.exists(s)), "/bin/sh")
    argv = ["useradd", "--create-home", "--base-dir", HOME_BASE, "--shell", shell, "--comment", marker]
    argv += ["--user-group", "--no-log-init", "--expiredate", _expire_date(user.expiry), user.name]
    _run(argv)
    return pwd.getpwnam(user.name)


def write_authorized_keys(home: str, uid: int, gid: int, key: str) -> None:
    """`key` as the whole of `home/.ssh/authorized_keys` (none: the file removed), owned by the user, never
    through a symlink: the home is the user's, who may have put one anywhere in it."""
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if os.fstat(home_fd).st_uid != uid:
            raise NodeUserError(f"{home} is not the user's own")
        with contextlib.suppress(FileExistsError):
            os.mkdir(".ssh", 0o700, dir_fd=home_fd)
        ssh_fd = os.open(".ssh", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=home_fd)
        try:
            os.fchown(ssh_fd, uid, gid)
            os.fchmod(ssh_fd, 0o700)
            if not key:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink("authorized_keys", dir_fd=ssh_fd)
                return
            tmp = f".authorized_keys.shoal-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=ssh_fd)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=ssh_fd)
            try:
                os.fchown(fd, uid, gid)
                os.write(fd, (key.strip() + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            # (A rename replaces whatever is at the name, a symlink included, without following it.)
            os.replace(tmp, "authorized_keys", src_dir_fd=ssh_fd, dst_dir_fd=ssh_fd)
        finally:
            os.close(ssh_fd)
    finally:
        os.close(home_fd)


def _apply(user: Wanted, pw: pwd.struct_passwd, admin_group: str) -> None:
    """Password, expiry, admin group and SSH key of an existing user of this node, as listed."""
    hashed = user.password_hash if user.password_hash.startswith(HASH_PREFIX) else NO_PASSWORD
    if any(c in hashed for c in ":\n"):
        hashed = NO_PASSWORD
    _run(["chpasswd", "--encrypted"], stdin=f"{user.name}:{hashed}\n")
    _run(["usermod", "--expiredate", _expire_date(user.expiry), user.name])
    if admin_group:
        member = user.name in grp.getgrnam(admin_group).gr_mem
        if user.is_admin and not member:
            _run(["usermod", "--append", "--groups", admin_group, user.name])
        elif not user.is_admin and member:
            _run(["gpasswd", "--delete", user.name, admin_group])
    st = os.lstat(pw.pw_dir)
    if not stat.S_ISDIR(st.st_mode):
        raise NodeUserError(f"the home {pw.pw_dir} of {user.name} is not a directory")
    write_authorized_keys(pw.pw_dir, pw.pw_uid, pw.pw_gid, user.ssh_public_key)


@dataclass
class Outcome:
    """What a pass did: users made or brought up to date, users removed, and what failed (user → why)."""

    applied: list[str]
    removed: list[str]
    failed: dict[str, str]


def reconcile(wanted: Iterable[Wanted], *, marker: str, prefix: str, now: float) -> Outcome:
    """Make exactly the unexpired `wanted` users exist among this node's (those carrying `marker`)."""
    out = Outcome([], [], {})
    live = {u.name: u for u in wanted if u.expiry > now}
    for pw in ours(marker):
        if pw.pw_name not in live:
            try:
                remove_user(pw.pw_name)
                out.removed.append(pw.pw_name)
            except NodeUserError as e:
                out.failed[pw.pw_name] = str(e)
    admin_group = _admin_group()
    for user in live.values():
        try:
            if user.name.startswith(prefix + "-"):
                raise NodeUserError(f"names starting with {prefix}- are the agent's own")
            try:
                pw = pwd.getpwnam(user.name)
            except KeyError:
                pw = _make(user, marker)
            if pw.pw_gecos != marker:
                raise NodeUserError(f"a user {user.name} exists on this machine and is not this node's")
            if user.is_admin and not admin_group:
                log.warning("node user %s is an admin, but this machine has no sudo or wheel group", user.name)
            _apply(user, pw, admin_group)
            out.applied.append(user.name)
        except (NodeUserError, OSError, KeyError) as e:
            out.failed[user.name] = str(e)
    return out


# ---------------------------------------------------------------- the agent's part


class NodeLoginUsers:
    """This node's users, kept as the server lists them, and the SSH server found at the node's address."""

    def __init__(
        self, *, root: Path, prefix: str, ip: str, ssh_port: int = DEFAULT_SSH_PORT, euid: int | None = None
    ) -> None:
        self.marker = comment(root)
        self.prefix = prefix
        self.ip = ip
        self.probe_port = ssh_port
        #: The port an SSH server answered on at the last probe (0: none): Register.ssh_port.
        self.ssh_port = 0
        self._euid = os.geteuid() if euid is None else euid
        self._wanted: list[Wanted] | None = None
        self._pass: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._leaving = False
        #: The outcome of the last pass (tests and the log look at it).
        self.last: Outcome | None = None
        #: Set after each pass (tests wait on it); replaced by a fresh event for the next one.
        self.passed = asyncio.Event()

    async def probe_ssh(self) -> None:
        """Look for an SSH server at the node's address (before each Register)."""
        self.ssh_port = self.probe_port if await probe_ssh(self.ip, self.probe_port) else 0

    def apply(self, users: Iterable[agent_pb2.NodeUserSpec]) -> None:
        """The server's list (Welcome, or a change): made so in the background."""
        self._wanted = [Wanted.of(u) for u in users]
        if self._euid != 0:
            if self._wanted:
                # TODO(node errors): report this as a node error once the agent reports them.
                log.warning("the node's users are not made: the agent does not run as root")
            return
        if self._pass is None or self._pass.done():
            self._pass = asyncio.ensure_future(self._passes())

    async def _passes(self) -> None:
        while self._wanted is not None:
            wanted, self._wanted = self._wanted, None
            try:
                outcome = await asyncio.to_thread(
                    reconcile, wanted, marker=self.marker, prefix=self.prefix, now=time.time()
                )
            except Exception:
                log.exception("making the node's users failed")
                outcome = Outcome([], [], {"*": "failed"})
            self.last = outcome
            for name in outcome.removed:
                log.info("node user %s removed", name)
            for name, why in outcome.failed.items():
                # TODO(node errors): a user that cannot be made could be a node error.
                log.warning("node user %s: %s", name, why)
            self._expire_later(wanted)
            passed, self.passed = self.passed, asyncio.Event()
            passed.set()

    def _expire_later(self, wanted: list[Wanted]) -> None:
        """Run a pass again when the next listed user expires (it is then removed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.time()
        pending = [u.expiry for u in wanted if u.expiry > now]
        if not pending:
            return
        delay = min(pending) - now + 0.01

        def again() -> None:
            self._timer = None
            if self._wanted is None:
                self.apply_again(wanted)

        self._timer = asyncio.get_running_loop().call_later(delay, again)

    def apply_again(self, wanted: list[Wanted]) -> None:
        """Run a pass over `wanted` (the list last applied) again."""
        self._wanted = wanted
        if self._pass is None or self._pass.done():
            self._pass = asyncio.ensure_future(self._passes())

    def leaving(self) -> None:
        """The server told the agent to stop (Shutdown): the node's users go when it does (`close`), as they
        go with a Batch node that is deallocated."""
        self._leaving = True

    async def close(self) -> None:
        """Stop the expiry timer; let a pass under way finish (briefly); remove every user of this node if the
        server told the agent to stop."""
        if self._timer is not None:
            self._timer.cancel()
        if self._pass is not None and not self._pass.done():
            await asyncio.wait([self._pass], timeout=5.0)
        if self._leaving and self._euid == 0:
            try:
                outcome = await asyncio.to_thread(
                    reconcile, [], marker=self.marker, prefix=self.prefix, now=time.time()
                )
            except Exception:
                log.exception("removing the node's users failed")
                return
            for name in outcome.removed:
                log.info("node user %s removed: the node left its pool", name)
            for name, why in outcome.failed.items():
                log.warning("node user %s: %s", name, why)
