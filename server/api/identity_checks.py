"""Field checks for user identities (of tasks, job tasks, start tasks) and a pool's user accounts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from shoal.v1 import common_pb2, identity_pb2, pool_pb2

Violations = list[tuple[str, str]]

#: A user account's name: a portable Linux user name (lowercase, as `useradd` takes by default), at most
#: Batch's 20 characters.
ACCOUNT_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,19}$")
MAX_ACCOUNT_NAME = 20
#: User accounts per pool.
MAX_USER_ACCOUNTS = 64
#: A named account's uid and gid: above the range Linux distributions give their system users (so that an
#: account never takes the id of one), below 2**31 - 1 (which some tools read as -1 when signed).
MIN_ACCOUNT_ID = 1000
MAX_ACCOUNT_ID = 2_147_483_646


class PoolAccounts(NamedTuple):
    """What a job's tasks are checked against of its pool, when the pool is known (a job may name a pool
    made later): the names of its user accounts, and its container configuration (None: it has none, and
    a task may not name an image; see `shoal.server.api.container_checks`)."""

    pool_id: str
    names: frozenset[str]
    containers: common_pb2.ContainerConfiguration | None = None


def pool_accounts(pool: pool_pb2.Pool) -> PoolAccounts:
    """The names of `pool`'s user accounts, and its container configuration."""
    containers = pool.container_configuration if pool.HasField("container_configuration") else None
    return PoolAccounts(pool.id, frozenset(a.name for a in pool.user_accounts), containers)


def _check_elevation(value: int, field: str) -> Violations:
    if value in identity_pb2.ElevationLevel.DESCRIPTOR.values_by_number:
        return []
    names = ", ".join(v.name for v in identity_pb2.ElevationLevel.DESCRIPTOR.values)
    return [(field, f"must be one of {names} (got {value})")]


def _check_id(parent: identity_pb2.LinuxUserConfiguration, name: str, field: str) -> Violations:
    if not parent.HasField(name):  # type: ignore[arg-type]
        return []
    value = getattr(parent, name)
    if MIN_ACCOUNT_ID <= value <= MAX_ACCOUNT_ID:
        return []
    return [(f"{field}.{name}", f"must be between {MIN_ACCOUNT_ID} and {MAX_ACCOUNT_ID} (got {value})")]


def check_user_accounts(accounts: Iterable[identity_pb2.UserAccount], field: str) -> Violations:
    """A pool's user accounts: valid Linux names, none twice, ids in range and given together, no uid twice."""
    out: Violations = []
    accounts = list(accounts)
    if len(accounts) > MAX_USER_ACCOUNTS:
        return [(field, f"at most {MAX_USER_ACCOUNTS} user accounts")]
    names: dict[str, int] = {}
    uids: dict[int, int] = {}
    for i, a in enumerate(accounts):
        here = f"{field}[{i}]"
        if not a.name:
            out.append((f"{here}.name", "is required"))
        elif not ACCOUNT_NAME_RE.match(a.name):
            out.append(
                (
                    f"{here}.name",
                    f"must be a Linux user name: 1 to {MAX_ACCOUNT_NAME} lowercase letters, digits, '_' or '-', "
                    "starting with a letter or '_'",
                )
            )
        elif a.name in names:
            out.append((f"{here}.name", f"{a.name!r} is given twice (also {field}[{names[a.name]}])"))
        else:
            names[a.name] = i
        out += _check_elevation(a.elevation_level, f"{here}.elevation_level")
        if a.HasField("linux_user_configuration"):
            linux = a.linux_user_configuration
            lhere = f"{here}.linux_user_configuration"
            out += _check_id(linux, "uid", lhere) + _check_id(linux, "gid", lhere)
            if linux.HasField("uid") != linux.HasField("gid"):
                out.append((lhere, "set uid and gid together, or neither"))
            if linux.HasField("uid"):
                if linux.uid in uids:
                    out.append((f"{lhere}.uid", f"{linux.uid} is also {field}[{uids[linux.uid]}]'s uid"))
                uids.setdefault(linux.uid, i)
    return out


def check_user_identity(
    identity: identity_pb2.UserIdentity, field: str, accounts: PoolAccounts | None = None
) -> Violations:
    """A user identity: exactly one of a user name or an auto user; the name one of the pool's accounts
    (when the pool is known: `accounts`); enums known."""
    kind = identity.WhichOneof("identity")
    if kind is None:
        return [(field, "set user_name or auto_user (or leave user_identity unset for the default)")]
    if kind == "user_name":
        name = identity.user_name
        if not name:
            return [(f"{field}.user_name", "is required")]
        if accounts is not None and name not in accounts.names:
            known = ", ".join(sorted(accounts.names)) or "none"
            return [
                (
                    f"{field}.user_name",
                    f"{name!r} is not one of the user accounts of pool {accounts.pool_id!r} ({known})",
                )
            ]
        return []
    auto = identity.auto_user
    out: Violations = []
    if auto.scope not in identity_pb2.AutoUserScope.DESCRIPTOR.values_by_number:
        names = ", ".join(v.name for v in identity_pb2.AutoUserScope.DESCRIPTOR.values)
        out.append((f"{field}.auto_user.scope", f"must be one of {names} (got {auto.scope})"))
    out += _check_elevation(auto.elevation_level, f"{field}.auto_user.elevation_level")
    return out


def check_identity_of(parent: object, field: str, accounts: PoolAccounts | None = None) -> Violations:
    """The `user_identity` of a task, job task or start task message `parent`, when it has one."""
    if not parent.HasField("user_identity"):  # type: ignore[attr-defined]
        return []
    return check_user_identity(parent.user_identity, f"{field}.user_identity", accounts)  # type: ignore[attr-defined]
