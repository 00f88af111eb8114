"""AccountService: accounts, their keys and quotas (the administrator's; see `auth.Policy.ADMIN`)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf import timestamp_pb2

from shoal.server.accounts.model import Quotas, account_id_problem
from shoal.server.accounts.registry import AccountRec, AccountRegistry
from shoal.server.api import tenancy
from shoal.server.api.errors import failed_precondition, invalid, rpc_errors
from shoal.server.api.paging import page
from shoal.server.controlplane import ControlPlane
from shoal.v1 import account_pb2, account_pb2_grpc

Ctx = grpc.aio.ServicerContext

#: The most a quota may say (a bound, so a typo does not read as "no limit" after an overflow).
MAX_QUOTA = 1_000_000


def _account_id(name: str, field: str = "name") -> str:
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "accounts":
        raise invalid("INVALID_NAME", [(field, "must look like 'accounts/{account}'")])
    problem = account_id_problem(parts[1])
    if problem:
        raise invalid("INVALID_NAME", [(field, f"account id {problem}")])
    return parts[1]


def _quotas(q: account_pb2.AccountQuotas, field: str) -> Quotas:
    violations = [
        (f"{field}.{name}", f"must be between 0 (no limit) and {MAX_QUOTA}")
        for name in ("max_pools", "max_nodes", "max_active_jobs")
        if not 0 <= getattr(q, name) <= MAX_QUOTA
    ]
    if violations:
        raise invalid("INVALID_QUOTAS", violations)
    return Quotas(q.max_pools, q.max_nodes, q.max_active_jobs)


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    """Serves AccountService from the account registry."""

    def __init__(self, registry: AccountRegistry, cp: ControlPlane, holds_containers: Callable[[str], bool]) -> None:
        self.registry = registry
        self.cp = cp
        #: Whether an account still has storage containers or certificates (deleting it would orphan them).
        self.holds_containers = holds_containers

    def _message(self, rec: AccountRec) -> account_pb2.Account:
        used = tenancy.usage(self.cp, rec.id)
        created = timestamp_pb2.Timestamp()
        created.FromDatetime(rec.created)
        q = rec.quotas
        return account_pb2.Account(
            name=f"accounts/{rec.id}",
            id=rec.id,
            quotas=account_pb2.AccountQuotas(
                max_pools=q.max_pools, max_nodes=q.max_nodes, max_active_jobs=q.max_active_jobs
            ),
            creation_time=created,
            pools=used.pools,
            nodes=used.nodes,
            active_jobs=used.active_jobs,
        )

    @staticmethod
    def _keys(rec: AccountRec) -> account_pb2.AccountKeys:
        return account_pb2.AccountKeys(account=rec.id, primary=rec.primary, secondary=rec.secondary)

    @rpc_errors
    async def CreateAccount(self, request: account_pb2.CreateAccountRequest, context: Ctx) -> account_pb2.Account:
        quotas = _quotas(request.account.quotas, "account.quotas")
        rec = await self.registry.create(request.account.id, quotas)
        return self._message(rec)

    @rpc_errors
    async def GetAccount(self, request: account_pb2.GetAccountRequest, context: Ctx) -> account_pb2.Account:
        return self._message(self.registry.get(_account_id(request.name)))

    @rpc_errors
    async def ListAccounts(
        self, request: account_pb2.ListAccountsRequest, context: Ctx
    ) -> account_pb2.ListAccountsResponse:
        recs = sorted(self.registry.accounts.values(), key=lambda r: r.id)
        items, token = page(recs, request.page_size, request.page_token, "accounts")
        return account_pb2.ListAccountsResponse(accounts=[self._message(r) for r in items], next_page_token=token)

    @rpc_errors
    async def SetAccountQuotas(self, request: account_pb2.SetAccountQuotasRequest, context: Ctx) -> account_pb2.Account:
        account_id = _account_id(request.name)
        quotas = _quotas(request.quotas, "quotas")
        return self._message(await self.registry.set_quotas(account_id, quotas))

    @rpc_errors
    async def GetAccountKeys(self, request: account_pb2.GetAccountKeysRequest, context: Ctx) -> account_pb2.AccountKeys:
        return self._keys(self.registry.get(_account_id(request.name)))

    @rpc_errors
    async def RegenerateAccountKey(
        self, request: account_pb2.RegenerateAccountKeyRequest, context: Ctx
    ) -> account_pb2.AccountKeys:
        account_id = _account_id(request.name)
        which = {
            account_pb2.ACCOUNT_KEY_NAME_PRIMARY: "primary",
            account_pb2.ACCOUNT_KEY_NAME_SECONDARY: "secondary",
        }.get(request.key_name)
        if which is None:
            raise invalid("INVALID_KEY_NAME", [("key_name", "must be PRIMARY or SECONDARY")])
        return self._keys(await self.registry.regenerate(account_id, which))

    @rpc_errors
    async def DeleteAccount(
        self, request: account_pb2.DeleteAccountRequest, context: Ctx
    ) -> account_pb2.DeleteAccountResponse:
        account_id = _account_id(request.name)
        self.registry.get(account_id)
        used = tenancy.usage(self.cp, account_id)
        jobs = sum(1 for j in self.cp.jobs.values() if tenancy.owner(j.proto) == account_id)
        # (A schedule may hold no job yet: left behind, it would make jobs for an account that is gone.)
        schedules = any(tenancy.owner(s.proto) == account_id for s in self.cp.schedules.schedules.values())
        if used.pools or jobs or schedules or self.holds_containers(account_id):
            raise failed_precondition(
                "ACCOUNT_NOT_EMPTY",
                f"account {account_id!r} still holds pools, jobs, job schedules, storage containers, "
                "certificates or applications: delete them first",
            )
        await self.registry.delete(account_id)
        return account_pb2.DeleteAccountResponse()
