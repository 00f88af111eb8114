"""Join tokens: round trip, tamper detection, expiry against an injected `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.certs.jointokens import (
    REASON_BAD_SIGNATURE,
    REASON_EXPIRED,
    REASON_MALFORMED,
    JoinTokenError,
    check_join_token,
    make_join_token,
    peek_join_token,
)

SECRET = b"s" * 32
FP = "ab" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60), st.integers(1, 10**7))
def test_round_trip(pool_id: str, ttl_s: int) -> None:
    expires = NOW + timedelta(seconds=ttl_s)
    token = make_join_token(SECRET, pool_id, expires, FP)
    claim = check_join_token(SECRET, token, NOW)
    assert claim.pool_id == pool_id
    assert claim.ca_fingerprint == FP
    assert claim.expires_at == expires.replace(microsecond=0)
    assert peek_join_token(token) == claim


def test_expiry_uses_the_given_now() -> None:
    token = make_join_token(SECRET, "p", NOW + timedelta(hours=1), FP)
    check_join_token(SECRET, token, NOW + timedelta(minutes=59))
    with pytest.raises(JoinTokenError) as e:
        check_join_token(SECRET, token, NOW + timedelta(hours=1))
    assert e.value.reason == REASON_EXPIRED
    assert token not in str(e.value)


def test_another_secret_is_a_bad_signature() -> None:
    token = make_join_token(SECRET, "p", NOW + timedelta(hours=1), FP)
    with pytest.raises(JoinTokenError) as e:
        check_join_token(b"t" * 32, token, NOW)
    assert e.value.reason == REASON_BAD_SIGNATURE


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_change_is_refused(data: st.DataObject) -> None:
    token = make_join_token(SECRET, "pool-a", NOW + timedelta(hours=1), FP)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.=x"))
    tampered = token[:i] + c + token[i + 1 :]
    if tampered == token:
        return
    try:
        claim = check_join_token(SECRET, tampered, NOW)
    except JoinTokenError as e:
        assert e.reason in (REASON_BAD_SIGNATURE, REASON_MALFORMED)
    else:
        # base64 has slack bits in its last character: a change there may decode to the same bytes.
        assert claim == check_join_token(SECRET, token, NOW)


@pytest.mark.parametrize("token", ["", "x", "shoal1..", "shoal1.e30.AAAA", "other.a.b", "shoal1.!!!.@@@", "a" * 5000])
def test_malformed(token: str) -> None:
    with pytest.raises(JoinTokenError) as e:
        check_join_token(SECRET, token, NOW)
    assert e.value.reason in (REASON_MALFORMED, REASON_BAD_SIGNATURE)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_join_token(SECRET, "", NOW, FP)
    with pytest.raises(ValueError):
        make_join_token(SECRET, "p", NOW, "nothex")
