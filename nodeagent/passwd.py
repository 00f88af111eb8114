"""Making a Linux user and its group: with `useradd`/`groupadd` (Debian's passwd package), or, where they are
missing, by appending minimal entries to the account files under their lock (`lckpwdf(3)`).

Everything here blocks (processes, file locks): call it from a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import grp
import logging
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

#: The comment (GECOS) of every user Shoal makes: an existing user of one of Shoal's names without it is
#: not Shoal's, and is never taken over.
COMMENT: Final = "Shoal task user"
#: Where ids are picked when none is asked for (Debian's range for ordinary users).
FIRST_ID: Final = 1000
LAST_ID: Final = 59999
#: `useradd` answers 10 when another program holds the account files' lock: tried again this often.
LOCK_RETRIES: Final = 20
#: Home directory in the account files: tasks get theirs in HOME (under the node root), not from here.
NO_HOME: Final = "/nonexistent"
SHELL: Final = "/bin/sh"


class UserError(Exception):
    """The user could not be made (or a user of that name exists and is not Shoal's)."""


@dataclass(frozen=True)
class UserSpec:
    """A user to make: its name, and its ids when they are given (both, or neither)."""

    name: str
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class AccountFiles:
    """The account files: /etc's, or others (tests) which are written without taking /etc's lock."""

    passwd: Path = Path("/etc/passwd")
    group: Path = Path("/etc/group")
    shadow: Path = Path("/etc/shadow")
    gshadow: Path = Path("/etc/gshadow")

    @property
    def system(self) -> bool:
        """These are the machine's own files (so `lckpwdf` guards them)."""
        return self.passwd == Path("/etc/passwd")


def can_make_users(files: AccountFiles = AccountFiles()) -> bool:
    """Whether this process can add users: `useradd` is there, or the account files are writable."""
    return shutil.which("useradd") is not None or os.access(files.passwd, os.W_OK)


def _existing(spec: UserSpec) -> pwd.struct_passwd | None:
    """The user of that name if there is one and it is Shoal's (and has the ids asked for); UserError if not."""
    try:
        pw = pwd.getpwnam(spec.name)
    except KeyError:
        return None
    if pw.pw_gecos != COMMENT:
        raise UserError(f"user {spec.name!r} exists on this node and was not made by Shoal")
    if spec.uid is not None and (pw.pw_uid != spec.uid or pw.pw_gid != spec.gid):
        raise UserError(
            f"user {spec.name!r} exists on this node with uid {pw.pw_uid} and gid {pw.pw_gid}, "
            f"not {spec.uid} and {spec.gid}"
        )
    return pw


def ensure_user(spec: UserSpec, files: AccountFiles = AccountFiles()) -> pwd.struct_passwd:
    """The user `spec` names, made if missing. Another agent making the same user at the same time (local
    nodes share the machine's users) is fine: whichever comes second finds it made."""
    if files.system:
        pw = _existing(spec)
        if pw is not None:
            return pw
    if files.system and shutil.which("useradd") is not None:
        _useradd(spec)
    else:
        _append(spec, files)
    if not files.system:
        return _read_back(spec.name, files)
    pw = _existing(spec)
    if pw is None:
        raise UserError(f"user {spec.name!r} was made but cannot be looked up")
    return pw


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run an account tool (`useradd`, `usermod`, ...), again while another program holds the account files'
    lock; the caller reads the exit status."""
    return _run(argv)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    for _ in range(LOCK_RETRIES):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 10:  # 10: the account files are locked by someone else
            return done
        time.sleep(0.05)
    return done


def _useradd(spec: UserSpec) -> None:
    argv = ["useradd", "--no-create-home", "--home-dir", NO_HOME, "--shell", SHELL, "--comment", COMMENT]
    argv.append("--no-log-init")  # (no lastlog/faillog entry: sparse files as large as the uid)
    if spec.uid is not None and spec.gid is not None:
        with contextlib.suppress(KeyError):
            grp.getgrgid(spec.gid)
            argv += ["--uid", str(spec.uid), "--gid", str(spec.gid), "--no-user-group"]
        if "--gid" not in argv:
            done = _run(["groupadd", "--gid", str(spec.gid), spec.name])
            if done.returncode not in (0, 9):  # 9: the name is taken (another agent was first)
                raise UserError(f"groupadd {spec.name} (gid {spec.gid}) failed: {done.stderr.strip()}")
            argv += ["--uid", str(spec.uid), "--gid", str(spec.gid), "--no-user-group"]
    else:
        argv.append("--user-group")
    done = _run([*argv, spec.name])
    if done.returncode not in (0, 9):  # 9: the name is taken: looked up (and checked) by the caller
        raise UserError(f"useradd {spec.name} failed: {done.stderr.strip() or f'exit {done.returncode}'}")


# ---------------------------------------------------------------- without useradd


def _ids(lines: Iterable[str]) -> set[int]:
    out = set()
    for line in lines:
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit():
            out.add(int(parts[2]))
    return out


def free_id(taken: set[int], first: int = FIRST_ID, last: int = LAST_ID) -> int:
    """The lowest id from `first` to `last` not in `taken`."""
    for i in range(first, last + 1):
        if i not in taken:
            return i
    raise UserError(f"no free id between {first} and {last}")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def _account_lock(files: AccountFiles) -> Iterator[None]:
    """`lckpwdf(3)`, the lock `useradd` and `passwd` take, for /etc's files; nothing for others."""
    if not files.system:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(LOCK_RETRIES):
        if libc.lckpwdf() == 0:
            break
        time.sleep(0.05)
    else:
        raise UserError(f"cannot lock the account files: {os.strerror(ctypes.get_errno() or errno.EBUSY)}")
    try:
        yield
    finally:
        libc.ulckpwdf()


def _append_line(path: Path, line: str) -> None:
    if not path.exists():
        return
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _append(spec: UserSpec, files: AccountFiles) -> None:
    """Add the user (and its group, unless a group of its gid exists) to the account files."""
    with _account_lock(files):
        users = _lines(files.passwd)
        groups = _lines(files.group)
        if any(line.split(":", 1)[0] == spec.name for line in users):
            return  # made meanwhile
        uids, gids = _ids(users), _ids(groups)
        if spec.uid is not None and spec.gid is not None:
            if spec.uid in uids:
                raise UserError(f"uid {spec.uid} is already in use")
            uid, gid = spec.uid, spec.gid
        else:
            uid = gid = free_id(uids | gids)
        if gid not in gids:
            _append_line(files.group, f"{spec.name}:x:{gid}:")
            _append_line(files.gshadow, f"{spec.name}:!::")
        _append_line(files.passwd, f"{spec.name}:x:{uid}:{gid}:{COMMENT}:{NO_HOME}:{SHELL}")
        days = int(time.time() // 86400)
        _append_line(files.shadow, f"{spec.name}:!:{days}::::::")


def _read_back(name: str, files: AccountFiles) -> pwd.struct_passwd:
    for line in _lines(files.passwd):
        parts = line.split(":")
        if parts[0] == name and len(parts) == 7:
            return pwd.struct_passwd((parts[0], parts[1], int(parts[2]), int(parts[3]), parts[4], parts[5], parts[6]))
    raise UserError(f"user {name!r} is not in {files.passwd}")
