"""UpdatePool as a pure decision: from a pool and a request with a field mask, the pool as it becomes, or a refusal.

No I/O, no clock: `server.lifecycle.pools` applies what `decide` returns through the kernel. The checks of
each field are CreatePool's (`server.api.validation.check_pool`, and certificate references against the
account's certificates), run on the pool as it would be, so that a field is held to the same rules
whichever call sets it.

As in Batch, a change of the start task or of the certificate references reaches no running node: a node
picks them up when its agent next joins (a restart, a reboot, a reimage, or a new node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shoal.server.api.validation import POOL_OUTPUT_ONLY, check_pool
from shoal.server.certificates import model as certificates
from shoal.server.domain.errors import FailedPrecondition, invalid_input
from shoal.server.domain.etags import check_etag
from shoal.v1 import pool_pb2 as P

#: The fields UpdatePool changes (the paths its update mask may name).
UPDATABLE_POOL_FIELDS = frozenset(
    {
        "display_name",
        "metadata",
        "start_task",
        "certificate_references",
        # (Deployed to every node of the pool at once: see `server.applications.deploy`.)
        "application_package_references",
        "target_nodes",
        "target_low_priority_nodes",
        "resize_timeout",
        # (Read by the scheduler for each pass: the next placements follow it.)
        "task_scheduling_policy",
    }
)
#: Fields a pool keeps from its creation (the nodes it made were made with them; a container
#: configuration is set at creation only, as in Batch).
FIXED_POOL_FIELDS = frozenset(
    {
        "id",
        "task_slots_per_node",
        "enable_inter_node_communication",
        "provider",
        "user_accounts",
        "container_configuration",
    }
)
#: Output-only fields (the server's to set).
OUTPUT_ONLY_POOL_FIELDS = frozenset(POOL_OUTPUT_ONLY)
#: The updatable fields that are lists, and those that are messages (the others are scalars).
_REPEATED = frozenset({"metadata", "certificate_references", "application_package_references"})
_MESSAGES = frozenset({"start_task", "resize_timeout", "task_scheduling_policy"})
#: The fields that size the pool.
TARGETS = ("target_nodes", "target_low_priority_nodes")
#: The mask path that means every updatable field (AIP-134's full replacement).
WILDCARD = "*"


@dataclass(frozen=True)
class PoolUpdate:
    """A decided update: the pool as it becomes, and what changed."""

    #: The whole pool after the update (a new message: the current one is left as it is).
    pool: P.Pool
    #: The fields the mask named (each set from the request, changed or not).
    fields: frozenset[str]
    #: The new (dedicated) target when `target_nodes` or `target_low_priority_nodes` changes (a resize, as
    #: ResizePool), else None.
    new_target: int | None


def mask_problems(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Field violations (on `update_mask`) of the paths of an update mask: each must name an updatable
    field of Pool, whole (`start_task`, not `start_task.command_line`)."""
    known = frozenset(f.name for f in P.Pool.DESCRIPTOR.fields)
    out: list[tuple[str, str]] = []
    for path in paths:
        top = path.split(".", 1)[0]
        if path == WILDCARD or path in UPDATABLE_POOL_FIELDS:
            continue
        if top in UPDATABLE_POOL_FIELDS:
            why = f"{path!r}: update {top!r} whole (its fields are replaced together)"
        elif top in OUTPUT_ONLY_POOL_FIELDS:
            why = f"{path!r} is output only"
        elif top in FIXED_POOL_FIELDS:
            why = f"{path!r} cannot be changed after the pool is created"
        elif top not in known:
            why = f"{path!r} is not a field of Pool"
        else:
            why = f"{path!r} cannot be updated"
        out.append(("update_mask", f"{why}; updatable: {', '.join(sorted(UPDATABLE_POOL_FIELDS))}"))
    return out


def resolve_mask(paths: Sequence[str], patch: P.Pool) -> frozenset[str]:
    """The fields an update sets: those `paths` name (`*`: every updatable one); with no path at all,
    the updatable fields `patch` populates (AIP-134's implied mask). The paths must have been checked."""
    if WILDCARD in paths:
        return UPDATABLE_POOL_FIELDS
    if paths:
        return frozenset(paths)
    return frozenset(f.name for f, _ in patch.ListFields() if f.name in UPDATABLE_POOL_FIELDS)


def merged(current: P.Pool, patch: P.Pool, fields: frozenset[str]) -> P.Pool:
    """`current` with each of `fields` set as in `patch` (a field `patch` leaves unset is cleared, as
    AIP-134 has it: metadata emptied, the start task removed, the resize timeout back to the default)."""
    out = P.Pool()
    out.CopyFrom(current)
    for name in fields:
        out.ClearField(name)
        if name in _REPEATED:
            getattr(out, name).extend(getattr(patch, name))
        elif name in _MESSAGES:
            if patch.HasField(name):
                getattr(out, name).CopyFrom(getattr(patch, name))
        else:
            setattr(out, name, getattr(patch, name))
    return out


