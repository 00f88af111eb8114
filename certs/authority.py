"""The cluster CA: made on the server's first start, it signs every certificate Shoal's parts speak with.

Files (under ``<server data dir>/certs/``, directory mode 0700): ``ca.pem`` (the CA certificate, which
anyone may have) and ``ca.key`` (its private key, mode 0600, which never leaves the server).

Who a certificate speaks for is written in it as a URI subject alternative name, read back by
:func:`identity_of` (pure: the caller has verified the chain, here the TLS handshake did):

* ``urn:shoal:node:<pool>:<node>``: one node agent, of that pool (issued from the node's CSR at join);
* ``urn:shoal:provider:<name>``: a process that speaks for many nodes (the local provider's agents);
* ``urn:shoal:server:<name>``: the server itself, as a client of the agents' NodeService.

Parts are percent-encoded, so a ``:`` in an id cannot shift one into the next.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.clock import Clock
from shoal.tlsconfig import NODE_TLS_NAME

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CA_DAYS = 3650
# Certificates start a little in the past: a peer whose clock runs behind must still accept them.
_BACKDATE = timedelta(minutes=5)
_URN = "urn:shoal:"

ROLE_NODE = "node"
ROLE_PROVIDER = "provider"
ROLE_SERVER = "server"
ROLES = (ROLE_NODE, ROLE_PROVIDER, ROLE_SERVER)


class CertificateError(Exception):
    """A certificate or CSR that cannot be used (unreadable, unsigned, naming no Shoal identity)."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who a verified certificate speaks for."""

    role: str
    name: str
    serial: int
    pool_id: str = ""

    @property
    def node_id(self) -> str:
        """The node's id for a node certificate, "" for the others."""
        return self.name if self.role == ROLE_NODE else ""


def identity_uri(role: str, name: str, pool_id: str = "") -> str:
    """The URI SAN that names `role`/`name` (and the pool of a node)."""
    if role not in ROLES:
        raise CertificateError(f"unknown role {role!r}")
    parts = [role, pool_id, name] if role == ROLE_NODE else [role, name]
    return _URN + ":".join(quote(p, safe="") for p in parts)


