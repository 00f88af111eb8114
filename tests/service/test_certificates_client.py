"""Certificates through the Python client against a real in-process server: add (PFX and CER), get, list,
delete, deletion refused while a pool uses one, cancelling a failed deletion, pools' references.

The client is blocking; each scenario runs in a thread while the server's loop serves it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from shoal.client import (
    AlreadyExists,
    CertificateReference,
    CertificateState,
    CertificateVisibility,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from tests.certfiles import make_cert, make_pfx
from tests.channels import credentials

pytestmark = pytest.mark.timeout(90)


def connect(server: Any) -> Client:
    """A client of the in-process server, as its default account."""
    creds = credentials(server.data_dir)
    ca = creds.get("ca_cert")
    return Client.connect(
        server.address, account=creds["account"], key=creds["key"], ca_cert=ca.encode() if ca else None, timeout=30
    )


async def in_thread(server: Any, scenario: Callable[[Client], None]) -> None:
    def run() -> None:
        with connect(server) as client:
            scenario(client)

    await asyncio.to_thread(run)


def wait_pool_gone(client: Client, pool_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.pools.get(pool_id)
        except NotFound:
            return
        assert time.monotonic() < deadline, f"pool {pool_id} still there after {timeout}s"
        time.sleep(0.05)


def _listed(client: Client, state: str | None = None) -> Iterator[str]:
    return (c.thumbprint for c in client.certificates.list(state=state))


async def test_add_pfx_and_cer_get_list(server: Any, tmp_path: Path) -> None:
    pfx, pfx_thumb = make_pfx("svc-pfx", "pfx password")
    (tmp_path / "svc.pfx").write_bytes(pfx)
    pem, _key, der, cer_thumb = make_cert("svc-cer")
    (tmp_path / "svc.cer").write_bytes(pem)

    def scenario(client: Client) -> None:
        a = client.certificates.add(tmp_path / "svc.pfx", password="pfx password", thumbprint=pfx_thumb.upper())
        assert a.name == f"certificates/sha1-{pfx_thumb}"
        assert (a.thumbprint, a.thumbprint_algorithm, a.state) == (pfx_thumb, "sha1", CertificateState.ACTIVE)
        assert a.has_private_key and "CN=svc-pfx" in a.subject and "CN=svc-pfx" in a.issuer
        assert a.account == "default" and a.not_before is not None and a.not_after is not None
        # The public part only: DER of the certificate, nothing of the key.
        assert x509.load_der_x509_certificate(a.public_data).subject.rfc4514_string() == "CN=svc-pfx"

        b = client.certificates.add(tmp_path / "svc.cer")
        assert (b.thumbprint, b.has_private_key, b.public_data) == (cer_thumb, False, der)

        with pytest.raises(AlreadyExists):
            client.certificates.add(der)
        other, _ = make_pfx("svc-wrong", "right")
        with pytest.raises(InvalidArgument):
            client.certificates.add(other, password="wrong")
        with pytest.raises(InvalidArgument):
            client.certificates.add(make_cert("svc-mismatch")[0], thumbprint=cer_thumb)

        got = client.certificates.get(f"SHA1-{cer_thumb.upper()}")
        assert got.thumbprint == cer_thumb and got.state == CertificateState.ACTIVE
        assert sorted(_listed(client)) == sorted([pfx_thumb, cer_thumb])
        assert sorted(_listed(client, "active")) == sorted([pfx_thumb, cer_thumb])
        assert list(_listed(client, "deletefailed")) == []
        with pytest.raises(NotFound):
            client.certificates.get("ab" * 20)

    await in_thread(server, scenario)


async def test_delete_unused_is_gone(server: Any) -> None:
    pem, _key, _der, thumb = make_cert("svc-gone")

    def scenario(client: Client) -> None:
        client.certificates.add(pem)
        left = client.certificates.delete(f"sha1-{thumb}")
        assert left.thumbprint == thumb and left.state == CertificateState.DELETING
        with pytest.raises(NotFound):
            client.certificates.get(thumb)
        assert list(_listed(client)) == []
        with pytest.raises(NotFound):
            client.certificates.delete(thumb)

    await in_thread(server, scenario)


async def test_delete_while_a_pool_uses_it_fails_and_cancel_reactivates(server: Any) -> None:
    pfx, thumb = make_pfx("svc-used", "")

    def scenario(client: Client) -> None:
        client.certificates.add(pfx, format="pfx")
        client.pools.create(
            id="uses-cert",
            target_nodes=0,
            certificate_references=[CertificateReference(thumbprint=thumb, visibility=(CertificateVisibility.TASK,))],
        )
        failed = client.certificates.delete(thumb)
        assert failed.state == CertificateState.DELETE_FAILED
        error = failed.delete_certificate_error
        assert error is not None and error.code == "CertificateInUse" and error.message
        assert error.pools == ("uses-cert",)
        again = client.certificates.get(thumb)
        assert again.state == CertificateState.DELETE_FAILED and again.delete_certificate_error == error
        assert list(_listed(client, CertificateState.DELETE_FAILED)) == [thumb]
        assert list(_listed(client, "active")) == []

        back = client.certificates.cancel_deletion(thumb)
        assert back.state == CertificateState.ACTIVE and back.delete_certificate_error is None
        assert back.previous_state == CertificateState.DELETE_FAILED
        with pytest.raises(FailedPrecondition):
            client.certificates.cancel_deletion(thumb)

        # Once the pool is gone, nothing uses it.
        client.pools.delete("uses-cert")
        wait_pool_gone(client, "uses-cert")
        assert client.certificates.delete(thumb).state == CertificateState.DELETING
        with pytest.raises(NotFound):
            client.certificates.get(thumb)

    await in_thread(server, scenario)


async def test_pool_references_round_trip(server: Any) -> None:
    _pem1, _key1, der1, thumb1 = make_cert("svc-ref-1")
    pfx2, thumb2 = make_pfx("svc-ref-2", "pw")

    def scenario(client: Client) -> None:
        client.certificates.add(der1)
        client.certificates.add(pfx2, password="pw")
        refs = (
            CertificateReference(thumbprint=thumb1.upper(), visibility=("start_task", "remote_user")),
            CertificateReference.parse(f"sha1-{thumb2}"),
        )
        made = client.pools.create(id="with-certs", target_nodes=0, certificate_references=refs)
        # No visibility means every one, and the server spells them out.
        every = (CertificateVisibility.START_TASK, CertificateVisibility.TASK, CertificateVisibility.REMOTE_USER)
        want = (refs[0], CertificateReference(thumbprint=thumb2, visibility=every))
        assert made.certificate_references == want
        assert client.pools.get("with-certs").certificate_references == want
        listed = {p.id: p for p in client.pools.list()}
        assert listed["with-certs"].certificate_references == want

    await in_thread(server, scenario)
