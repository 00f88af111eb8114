"""UpdatePool's pure decision (`shoal.server.scheduling.poolupdate`): examples and hypothesis properties."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.domain.errors import Conflict, FailedPrecondition, InvalidInput
from shoal.server.domain.etags import etag_of
from shoal.server.scheduling import poolupdate
from shoal.v1 import certificate_pb2 as C
from shoal.v1 import common_pb2
from shoal.v1 import pool_pb2 as P

THUMB = "a" * 40
OTHER = "b" * 40


def pool(**kw: object) -> P.Pool:
    p = P.Pool(
        name="pools/p",
        id="p",
        display_name="old",
        target_nodes=2,
        task_slots_per_node=1,
        provider="local",
        state=P.POOL_STATE_ACTIVE,
        allocation_state=P.ALLOCATION_STATE_STEADY,
        current_nodes=2,
        start_task=common_pb2.StartTask(command_line="echo old", wait_for_success=True),
        metadata=[common_pb2.MetadataItem(name="k", value="v")],
        account="acct",
    )
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def violations(e: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f for f, _ in e.value.violations]


def test_only_the_masked_fields_change() -> None:
    current = pool()
    patch = P.Pool(display_name="new", target_nodes=99, start_task=common_pb2.StartTask(command_line="echo new"))
    up = poolupdate.decide(current, patch, ["display_name", "start_task"])
    assert up.pool.display_name == "new"
    assert up.pool.start_task.command_line == "echo new"
    assert up.pool.target_nodes == 2 and up.new_target is None
    assert list(up.pool.metadata) == list(current.metadata)
    assert up.fields == {"display_name", "start_task"}
    # The current pool is not touched, and the etag moves.
    assert current.display_name == "old"
    assert etag_of(up.pool) != etag_of(current)


def test_a_masked_field_left_unset_is_cleared() -> None:
    up = poolupdate.decide(pool(), P.Pool(), ["start_task", "metadata", "resize_timeout"])
    assert not up.pool.HasField("start_task") and not up.pool.metadata and not up.pool.HasField("resize_timeout")


def test_mask_paths_that_cannot_be_updated() -> None:
    for path in ("id", "task_slots_per_node", "user_accounts", "provider", "enable_inter_node_communication"):
        with pytest.raises(InvalidInput) as e:
            poolupdate.decide(pool(), P.Pool(), [path])
        assert e.value.reason == "INVALID_UPDATE_MASK" and violations(e) == ["update_mask"]
        assert "after the pool is created" in e.value.violations[0][1]
    for path, why in (
        ("state", "output only"),
        ("etag", "output only"),
        ("current_nodes", "output only"),
        ("nope", "not a field of Pool"),
        ("start_task.command_line", "whole"),
    ):
        with pytest.raises(InvalidInput) as e:
            poolupdate.decide(pool(), P.Pool(), ["display_name", path])
        assert violations(e) == ["update_mask"] and why in e.value.violations[0][1], path


def test_an_empty_mask_means_the_fields_set_and_star_means_all() -> None:
    up = poolupdate.decide(pool(), P.Pool(display_name="x"), [])
    assert up.fields == {"display_name"} and up.pool.start_task.command_line == "echo old"
    up = poolupdate.decide(pool(), P.Pool(display_name="x", target_nodes=2), ["*"])
    assert up.fields == poolupdate.UPDATABLE_POOL_FIELDS
    assert not up.pool.HasField("start_task") and up.new_target is None


def test_fields_get_create_pools_checks() -> None:
    bad = P.Pool(
        display_name="x" * 2000,
        target_nodes=5000,
        start_task=common_pb2.StartTask(command_line=""),
        metadata=[common_pb2.MetadataItem(name="", value="v")],
        resize_timeout=duration_pb2.Duration(seconds=1),
    )
    with pytest.raises(InvalidInput) as e:
        poolupdate.decide(pool(), bad, sorted(poolupdate.UPDATABLE_POOL_FIELDS - {"certificate_references"}))
    assert e.value.reason == "INVALID_POOL"
    fields = violations(e)
    for f in ("pool.display_name", "pool.target_nodes", "pool.resize_timeout"):
        assert f in fields
    assert any(f.startswith("pool.start_task") for f in fields)
    assert any(f.startswith("pool.metadata") for f in fields)
    # A field not in the mask is neither checked nor changed.
    with pytest.raises(InvalidInput) as e:
        poolupdate.decide(pool(), bad, ["display_name"])
    assert violations(e) == ["pool.display_name"]
    bad.display_name = "fine"
    up = poolupdate.decide(pool(), bad, ["display_name"])
    assert (up.pool.display_name, up.pool.target_nodes, up.pool.start_task.command_line) == ("fine", 2, "echo old")


def test_a_start_task_may_run_as_one_of_the_pools_users() -> None:
    current = pool()
    current.user_accounts.add(name="builder")
    st_ok = common_pb2.StartTask(command_line="make")
    st_ok.user_identity.user_name = "builder"
    assert poolupdate.decide(current, P.Pool(start_task=st_ok), ["start_task"]).pool.start_task.command_line == "make"
    st_bad = common_pb2.StartTask(command_line="make")
    st_bad.user_identity.user_name = "nobody"
    with pytest.raises(InvalidInput) as e:
        poolupdate.decide(current, P.Pool(start_task=st_bad), ["start_task"])
    assert all(f.startswith("pool.start_task") for f in violations(e))


def test_certificate_references_must_name_active_certificates() -> None:
    states = {THUMB: C.CERTIFICATE_STATE_ACTIVE, OTHER: C.CERTIFICATE_STATE_DELETING}
    patch = P.Pool(certificate_references=[C.CertificateReference(thumbprint=THUMB.upper())])
    up = poolupdate.decide(pool(), patch, ["certificate_references"], certificate_states=states)
    (ref,) = up.pool.certificate_references
    assert ref.thumbprint == THUMB and ref.thumbprint_algorithm == "sha1" and len(ref.visibility) == 3
    for thumb in (OTHER, "c" * 40):
        patch = P.Pool(certificate_references=[C.CertificateReference(thumbprint=thumb)])
        with pytest.raises(InvalidInput) as e:
            poolupdate.decide(pool(), patch, ["certificate_references"], certificate_states=states)
        assert e.value.reason == "INVALID_CERTIFICATE_REFERENCE"
        assert violations(e) == ["pool.certificate_references[0].thumbprint"]
    # Removing them all is fine.
    assert not poolupdate.decide(pool(), P.Pool(), ["certificate_references"]).pool.certificate_references


def test_etag_deletion_and_resizing_refusals() -> None:
    current = pool()
    with pytest.raises(Conflict) as c:
        poolupdate.decide(current, P.Pool(display_name="x"), ["display_name"], etag="stale")
    assert c.value.reason == "ETAG_MISMATCH"
    assert poolupdate.decide(current, P.Pool(display_name="x"), ["display_name"], etag=etag_of(current))
    with pytest.raises(FailedPrecondition) as f:
        poolupdate.decide(pool(state=P.POOL_STATE_DELETING), P.Pool(display_name="x"), ["display_name"])
    assert f.value.reason == "POOL_BEING_DELETED"
    resizing = pool(allocation_state=P.ALLOCATION_STATE_RESIZING)
    with pytest.raises(FailedPrecondition) as f:
        poolupdate.decide(resizing, P.Pool(target_nodes=3), ["target_nodes"])
    assert f.value.reason == "POOL_RESIZING"
    # Other fields, and the same target, may change while it resizes.
    up = poolupdate.decide(resizing, P.Pool(target_nodes=2, display_name="y"), ["target_nodes", "display_name"])
    assert up.new_target is None and up.pool.display_name == "y"


def test_a_new_target_is_a_resize_that_clears_the_last_resize_errors() -> None:
    current = pool()
    current.resize_errors.add(code="ResizeStopped")
    up = poolupdate.decide(current, P.Pool(target_nodes=0), ["target_nodes"])
    assert up.new_target == 0 and up.pool.target_nodes == 0 and not up.pool.resize_errors


_FIELDS = sorted(poolupdate.UPDATABLE_POOL_FIELDS)
_BAD_PATHS = [*sorted(poolupdate.FIXED_POOL_FIELDS | poolupdate.OUTPUT_ONLY_POOL_FIELDS), "nope", "start_task.x"]


@st.composite
def patches(draw: st.DrawFn) -> P.Pool:
    p = P.Pool(
        display_name=draw(st.text(max_size=20)),
        target_nodes=draw(st.integers(min_value=-5, max_value=1005)),
    )
    for i in range(draw(st.integers(min_value=0, max_value=3))):
        p.metadata.add(name=f"n{i}", value=draw(st.text(max_size=5)))
    if draw(st.booleans()):
        p.start_task.command_line = draw(st.sampled_from(["", "echo hi", "/bin/true"]))
    if draw(st.booleans()):
        p.resize_timeout.seconds = draw(st.integers(min_value=0, max_value=100))
    return p


@settings(max_examples=300, deadline=None)
@given(
    patches(),
    st.lists(st.sampled_from(_FIELDS), max_size=4),
    st.lists(st.sampled_from(_BAD_PATHS), max_size=2),
    st.sampled_from([P.ALLOCATION_STATE_STEADY, P.ALLOCATION_STATE_RESIZING]),
)
def test_an_update_changes_exactly_its_fields_or_nothing(
    patch: P.Pool, paths: list[str], bad: list[str], allocation: int
) -> None:
    current = pool(allocation_state=allocation)
    before = current.SerializeToString(deterministic=True)
    try:
        up = poolupdate.decide(current, patch, paths + bad)
    except (InvalidInput, FailedPrecondition) as e:
        # Refused: nothing was touched, and a bad path is always the reason when there is one.
        assert current.SerializeToString(deterministic=True) == before
        if bad:
            assert e.reason == "INVALID_UPDATE_MASK"
        return
    assert not bad
    fields = poolupdate.resolve_mask(paths, patch)
    for f in P.Pool.DESCRIPTOR.fields:
        if f.name == "resize_errors":
            continue
        same = getattr(up.pool, f.name) == getattr(current, f.name)
        if f.name in fields:
            assert getattr(up.pool, f.name) == getattr(patch, f.name)
        else:
            assert same, f.name
    assert 0 <= up.pool.target_nodes <= 1000
    if up.new_target is not None:
        assert allocation == P.ALLOCATION_STATE_STEADY and up.new_target != current.target_nodes
