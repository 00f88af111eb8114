"""Certificates for tests, made with `cryptography`: a self-signed certificate and key, and a PFX of them."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


def _make(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_cert(cn: str = "shoal-test") -> tuple[bytes, bytes, bytes, str]:
    """(certificate PEM, private key PEM, certificate DER, SHA-1 thumbprint in lowercase hex)."""
    cert, key = _make(cn)
    der = cert.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, der, hashlib.sha1(der).hexdigest()


def make_pfx(cn: str = "shoal-test", password: str = "") -> tuple[bytes, str]:
    """(a PKCS #12 file holding a new certificate and its key under `password`, its thumbprint)."""
    cert, key = _make(cn)
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    pfx = pkcs12.serialize_key_and_certificates(cn.encode(), key, cert, None, encryption)
    der = cert.public_bytes(serialization.Encoding.DER)
    return pfx, hashlib.sha1(der).hexdigest()