def identity_of(cert_pem: bytes) -> PeerIdentity:
    """The identity a (verified) certificate names; :class:`CertificateError` when it names none."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise CertificateError("the certificate is not readable PEM") from e
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateError("the certificate names no Shoal identity") from None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if not uri.startswith(_URN):
            continue
        parts = [unquote(p) for p in uri[len(_URN) :].split(":")]
        if parts[0] == ROLE_NODE and len(parts) == 3 and parts[1] and parts[2]:
            return PeerIdentity(role=ROLE_NODE, name=parts[2], pool_id=parts[1], serial=cert.serial_number)
        if parts[0] in (ROLE_PROVIDER, ROLE_SERVER) and len(parts) == 2 and parts[1]:
            return PeerIdentity(role=parts[0], name=parts[1], serial=cert.serial_number)
    raise CertificateError("the certificate names no Shoal identity")


def fingerprint_of(cert_pem: bytes) -> str:
    """SHA-256 (hex) of a certificate's DER: what a join token pins."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise CertificateError("the certificate is not readable PEM") from e
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_key_pem() -> bytes:
    """A fresh EC P-256 private key, PKCS#8 PEM, unencrypted (the caller stores it with mode 0600)."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def make_csr(key_pem: bytes, common_name: str) -> bytes:
    """A CSR (PEM) for `key_pem`: what a joining agent sends; the CA decides the names, not the CSR."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the key is not an EC key")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _short_cn(common_name or "shoal-node"))]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600 from the start (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _short_cn(name: str) -> str:
    """`name` cut to the 64 UTF-8 bytes a CN may have: the URI SAN carries the full identity anyway."""
    data = name.encode("utf-8", "replace")[:64]
    return data.decode("utf-8", "ignore") or "shoal"


def _san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(h.strip("[]") for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


class ClusterCA:
    """The CA's certificate and key, and the issuing of every certificate Shoal uses."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, clock: Clock) -> None:
        self._cert = cert
        self._key = key
        self._clock = clock
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    def __repr__(self) -> str:
        return f"ClusterCA(fingerprint={self._fingerprint[:16]}...)"

    @classmethod
    def load_or_create(cls, directory: Path, clock: Clock) -> ClusterCA:
        """The CA kept in `directory`, made there (directory 0700, key 0600) when it has none."""
        directory = Path(directory)
        cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
        if not cert_path.exists() or not key_path.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(directory, 0o700)
            ca = cls._create(clock)
            # The key first: a CA certificate on disk without its key would be loaded and fail.
            write_private(key_path, _key_pem(ca._key))
            cert_path.write_bytes(ca.cert_pem)
            return ca
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError as e:
            raise CertificateError(f"the cluster CA in {directory} is unreadable") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"the cluster CA key in {directory} is not an EC key")
        if key_path.stat().st_mode & 0o077:
            os.chmod(key_path, 0o600)
        return cls(cert, key, clock)

    @classmethod
    def _create(cls, clock: Clock) -> ClusterCA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = clock.now()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shoal"),
                # A random suffix: two clusters' CAs never share a subject (and so never confuse a chain).
                x509.NameAttribute(NameOID.COMMON_NAME, f"Shoal cluster CA {secrets.token_hex(4)}"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key, clock)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate (PEM): what every peer trusts."""
        return self._cert_pem

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the CA certificate's DER, as a join token carries it."""
        return self._fingerprint

    def issue_server_cert(self, hosts: Sequence[str], *, days: int = 825) -> tuple[bytes, bytes]:
        """A TLS server certificate and its key (PEM each) for `hosts` (DNS names and IP addresses)."""
        if not hosts:
            raise CertificateError("a server certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(
            key.public_key(),
            common_name=hosts[0],
            # No Shoal identity: this certificate (its key on the API's host) must never speak to agents.
            sans=_san_entries(hosts),
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            ttl=timedelta(days=days),
        )
        return cert, _key_pem(key)

    def issue_client_cert(self, common_name: str, *, role: str, days: int) -> tuple[bytes, bytes]:
        """A client certificate and key (PEM each) for `role` ("server" or "provider") named `common_name`.

        Client authentication only: neither can serve an agent's NodeService or the agent port.
        """
        if role not in (ROLE_PROVIDER, ROLE_SERVER):
            raise CertificateError(f"a client certificate is for role server or provider, not {role!r}")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(
            key.public_key(),
            common_name=common_name,
            sans=[x509.UniformResourceIdentifier(identity_uri(role, common_name))],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            ttl=timedelta(days=days),
        )
        return cert, _key_pem(key)

    def sign_csr(self, csr_pem: bytes, *, node_id: str, pool_id: str, ttl: timedelta) -> bytes:
        """A node certificate (PEM) for the key of `csr_pem`, naming `node_id` of `pool_id`.

        Good for both ends: the agent's client certificate towards the agent port, and its NodeService's
        server certificate (name "shoal-node").

        Only the CSR's public key is used (after checking its signature): the names are the CA's to
        choose, so a CSR asking for another node or a wider role gets nothing more.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise CertificateError("the certificate signing request is not readable PEM") from e
        if not csr.is_signature_valid:
            raise CertificateError("the certificate signing request's signature does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CertificateError("the certificate signing request's key is not an EC key")
        return self._node_cert(public_key, node_id=node_id, pool_id=pool_id, ttl=ttl)

    def issue_node_cert(self, *, node_id: str, pool_id: str, ttl: timedelta) -> tuple[bytes, bytes]:
        """A node certificate and a fresh key (PEM each): for nodes whose agent the server starts itself."""
        key = ec.generate_private_key(ec.SECP256R1())
        return self._node_cert(key.public_key(), node_id=node_id, pool_id=pool_id, ttl=ttl), _key_pem(key)

    def _node_cert(self, public_key: ec.EllipticCurvePublicKey, *, node_id: str, pool_id: str, ttl: timedelta) -> bytes:
        if not node_id or not pool_id:
            raise CertificateError("a node certificate names a node and its pool")
        return self._sign(
            public_key,
            common_name=node_id,
            sans=[
                x509.DNSName(NODE_TLS_NAME),
                x509.UniformResourceIdentifier(identity_uri(ROLE_NODE, node_id, pool_id)),
            ],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            ttl=ttl,
        )

    def _sign(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        common_name: str,
        sans: list[x509.GeneralName],
        usages: list[x509.ObjectIdentifier],
        ttl: timedelta,
    ) -> bytes:
        now = self._clock.now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _short_cn(common_name))])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + ttl, self._cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)


def not_after(cert_pem: bytes) -> datetime:
    """When a certificate expires (aware UTC)."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
