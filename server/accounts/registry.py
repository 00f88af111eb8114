"""The accounts of a cluster: kept in the store with their keys sealed under the server secret.

Keys are encrypted at rest, not hashed: a later SharedKey (HMAC-signed) API must be able to recompute a
request's signature with the key itself. The unsealed keys live only in this process's memory; they are
returned only to the administrator (`keys`), never logged, never put in an error.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from shoal.clock import Clock
from shoal.server.accounts.model import (
    ADMIN,
    Principal,
    PrincipalKind,
    Quotas,
    account_id_problem,
    new_key,
)
from shoal.server.domain.errors import AlreadyExists, NotFound, Unauthenticated, invalid_input
from shoal.server.store.base import Delete, Row, Store, StoredRow

TABLE = "accounts"
#: The prefix of a task's credential (see `task_credential`).
TASK_CREDENTIAL_PREFIX = "st1"
_UNAUTHENTICATED = (
    "the request's credentials match no account "
    "(send the account's name in 'shoal-account' and its key as 'authorization: Bearer KEY')"
)


class Sealer(Protocol):
    """Authenticated encryption and a MAC under the server's secret (`shoal.certs.secret.ServerSecret`)."""

    def seal(self, plaintext: bytes) -> bytes: ...

    def unseal(self, blob: bytes) -> bytes: ...

    def mac(self, data: bytes) -> bytes: ...


