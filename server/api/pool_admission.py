"""What a new pool must pass against its account, beyond its own fields: one check for CreatePool and for
the auto pool a job has made (`shoal.server.lifecycle.autopools`, which turns a refusal into the job's
scheduling error by its reason)."""

from __future__ import annotations

from collections.abc import Callable

from shoal.server.accounts.model import Quotas
from shoal.server.api import tenancy
from shoal.server.certificates import model as certificates
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import invalid_input
from shoal.v1 import pool_pb2


def admit_pool(
    cp: ControlPlane, account: str, pool: pool_pb2.Pool, quotas: Quotas, cert_states: dict[str, int]
) -> None:
    """Refuse `pool` for `account`, or normalise it in place:

    - its certificate references name certificates of the account (INVALID_CERTIFICATE_REFERENCE), and are
      stored normalised;
    - (application package references are checked here too, refused with
      INVALID_APPLICATION_PACKAGE_REFERENCE: an auto pool's job then gets
      InvalidApplicationPackageReferencesInAutoPool);
    - the account's pool and node quotas hold (POOL_QUOTA_REACHED, NODE_QUOTA_REACHED).
    """
    refs = pool.certificate_references
    if refs:
        v = certificates.reference_problems(refs, cert_states)
        if v:
            raise invalid_input("INVALID_CERTIFICATE_REFERENCE", v)
        normalized = certificates.normalized_references(refs)
        del refs[:]
        refs.extend(normalized)
    nodes = pool.target_nodes + pool.target_low_priority_nodes
    tenancy.check_quota(cp, account, quotas, pools=1, nodes=nodes)


def auto_pool_admission(
    cp: ControlPlane, quotas: tenancy.QuotasOf, cert_states: Callable[[str], dict[str, int]]
) -> Callable[[str, pool_pb2.Pool], None]:
    """`admit_pool` as the auto pools room calls it (`AutoPools.admit`)."""

    def admit(account: str, pool: pool_pb2.Pool) -> None:
        admit_pool(cp, account, pool, quotas(account), cert_states(account))

    return admit
