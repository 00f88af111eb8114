"""Join tokens: short-lived, pool-bound, HMAC-signed by the server; an agent trades one for a certificate.

A token reads ``shoal1.<payload>.<tag>`` (base64url, no padding). The payload is JSON naming the pool,
the expiry (Unix seconds), the SHA-256 fingerprint of the cluster CA and a random id; the tag is
HMAC-SHA256 of the payload under a key only the server has. The fingerprint lets a joining agent trust
the CA it fetches over an unverified connection only if it is the one the token names (kubeadm's
discovery hash): whoever gave the agent its token also told it which cluster to trust.

Pure functions: the caller passes the key and the time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

PREFIX = "shoal1"
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_TOKEN_LENGTH = 4096

REASON_MALFORMED = "JOIN_TOKEN_MALFORMED"
REASON_BAD_SIGNATURE = "JOIN_TOKEN_INVALID"
REASON_EXPIRED = "JOIN_TOKEN_EXPIRED"


class JoinTokenError(Exception):
    """A join token that does not admit: `reason` is one of the REASON_* constants.

    The message says why, never the token itself (it is a secret until it expires).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class JoinClaim:
    """What a token says: the pool the node joins, until when, the CA to trust, and the token's id."""

    pool_id: str
    expires_at: datetime
    ca_fingerprint: str
    token_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(secret: bytes, payload: bytes) -> bytes:
    h = hmac.HMAC(secret, hashes.SHA256())
    h.update(PREFIX.encode() + b"." + payload)
    return h.finalize()


def make_join_token(secret: bytes, pool_id: str, expires_at: datetime, ca_fingerprint: str) -> str:
    """A token admitting one or more nodes into `pool_id` until `expires_at`, pinning the CA."""
    if not pool_id:
        raise ValueError("a join token names a pool")
    if not _FINGERPRINT_RE.match(ca_fingerprint):
        raise ValueError("the CA fingerprint is 64 lower-case hex digits (SHA-256)")
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    body = {"p": pool_id, "e": int(expires_at.timestamp()), "f": ca_fingerprint, "i": secrets.token_hex(8)}
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return f"{PREFIX}.{_b64(payload)}.{_b64(_tag(secret, payload))}"


def _split(token: str) -> tuple[bytes, bytes, JoinClaim]:
    """The payload, tag and claim of a well-formed token (not yet verified)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise JoinTokenError(REASON_MALFORMED, "the join token is malformed")
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise JoinTokenError(REASON_MALFORMED, "the join token is malformed (not a Shoal join token)")
    try:
        payload, tag = _unb64(parts[1]), _unb64(parts[2])
        body = json.loads(payload)
        pool_id, expires, fingerprint, token_id = body["p"], body["e"], body["f"], body["i"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise JoinTokenError(REASON_MALFORMED, "the join token is malformed") from None
    if not (
        isinstance(pool_id, str)
        and pool_id
        and isinstance(expires, int)
        and not isinstance(expires, bool)
        and isinstance(fingerprint, str)
        and _FINGERPRINT_RE.match(fingerprint)
        and isinstance(token_id, str)
    ):
        raise JoinTokenError(REASON_MALFORMED, "the join token is malformed")
    try:
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        raise JoinTokenError(REASON_MALFORMED, "the join token is malformed") from None
    return payload, tag, JoinClaim(pool_id, expires_at, fingerprint, token_id)


def peek_join_token(token: str) -> JoinClaim:
    """What a token claims, unverified: the joining agent reads the CA fingerprint (and the pool) here."""
    return _split(token)[2]


def check_join_token(secret: bytes, token: str, now: datetime) -> JoinClaim:
    """The claim of a token signed with `secret` and not expired at `now`; :class:`JoinTokenError` if not."""
    payload, tag, claim = _split(token)
    h = hmac.HMAC(secret, hashes.SHA256())
    h.update(PREFIX.encode() + b"." + payload)
    try:
        h.verify(tag)
    except InvalidSignature:
        raise JoinTokenError(REASON_BAD_SIGNATURE, "the join token was not issued by this server") from None
    if now >= claim.expires_at:
        raise JoinTokenError(REASON_EXPIRED, "the join token has expired; ask for a new one") from None
    return claim