@dataclass
class AccountRec:
    """One account: its id, quotas, creation time and keys (unsealed, in memory only)."""

    id: str
    quotas: Quotas
    created: datetime
    primary: str = field(repr=False)
    secondary: str = field(repr=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AccountRegistry:
    """Every account and the administrator credential; authenticates requests."""

    def __init__(self, store: Store, sealer: Sealer, clock: Clock) -> None:
        self.store = store
        self.sealer = sealer
        self.clock = clock
        self.accounts: dict[str, AccountRec] = {}
        self._admin_key = ""

    # -- loading and persistence ------------------------------------------------------------------
    def load(self, rows: Iterable[StoredRow]) -> None:
        """Read the accounts table (at start-up)."""
        for row in rows:
            blob = json.loads(row.data)
            if row.key == ADMIN:
                self._admin_key = self._unseal(blob["key"])
                continue
            q = blob.get("quotas", {})
            self.accounts[row.key] = AccountRec(
                id=row.key,
                quotas=Quotas(int(q.get("max_pools", 0)), int(q.get("max_nodes", 0)), int(q.get("max_active_jobs", 0))),
                created=datetime.fromisoformat(blob["created"]),
                primary=self._unseal(blob["primary"]),
                secondary=self._unseal(blob["secondary"]),
            )

    def _unseal(self, text: str) -> str:
        return self.sealer.unseal(base64.b64decode(text)).decode()

    def _seal(self, key: str) -> str:
        return _b64(self.sealer.seal(key.encode()))

    def _row(self, rec: AccountRec) -> Row:
        q = rec.quotas
        blob = {
            "quotas": {"max_pools": q.max_pools, "max_nodes": q.max_nodes, "max_active_jobs": q.max_active_jobs},
            "created": rec.created.isoformat(),
            "primary": self._seal(rec.primary),
            "secondary": self._seal(rec.secondary),
        }
        return Row(TABLE, rec.id, json.dumps(blob).encode())

    # -- the administrator --------------------------------------------------------------------------
    async def ensure_admin_key(self) -> str:
        """The administrator key, made (and stored sealed) on first use."""
        if not self._admin_key:
            key = new_key()
            await self.store.commit([Row(TABLE, ADMIN, json.dumps({"key": self._seal(key)}).encode())])
            self._admin_key = key
        return self._admin_key

    # -- accounts -----------------------------------------------------------------------------------
    def get(self, account_id: str) -> AccountRec:
        """The account, or NotFound."""
        rec = self.accounts.get(account_id)
        if rec is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"account {account_id!r} does not exist")
        return rec

    async def create(self, account_id: str, quotas: Quotas) -> AccountRec:
        """A new account with two fresh keys."""
        problem = account_id_problem(account_id)
        if problem:
            raise invalid_input("INVALID_ACCOUNT", [("account.id", problem)])
        if account_id in self.accounts:
            raise AlreadyExists("ACCOUNT_EXISTS", f"account {account_id!r} exists already")
        rec = AccountRec(account_id, quotas, self.clock.now(), new_key(), new_key())
        # Taken before the commit's await: a second create of the same id is refused, not doubled.
        self.accounts[account_id] = rec
        try:
            await self.store.commit([self._row(rec)])
        except BaseException:
            self.accounts.pop(account_id, None)
            raise
        return rec

    async def ensure(self, account_id: str) -> AccountRec:
        """The account, made if it does not exist (the default account of `shoal up`)."""
        rec = self.accounts.get(account_id)
        return rec if rec is not None else await self.create(account_id, Quotas())

    async def set_quotas(self, account_id: str, quotas: Quotas) -> AccountRec:
        """Replace the account's quotas (what it holds already stays; only growth is refused)."""
        rec = self.get(account_id)
        changed = replace(rec, quotas=quotas)
        await self.store.commit([self._row(changed)])
        self.accounts[account_id] = changed
        return changed

    async def regenerate(self, account_id: str, which: str) -> AccountRec:
        """Replace the `primary` or `secondary` key; the other keeps working."""
        rec = self.get(account_id)
        fresh = new_key()
        changed = replace(rec, primary=fresh) if which == "primary" else replace(rec, secondary=fresh)
        await self.store.commit([self._row(changed)])
        self.accounts[account_id] = changed
        return changed

    async def delete(self, account_id: str) -> None:
        """Forget the account and its keys (the caller checked that it holds nothing)."""
        self.get(account_id)
        await self.store.commit([Delete(TABLE, account_id)])
        self.accounts.pop(account_id, None)

    # -- authentication -----------------------------------------------------------------------------
    def authenticate(self, account: str, secret: str, node_of_account: Callable[[str, str, str], bool]) -> Principal:
        """The principal `account` + `secret` (a key or a task credential) stand for, or Unauthenticated.

        `node_of_account(account, pool, node)` says whether a task credential's node still belongs to a
        pool of that account (a removed node's tasks lose it).
        """
        if not secret:
            raise Unauthenticated("UNAUTHENTICATED", "the request carries no credentials ('authorization: Bearer KEY')")
        if account == ADMIN:
            if self._admin_key and hmac.compare_digest(secret.encode(), self._admin_key.encode()):
                return Principal(PrincipalKind.ADMIN, "")
            raise Unauthenticated("UNAUTHENTICATED", _UNAUTHENTICATED)
        if secret.startswith(TASK_CREDENTIAL_PREFIX + "."):
            claim = self.check_task_credential(secret)
            if claim is not None and claim[0] == account and node_of_account(*claim):
                return Principal(PrincipalKind.TASK, account)
            raise Unauthenticated("UNAUTHENTICATED", _UNAUTHENTICATED)
        rec = self.accounts.get(account)
        if rec is not None:
            given = secret.encode()
            # Both compared, whichever matches: the time taken says nothing about which key it was.
            primary = hmac.compare_digest(given, rec.primary.encode())
            secondary = hmac.compare_digest(given, rec.secondary.encode())
            if primary or secondary:
                return Principal(PrincipalKind.ACCOUNT, account)
        raise Unauthenticated("UNAUTHENTICATED", _UNAUTHENTICATED)

    def task_credential(self, account: str, pool: str, node: str) -> str:
        """The credential a node's tasks get: it acts for `account` while `node` is in `pool`, nothing else.

        Ids have no dots, so the parts read back unambiguously.
        """
        body = f"{TASK_CREDENTIAL_PREFIX}.{account}.{pool}.{node}"
        mac = base64.urlsafe_b64encode(self.sealer.mac(body.encode())).decode().rstrip("=")
        return f"{body}.{mac}"

    def check_task_credential(self, credential: str) -> tuple[str, str, str] | None:
        """(account, pool, node) of a task credential this server made, or None."""
        parts = credential.split(".")
        if len(parts) != 5 or parts[0] != TASK_CREDENTIAL_PREFIX:
            return None
        expected = self.task_credential(parts[1], parts[2], parts[3])
        if not hmac.compare_digest(expected.encode(), credential.encode()):
            return None
        return parts[1], parts[2], parts[3]
