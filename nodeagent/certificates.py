"""The node's certificates: installed from the server's Welcome, handed to the tasks allowed to see them.

The agent keeps the pool's certificates in `<root>/certs/` (its own, mode 0700): `sha1-<thumbprint>.pem`
(the certificate) and `sha1-<thumbprint>.key` (the private key, 0600), exactly the set of the last Welcome.
Tasks never read that directory. A task (or start task) whose visibility a certificate grants gets its
own copies in `certs/` of its task directory (Batch's `AZ_BATCH_CERTIFICATES_DIR`), the key of mode 0600
owned by the task's user; the pool's named users get those of REMOTE_USER visibility in `certs/` of their
home. Every write goes through directory descriptors with no link followed: a task directory is its
user's, and whatever that user left there (a link named `certs` to /etc, say) is replaced, not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.users import IdentityError, NodeUsers
from shoal.v1 import certificate_pb2 as C
from shoal.v1 import identity_pb2

log = logging.getLogger(__name__)

START_TASK = C.CERTIFICATE_VISIBILITY_START_TASK
TASK = C.CERTIFICATE_VISIBILITY_TASK
REMOTE_USER = C.CERTIFICATE_VISIBILITY_REMOTE_USER
#: The directory's name in the node root, in task directories and in users' homes.
CERTS_DIR = "certs"
#: Tasks' names for their certificate directory (Shoal's, and Batch's).
CERTS_ENV = ("SHOAL_CERTIFICATES_DIR", "AZ_BATCH_CERTIFICATES_DIR")


def cert_file(thumbprint: str) -> str:
    """The certificate's file name."""
    return f"sha1-{thumbprint}.pem"


def key_file(thumbprint: str) -> str:
    """The private key's file name."""
    return f"sha1-{thumbprint}.key"


def _plain_thumbprint(value: str) -> bool:
    # The server sends 40 lowercase hex digits; anything else would not be a safe file name.
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True)
class Installed:
    """One certificate as the node holds it."""

    thumbprint: str
    certificate: bytes
    private_key: bytes = field(repr=False)
    visibility: frozenset[int]


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _fresh_subdir(parent_fd: int, name: str, mode: int, owner: tuple[int, int] | None) -> int:
    """An empty directory `name` in `parent_fd` (whatever was there removed, no link followed); its fd."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(name, dir_fd=parent_fd)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
    os.mkdir(name, mode, dir_fd=parent_fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write(dir_fd: int, name: str, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """A new file `name` (the directory is fresh: O_EXCL, no link followed), owned and of `mode`."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_all(dir_fd: int, certs: Iterable[Installed], owner: tuple[int, int] | None) -> None:
    """Each certificate (mode 0644) and its key, if any (mode 0600), into a fresh directory."""
    for c in certs:
        _write(dir_fd, cert_file(c.thumbprint), c.certificate, 0o644, owner)
        if c.private_key:
            _write(dir_fd, key_file(c.thumbprint), c.private_key, 0o600, owner)


class NodeCertificates:
    """The certificates this node holds, and where each kind of task finds its own."""

    def __init__(self, root: Path) -> None:
        self.store = root / CERTS_DIR
        self._root = root
        self._certs: tuple[Installed, ...] = ()

    @property
    def thumbprints(self) -> list[str]:
        """The certificates installed, in the server's order."""
        return [c.thumbprint for c in self._certs]

    def visible(self, visibility: int) -> list[Installed]:
        """The certificates `visibility` may see."""
        return [c for c in self._certs if visibility in c.visibility]

    def install(self, certificates: Iterable[agent_pb2.NodeCertificate]) -> None:
        """Hold exactly `certificates` (from a Welcome): `<root>/certs/` rewritten, the agent's alone."""
        certs = tuple(
            Installed(c.thumbprint, c.certificate, c.private_key, frozenset(c.visibility))
            for c in certificates
            if _plain_thumbprint(c.thumbprint)
        )
        if not certs and not self._certs and not os.path.lexists(self.store):
            return
        root_fd = _open_dir(self._root)
        try:
            fd = _fresh_subdir(root_fd, CERTS_DIR, 0o700, None)
        finally:
            os.close(root_fd)
        try:
            _write_all(fd, certs, None)
        finally:
            os.close(fd)
        self._certs = certs

    def provide(self, directory: Path, visibility: int, owner: tuple[int, int] | None) -> str | None:
        """Copies of what `visibility` may see in `<directory>/certs/` (made afresh, owned by `owner`, the
        keys mode 0600); the directory's path, or None (and nothing made) when the node has none for it."""
        certs = self.visible(visibility)
        if not certs:
            return None
        dir_fd = _open_dir(directory)
        try:
            fd = _fresh_subdir(dir_fd, CERTS_DIR, 0o700 if owner is not None else 0o755, owner)
        finally:
            os.close(dir_fd)
        try:
            _write_all(fd, certs, owner)
        finally:
            os.close(fd)
        return str(directory / CERTS_DIR)


def certificates_env(directory: str | None) -> dict[str, str]:
    """The variables that tell a task where its certificates are (none when it has none)."""
    return dict.fromkeys(CERTS_ENV, directory) if directory else {}


async def give_named_users(
    certs: NodeCertificates, users: NodeUsers, accounts: Iterable[identity_pb2.UserAccount]
) -> None:
    """REMOTE_USER certificates into `certs/` of each named pool user's home (Batch's
    `/home/<user>/certs`): `<root>/home/<user>` as the user's home is made; an admin account's, or any
    when tasks run as the agent's user, is `<root>/home/<account name>`, the agent's own."""
    for account in accounts:
        try:
            run_as = await users.acquire(identity_pb2.UserIdentity(user_name=account.name), "certificates")
            own_home = run_as is not None and run_as.home and run_as.uid != 0
            home = Path(run_as.home) if own_home and run_as is not None else users.home_root / account.name
            owner = (run_as.uid, run_as.gid) if own_home and run_as is not None else None
            await asyncio.to_thread(_provide_home, certs, home, owner)
        except (IdentityError, OSError) as e:
            log.warning("could not give user %s the pool's certificates: %s", account.name, e)


def _provide_home(certs: NodeCertificates, home: Path, owner: tuple[int, int] | None) -> None:
    home.mkdir(mode=0o755 if owner is None else 0o700, parents=True, exist_ok=True)
    certs.provide(home, REMOTE_USER, owner)
