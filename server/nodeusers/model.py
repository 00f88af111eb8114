"""The pure parts of node users: what a valid user is, its expiry, its password hash, the messages.

No I/O and no clock of its own here (the caller passes `now`): the registry (`registry.py`) applies what
these decide. As in Batch (`BATCH_SEMANTICS.md` §1, "Node add/update/delete user"):

- a name is a Linux user name of 1 to 20 characters (Batch's limit): lowercase letters, digits, '_' and
  '-', not starting with a digit or '-'; not one of the machine's own accounts (`root`, ...), not one of
  the agent's (`shoal-...`: `shoal.nodeagent.usernames`), not one of the pool's `user_accounts`;
- the expiry defaults to a day after the request, and must lie ahead (the node applies it to the day on
  the account itself, and removes the user at the exact time);
- a password and an SSH public key are both optional (a user with neither cannot log in until an update
  gives it one, as in Batch on Linux);
- an update replaces password, key and expiry (an omitted one is removed, or back to the default);
  `is_admin` is set when the user is added (Batch's update cannot change it either).

The password is hashed here, with SHA-512 crypt (`$6$`, what `/etc/shadow` takes): the plaintext is
never stored, logged or returned, and never leaves the server (the node gets only the hash).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from passlib.hash import sha512_crypt

from shoal.agent.v1 import agent_pb2
from shoal.clock import to_timestamp
from shoal.nodeagent.usernames import DEFAULT_PREFIX
from shoal.v1 import pool_pb2

#: Batch's limit on a user name (Linux allows 32).
MAX_NAME: Final = 20
#: A portable Linux user name (`useradd`'s default NAME_REGEX, without upper case and '$').
NAME_RE: Final = re.compile(r"^[a-z_][a-z0-9_-]*$")
#: Accounts every Debian-like machine has (or that a login server needs): never a node user's name.
#: The agent refuses any name whose existing user it did not make anyway; this says so up front.
SYSTEM_NAMES: Final = frozenset(
    {
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "systemd-network",
        "systemd-resolve", "systemd-timesync", "messagebus", "sshd", "_apt", "syslog", "admin", "sudo",
        "wheel", "adm", "staff", "users", "operator", "halt", "shutdown",
    }
)  # fmt: skip
#: Batch's default lifetime of a node user.
DEFAULT_EXPIRY: Final = timedelta(days=1)
#: The longest password and SSH key line taken (an RSA-16384 key line is under 3 KiB).
MAX_PASSWORD: Final = 256
MAX_SSH_KEY: Final = 8192
#: SHA-512 crypt rounds. glibc's default is 5,000; passlib's 656,000 takes seconds in pure Python.
#: 100,000 is twenty times glibc's and about half a second here, once per add or update.
HASH_ROUNDS: Final = 100_000
#: What a password hash starts with (the only scheme the node takes).
HASH_PREFIX: Final = "$6$"


@dataclass(frozen=True)
class NodeUser:
    """One node user as the server keeps it: never the password, only its hash."""

    #: The Linux user name.
    name: str
    #: The user may act as root on the node (the `sudo` group, where the node has one).
    is_admin: bool
    #: When the account stops working (and the node removes it).
    expiry: datetime
    #: SHA-512 crypt hash of the password ("": no password login).
    password_hash: str
    #: One OpenSSH public key line ("": none).
    ssh_public_key: str


def name_problem(name: str, pool_accounts: Iterable[str] = ()) -> str:
    """What is wrong with `name` as a node user's name ("" when nothing is)."""
    if not name:
        return "is required"
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, not {len(name)}"
    if not NAME_RE.match(name):
        return "must be a Linux user name: lowercase letters, digits, '_' and '-', starting with a letter or '_'"
    if name in SYSTEM_NAMES:
        return f"{name!r} is one of the machine's own accounts"
    if name == DEFAULT_PREFIX or name.startswith(DEFAULT_PREFIX + "-"):
        return f"names starting with {DEFAULT_PREFIX + '-'!r} are the node agent's own"
    if name in set(pool_accounts):
        return f"{name!r} is one of the pool's user accounts"
    return ""


def ssh_key_problem(key: str) -> str:
    """What is wrong with `key` as an OpenSSH public key line ("" when nothing is; "" for no key)."""
    if not key:
        return ""
    if len(key) > MAX_SSH_KEY:
        return f"must be at most {MAX_SSH_KEY} characters"
    # One line, nothing a line of authorized_keys could be made to say beyond the key (no options).
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "must be one line of printable characters"
    try:
        load_ssh_public_key(key.strip().encode())
    except (ValueError, UnsupportedAlgorithm) as e:
        return f"is not an OpenSSH public key ('ssh-ed25519 AAAA... comment'): {e}"
    return ""


def password_problem(password: str) -> str:
    """What is wrong with `password` ("" when nothing is; "" for none)."""
    if len(password) > MAX_PASSWORD:
        return f"must be at most {MAX_PASSWORD} characters"
    if "\0" in password or "\n" in password:
        return "must not hold a NUL or a line break"
    return ""


