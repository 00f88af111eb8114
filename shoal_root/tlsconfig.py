"""gRPC TLS credentials from PEM bytes, and the few TLS facts Shoal's parts agree on.

Used by the server (its agent port, its calls to agents), the agents (their stream to the server, their
NodeService), the MPI shim and the clients: one place that says how a channel or a port is secured.

Names: peers are reached by address, but their certificates are checked against a fixed name, the one
the cluster CA put in them for that role: the server's agent port answers to ``shoal-server``, every
agent's NodeService to ``shoal-node``. Only the cluster CA's certificates are trusted on these
connections, so the name says which role the peer holds, not where it runs.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Mapping, Sequence

import grpc

#: The name the server's agent port certificate carries (and agents ask for).
SERVER_TLS_NAME = "shoal-server"
#: The name every agent's NodeService certificate carries (and the server and the shim ask for).
NODE_TLS_NAME = "shoal-node"


def server_credentials(
    cert_pem: bytes, key_pem: bytes, *, client_ca_pem: bytes | None = None
) -> grpc.ServerCredentials:
    """TLS for a listening port; with `client_ca_pem`, every client must show a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=client_ca_pem,
        require_client_auth=client_ca_pem is not None,
    )


def channel_credentials(
    ca_pem: bytes, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> grpc.ChannelCredentials:
    """TLS for a channel that trusts only `ca_pem`, showing `cert_pem` (with `key_pem`) when given."""
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)


def name_options(tls_name: str) -> list[tuple[str, str]]:
    """Channel options that check the peer's certificate against `tls_name` instead of the address's host."""
    return [("grpc.ssl_target_name_override", tls_name), ("grpc.default_authority", tls_name)]


def peer_certificate(context: grpc.aio.ServicerContext | grpc.ServicerContext) -> bytes | None:
    """The PEM certificate the peer showed on this call (verified by the handshake), or None."""
    auth: Mapping[str, Sequence[bytes]] = context.auth_context() or {}  # type: ignore[assignment]
    certs = list(auth.get("x509_pem_cert") or [])
    return bytes(certs[0]) if certs else None


def fingerprint(cert_der: bytes) -> str:
    """SHA-256 (hex) of a certificate's DER bytes."""
    return hashlib.sha256(cert_der).hexdigest()


def fetch_unverified_chain(address: str, *, timeout: float = 10.0) -> list[bytes] | None:
    """The certificate chain (DER, leaf first) a TLS server at `address` shows, verifying nothing.

    For a joining agent: it checks what it got against the fingerprint its join token carries, so
    nothing here needs to be trusted. None when the server does not speak TLS at all.
    """
    host, port = split_address(address)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=timeout) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=host if not _is_ip(host) else None) as tls:
                # (Public in Python 3.13 as SSLSocket.get_unverified_chain; the C object has it since 3.10.)
                sslobj = getattr(tls, "_sslobj", None)
                chain = sslobj.get_unverified_chain() if sslobj is not None else None
                if chain:
                    der = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
                    return [c if isinstance(c, bytes) else c.public_bytes(der) for c in chain]
                leaf = tls.getpeercert(binary_form=True)
                return [leaf] if leaf else []
        except (ssl.SSLError, ConnectionResetError):
            return None


def pick_pinned(chain_der: Sequence[bytes], want_fingerprint: str) -> bytes | None:
    """The certificate of `chain_der` whose SHA-256 is `want_fingerprint`, as PEM (None: not there)."""
    for der in chain_der:
        if fingerprint(der) == want_fingerprint:
            return ssl.DER_cert_to_PEM_cert(der).encode()
    return None


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of ``host:port`` or ``[v6]:port``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
