"""The cluster CA: made once with private modes, issuing certificates whose identity reads back."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.certs.authority import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    ROLE_NODE,
    ROLE_PROVIDER,
    ROLE_SERVER,
    CertificateError,
    ClusterCA,
    fingerprint_of,
    identity_of,
    make_csr,
    new_key_pem,
    not_after,
)
from shoal.clock import ManualClock


def _verify(ca: ClusterCA, cert_pem: bytes) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(cert_pem)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem)
    cert.verify_directly_issued_by(issuer)
    return cert


def test_created_once_then_loaded(tmp_path: Path) -> None:
    clock = ManualClock()
    d = tmp_path / "certs"
    ca = ClusterCA.load_or_create(d, clock)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / CA_KEY_FILE).stat().st_mode) == 0o600
    assert (d / CA_CERT_FILE).read_bytes() == ca.cert_pem
    again = ClusterCA.load_or_create(d, clock)
    assert again.fingerprint == ca.fingerprint == fingerprint_of(ca.cert_pem)
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.not_valid_after_utc - clock.now() > timedelta(days=3000)
    # A certificate issued by the loaded CA verifies against the first one's certificate.
    pem, _ = again.issue_client_cert("srv", role=ROLE_SERVER, days=1)
    _verify(ca, pem)


def test_two_cas_are_different(tmp_path: Path) -> None:
    a = ClusterCA.load_or_create(tmp_path / "a", ManualClock())
    b = ClusterCA.load_or_create(tmp_path / "b", ManualClock())
    assert a.fingerprint != b.fingerprint
    pem, _ = b.issue_client_cert("p", role=ROLE_PROVIDER, days=1)
    with pytest.raises(Exception):  # noqa: B017 - the signature check raises cryptography's own types
        _verify(a, pem)


def test_server_cert_names_its_hosts(tmp_path: Path) -> None:
    ca = ClusterCA.load_or_create(tmp_path, ManualClock())
    pem, key = ca.issue_server_cert(["localhost", "127.0.0.1", "::1", "api.example"])
    cert = _verify(ca, pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "api.example"}
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert b"PRIVATE KEY" in key
    with pytest.raises(CertificateError):
        identity_of(pem)  # a public API certificate does not speak to agents
    with pytest.raises(CertificateError):
        ca.issue_server_cert([])


def test_node_cert_from_csr(tmp_path: Path) -> None:
    clock = ManualClock()
    ca = ClusterCA.load_or_create(tmp_path, clock)
    key = new_key_pem()
    pem = ca.sign_csr(make_csr(key, "asks-for-anything"), node_id="n-1", pool_id="pool:a", ttl=timedelta(hours=2))
    cert = _verify(ca, pem)
    ident = identity_of(pem)
    assert (ident.role, ident.node_id, ident.pool_id, ident.serial) == (ROLE_NODE, "n-1", "pool:a", cert.serial_number)
    assert not_after(pem) == clock.now() + timedelta(hours=2)
    # The certificate carries the CSR's key.
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key, password=None)
    assert cert.public_key() == private.public_key()


def test_bad_csr_is_refused(tmp_path: Path) -> None:
    ca = ClusterCA.load_or_create(tmp_path, ManualClock())
    with pytest.raises(CertificateError):
        ca.sign_csr(b"not a csr", node_id="n", pool_id="p", ttl=timedelta(hours=1))


def test_client_roles(tmp_path: Path) -> None:
    ca = ClusterCA.load_or_create(tmp_path, ManualClock())
    pem, _ = ca.issue_client_cert("local-provider", role=ROLE_PROVIDER, days=30)
    ident = identity_of(pem)
    assert (ident.role, ident.name, ident.node_id, ident.pool_id) == (ROLE_PROVIDER, "local-provider", "", "")
    with pytest.raises(CertificateError):
        ca.issue_client_cert("x", role=ROLE_NODE, days=1)


def test_foreign_certificate_names_no_identity(tmp_path: Path) -> None:
    with pytest.raises(CertificateError):
        identity_of(b"garbage")
    ca = ClusterCA.load_or_create(tmp_path, ManualClock())
    # The CA certificate itself has no Shoal identity.
    with pytest.raises(CertificateError):
        identity_of(ca.cert_pem)


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_identity_round_trips_any_ids(node_id: str, pool_id: str) -> None:
    ca = _shared_ca()
    pem = ca.sign_csr(_CSR, node_id=node_id, pool_id=pool_id, ttl=timedelta(hours=1))
    ident = identity_of(pem)
    assert (ident.node_id, ident.pool_id) == (node_id, pool_id)


_CA: list[ClusterCA] = []
_CSR = make_csr(new_key_pem(), "n")


def _shared_ca() -> ClusterCA:
    if not _CA:
        import tempfile

        _CA.append(ClusterCA.load_or_create(Path(tempfile.mkdtemp()), ManualClock()))
    return _CA[0]
