"""Auto pools, decided purely: a pool's id, who owns it, when it goes, and what a failure to make it
tells the job (Batch's `autoPoolSpecification` and job scheduling errors).

No state, no clock: the room (`shoal.server.lifecycle.autopools`) reads the records and applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from shoal.v1 import common_pb2, job_pb2, pool_pb2

J = job_pb2

#: Batch's limit on `auto_pool_id_prefix`.
MAX_PREFIX = 20
#: The longest pool id (as `shoal.server.domain.ids.ID_RE`).
MAX_POOL_ID = 64

#: A character a pool id may not hold.
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")

#: Batch's job scheduling error codes (the job completes with one of them).
QUOTA_REACHED: Final = "AutoPoolCreationFailedWithQuotaReached"
INVALID_PACKAGES: Final = "InvalidApplicationPackageReferencesInAutoPool"
INVALID_FORMULA: Final = "InvalidAutoScaleFormulaInAutoPool"
INVALID_CERTIFICATES: Final = "InvalidCertificatesInAutoPool"
UNKNOWN: Final = "Unknown"

#: The reason of a refusal to make the pool (as CreatePool would refuse it) → the job's scheduling error.
#: A refusal of application package references (`INVALID_APPLICATION_PACKAGE_REFERENCES`, made where
#: CreatePool checks them) maps here too.
_CODES: Mapping[str, str] = {
    "POOL_QUOTA_REACHED": QUOTA_REACHED,
    "NODE_QUOTA_REACHED": QUOTA_REACHED,
    "INVALID_AUTO_SCALE_FORMULA": INVALID_FORMULA,
    "INVALID_CERTIFICATE_REFERENCE": INVALID_CERTIFICATES,
    "INVALID_APPLICATION_PACKAGE_REFERENCES": INVALID_PACKAGES,
}


def scheduling_error(reason: str, message: str) -> job_pb2.JobSchedulingError:
    """The job's scheduling error when its auto pool could not be made for `reason` (a refusal's reason,
    e.g. ``POOL_QUOTA_REACHED``). The user's input or account is at fault unless the reason is unknown."""
    code = _CODES.get(reason, UNKNOWN)
    category = common_pb2.ERROR_CATEGORY_SERVER_ERROR if code == UNKNOWN else common_pb2.ERROR_CATEGORY_USER_ERROR
    return J.JobSchedulingError(
        category=category,
        code=code,
        message=message,
        details=[common_pb2.MetadataItem(name="reason", value=reason)],
    )


def lifetime(spec: job_pb2.AutoPoolSpecification) -> int:
    """The spec's pool lifetime (unspecified means JOB)."""
    return spec.pool_lifetime_option or J.POOL_LIFETIME_OPTION_JOB


def owner_of(job: job_pb2.Job) -> str:
    """Who owns the auto pool of `job` (a job with an auto pool spec): its schedule (``jobschedules/{id}``)
    for the JOB_SCHEDULE lifetime on a schedule's job, else the job itself (``jobs/{id}``)."""
    if lifetime(job.auto_pool_specification) == J.POOL_LIFETIME_OPTION_JOB_SCHEDULE and job.job_schedule_id:
        return f"jobschedules/{job.job_schedule_id}"
    return f"jobs/{job.id}"


def pool_id(prefix: str, owner_id: str, serial: int, taken: Callable[[str], bool]) -> str:
    """The id of a new auto pool: `prefix`, its owner's id (cut to fit) and `serial` (unique per owner
    made: the job's sequence number), e.g. ``render-frames-17``; a further ``-2``, ``-3``... only if a pool
    of that id exists already (`taken`); a character of the owner's id that no pool id may hold becomes
    ``-``. Deterministic: the same inputs give the same id."""
    tail = f"-{serial}"
    room = MAX_POOL_ID - len(prefix) - len(tail) - 4  # (4: room for a "-NNN" against a taken id)
    # (A schedule's job, `<schedule>:job-<n>`, has a character a pool id may not.)
    base = f"{prefix}{_NOT_ID.sub('-', owner_id[: max(room, 0)])}{tail}"
    candidate, n = base, 1
    while taken(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def new_pool(spec: job_pb2.AutoPoolSpecification, pool_id: str, owner: str, account: str) -> pool_pb2.Pool:
    """The pool to make from `spec.pool`: the given id, owner and account."""
    pool = pool_pb2.Pool()
    pool.CopyFrom(spec.pool)
    pool.id = pool_id
    pool.auto_pool_owner = owner
    pool.account = account
    return pool


def goes_with_job(job: job_pb2.Job, pool: pool_pb2.Pool) -> bool:
    """Whether `pool` is deleted now that `job` ended: it is the job's own auto pool (not its schedule's)
    and the job does not keep it alive."""
    return (
        bool(pool.auto_pool_owner)
        and pool.auto_pool_owner == f"jobs/{job.id}"
        and pool.state == pool_pb2.POOL_STATE_ACTIVE
        and not job.auto_pool_specification.keep_alive
    )


def goes_with_schedule(schedule_id: str, pool: pool_pb2.Pool, keep_alive: bool) -> bool:
    """Whether `pool` is deleted now that schedule `schedule_id` ended: it is the schedule's auto pool (and
    not being deleted already) and the schedule's job specification does not keep it alive."""
    return (
        pool.auto_pool_owner == f"jobschedules/{schedule_id}"
        and pool.state == pool_pb2.POOL_STATE_ACTIVE
        and not keep_alive
    )


@dataclass(frozen=True)
class Plan:
    """Where a job with an auto pool spec runs, decided before anything is made."""

    pool_id: str
    """The pool's id ("" when it could not be made)."""
    task_slots_per_node: int
    """Slots per node of that pool (what its job manager task must fit in)."""
    new_pool: pool_pb2.Pool | None = None
    """The pool to make with the job; None: an existing one (the schedule's), or none (a failure)."""
    failure: job_pb2.JobSchedulingError | None = None
    """Why the pool could not be made: the job then completes with this scheduling error."""


__all__ = [
    "INVALID_CERTIFICATES",
    "INVALID_FORMULA",
    "INVALID_PACKAGES",
    "MAX_PREFIX",
    "QUOTA_REACHED",
    "UNKNOWN",
    "Plan",
    "goes_with_job",
    "goes_with_schedule",
    "lifetime",
    "new_pool",
    "owner_of",
    "pool_id",
    "scheduling_error",
]