def expiry_of(user: pool_pb2.NodeUser, now: datetime) -> datetime:
    """The user's expiry: as asked, or a day from `now`."""
    if user.HasField("expiry_time"):
        return user.expiry_time.ToDatetime(tzinfo=now.tzinfo)
    return now + DEFAULT_EXPIRY


def check(
    user: pool_pb2.NodeUser, now: datetime, *, pool_accounts: Iterable[str] = (), with_name: bool = True
) -> list[tuple[str, str]]:
    """Every field violation of `user` (an add, or with `with_name` False an update's replacement)."""
    v: list[tuple[str, str]] = []
    if with_name:
        problem = name_problem(user.name, pool_accounts)
        if problem:
            v.append(("user.name", problem))
    problem = password_problem(user.password)
    if problem:
        v.append(("user.password", problem))
    problem = ssh_key_problem(user.ssh_public_key)
    if problem:
        v.append(("user.ssh_public_key", problem))
    if user.HasField("expiry_time"):
        try:
            expiry = expiry_of(user, now)
        except (ValueError, OverflowError):
            v.append(("user.expiry_time", "is not a valid time"))
        else:
            if expiry <= now:
                v.append(("user.expiry_time", "must lie in the future"))
    return v


def hash_password(password: str) -> str:
    """The SHA-512 crypt hash of `password` with a fresh salt ("" for no password). Slow on purpose."""
    if not password:
        return ""
    return str(sha512_crypt.using(rounds=HASH_ROUNDS).hash(password))


def verify_password(password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash` (for tests and tools)."""
    return bool(password_hash) and bool(sha512_crypt.verify(password, password_hash))


def build(user: pool_pb2.NodeUser, now: datetime, password_hash: str, *, is_admin: bool | None = None) -> NodeUser:
    """The user to keep, from a checked request (`is_admin` given: an update keeps the user's)."""
    return NodeUser(
        name=user.name,
        is_admin=user.is_admin if is_admin is None else is_admin,
        expiry=expiry_of(user, now),
        password_hash=password_hash,
        ssh_public_key=user.ssh_public_key.strip(),
    )


def message(user: NodeUser) -> pool_pb2.NodeUser:
    """The API's view of a user: never the password, nor its hash."""
    return pool_pb2.NodeUser(
        name=user.name,
        is_admin=user.is_admin,
        expiry_time=to_timestamp(user.expiry),
        ssh_public_key=user.ssh_public_key,
    )


def agent_spec(user: NodeUser) -> agent_pb2.NodeUserSpec:
    """What the node's agent makes of the user."""
    return agent_pb2.NodeUserSpec(
        name=user.name,
        is_admin=user.is_admin,
        expiry_time=to_timestamp(user.expiry),
        password_hash=user.password_hash,
        ssh_public_key=user.ssh_public_key,
    )


#: Node states in which users may be added or updated: the node is up and its agent answers. Batch takes
#: IDLE and RUNNING only; Shoal takes the states of a node someone wants to look into as well (taken out
#: of scheduling, its start task failed, unusable): that is what node users are for. A deletion is taken
#: in every state (taking access away is never refused): the node applies it when its agent next joins.
USABLE_STATES: Final = frozenset(
    {
        pool_pb2.NODE_STATE_IDLE,
        pool_pb2.NODE_STATE_RUNNING,
        pool_pb2.NODE_STATE_OFFLINE,
        pool_pb2.NODE_STATE_START_TASK_FAILED,
        pool_pb2.NODE_STATE_UNUSABLE,
    }
)
_STATE_REASONS: Final = {
    pool_pb2.NODE_STATE_CREATING: "NODE_BEING_CREATED",
    pool_pb2.NODE_STATE_STARTING: "NODE_BEING_STARTED",
    pool_pb2.NODE_STATE_WAITING_FOR_START_TASK: "NODE_BEING_STARTED",
    pool_pb2.NODE_STATE_REBOOTING: "NODE_BEING_REBOOTED",
    pool_pb2.NODE_STATE_REIMAGING: "NODE_BEING_REIMAGED",
    pool_pb2.NODE_STATE_LEAVING_POOL: "NODE_LEAVING_POOL",
}


def state_refusal(state: int) -> tuple[str, str] | None:
    """(reason, message) when a node in `state` takes no new or changed users; None when it does."""
    if state in USABLE_STATES:
        return None
    name = pool_pb2.NodeState.Name(state) if state in pool_pb2.NodeState.values() else str(state)
    reason = _STATE_REASONS.get(state, "NODE_NOT_READY")
    return reason, (
        f"the node is {name.removeprefix('NODE_STATE_')}: users are added and changed only on a node that is "
        "IDLE, RUNNING, OFFLINE, START_TASK_FAILED or UNUSABLE"
    )
