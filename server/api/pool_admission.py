"""What a new pool must pass against its account, beyond its own fields: one check for CreatePool and for
the auto pool a job has made (`shoal.server.lifecycle.autopools`, which turns a refusal into the job's
scheduling error by its reason)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shoal.server.accounts.model import Quotas
from shoal.server.api import tenancy
from shoal.server.applications import model as app_model
from shoal.server.certificates import model as certificates
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import invalid_input
from shoal.v1 import common_pb2, pool_pb2

#: Field violations of application package references, from (account, references, field).
PackageProblems = Callable[[str, Sequence[common_pb2.ApplicationPackageReference], str], list[tuple[str, str]]]

#: The field a pool's package references are named by in refusals.
PACKAGES_FIELD = "pool.application_package_references"


def check_packages(
    account: str,
    refs: Sequence[common_pb2.ApplicationPackageReference],
    package_problems: PackageProblems | None,
) -> None:
    """Refuse references that do not resolve to ACTIVE packages of the account (Batch's 409
    InvalidApplicationPackageReferences: FAILED_PRECONDITION INVALID_APPLICATION_PACKAGE_REFERENCES), or
    too many of them (INVALID_ARGUMENT); `package_problems` None: a server without applications."""
    if not refs:
        return
    if package_problems is None:
        raise invalid_input(app_model.INVALID_REFERENCES, [(PACKAGES_FIELD, "this server keeps no applications")])
    v = package_problems(account, refs, PACKAGES_FIELD)
    if v:
        raise app_model.invalid_references(v)


def admit_pool(
    cp: ControlPlane,
    account: str,
    pool: pool_pb2.Pool,
    quotas: Quotas,
    cert_states: dict[str, int],
    package_problems: PackageProblems | None = None,
) -> None:
    """Refuse `pool` for `account`, or normalise it in place:

    - its certificate references name certificates of the account (INVALID_CERTIFICATE_REFERENCE), and are
      stored normalised;
    - its application package references resolve (`check_packages`; an auto pool's job then gets
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
    check_packages(account, pool.application_package_references, package_problems)
    nodes = pool.target_nodes + pool.target_low_priority_nodes
    tenancy.check_quota(cp, account, quotas, pools=1, nodes=nodes)


def auto_pool_admission(
    cp: ControlPlane,
    quotas: tenancy.QuotasOf,
    cert_states: Callable[[str], dict[str, int]],
    package_problems: PackageProblems | None = None,
) -> Callable[[str, pool_pb2.Pool], None]:
    """`admit_pool` as the auto pools room calls it (`AutoPools.admit`)."""

    def admit(account: str, pool: pool_pb2.Pool) -> None:
        admit_pool(cp, account, pool, quotas(account), cert_states(account), package_problems)

    return admit
