"""The client's user identity types: to and from their messages, from JSON-style dicts, and the CLI's words."""

from __future__ import annotations

import json

import pytest

from shoal.client import (
    AutoUser,
    InvalidArgument,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    StartTaskSpec,
    TaskSpec,
    UserAccount,
    UserIdentity,
)
from shoal.v1 import identity_pb2

from .fake_server import FakeServer

ID = identity_pb2


def test_identities_round_trip() -> None:
    for identity in (
        UserIdentity.named("alice"),
        UserIdentity.auto(),
        UserIdentity.auto("task", "admin"),
        UserIdentity(auto_user=AutoUser(scope="Task", elevation_level="NonAdmin")),
    ):
        msg = identity.to_proto()
        back = UserIdentity.from_proto(msg)
        assert back is not None and back.to_proto() == msg
    assert UserIdentity.auto("task", "admin").to_proto() == ID.UserIdentity(
        auto_user=ID.AutoUserSpecification(scope=ID.AUTO_USER_SCOPE_TASK, elevation_level=ID.ELEVATION_LEVEL_ADMIN)
    )
    assert UserIdentity.from_proto(ID.UserIdentity()) is None
    with pytest.raises(InvalidArgument):
        UserIdentity()
    with pytest.raises(InvalidArgument):
        UserIdentity(user_name="a", auto_user=AutoUser())
    with pytest.raises(InvalidArgument):
        UserIdentity.auto("node").to_proto()


def test_every_task_kind_carries_it() -> None:
    who = UserIdentity.auto("task")
    for spec in (
        TaskSpec(id="t", command_line="x", user_identity=who),
        StartTaskSpec(command_line="x", user_identity=who),
        JobManagerTask(command_line="x", user_identity=who),
        JobPreparationTask(command_line="x", user_identity=who),
        JobReleaseTask(command_line="x", user_identity=who),
    ):
        msg = spec.to_proto()
        assert msg.user_identity == who.to_proto()
        assert type(spec).from_proto(msg).user_identity == who  # type: ignore[attr-defined]
    assert not TaskSpec(id="t", command_line="x").to_proto().HasField("user_identity")
    spec = TaskSpec.from_dict({"id": "t", "command_line": "x", "user_identity": {"user_name": "alice"}})
    assert spec.user_identity == UserIdentity.named("alice")
    spec = TaskSpec.from_dict(
        {"id": "t", "command_line": "x", "user_identity": {"auto_user": {"scope": "task", "elevation_level": "admin"}}}
    )
    assert spec.user_identity == UserIdentity.auto("task", "admin")


def test_accounts() -> None:
    a = UserAccount(name="alice", uid=5000, gid=5001)
    assert UserAccount.from_proto(a.to_proto()) == UserAccount(
        name="alice", elevation_level="nonadmin", uid=5000, gid=5001
    )
    assert UserAccount.parse("ops:admin") == UserAccount(name="ops", elevation_level="admin")
    assert UserAccount.parse("bob:5000:5000") == UserAccount(name="bob", uid=5000, gid=5000)
    assert UserAccount.parse("bob:nonadmin:5000:6000").gid == 6000
    with pytest.raises(InvalidArgument):
        UserAccount.parse("bob:5000")
    assert UserIdentity.parse("user:alice") == UserIdentity.named("alice")
    assert UserIdentity.parse("task", "admin") == UserIdentity.auto("task", "admin")
    with pytest.raises(InvalidArgument):
        UserIdentity.parse("user:alice", "admin")


def test_cli_run_as_and_user_accounts(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "pool", "create", "p", "--nodes", "1", "--user-account", "alice:5000:5000", "--user-account", "ops:admin",
        "--start-task", "setup", "--start-task-elevation", "admin",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    pool = fake.state.pools["p"]
    assert [a.name for a in pool.user_accounts] == ["alice", "ops"]
    assert pool.user_accounts[0].linux_user_configuration.uid == 5000
    assert pool.start_task.user_identity.auto_user.elevation_level == ID.ELEVATION_LEVEL_ADMIN
    run("job", "create", "j", "--pool", "p")
    r = run("task", "add", "j", "t1", "id", "--run-as", "user:alice", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["spec"]["user_identity"]["user_name"] == "alice"
    r = run("task", "add", "j", "t2", "id", "--run-as", "task", "--elevation", "admin", "-o", "json")
    auto = json.loads(r.output)[0]["spec"]["user_identity"]["auto_user"]
    assert (auto["scope"], auto["elevation_level"]) == ("task", "admin")
    r = run("task", "add", "j", "t3", "id", "-o", "json")
    assert json.loads(r.output)[0]["spec"]["user_identity"] is None
