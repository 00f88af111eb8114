"""Certificate files for tests of Shoal's certificates: self-signed X.509 certificates, their keys,
and PKCS #12 (PFX) files, made fresh with ``cryptography``.

A thumbprint is as the API names it: the SHA-1 of the certificate's DER encoding, 40 lowercase
hexadecimal digits. Keys are EC P-256 (quick to make) unless ``rsa=True``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = ["make_cert", "make_pfx", "make_pfx_parts", "thumbprint_of"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def thumbprint_of(der: bytes) -> str:
    """The SHA-1 thumbprint of a DER-encoded certificate, lowercase hex."""
    return hashlib.sha1(der).hexdigest()


def _key(rsa_key: bool) -> PrivateKey:
    if rsa_key:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(cn: str, key: PrivateKey, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_cert(cn: str = "shoal-test", *, days: int = 30, rsa: bool = False) -> tuple[bytes, bytes, bytes, str]:
    """A new self-signed certificate for ``cn``: ``(cert_pem, key_pem, der, thumbprint)``.

    ``key_pem`` is the private key, PKCS #8 PEM, unencrypted.
    """
    key = _key(rsa)
    cert = _certificate(cn, key, days)
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), der, thumbprint_of(der)


def make_pfx(cn: str = "shoal-test", password: str = "", *, days: int = 30, rsa: bool = False) -> tuple[bytes, str]:
    """A new self-signed certificate for ``cn`` with its private key, as a PFX under ``password``
    (none when empty): ``(pfx_bytes, thumbprint)``."""
    pfx, _cert_pem, _key_pem, thumbprint = make_pfx_parts(cn, password, days=days, rsa=rsa)
    return pfx, thumbprint


def make_pfx_parts(
    cn: str = "shoal-test", password: str = "", *, days: int = 30, rsa: bool = False
) -> tuple[bytes, bytes, bytes, str]:
    """As :func:`make_pfx`, with what is inside it: ``(pfx_bytes, cert_pem, key_pem, thumbprint)``, so that a
    test can compare what a node installed with what went in."""
    key = _key(rsa)
    cert = _certificate(cn, key, days)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    pfx = pkcs12.serialize_key_and_certificates(cn.encode(), key, cert, None, encryption)
    der = cert.public_bytes(serialization.Encoding.DER)
    return pfx, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), thumbprint_of(der)
