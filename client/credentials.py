"""Where a client finds its server and its credentials.

In order: what the caller passes; the environment (``SHOAL_ADDRESS``, ``SHOAL_ACCOUNT_NAME`` and
``SHOAL_ACCOUNT_KEY``, or the ``SHOAL_AUTHENTICATION_TOKEN`` every task gets); then
``$SHOAL_HOME/credentials.json`` (mode 0600, written by ``shoal up`` and ``shoal server``: the server
started last), or for a given address ``$SHOAL_HOME/servers/<host_port>.json`` (each server's own). A saved
key is used only for the address it was saved with (a key is never sent to another server).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from shoal.credfiles import CREDENTIALS_FILE, SERVERS_DIR, server_file_name

DEFAULT_ADDRESS = "127.0.0.1:7420"
#: The administrator's principal name in the ``shoal-account`` header.
ADMIN_ACCOUNT = "_admin"


def shoal_home() -> Path:
    """``$SHOAL_HOME``, or ``~/.shoal``."""
    home = os.environ.get("SHOAL_HOME")
    return Path(home).expanduser() if home else Path.home() / ".shoal"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Credentials:
    """The server's address and who to be there."""

    address: str
    #: The account (or ``_admin``) named in the ``shoal-account`` header; None: send no credentials.
    account: str | None = None
    key: str | None = field(default=None, repr=False)
    #: Whether the server speaks TLS, and the CA certificate (PEM) to check it with (None: the system's).
    tls: bool = False
    ca_cert: bytes | None = field(default=None, repr=False)

    def channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A blocking channel to the server: TLS checked against the CA when the server speaks it."""
        if not self.tls:
            return grpc.insecure_channel(self.address, options=list(options))
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca_cert)
        return grpc.secure_channel(self.address, creds, options=list(options))

    def metadata(self) -> list[tuple[str, str]]:
        """The gRPC metadata that authenticates each call."""
        if not self.key:
            return []
        return [("shoal-account", self.account or "default"), ("authorization", f"Bearer {self.key}")]


def saved_server(address: str | None) -> dict[str, Any]:
    """What ``shoal server`` saved of the server at `address` (of the one started last when None)."""
    home = shoal_home()
    latest = _read_json(home / CREDENTIALS_FILE)
    if address is None or _text(latest, "address") == address:
        return latest
    return _read_json(home / SERVERS_DIR / server_file_name(address))


def resolve(
    address: str | None = None,
    *,
    account: str | None = None,
    key: str | None = None,
    admin: bool = False,
    ca_cert: bytes | str | Path | None = None,
) -> Credentials:
    """The credentials to use (see the module's docstring); `admin` picks the administrator's key.

    `ca_cert` (PEM bytes, or a file) is the CA the server's TLS certificate is checked against; without
    it, ``$SHOAL_CA_CERT_FILE`` (every task has it), else the one saved with the server's credentials.
    """
    env = os.environ
    home = shoal_home()
    latest = _read_json(home / CREDENTIALS_FILE)
    legacy = _read_json(home / "server.json")
    resolved = address or env.get("SHOAL_ADDRESS") or _text(latest, "address") or _text(legacy, "address")
    resolved = resolved or DEFAULT_ADDRESS
    saved = (
        latest if _text(latest, "address") == resolved else _read_json(home / SERVERS_DIR / server_file_name(resolved))
    )
    # The saved keys belong to the saved address only.
    same_server = _text(saved, "address") == resolved
    tls, ca = _tls(saved if same_server else {}, ca_cert)
    if admin:
        admin_key = key or env.get("SHOAL_ADMIN_KEY") or (_text(saved, "admin_key") if same_server else None)
        return Credentials(resolved, ADMIN_ACCOUNT, admin_key, tls, ca)
    if key:
        return Credentials(resolved, account or env.get("SHOAL_ACCOUNT_NAME") or "default", key, tls, ca)
    env_key = env.get("SHOAL_ACCOUNT_KEY") or env.get("SHOAL_AUTHENTICATION_TOKEN") or env.get("SHOAL_KEY")
    if env_key:
        return Credentials(resolved, account or env.get("SHOAL_ACCOUNT_NAME") or "default", env_key, tls, ca)
    if same_server:
        return Credentials(resolved, account or _text(saved, "account") or "default", _text(saved, "key"), tls, ca)
    return Credentials(resolved, account, None, tls, ca)


def _tls(saved: dict[str, Any], ca_cert: bytes | str | Path | None) -> tuple[bool, bytes | None]:
    """(whether to speak TLS, the CA to trust) from the caller, the environment, or the saved credentials."""
    if isinstance(ca_cert, bytes):
        return True, ca_cert
    if ca_cert is not None:
        return True, Path(ca_cert).read_bytes()
    env_file = os.environ.get("SHOAL_CA_CERT_FILE")
    if env_file:
        try:
            return True, Path(env_file).read_bytes()
        except OSError:
            pass
    saved_ca = _text(saved, "ca_cert")
    return bool(saved.get("tls")) or saved_ca is not None, saved_ca.encode() if saved_ca else None


class _AddMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds fixed metadata to every call of a blocking channel."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + self.metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def authenticated(channel: grpc.Channel, credentials: Credentials) -> grpc.Channel:
    """`channel` with `credentials` on every call (for code that uses the generated stubs directly)."""
    return grpc.intercept_channel(channel, _AddMetadata(credentials.metadata()))


def from_file(path: Path, *, admin: bool = False) -> Credentials:
    """The credentials a server wrote to `path` (its `<data dir>/credentials.json`); with `admin`, the
    administrator's."""
    data = _read_json(path)
    tls, ca = _tls(data, None)
    if admin:
        return Credentials(_text(data, "address") or DEFAULT_ADDRESS, ADMIN_ACCOUNT, _text(data, "admin_key"), tls, ca)
    return Credentials(_text(data, "address") or DEFAULT_ADDRESS, _text(data, "account"), _text(data, "key"), tls, ca)
