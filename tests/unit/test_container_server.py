"""The server's pure parts of container tasks: field checks, the update rule, passwords taken out of records
and sealed in their rows, and the container info appended to a stored task."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.certs.secret import SecretError, ServerSecret
from shoal.server.api.container_checks import (
    TASK_PASSWORD_REFUSED,
    check_container_configuration,
    check_container_settings,
)
from shoal.server.api.identity_checks import PoolAccounts, pool_accounts
from shoal.server.containers import credentials as cr
from shoal.server.domain import wire
from shoal.server.scheduling import poolupdate
from shoal.v1 import common_pb2, pool_pb2, task_pb2

C = common_pb2
FIELD = "task.container_settings"


def known(allow_host: bool = False) -> PoolAccounts:
    cfg = C.ContainerConfiguration(container_image_names=["busybox"], allow_host_run_options=allow_host)
    return pool_accounts(pool_pb2.Pool(id="cp", container_configuration=cfg))


def fields(violations: list[tuple[str, str]]) -> list[str]:
    return [f for f, _ in violations]


def test_pool_accounts_carry_the_container_configuration() -> None:
    assert pool_accounts(pool_pb2.Pool(id="p")).containers is None
    assert known().containers is not None


def test_a_configuration_may_be_empty_but_not_wrong() -> None:
    assert check_container_configuration(C.ContainerConfiguration(), "c") == []
    ok = C.ContainerConfiguration(
        container_image_names=["busybox", "127.0.0.1:5000/a/b:1", "x@sha256:abc"],
        container_registries=[C.ContainerRegistry(registry_server="127.0.0.1:5000", user_name="u", password="p")],
        type=C.CONTAINER_TYPE_CRI_COMPATIBLE,
    )
    assert check_container_configuration(ok, "c") == []
    bad = C.ContainerConfiguration(
        container_image_names=["", "x" * 2000],
        container_registries=[C.ContainerRegistry(registry_server="a b", password="p")],
    )
    assert fields(check_container_configuration(bad, "c")) == [
        "c.container_image_names[0]",
        "c.container_image_names[1]",
        "c.container_registries[0].registry_server",
        "c.container_registries[0].user_name",
    ]


def test_settings_on_an_unknown_pool_are_checked_for_syntax_only() -> None:
    s = C.TaskContainerSettings(image_name="busybox", container_run_options="--privileged --pid host")
    assert check_container_settings(s, FIELD, None) == []
    s.container_run_options = "--env 'unclosed"
    assert fields(check_container_settings(s, FIELD, None)) == [f"{FIELD}.container_run_options"]


def test_settings_on_a_pool_without_containers_are_refused_whole() -> None:
    s = C.TaskContainerSettings(image_name="")
    v = check_container_settings(s, FIELD, pool_accounts(pool_pb2.Pool(id="plain")))
    assert fields(v) == [FIELD] and "'plain' has no container configuration" in v[0][1]


def test_settings_are_held_to_the_pool_run_options_rule() -> None:
    s = C.TaskContainerSettings(image_name="busybox", container_run_options="--memory 1g --privileged")
    assert fields(check_container_settings(s, FIELD, known())) == [f"{FIELD}.container_run_options"]
    assert check_container_settings(s, FIELD, known(allow_host=True)) == []


def test_a_task_registry_names_no_password() -> None:
    s = C.TaskContainerSettings(image_name="busybox", registry=C.ContainerRegistry(user_name="u", password="p"))
    assert check_container_settings(s, FIELD, known()) == [(f"{FIELD}.registry.password", TASK_PASSWORD_REFUSED)]


def test_a_pool_update_may_send_back_its_configuration_but_not_change_it() -> None:
    current = pool_pb2.Pool(
        id="cp",
        container_configuration=C.ContainerConfiguration(
            container_image_names=["busybox"],
            container_registries=[C.ContainerRegistry(registry_server="r", user_name="u")],
        ),
    )
    same = pool_pb2.Pool()
    same.CopyFrom(current)
    assert poolupdate.container_change_problems(current, same) == []
    # (With a password filled in, as the client had it: still no change.)
    same.container_configuration.container_registries[0].password = "p"
    assert poolupdate.container_change_problems(current, same) == []
    other = pool_pb2.Pool(container_configuration=C.ContainerConfiguration(container_image_names=["x"]))
    assert fields(poolupdate.container_change_problems(current, other)) == ["pool.container_configuration"]
    assert fields(poolupdate.container_change_problems(pool_pb2.Pool(), other)) == ["pool.container_configuration"]
    assert poolupdate.container_change_problems(current, pool_pb2.Pool()) == []
    assert "container_configuration" in poolupdate.FIXED_POOL_FIELDS


def test_passwords_are_taken_out_of_a_configuration() -> None:
    cfg = C.ContainerConfiguration(
        container_registries=[
            C.ContainerRegistry(registry_server="Reg.Example:5000", user_name="bot", password="p1"),
            C.ContainerRegistry(registry_server="other", user_name="nobody"),
        ]
    )
    assert cr.take_passwords(cfg) == [cr.Credential("reg.example:5000", "bot", "p1")]
    assert [(r.registry_server, r.user_name, r.password) for r in cfg.container_registries] == [
        ("Reg.Example:5000", "bot", ""),
        ("other", "nobody", ""),
    ]
    assert cr.take_passwords(cfg) == []


def test_a_task_registry_server_defaults_to_the_image_registry() -> None:
    s = C.TaskContainerSettings(image_name="REG.example:5000/tools:1", registry=C.ContainerRegistry(user_name="u"))
    assert cr.registry_server_of(s) == "reg.example:5000"
    s.registry.registry_server = "Mirror.Example"
    assert cr.registry_server_of(s) == "mirror.example"
    assert cr.registry_server_of(C.TaskContainerSettings(image_name="busybox")) == ""


@settings(max_examples=50, deadline=None)
@given(account=st.text(max_size=20), server=st.text(max_size=20), user=st.text(max_size=20), pw=st.text(max_size=40))
def test_rows_are_sealed_and_bound_to_their_key(account: str, server: str, user: str, pw: str) -> None:
    secret = ServerSecret(os.urandom(32))
    key = cr.row_key(account, server, user)
    data = cr.encode(key, pw, secret)
    assert cr.decode(key, data, secret) == pw
    if len(pw) >= 4:
        assert pw.encode() not in data
    # Moved to another row, it does not open.
    other = cr.row_key(account + "x", server, user)
    with pytest.raises(SecretError):
        cr.decode(other, data, secret)


def test_unsealed_rows_are_read_back_and_sealed_ones_need_the_secret() -> None:
    key = cr.row_key("a", "s", "u")
    assert cr.decode(key, cr.encode(key, "pw", None), None) == "pw"
    with pytest.raises(ValueError, match="sealed"):
        cr.decode(key, cr.encode(key, "pw", ServerSecret(os.urandom(32))), None)


def test_an_appended_container_info_is_what_the_message_would_hold() -> None:
    task = task_pb2.Task(name="jobs/j/tasks/t", execution_info=task_pb2.TaskExecutionInfo(exit_code=0))
    info = C.TaskContainerExecutionInfo(container_id="shoal-j-t-1", state="exited", error="")
    merged = task_pb2.Task.FromString(task.SerializeToString() + wire.container_info(info.SerializeToString()))
    expected = task_pb2.Task()
    expected.CopyFrom(task)
    expected.execution_info.container_info.CopyFrom(info)
    assert merged == expected


def test_container_failures_are_not_retried() -> None:
    from shoal.containers import CONTAINER_INVALID_IMAGE, CONTAINER_MISC_ERROR
    from shoal.server.scheduling.retry import AttemptOutcome, should_retry

    for code in (CONTAINER_INVALID_IMAGE, CONTAINER_MISC_ERROR):
        assert not should_retry(AttemptOutcome(1, code, False), 0, 3)
    assert should_retry(AttemptOutcome(1, "FailureExitCode", False), 0, 3)
