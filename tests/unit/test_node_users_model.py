"""The pure parts of node users: names, SSH keys, passwords, expiry, hashing, the messages, node states."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.nodeusers import model
from shoal.v1 import pool_pb2

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VALID = re.compile(r"^[a-z_][a-z0-9_-]{0,19}$")


def openssh(key: object) -> str:
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()  # type: ignore[attr-defined]


@given(st.from_regex(VALID, fullmatch=True))
def test_every_linux_name_of_twenty_characters_is_taken_unless_reserved(name: str) -> None:
    problem = model.name_problem(name)
    reserved = name in model.SYSTEM_NAMES or name == "shoal" or name.startswith("shoal-")
    assert (problem != "") == reserved, (name, problem)


@given(st.text(min_size=1, max_size=40))
def test_a_name_that_is_not_a_short_linux_name_is_refused(name: str) -> None:
    if not VALID.match(name):
        assert model.name_problem(name)


def test_names_refused_with_a_reason() -> None:
    assert model.name_problem("") == "is required"
    assert "at most 20" in model.name_problem("a" * 21)
    assert "Linux user name" in model.name_problem("Alice")
    assert "own accounts" in model.name_problem("root")
    assert "agent's own" in model.name_problem("shoal-p-1234")
    assert "user accounts" in model.name_problem("builder", ["builder"])
    assert model.name_problem("alice", ["builder"]) == ""


@pytest.mark.parametrize(
    "key",
    [
        openssh(ed25519.Ed25519PrivateKey.generate()),
        openssh(ed25519.Ed25519PrivateKey.generate()) + " me@laptop",
        openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048)) + " rsa key",
        openssh(ec.generate_private_key(ec.SECP256R1())),
    ],
    # Fixed ids: the keys are made afresh by every collection (and parallel workers must collect the same tests).
    ids=["ed25519", "ed25519-comment", "rsa", "ecdsa"],
)
def test_ssh_keys_that_parse_are_taken(key: str) -> None:
    assert model.ssh_key_problem(key) == ""


@pytest.mark.parametrize(
    "key",
    [
        "ssh-rsa",
        "ssh-ed25519 AAAAnotbase64!!",
        "not a key at all",
        # authorized_keys options would let a key say more than itself.
        'command="/bin/sh" ' + openssh(ed25519.Ed25519PrivateKey.generate()),
        # A second line would be a second key.
        openssh(ed25519.Ed25519PrivateKey.generate()) + "\n" + openssh(ed25519.Ed25519PrivateKey.generate()),
        "x" * (model.MAX_SSH_KEY + 1),
    ],
    ids=["type-only", "bad-base64", "not-a-key", "options", "two-lines", "too-long"],
)
def test_ssh_keys_that_do_not_parse_are_refused(key: str) -> None:
    assert model.ssh_key_problem(key)


def test_check_names_each_bad_field() -> None:
    past = timestamp_pb2.Timestamp()
    past.FromDatetime(NOW - timedelta(seconds=1))
    user = pool_pb2.NodeUser(name="Bad", password="a\nb", ssh_public_key="nope", expiry_time=past)
    fields = [f for f, _ in model.check(user, NOW)]
    assert fields == ["user.name", "user.password", "user.ssh_public_key", "user.expiry_time"]
    assert [f for f, _ in model.check(user, NOW, with_name=False)] == fields[1:]
    # Neither a password nor a key is fine (as in Batch on Linux).
    assert model.check(pool_pb2.NodeUser(name="alice"), NOW) == []


def test_expiry_defaults_to_a_day() -> None:
    user = model.build(pool_pb2.NodeUser(name="alice"), NOW, "")
    assert user.expiry == NOW + timedelta(days=1)
    later = timestamp_pb2.Timestamp()
    later.FromDatetime(NOW + timedelta(hours=2))
    assert model.build(pool_pb2.NodeUser(name="alice", expiry_time=later), NOW, "").expiry == NOW + timedelta(hours=2)


def test_the_password_is_hashed_and_never_in_a_message() -> None:
    hashed = model.hash_password("s3cret pass")
    assert hashed.startswith(model.HASH_PREFIX) and "s3cret" not in hashed
    assert model.verify_password("s3cret pass", hashed) and not model.verify_password("other", hashed)
    assert model.hash_password("s3cret pass") != hashed  # a fresh salt each time
    assert model.hash_password("") == "" and not model.verify_password("", "")
    request = pool_pb2.NodeUser(name="alice", password="s3cret pass", is_admin=True)
    user = model.build(request, NOW, hashed)
    msg = model.message(user)
    assert msg.password == "" and b"s3cret" not in msg.SerializeToString() and b"$6$" not in msg.SerializeToString()
    spec = model.agent_spec(user)
    assert spec.password_hash == hashed and spec.is_admin and b"s3cret" not in spec.SerializeToString()


def test_an_update_keeps_the_admin_flag() -> None:
    assert model.build(pool_pb2.NodeUser(name="a", is_admin=False), NOW, "", is_admin=True).is_admin


@pytest.mark.parametrize("state", sorted(model.USABLE_STATES))
def test_usable_states(state: int) -> None:
    assert model.state_refusal(state) is None


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (pool_pb2.NODE_STATE_CREATING, "NODE_BEING_CREATED"),
        (pool_pb2.NODE_STATE_STARTING, "NODE_BEING_STARTED"),
        (pool_pb2.NODE_STATE_REBOOTING, "NODE_BEING_REBOOTED"),
        (pool_pb2.NODE_STATE_REIMAGING, "NODE_BEING_REIMAGED"),
        (pool_pb2.NODE_STATE_LEAVING_POOL, "NODE_LEAVING_POOL"),
        (pool_pb2.NODE_STATE_UNKNOWN, "NODE_NOT_READY"),
    ],
)
def test_unusable_states(state: int, reason: str) -> None:
    refusal = model.state_refusal(state)
    assert refusal is not None and refusal[0] == reason
