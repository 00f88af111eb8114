"""The pure parts of accounts: names, keys, principals and quota checks."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from shoal.server.domain.errors import QuotaExceeded
from shoal.server.domain.ids import DEFAULT_ACCOUNT as DEFAULT_ACCOUNT  # (re-exported)

#: Batch's rule for account names: 3 to 24 lowercase letters and digits.
ACCOUNT_ID_RE = re.compile(r"^[a-z0-9]{3,24}$")
#: The administrator's principal name: never a valid account id (it has an underscore).
ADMIN = "_admin"
#: Bytes of randomness in a key (Batch's keys are 64 bytes, base64).
KEY_BYTES = 64


def account_id_problem(value: str) -> str | None:
    """Why `value` is not a valid account id, or None."""
    if not ACCOUNT_ID_RE.match(value):
        return "must be 3 to 24 lowercase letters and digits"
    return None


def new_key() -> str:
    """A fresh account or administrator key: 64 random bytes, base64 (the shape of a Batch key)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


class PrincipalKind(Enum):
    """Who a request comes from."""

    #: The administrator credential: manages accounts, holds no resources.
    ADMIN = "admin"
    #: An account key (primary or secondary).
    ACCOUNT = "account"
    #: A task's credential: acts for its node's account, nothing more.
    TASK = "task"
    #: A plaintext server's caller: the default account, and administration too (no credentials exist).
    ANYONE = "anyone"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    kind: PrincipalKind
    #: The account whose resources the caller may touch ("" for the administrator).
    account: str

    @property
    def may_administer(self) -> bool:
        """Whether the caller may manage accounts."""
        return self.kind in (PrincipalKind.ADMIN, PrincipalKind.ANYONE)

    @property
    def holds_resources(self) -> bool:
        """Whether the caller acts for an account (pools, jobs, tasks, storage)."""
        return self.kind is not PrincipalKind.ADMIN


ANYONE = Principal(PrincipalKind.ANYONE, DEFAULT_ACCOUNT)


@dataclass(frozen=True)
class Quotas:
    """What one account may hold at once; 0 means no limit."""

    max_pools: int = 0
    max_nodes: int = 0
    max_active_jobs: int = 0


@dataclass(frozen=True)
class Usage:
    """What one account holds now."""

    pools: int = 0
    nodes: int = 0
    active_jobs: int = 0


def quota_refusal(
    account: str, quotas: Quotas, usage: Usage, *, pools: int = 0, nodes: int = 0, jobs: int = 0
) -> QuotaExceeded | None:
    """The refusal for adding `pools`, `nodes` and `jobs` to what `account` holds, or None when they fit."""
    checks = (
        ("POOL_QUOTA_REACHED", "pools", quotas.max_pools, usage.pools, pools),
        ("NODE_QUOTA_REACHED", "nodes", quotas.max_nodes, usage.nodes, nodes),
        ("ACTIVE_JOB_QUOTA_REACHED", "active jobs", quotas.max_active_jobs, usage.active_jobs, jobs),
    )
    for reason, what, limit, held, more in checks:
        if limit and more > 0 and held + more > limit:
            return QuotaExceeded(
                reason,
                f"account {account!r} may hold at most {limit} {what}; it holds {held} and this asks for {more} more",
                metadata={"limit": str(limit), "held": str(held), "requested": str(more)},
            )
    return None
