"""The pure decisions about auto pools: ids, owners, when a pool goes, scheduling errors, and the checks
of an auto pool spec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.api.validation import check_auto_pool_specification, check_pool_info
from shoal.server.domain.ids import id_problem
from shoal.server.scheduling import autopools as ap
from shoal.v1 import common_pb2, job_pb2, pool_pb2

J = job_pb2
P = pool_pb2

prefixes = st.text(alphabet="abcXYZ019-_", max_size=ap.MAX_PREFIX)
owner_ids = st.text(alphabet="abcXYZ019-_:.", min_size=1, max_size=64)


@given(prefixes, owner_ids, st.integers(min_value=1, max_value=10**12), st.sets(st.integers(1, 6)))
def test_a_pool_id_is_a_valid_pool_id_deterministic_and_not_taken(
    prefix: str, owner: str, serial: int, taken_suffixes: set[int]
) -> None:
    first = ap.pool_id(prefix, owner, serial, lambda _: False)
    taken = {first} | {f"{first}-{n}" for n in taken_suffixes}
    chosen = ap.pool_id(prefix, owner, serial, taken.__contains__)
    assert id_problem(first) is None and id_problem(chosen) is None
    assert first.startswith(prefix) and first.endswith(f"-{serial}")
    assert chosen not in taken
    assert ap.pool_id(prefix, owner, serial, taken.__contains__) == chosen


def test_pool_ids_read_as_prefix_owner_and_serial() -> None:
    assert ap.pool_id("render-", "frames", 17, lambda _: False) == "render-frames-17"
    assert ap.pool_id("", "nightly:job-3", 4, lambda _: False) == "nightly-job-3-4"
    assert ap.pool_id("p", "j", 1, {"pj-1"}.__contains__) == "pj-1-2"


def job(lifetime: int = J.POOL_LIFETIME_OPTION_UNSPECIFIED, schedule: str = "", keep_alive: bool = False) -> J.Job:
    spec = J.AutoPoolSpecification(pool_lifetime_option=lifetime, keep_alive=keep_alive, pool=P.Pool())  # type: ignore[arg-type]
    return J.Job(id="j", job_schedule_id=schedule, auto_pool_specification=spec)


def test_the_owner_is_the_schedule_only_for_its_lifetime_on_a_schedules_job() -> None:
    assert ap.owner_of(job()) == "jobs/j"
    assert ap.owner_of(job(J.POOL_LIFETIME_OPTION_JOB, "s")) == "jobs/j"
    assert ap.owner_of(job(J.POOL_LIFETIME_OPTION_JOB_SCHEDULE, "s")) == "jobschedules/s"
    # (Refused by validation on a plain job; were it to get here, the job owns the pool.)
    assert ap.owner_of(job(J.POOL_LIFETIME_OPTION_JOB_SCHEDULE)) == "jobs/j"


def test_a_pool_goes_with_its_own_job_unless_kept_alive() -> None:
    mine = P.Pool(auto_pool_owner="jobs/j", state=P.POOL_STATE_ACTIVE)
    assert ap.goes_with_job(job(), mine)
    assert not ap.goes_with_job(job(keep_alive=True), mine)
    assert not ap.goes_with_job(job(), P.Pool(auto_pool_owner="jobs/other", state=P.POOL_STATE_ACTIVE))
    assert not ap.goes_with_job(job(), P.Pool(state=P.POOL_STATE_ACTIVE))  # made by CreatePool
    assert not ap.goes_with_job(job(), P.Pool(auto_pool_owner="jobs/j", state=P.POOL_STATE_DELETING))  # twice
    assert not ap.goes_with_job(job(), P.Pool(auto_pool_owner="jobschedules/j", state=P.POOL_STATE_ACTIVE))


def test_a_pool_goes_with_its_schedule_unless_kept_alive() -> None:
    pool = P.Pool(auto_pool_owner="jobschedules/s", state=P.POOL_STATE_ACTIVE)
    assert ap.goes_with_schedule("s", pool, False)
    assert not ap.goes_with_schedule("s", pool, True)
    assert not ap.goes_with_schedule("t", pool, False)
    assert not ap.goes_with_schedule("s", P.Pool(auto_pool_owner="jobschedules/s", state=P.POOL_STATE_DELETING), False)


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("POOL_QUOTA_REACHED", ap.QUOTA_REACHED),
        ("NODE_QUOTA_REACHED", ap.QUOTA_REACHED),
        ("INVALID_AUTO_SCALE_FORMULA", ap.INVALID_FORMULA),
        ("INVALID_CERTIFICATE_REFERENCE", ap.INVALID_CERTIFICATES),
        ("INVALID_APPLICATION_PACKAGE_REFERENCES", ap.INVALID_PACKAGES),
        ("POOL_EXISTS", ap.UNKNOWN),
    ],
)
def test_a_refusal_maps_to_batchs_scheduling_error(reason: str, code: str) -> None:
    error = ap.scheduling_error(reason, "why")
    assert (error.code, error.message) == (code, "why")
    user = common_pb2.ERROR_CATEGORY_USER_ERROR
    assert (error.category == user) == (code != ap.UNKNOWN)
    assert [(d.name, d.value) for d in error.details] == [("reason", reason)]


def test_the_spec_is_checked_as_create_pool_checks_a_pool_under_its_own_path() -> None:
    spec = J.AutoPoolSpecification(pool=P.Pool(target_nodes=-1, metadata=[common_pb2.MetadataItem(name="")]))
    fields = [f for f, _ in check_auto_pool_specification(spec, "job.auto_pool_specification")]
    assert fields == [
        "job.auto_pool_specification.pool.target_nodes",
        "job.auto_pool_specification.pool.metadata[0].name",
    ]
    # A formula is the job's scheduling error, not a refusal; settings around it are refused.
    spec = J.AutoPoolSpecification(pool=P.Pool(enable_auto_scale=True, auto_scale_formula="= =", target_nodes=2))
    fields = [f for f, _ in check_auto_pool_specification(spec, "s")]
    assert fields == ["s.pool.target_nodes"]
    shared = J.AutoPoolSpecification(pool_lifetime_option=J.POOL_LIFETIME_OPTION_JOB_SCHEDULE, pool=P.Pool())
    assert check_auto_pool_specification(shared, "s", on_schedule=True) == []
    assert [f for f, _ in check_auto_pool_specification(shared, "s")] == ["s.pool_lifetime_option"]


def test_a_job_gives_exactly_one_of_pool_id_and_an_auto_pool() -> None:
    auto = J.AutoPoolSpecification(pool=P.Pool())
    assert check_pool_info(J.Job(pool_id="p"), "job") == []
    assert check_pool_info(J.Job(auto_pool_specification=auto), "job") == []
    assert [f for f, _ in check_pool_info(J.Job(), "job")] == ["job.pool_id"]
    assert [f for f, _ in check_pool_info(J.Job(pool_id="p", auto_pool_specification=auto), "job")] == ["job.pool_id"]
