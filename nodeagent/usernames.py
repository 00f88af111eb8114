"""The names of the Linux users a node makes for tasks: prefixed, bounded, and unique to what they stand for.

Every name is `<prefix>-<readable>-<digest>`: the prefix (`shoal` unless the operator sets another) keeps
them apart from the machine's own users, the readable part says what they are for (the pool, then the
account or the task slot), and the digest (8 hex digits of a SHA-256 of what the name stands for) keeps
two of them apart when the readable part is cut short or folded (pool ids are letters, digits, '-' and
'_', unique ignoring case; Linux user names are best lowercase). Linux takes at most 32 characters.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

#: The longest Linux user name (`useradd` refuses longer ones; `ps` and `ls` cut them anyway).
MAX_USER_NAME: Final = 32
DIGEST_LENGTH: Final = 8
DEFAULT_PREFIX: Final = "shoal"
#: A prefix the operator may choose: short, so that the readable part keeps some room.
PREFIX_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,11}$")
_UNSAFE: Final = re.compile(r"[^a-z0-9_-]")


class BadPrefix(ValueError):
    """The user name prefix is not a short lowercase name."""


def check_prefix(prefix: str) -> str:
    """`prefix` when it can start a user name (1-12 lowercase letters, digits or '_'); else BadPrefix."""
    if not PREFIX_RE.match(prefix):
        raise BadPrefix(f"user name prefix {prefix!r} must be 1 to 12 lowercase letters, digits or '_'")
    return prefix


def _name(prefix: str, readable: str, *identity: str) -> str:
    digest = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:DIGEST_LENGTH]
    room = MAX_USER_NAME - len(prefix) - len(digest) - 2
    part = _UNSAFE.sub("_", readable.lower())[:room].strip("-")
    return f"{prefix}-{part}-{digest}" if part else f"{prefix}-{digest}"


def pool_user(prefix: str, pool_id: str) -> str:
    """The non-admin auto user of scope POOL of `pool_id` (one per pool, on every node of the machine)."""
    return _name(prefix, pool_id, "pool", pool_id.lower())


def task_user(prefix: str, pool_id: str, node_root: str, slot: int) -> str:
    """Task-scope auto user number `slot` of the node whose root is `node_root`: the root is part of it,
    so that two nodes on one machine (local agents) never hand out the same user."""
    return _name(prefix, f"{pool_id}-t{slot}", "task", pool_id.lower(), node_root, str(slot))


def account_user(prefix: str, pool_id: str, account: str) -> str:
    """The node's user for the pool's named user account `account`."""
    return _name(prefix, f"{pool_id}-{account}", "account", pool_id.lower(), account)
