"""Accounts: ``client.accounts`` (the administrator's: connect with ``Client.connect(admin=True)``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from shoal.v1 import account_pb2

from ._rpc import PAGE_SIZE, Rpc

__all__ = ["Account", "AccountKeys", "AccountQuotas", "AccountsAPI"]


@dataclass(frozen=True)
class AccountQuotas:
    """What an account may hold at once; 0 means no limit."""

    max_pools: int = 0
    max_nodes: int = 0
    max_active_jobs: int = 0

    def to_proto(self) -> account_pb2.AccountQuotas:
        return account_pb2.AccountQuotas(
            max_pools=self.max_pools, max_nodes=self.max_nodes, max_active_jobs=self.max_active_jobs
        )


@dataclass(frozen=True)
class Account:
    """A tenant, with its quotas and what it holds now."""

    id: str
    quotas: AccountQuotas
    creation_time: datetime | None
    pools: int
    nodes: int
    active_jobs: int

    @classmethod
    def from_proto(cls, msg: account_pb2.Account) -> Account:
        q = msg.quotas
        return cls(
            id=msg.id,
            quotas=AccountQuotas(q.max_pools, q.max_nodes, q.max_active_jobs),
            creation_time=msg.creation_time.ToDatetime() if msg.HasField("creation_time") else None,
            pools=msg.pools,
            nodes=msg.nodes,
            active_jobs=msg.active_jobs,
        )


@dataclass(frozen=True)
class AccountKeys:
    """An account's two keys (either one authenticates)."""

    account: str
    primary: str = field(repr=False)
    secondary: str = field(repr=False)


def _keys(msg: account_pb2.AccountKeys) -> AccountKeys:
    return AccountKeys(msg.account, msg.primary, msg.secondary)


class AccountsAPI:
    """Accounts, their keys and quotas: ``client.accounts`` (administrator only)."""

    def __init__(self, rpc: Rpc):
        self._rpc = rpc

    def create(self, id: str, quotas: AccountQuotas | None = None) -> Account:
        """A new account with two new keys (read them with :meth:`keys`)."""
        request = account_pb2.CreateAccountRequest(
            account=account_pb2.Account(id=id, quotas=(quotas or AccountQuotas()).to_proto())
        )
        return Account.from_proto(self._rpc.unary(self._rpc.accounts.CreateAccount, request))

    def get(self, id: str) -> Account:
        """The account ``id``."""
        request = account_pb2.GetAccountRequest(name=f"accounts/{id}")
        return Account.from_proto(self._rpc.unary(self._rpc.accounts.GetAccount, request))

    def list(self) -> Iterator[Account]:
        """Every account."""
        for msg in self._rpc.pages(
            self._rpc.accounts.ListAccounts,
            lambda token: account_pb2.ListAccountsRequest(page_size=PAGE_SIZE, page_token=token),
            "accounts",
        ):
            yield Account.from_proto(msg)

    def set_quotas(self, id: str, quotas: AccountQuotas) -> Account:
        """Replace the account's quotas."""
        request = account_pb2.SetAccountQuotasRequest(name=f"accounts/{id}", quotas=quotas.to_proto())
        return Account.from_proto(self._rpc.unary(self._rpc.accounts.SetAccountQuotas, request))

    def keys(self, id: str) -> AccountKeys:
        """The account's primary and secondary keys."""
        request = account_pb2.GetAccountKeysRequest(name=f"accounts/{id}")
        return _keys(self._rpc.unary(self._rpc.accounts.GetAccountKeys, request))

    def regenerate_key(self, id: str, which: str = "primary") -> AccountKeys:
        """Replace the ``primary`` or ``secondary`` key; the other keeps working."""
        names = {"primary": account_pb2.ACCOUNT_KEY_NAME_PRIMARY, "secondary": account_pb2.ACCOUNT_KEY_NAME_SECONDARY}
        if which not in names:
            raise ValueError("which must be 'primary' or 'secondary'")
        request = account_pb2.RegenerateAccountKeyRequest(name=f"accounts/{id}", key_name=names[which])
        return _keys(self._rpc.unary(self._rpc.accounts.RegenerateAccountKey, request))

    def delete(self, id: str) -> None:
        """Delete an account that holds nothing."""
        self._rpc.unary(self._rpc.accounts.DeleteAccount, account_pb2.DeleteAccountRequest(name=f"accounts/{id}"))
