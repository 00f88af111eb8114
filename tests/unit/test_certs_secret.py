"""The server secret: file made once with mode 0600, MACs, sealing that detects any change."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.certs.secret import SECRET_BYTES, SecretError, ServerSecret


def test_created_once_with_private_modes(tmp_path: Path) -> None:
    path = tmp_path / "certs" / "server.secret"
    first = ServerSecret.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_bytes()) == SECRET_BYTES
    again = ServerSecret.load_or_create(path)
    assert first.mac(b"x") == again.mac(b"x")
    assert again.unseal(first.seal(b"kept")) == b"kept"
    assert "hidden" in repr(first) and path.read_bytes().hex() not in repr(first)


def test_a_short_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.secret"
    path.write_bytes(b"short")
    with pytest.raises(SecretError, match="bytes"):
        ServerSecret.load_or_create(path)


def test_another_secret_neither_verifies_nor_opens() -> None:
    a, b = ServerSecret(b"a" * 32), ServerSecret(b"b" * 32)
    assert a.verify_mac(b"data", a.mac(b"data"))
    assert not b.verify_mac(b"data", a.mac(b"data"))
    with pytest.raises(SecretError):
        b.unseal(a.seal(b"data"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=16))
def test_seal_round_trip(plaintext: bytes, associated: bytes) -> None:
    s = ServerSecret(bytes(range(32)))
    blob = s.seal(plaintext, associated)
    assert len(plaintext) < 12 or plaintext not in blob
    assert s.unseal(blob, associated) == plaintext


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.data())
def test_any_change_is_detected(plaintext: bytes, data: st.DataObject) -> None:
    s = ServerSecret(bytes(range(32)))
    blob = bytearray(s.seal(plaintext))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SecretError):
        s.unseal(bytes(blob))
    with pytest.raises(SecretError):
        s.unseal(bytes(blob[: data.draw(st.integers(0, len(blob) - 1))]))


def test_associated_data_binds_the_blob() -> None:
    s = ServerSecret(bytes(range(32)))
    blob = s.seal(b"key", b"account-a")
    with pytest.raises(SecretError):
        s.unseal(blob, b"account-b")
