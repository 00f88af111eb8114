"""Which account a request's resources belong to: an account sees and touches only its own.

A request naming a pool or job of another account is answered exactly as if it did not exist
(NOT_FOUND, with the same reason and message the servicer gives for a missing one), so nothing of
another account's data, not even its state, reaches the caller. Ids stay unique across the cluster:
creating a pool or job whose id another account uses is refused with ALREADY_EXISTS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.server.accounts.model import DEFAULT_ACCOUNT, Principal, Quotas, Usage, quota_refusal
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import NotFound
from shoal.server.domain.ids import key
from shoal.v1 import job_pb2, pool_pb2

#: Request fields holding a resource name ("pools/p", "jobs/j/tasks/t"), and messages holding one.
_NAME_FIELDS = ("name", "parent")
_NAMED_MESSAGES = ("job", "task")
#: Jobs that no longer count against an account's active jobs.
_INACTIVE_JOBS = frozenset({job_pb2.JOB_STATE_COMPLETED, job_pb2.JOB_STATE_DELETING})


#: The quotas of an account, by id.
QuotasOf = Callable[[str], Quotas]


def no_quotas(account: str) -> Quotas:
    """No limits (a plaintext server, or a servicer built without accounts)."""
    return Quotas()


def scoped_request_id(account: str, request_id: str) -> str:
    """A request id as the control plane keeps it: one account's retried request never finds another's."""
    return f"{account}/{request_id}" if request_id else ""


def owner(proto: Any) -> str:
    """The account a pool's or job's proto belongs to (records from before accounts: the default one)."""
    return proto.account or DEFAULT_ACCOUNT


def references(request: Any) -> list[tuple[str, str]]:
    """The (collection, id) pairs of existing pools and jobs that `request` acts on or points at."""
    refs: list[tuple[str, str]] = []
    names: list[str] = []
    fields = request.DESCRIPTOR.fields_by_name
    for f in _NAME_FIELDS:
        if f in fields:
            names.append(getattr(request, f))
    for m in _NAMED_MESSAGES:
        if m in fields and request.HasField(m):
            msg = getattr(request, m)
            if "name" in msg.DESCRIPTOR.fields_by_name:
                names.append(msg.name)
    # UpdatePool names its pool in the pool it sends (by name, or by id).
    if isinstance(request, pool_pb2.UpdatePoolRequest):
        names.append(request.pool.name or f"pools/{request.pool.id}")
    for name in names:
        parts = name.split("/", 2)
        if len(parts) >= 2 and parts[0] in ("pools", "jobs") and parts[1]:
            refs.append((parts[0], parts[1]))
    # A request about a pool by its id (a join token for it).
    if "pool_id" in fields and request.pool_id:
        refs.append(("pools", request.pool_id))
    # A job points at its pool: a job may not be put on another account's pool.
    if "job" in fields and request.HasField("job") and isinstance(request.job, job_pb2.Job) and request.job.pool_id:
        refs.append(("pools", request.job.pool_id))
    return refs


def check_references(principal: Principal, cp: ControlPlane, request: Any) -> None:
    """Refuse (NotFound, as for a missing resource) a request naming another account's pool or job."""
    for collection, rid in references(request):
        if collection == "pools":
            pool = cp.pools.get(key(rid))
            if pool is not None and owner(pool.proto) != principal.account:
                raise NotFound("POOL_NOT_FOUND", f"pool {rid!r} does not exist")
        else:
            job = cp.jobs.get(key(rid))
            if job is not None and owner(job.proto) != principal.account:
                raise NotFound("JOB_NOT_FOUND", f"job {rid!r} does not exist")


def usage(cp: ControlPlane, account: str) -> Usage:
    """What `account` holds now: pools, the sum of their target nodes, and jobs and job schedules not
    completed (Batch's quota of "active jobs and job schedules")."""
    pools = [p for p in cp.pools.values() if owner(p.proto) == account]
    active = sum(1 for j in cp.jobs.values() if owner(j.proto) == account and j.proto.state not in _INACTIVE_JOBS)
    active += cp.schedules.usage(account)
    return Usage(
        pools=len(pools),
        nodes=sum(p.proto.target_nodes + p.proto.target_low_priority_nodes for p in pools),
        active_jobs=active,
    )


def nodes_left(cp: ControlPlane, account: str, quotas: Quotas) -> int | None:
    """How many more target nodes `account`'s pools may have (None: no node quota)."""
    if not quotas.max_nodes:
        return None
    return max(0, quotas.max_nodes - usage(cp, account).nodes)


def check_quota(
    cp: ControlPlane, account: str, quotas: Quotas, *, pools: int = 0, nodes: int = 0, jobs: int = 0
) -> None:
    """Refuse (QuotaExceeded) growth that would take `account` past its quotas."""
    if not (quotas.max_pools or quotas.max_nodes or quotas.max_active_jobs):
        return
    refusal = quota_refusal(account, quotas, usage(cp, account), pools=pools, nodes=nodes, jobs=jobs)
    if refusal is not None:
        raise refusal
