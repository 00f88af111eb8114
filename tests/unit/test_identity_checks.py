"""User identities and user accounts: what the server takes and what it refuses, field by field."""

from __future__ import annotations

import pytest

from shoal.server.api.identity_checks import PoolAccounts, check_user_accounts, check_user_identity
from shoal.server.api.validation import check_job, check_pool, check_task
from shoal.v1 import common_pb2, identity_pb2, job_pb2, pool_pb2, task_pb2

ID = identity_pb2


def account(name: str, *, uid: int | None = None, gid: int | None = None, admin: bool = False) -> ID.UserAccount:
    linux = ID.LinuxUserConfiguration()
    if uid is not None:
        linux.uid = uid
    if gid is not None:
        linux.gid = gid
    a = ID.UserAccount(name=name, elevation_level=ID.ELEVATION_LEVEL_ADMIN if admin else ID.ELEVATION_LEVEL_NON_ADMIN)
    if uid is not None or gid is not None:
        a.linux_user_configuration.CopyFrom(linux)
    return a


def test_good_accounts_pass() -> None:
    accounts = [account("alice"), account("_svc-2", uid=5000, gid=5000, admin=True), account("b" * 20)]
    assert check_user_accounts(accounts, "pool.user_accounts") == []


@pytest.mark.parametrize(
    ("accounts", "field"),
    [
        ([account("")], "pool.user_accounts[0].name"),
        ([account("Alice")], "pool.user_accounts[0].name"),
        ([account("1abc")], "pool.user_accounts[0].name"),
        ([account("a" * 21)], "pool.user_accounts[0].name"),
        ([account("a b")], "pool.user_accounts[0].name"),
        ([account("a:b")], "pool.user_accounts[0].name"),
        ([account("x"), account("x")], "pool.user_accounts[1].name"),
        ([account("x", uid=0, gid=0)], "pool.user_accounts[0].linux_user_configuration.uid"),
        ([account("x", uid=999, gid=5000)], "pool.user_accounts[0].linux_user_configuration.uid"),
        ([account("x", uid=5000, gid=2**31 - 1)], "pool.user_accounts[0].linux_user_configuration.gid"),
        ([account("x", uid=5000)], "pool.user_accounts[0].linux_user_configuration"),
        (
            [account("x", uid=5000, gid=5000), account("y", uid=5000, gid=5001)],
            "pool.user_accounts[1].linux_user_configuration.uid",
        ),
        ([ID.UserAccount(name="x", elevation_level=7)], "pool.user_accounts[0].elevation_level"),
    ],
)
def test_bad_accounts_name_the_field(accounts: list[ID.UserAccount], field: str) -> None:
    fields = [f for f, _ in check_user_accounts(accounts, "pool.user_accounts")]
    assert field in fields


def test_too_many_accounts() -> None:
    accounts = [account(f"u{i}") for i in range(65)]
    assert [f for f, _ in check_user_accounts(accounts, "pool.user_accounts")] == ["pool.user_accounts"]


def test_identities() -> None:
    known = PoolAccounts("p", frozenset({"alice"}))
    assert check_user_identity(ID.UserIdentity(user_name="alice"), "task.user_identity", known) == []
    # Without a known pool a name cannot be checked against anything.
    assert check_user_identity(ID.UserIdentity(user_name="bob"), "task.user_identity", None) == []
    (violation,) = check_user_identity(ID.UserIdentity(user_name="bob"), "task.user_identity", known)
    assert violation[0] == "task.user_identity.user_name"
    assert "'bob'" in violation[1] and "'p'" in violation[1]
    assert [f for f, _ in check_user_identity(ID.UserIdentity(user_name=""), "x", known)] == ["x.user_name"]
    assert [f for f, _ in check_user_identity(ID.UserIdentity(), "x", known)] == ["x"]
    auto = ID.AutoUserSpecification(scope=ID.AUTO_USER_SCOPE_TASK, elevation_level=ID.ELEVATION_LEVEL_ADMIN)
    assert check_user_identity(ID.UserIdentity(auto_user=auto), "x") == []
    assert check_user_identity(ID.UserIdentity(auto_user=ID.AutoUserSpecification()), "x") == []
    bad = ID.UserIdentity(auto_user=ID.AutoUserSpecification(scope=9, elevation_level=9))
    assert [f for f, _ in check_user_identity(bad, "x")] == ["x.auto_user.scope", "x.auto_user.elevation_level"]


def test_every_task_kind_is_checked() -> None:
    known = PoolAccounts("p", frozenset({"alice"}))
    bob = ID.UserIdentity(user_name="bob")
    spec = task_pb2.TaskSpec(id="t", command_line="/bin/true", user_identity=bob)
    assert [f for f, _ in check_task(spec, "task", accounts=known)] == ["task.user_identity.user_name"]
    job = job_pb2.Job(
        id="j",
        pool_id="p",
        job_manager_task=job_pb2.JobManagerTask(command_line="x", user_identity=bob),
        job_preparation_task=job_pb2.JobPreparationTask(command_line="x", user_identity=bob),
        job_release_task=job_pb2.JobReleaseTask(command_line="x", user_identity=bob),
    )
    assert sorted(f for f, _ in check_job(job, known)) == [
        "job.job_manager_task.user_identity.user_name",
        "job.job_preparation_task.user_identity.user_name",
        "job.job_release_task.user_identity.user_name",
    ]
    # The start task may name one of the pool's own accounts, and only those.
    pool = pool_pb2.Pool(
        id="p",
        user_accounts=[account("alice")],
        start_task=common_pb2.StartTask(command_line="x", user_identity=ID.UserIdentity(user_name="alice")),
    )
    assert check_pool(pool) == []
    pool.start_task.user_identity.user_name = "bob"
    assert [f for f, _ in check_pool(pool)] == ["pool.start_task.user_identity.user_name"]
