"""The server secret: 32 random bytes kept in one file of mode 0600 under the server's data directory.

It keys the HMAC of join tokens (:meth:`ServerSecret.mac`) and the authenticated encryption of what
the server must keep but must be able to read again, such as account keys (:meth:`ServerSecret.seal`).
Neither the secret nor anything it seals is ever logged or put into an error message.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_BYTES = 32
_NONCE_BYTES = 12
# Version byte in front of every sealed blob, so the format can change without guessing.
_SEAL_VERSION = b"\x01"


class SecretError(Exception):
    """The secret file is unusable, or a sealed blob does not open (tampered, truncated, another key).

    The message names what is wrong, never a byte of the secret or of the plaintext.
    """


def _derive(secret: bytes, purpose: bytes) -> bytes:
    """A key of its own per purpose, so a MAC and a cipher never share a key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"shoal/" + purpose).derive(secret)


class ServerSecret:
    """The server's own secret: MACs and sealing (AES-256-GCM) under keys derived from it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_BYTES:
            raise SecretError(f"a server secret has {SECRET_BYTES} bytes, this one has {len(secret)}")
        self._secret = secret
        self._mac_key = _derive(secret, b"mac")
        self._aead = AESGCM(_derive(secret, b"seal"))

    def __repr__(self) -> str:
        # Never the bytes: a repr ends up in logs and tracebacks.
        return "ServerSecret(<hidden>)"

    @classmethod
    def load_or_create(cls, path: Path) -> ServerSecret:
        """The secret in `path`, made (32 random bytes, mode 0600, parent 0700 when created) on first use."""
        path = Path(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = secrets.token_bytes(SECRET_BYTES)
            try:
                # O_EXCL: two servers starting at once on one directory must not each write their own.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
        data = path.read_bytes()
        if len(data) != SECRET_BYTES:
            raise SecretError(f"the server secret file {path} has {len(data)} bytes, not {SECRET_BYTES}")
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return cls(data)

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key of its own for `purpose` (for example "join-token"), derived from the secret."""
        return _derive(self._secret, b"key/" + purpose.encode())

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of `data` under a key derived from the secret."""
        h = hmac.HMAC(self._mac_key, hashes.SHA256())
        h.update(data)
        return h.finalize()

    def verify_mac(self, data: bytes, tag: bytes) -> bool:
        """Whether `tag` is the MAC of `data` (compared in constant time)."""
        h = hmac.HMAC(self._mac_key, hashes.SHA256())
        h.update(data)
        try:
            h.verify(tag)
        except Exception:
            return False
        return True

    def seal(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        """`plaintext` encrypted and authenticated: version, nonce, then AES-GCM ciphertext and tag.

        `associated` (optional) is authenticated but not stored: unseal needs the same bytes, which
        binds a blob to its place (for example an account id) so it cannot be moved to another.
        """
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated or None)

    def unseal(self, blob: bytes, associated: bytes = b"") -> bytes:
        """The plaintext of a :meth:`seal` blob; :class:`SecretError` when it was altered or is not ours."""
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _SEAL_VERSION:
            raise SecretError("the sealed value is malformed")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE_BYTES :], associated or None)
        except InvalidTag:
            raise SecretError("the sealed value does not open with this server's secret") from None