def container_change_problems(current: P.Pool, patch: P.Pool) -> list[tuple[str, str]]:
    """A patch that carries a container configuration other than the pool's (whatever the mask: it is set
    at creation only). One that carries the pool's own, as a read shows it (passwords empty), is no change:
    a client may send back the pool it read."""
    if not patch.HasField("container_configuration"):
        return []
    given = P.Pool()
    given.container_configuration.CopyFrom(patch.container_configuration)
    for r in given.container_configuration.container_registries:
        r.ClearField("password")
    if current.HasField("container_configuration") and given.container_configuration == current.container_configuration:
        return []
    return [
        (
            "pool.container_configuration",
            "cannot be changed after the pool is created (Batch's rule): make a new pool with the configuration",
        )
    ]


def _concerns(path: str, fields: frozenset[str]) -> bool:
    """Whether the violation at `path` (`pool.start_task.command_line`) is about one of `fields`."""
    if not path.startswith("pool."):
        return False
    rest = path[len("pool.") :]
    top = rest.split(".", 1)[0].split("[", 1)[0]
    return top in fields


def field_problems(
    candidate: P.Pool, fields: frozenset[str], certificate_states: Mapping[str, int]
) -> list[tuple[str, str]]:
    """CreatePool's checks of `fields` on the pool as it would be (a field not updated is not held
    against the update); certificate references must name ACTIVE certificates of the account, once."""
    out = [(f, d) for f, d in check_pool(candidate) if _concerns(f, fields)]
    if "certificate_references" in fields:
        out += certificates.reference_problems(candidate.certificate_references, dict(certificate_states))
    return out


def decide(
    current: P.Pool,
    patch: P.Pool,
    paths: Sequence[str],
    etag: str = "",
    certificate_states: Mapping[str, int] | None = None,
) -> PoolUpdate:
    """UpdatePool of `current` (its allocation state up to date) by `patch` and the mask `paths`.

    Refuses, in this order: a mask naming what cannot be updated (InvalidInput `INVALID_UPDATE_MASK` on
    `update_mask`), a different container configuration (`INVALID_POOL`, whatever the mask: see
    `container_change_problems`), a field CreatePool would refuse (`INVALID_POOL`, `INVALID_CERTIFICATE_REFERENCE`), a
    stale `etag` (Conflict `ETAG_MISMATCH`), a pool being deleted (`POOL_BEING_DELETED`), and a new
    target while the pool is not steady (`POOL_RESIZING`, as ResizePool). A new target of a pool that
    autoscales is refused first (`AUTO_SCALE_ENABLED`: its formula sets them).
    `certificate_states`: thumbprint → state of each certificate of the pool's account.
    """
    problems = mask_problems(paths)
    if problems:
        raise invalid_input("INVALID_UPDATE_MASK", problems)
    problems = container_change_problems(current, patch)
    if problems:
        raise invalid_input("INVALID_POOL", problems)
    fields = resolve_mask(paths, patch)
    candidate = merged(current, patch, fields)
    retargets = any(f in fields and getattr(candidate, f) != getattr(current, f) for f in TARGETS)
    if retargets and current.enable_auto_scale:
        raise FailedPrecondition(
            "AUTO_SCALE_ENABLED",
            f"pool {current.id!r} sizes itself by its autoscale formula: disable autoscale to change its targets",
        )
    problems = field_problems(candidate, fields, certificate_states or {})
    if problems:
        cert_only = all(f.startswith("pool.certificate_references") for f, _ in problems)
        raise invalid_input("INVALID_CERTIFICATE_REFERENCE" if cert_only else "INVALID_POOL", problems)
    if "certificate_references" in fields:
        normalized = certificates.normalized_references(candidate.certificate_references)
        del candidate.certificate_references[:]
        candidate.certificate_references.extend(normalized)
    check_etag(f"pool {current.id!r}", current, etag)
    if current.state != P.POOL_STATE_ACTIVE:
        raise FailedPrecondition("POOL_BEING_DELETED", f"pool {current.id!r} is being deleted")
    new_target: int | None = None
    if retargets:
        if current.allocation_state != P.ALLOCATION_STATE_STEADY:
            raise FailedPrecondition(
                "POOL_RESIZING",
                f"pool {current.id!r} is resizing ({current.current_nodes} nodes, target {current.target_nodes}): "
                "change its target once its allocation state is steady",
            )
        new_target = candidate.target_nodes
        # (Resize errors tell of the last resize.)
        del candidate.resize_errors[:]
    return PoolUpdate(candidate, fields, new_target)
