"""The users a node runs tasks as (Batch's user identity), made once and kept.

An agent running as root, whose node root other users can reach, runs each task as the user its
identity names (`task_user_isolation`); any other agent runs every task as itself and says so in
Register. With isolation:

- ADMIN (an auto user, or a named account of that elevation) runs as root, uid 0: on Linux, Batch's
  admin tasks may do what root does (install packages, without sudo), Shoal's nodes need not have sudo,
  and an admin task can read every task's files either way; a distinct sudo-capable user would cost a
  user and a sudoers entry per pool without isolating anything.
- A NON_ADMIN auto user of scope POOL (the default) is one user per pool, shared by every node of the
  machine (`usernames.pool_user`): made in the background when the agent is welcomed, then looked up in
  a dict for each task (no process, no blocking call per task).
- A NON_ADMIN auto user of scope TASK is a user of its own per running task, taken from a free list of
  users this node made before (`usernames.task_user`, named by the node root, so two local nodes never
  share one); after the task ends its leftover processes are killed and its task directory given to
  root before the user goes back to the list, so the next task of that user cannot read what the last
  one left. A multi-instance task takes its pool's user instead: its instances share a directory.
- A named account (the pool's `user_accounts`) is a user per account and pool, made at the Welcome.

So pool-scope tasks share a uid (they can read each other's directories), task-scope tasks and
different accounts cannot read each other's, admin tasks read everything. Users stay on the machine
(as on a Batch node until it is reimaged); their names start with a prefix (`shoal`) of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil

from shoal.nodeagent import ownership, passwd, usernames
from shoal.v1 import identity_pb2

log = logging.getLogger(__name__)

ADMIN: Final = identity_pb2.ELEVATION_LEVEL_ADMIN
TASK_SCOPE: Final = identity_pb2.AUTO_USER_SCOPE_TASK


class IdentityError(Exception):
    """The task's user cannot be had: an unknown account, or the user could not be made."""

    def __init__(self, message: str, *, server_side: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: The node's fault (making the user failed), not the task's (it names no account of the pool).
        self.server_side = server_side


@dataclass(frozen=True)
class RunAs:
    """Who a task's processes are: a uid and gid, and the variables that say so."""

    uid: int
    gid: int
    name: str
    #: HOME for its processes; empty: the task's own directory (task-scope users), or, for root, the agent's.
    home: str = ""
    #: A task-scope user, lent to one task.
    per_task: bool = False
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        """Runs as root (an ADMIN identity)."""
        return self.uid == 0


ROOT: Final = RunAs(0, 0, "root")


def agent_user() -> str:
    """The name of the user this process runs as."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def unreachable_part(path: Path) -> Path | None:
    """The first directory above `path` that other users cannot enter (no o+x), or None. One that does not
    exist yet does not count (the agent makes it, and then checks again)."""
    for p in reversed(path.absolute().parents):
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return p
        except FileNotFoundError:
            return None
        except OSError:
            return p
    return None


def isolation_decision(*, euid: int, enabled: bool, root: Path, can_make_users: bool) -> tuple[bool, str]:
    """Whether tasks run as their users, and if not why not (for the log)."""
    if not enabled:
        return False, "turned off (--no-task-users)"
    if euid != 0:
        return False, "the agent does not run as root"
    if not can_make_users:
        return False, "this machine has no useradd and its account files are read-only"
    blocked = unreachable_part(root)
    if blocked is not None:
        return False, f"other users cannot reach the node root: {blocked} has no search permission for them"
    return True, ""


class NodeUsers:
    """Who each task runs as on this node (see the module's docstring)."""

    def __init__(self, *, root: Path, prefix: str, enabled: bool = True, euid: int | None = None) -> None:
        self.root = root
        self.prefix = usernames.check_prefix(prefix)
        self._enabled = enabled
        self._euid = os.geteuid() if euid is None else euid
        self.isolation, self.reason = False, "not decided yet"
        self.decide()
        self.agent_user = agent_user()
        self.pool_id = ""
        self._accounts: dict[str, identity_pb2.UserAccount] = {}
        #: Users made (or found) so far, by name.
        self._ready: dict[str, RunAs] = {}
        self._making: dict[str, asyncio.Task[RunAs]] = {}
        self._pool_name = usernames.pool_user(self.prefix, "")
        #: Task-scope users free to lend, and those lent (by owner: an attempt's key).
        self._free: list[str] = []
        self._lent: dict[str, RunAs] = {}
        self._next_slot = 0
        self._background: set[asyncio.Task[None]] = set()

    def decide(self) -> bool:
        """Whether tasks run as their users, looked at again (once the node root exists)."""
        self.isolation, self.reason = isolation_decision(
            euid=self._euid, enabled=self._enabled, root=self.root, can_make_users=passwd.can_make_users()
        )
        return self.isolation

    @property
    def home_root(self) -> Path:
        """Where the pool-scope and named users' HOME directories are (one per user, under the node root)."""
        return self.root / "home"

    # ---- configuration -------------------------------------------------------------------------

    def configure(self, pool_id: str, accounts: Iterable[identity_pb2.UserAccount]) -> None:
        """The node's pool and its named accounts (each Welcome); makes its users in the background."""
        accounts = list(accounts)
        if pool_id != self.pool_id:
            self._free.clear()
            self._next_slot = 0
        self.pool_id = pool_id
        self._accounts = {a.name: a for a in accounts}
        self._pool_name = usernames.pool_user(self.prefix, pool_id)
        if not self.isolation:
            return
        names = [self._pool_name]
        for a in accounts:
            if a.elevation_level != ADMIN:
                names.append(usernames.account_user(self.prefix, pool_id, a.name))
        for name in names:
            self._spawn(self._prepare(name))

    async def _prepare(self, name: str) -> None:
        with contextlib.suppress(IdentityError):
            await self._user(name, self._spec(name))

    def _spec(self, name: str) -> passwd.UserSpec:
        for a in self._accounts.values():
            if usernames.account_user(self.prefix, self.pool_id, a.name) == name:
                linux = a.linux_user_configuration
                if linux.HasField("uid") and linux.HasField("gid"):
                    return passwd.UserSpec(name, linux.uid, linux.gid)
        return passwd.UserSpec(name)

    # ---- the users of tasks --------------------------------------------------------------------

    async def acquire(
        self, identity: identity_pb2.UserIdentity | None, owner: str, *, shared_dir: bool = False
    ) -> RunAs | None:
        """Who the task `owner` (an attempt's key) runs as; None: as the agent itself (no isolation).

        `shared_dir`: its instances share a directory (multi-instance), so it cannot have a task-scope user.
        Raises IdentityError.
        """
        if not self.isolation:
            return None
        if identity is None:
            ready = self._ready.get(self._pool_name)  # the default: one dict lookup
            return ready if ready is not None else await self._user(self._pool_name, passwd.UserSpec(self._pool_name))
        kind = identity.WhichOneof("identity")
        if kind == "user_name":
            account = self._accounts.get(identity.user_name)
            if account is None:
                raise IdentityError(f"{identity.user_name!r} is not one of the user accounts of pool {self.pool_id!r}")
            if account.elevation_level == ADMIN:
                return ROOT
            name = usernames.account_user(self.prefix, self.pool_id, account.name)
            return self._ready.get(name) or await self._user(name, self._spec(name))
        auto = identity.auto_user
        if auto.elevation_level == ADMIN:
            return ROOT
        if auto.scope != TASK_SCOPE or shared_dir:
            return self._ready.get(self._pool_name) or await self._user(
                self._pool_name, passwd.UserSpec(self._pool_name)
            )
        return await self._lend(owner)

    async def _lend(self, owner: str) -> RunAs:
        lent = self._lent.get(owner)
        if lent is not None:
            return lent
        fresh = not self._free
        if self._free:
            name = self._free.pop()
        else:
            name = usernames.task_user(self.prefix, self.pool_id, str(self.root), self._next_slot)
            self._next_slot += 1
        try:
            user = await self._user(name, passwd.UserSpec(name), per_task=True)
            if fresh:
                # New to this agent process, but maybe not to the node: an earlier agent that died may have
                # left a task of this user running, or its directory still the user's.
                await asyncio.to_thread(_reclaim, user.uid, None, self.root / "workitems")
        except (IdentityError, OSError) as e:
            self._free.append(name)
            if isinstance(e, IdentityError):
                raise
            raise IdentityError(f"cannot clean up after task user {name}: {e}", server_side=True) from e
        self._lent[owner] = user
        return user

    def release(self, owner: str, task_dir: Path | None) -> None:
        """The task `owner` ended: a task-scope user it had goes back to the free list once nothing it left
        can be reached through it (its processes killed, its task directory given to root)."""
        user = self._lent.pop(owner, None)
        if user is not None:
            self._spawn(self._reclaim(user, task_dir))

    async def _reclaim(self, user: RunAs, task_dir: Path | None) -> None:
        try:
            await asyncio.to_thread(_reclaim, user.uid, task_dir)
        except Exception:
            log.exception("could not clean up after task user %s; it is not lent again", user.name)
            return
        self._free.append(user.name)

    async def _user(self, name: str, spec: passwd.UserSpec, *, per_task: bool = False) -> RunAs:
        """The user `name`, made (once: later callers wait for the same making) if missing."""
        ready = self._ready.get(name)
        if ready is not None:
            return ready
        making = self._making.get(name)
        if making is None:
            making = asyncio.create_task(self._make(spec, per_task))
            self._making[name] = making
        try:
            return await asyncio.shield(making)
        finally:
            if making.done():
                self._making.pop(name, None)

    async def _make(self, spec: passwd.UserSpec, per_task: bool) -> RunAs:
        try:
            pw = await asyncio.to_thread(passwd.ensure_user, spec)
            home = "" if per_task else await asyncio.to_thread(self._make_home, pw)
        except (passwd.UserError, OSError) as e:
            log.warning("cannot make task user %s: %s", spec.name, e)
            raise IdentityError(f"the node cannot make user {spec.name}: {e}", server_side=True) from e
        env = {"USER": pw.pw_name, "LOGNAME": pw.pw_name}
        if home:
            env["HOME"] = home
        user = RunAs(pw.pw_uid, pw.pw_gid, pw.pw_name, home, per_task, env)
        self._ready[spec.name] = user
        log.info("task user %s is uid %d", pw.pw_name, pw.pw_uid)
        return user

    def _make_home(self, pw: pwd.struct_passwd) -> str:
        """`<root>/home/<user>`, the user's alone."""
        self.home_root.mkdir(mode=0o755, exist_ok=True)
        home = self.home_root / pw.pw_name
        with contextlib.suppress(FileExistsError):
            os.mkdir(home, 0o700)
        st = os.lstat(home)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(f"{home} is not a directory")
        if (st.st_uid, st.st_gid) != (pw.pw_uid, pw.pw_gid):
            os.chown(home, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        return str(home)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Wait (briefly) for users being made and cleanups under way."""
        pending = [*self._background, *self._making.values()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)


def _reclaim(uid: int, task_dir: Path | None, workitems: Path | None = None) -> None:
    """Kill what runs as `uid` (its task's leftovers) and make `task_dir` root's (it is mode 0700); with
    `workitems`, every task directory there that is `uid`'s."""
    for p in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, OSError):
            uids = p.info["uids"]
            if uids is not None and uid in (uids.real, uids.effective):
                p.kill()
    dirs = [task_dir] if task_dir is not None else []
    if workitems is not None:
        dirs += [d for d in workitems.glob("*/job-1/*") if _owned_by(d, uid)]
    for d in dirs:
        # (The mode too: the task owned the directory and may have opened it up.)
        with contextlib.suppress(FileNotFoundError):
            ownership.give(d, ownership.ROOT, 0o700)


def _owned_by(path: Path, uid: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid
