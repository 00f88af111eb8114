"""Certificates on a real server: add (PFX, CER), get, list, delete while in use, cancel, tenancy,
pool references, what a joining node is given, and keys sealed at rest."""

from __future__ import annotations

import asyncio
import base64
import sqlite3

import grpc
import pytest

from shoal.v1 import certificate_pb2 as C
from shoal.v1 import certificate_pb2_grpc, pool_pb2, pool_pb2_grpc
from tests.certfiles import make_cert, make_pfx
from tests.channels import server_channel
from tests.service.conftest import start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

PFX = C.CERTIFICATE_FORMAT_PFX
CER = C.CERTIFICATE_FORMAT_CER


def _name(thumbprint: str) -> str:
    return f"certificates/sha1-{thumbprint}"


def _pem_body(pem: bytes) -> bytes:
    """The base64 body of a PEM block (what a leak of it would contain)."""
    return b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))


async def _invalid(call, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert field in [f for f, _ in details(e.value)[1]], details(e.value)


async def test_add_get_list_and_refusals(server) -> None:
    pfx, tp = make_pfx("with-key", "s3cret")
    pem, _key, der, tp2 = make_cert("public-only")
    async with server_channel(server) as ch:
        certs = certificate_pb2_grpc.CertificateServiceStub(ch)
        added = await certs.AddCertificate(
            C.AddCertificateRequest(data=pfx, format=PFX, password="s3cret", thumbprint=tp.upper())
        )
        assert added.name == _name(tp) and added.thumbprint == tp and added.thumbprint_algorithm == "sha1"
        assert added.state == C.CERTIFICATE_STATE_ACTIVE and added.has_private_key
        assert added.subject == "CN=with-key" and added.account == "default"
        # DER and PEM certificates, without keys.
        cer = await certs.AddCertificate(C.AddCertificateRequest(data=der, format=CER))
        assert cer.thumbprint == tp2 and not cer.has_private_key and cer.public_data == der
        await refused(
            certs.AddCertificate(C.AddCertificateRequest(data=pem, format=CER)),
            grpc.StatusCode.ALREADY_EXISTS,
            "CERTIFICATE_EXISTS",
        )
        # Bad input names its field and changes nothing.
        await _invalid(certs.AddCertificate(C.AddCertificateRequest(data=pfx, format=PFX, password="wrong")), "data")
        await _invalid(certs.AddCertificate(C.AddCertificateRequest(data=b"not a certificate", format=CER)), "data")
        await _invalid(certs.AddCertificate(C.AddCertificateRequest(data=der, format=0)), "format")
        await _invalid(certs.AddCertificate(C.AddCertificateRequest(data=der, format=77)), "format")
        await _invalid(certs.AddCertificate(C.AddCertificateRequest(data=der, format=CER, password="x")), "password")
        await _invalid(
            certs.AddCertificate(C.AddCertificateRequest(data=der, format=CER, thumbprint="ab" * 20)), "thumbprint"
        )
        await _invalid(
            certs.AddCertificate(C.AddCertificateRequest(data=der, format=CER, thumbprint_algorithm="md5")),
            "thumbprint_algorithm",
        )
        await _invalid(certs.GetCertificate(C.GetCertificateRequest(name="certificates/sha1-zz")), "name")
        got = await certs.GetCertificate(C.GetCertificateRequest(name=_name(tp)))
        assert got.has_private_key and got.not_after.seconds > got.not_before.seconds
        listed = await certs.ListCertificates(C.ListCertificatesRequest())
        assert sorted(c.thumbprint for c in listed.certificates) == sorted([tp, tp2])
        page = await certs.ListCertificates(C.ListCertificatesRequest(page_size=1))
        assert len(page.certificates) == 1 and page.next_page_token
        failed = await certs.ListCertificates(C.ListCertificatesRequest(state=C.CERTIFICATE_STATE_DELETE_FAILED))
        assert not failed.certificates
        # No response ever carries the private key.
        for msg in (added, got, listed):
            assert b"PRIVATE KEY" not in msg.SerializeToString()
        # Another account sees none of them: NOT_FOUND, the same as a missing one.
        other_key = await make_account(server, "other")
        async with channel_as(server, "other", other_key) as other_ch:
            other = certificate_pb2_grpc.CertificateServiceStub(other_ch)
            mine = await refused(
                other.GetCertificate(C.GetCertificateRequest(name=_name(tp))),
                grpc.StatusCode.NOT_FOUND,
                "CERTIFICATE_NOT_FOUND",
            )
            missing = await refused(
                other.GetCertificate(C.GetCertificateRequest(name=_name("ab" * 20))),
                grpc.StatusCode.NOT_FOUND,
                "CERTIFICATE_NOT_FOUND",
            )
            assert mine.details() == missing.details().replace("ab" * 20, tp)
            assert not (await other.ListCertificates(C.ListCertificatesRequest())).certificates
            await refused(
                other.DeleteCertificate(C.DeleteCertificateRequest(name=_name(tp))),
                grpc.StatusCode.NOT_FOUND,
                "CERTIFICATE_NOT_FOUND",
            )
            # Nor can its pools reference them.
            await _invalid(
                pool_pb2_grpc.PoolServiceStub(other_ch).CreatePool(
                    pool_pb2.CreatePoolRequest(
                        pool=pool_pb2.Pool(
                            id="theirs", provider="join", certificate_references=[C.CertificateReference(thumbprint=tp)]
                        )
                    )
                ),
                "pool.certificate_references[0].thumbprint",
            )
            # The same certificate may be added by another account: each has its own.
            await other.AddCertificate(C.AddCertificateRequest(data=der, format=CER))


async def test_delete_while_in_use_fails_then_succeeds(server) -> None:
    pfx, tp = make_pfx("in-use", "pw")
    _pem, _key, der, unused = make_cert("unused")
    async with server_channel(server) as ch:
        certs = certificate_pb2_grpc.CertificateServiceStub(ch)
        pools = pool_pb2_grpc.PoolServiceStub(ch)
        await certs.AddCertificate(C.AddCertificateRequest(data=pfx, format=PFX, password="pw"))
        await certs.AddCertificate(C.AddCertificateRequest(data=der, format=CER))
        await _invalid(
            pools.CreatePool(
                pool_pb2.CreatePoolRequest(
                    pool=pool_pb2.Pool(id="bad", certificate_references=[C.CertificateReference(thumbprint="ab" * 20)])
                )
            ),
            "pool.certificate_references[0].thumbprint",
        )
        await _invalid(
            pools.CreatePool(
                pool_pb2.CreatePoolRequest(
                    pool=pool_pb2.Pool(
                        id="bad",
                        certificate_references=[C.CertificateReference(thumbprint=tp, visibility=[9])],
                    )
                )
            ),
            "pool.certificate_references[0].visibility",
        )
        assert "bad" not in server.cp.pools
        pool = await pools.CreatePool(
            pool_pb2.CreatePoolRequest(
                pool=pool_pb2.Pool(
                    id="p",
                    target_nodes=1,
                    provider="join",
                    certificate_references=[
                        C.CertificateReference(
                            thumbprint="SHA1-" + tp.upper(), visibility=[C.CERTIFICATE_VISIBILITY_TASK]
                        )
                    ],
                )
            )
        )
        (ref,) = pool.certificate_references
        assert ref.thumbprint == tp and ref.thumbprint_algorithm == "sha1"
        assert list(ref.visibility) == [C.CERTIFICATE_VISIBILITY_TASK]
        # A joining node is given the certificate and its key, and records it.
        agent = ScriptedAgent(server, "p", "127.0.2.91")
        welcome = await agent.connect()
        (given,) = welcome.certificates
        assert given.thumbprint == tp and b"BEGIN CERTIFICATE" in given.certificate
        assert b"PRIVATE KEY" in given.private_key
        assert list(given.visibility) == [C.CERTIFICATE_VISIBILITY_TASK]
        node = server.cp.nodes[next(iter(server.cp.nodes))]
        assert [r.thumbprint for r in node.proto.certificate_references] == [tp]
        # In use: DELETE_FAILED, naming the pool and the node.
        failed = await certs.DeleteCertificate(C.DeleteCertificateRequest(name=_name(tp)))
        assert failed.state == C.CERTIFICATE_STATE_DELETE_FAILED
        assert failed.previous_state == C.CERTIFICATE_STATE_DELETING
        err = failed.delete_certificate_error
        assert err.code == "CertificateInUse"
        assert sorted((v.name, v.value) for v in err.values) == [("node", node.proto.name), ("pool", "p")]
        # A certificate whose deletion failed cannot be referenced until the deletion is cancelled.
        await _invalid(
            pools.CreatePool(
                pool_pb2.CreatePoolRequest(
                    pool=pool_pb2.Pool(id="p2", certificate_references=[C.CertificateReference(thumbprint=tp)])
                )
            ),
            "pool.certificate_references[0].thumbprint",
        )
        back = await certs.CancelCertificateDeletion(C.CancelCertificateDeletionRequest(name=_name(tp)))
        assert back.state == C.CERTIFICATE_STATE_ACTIVE and not back.HasField("delete_certificate_error")
        await refused(
            certs.CancelCertificateDeletion(C.CancelCertificateDeletionRequest(name=_name(tp))),
            grpc.StatusCode.FAILED_PRECONDITION,
            "CERTIFICATE_STATE_ACTIVE",
        )
        # An unused one goes at once.
        gone = await certs.DeleteCertificate(C.DeleteCertificateRequest(name=_name(unused)))
        assert gone.state == C.CERTIFICATE_STATE_DELETING
        await refused(
            certs.GetCertificate(C.GetCertificateRequest(name=_name(unused))),
            grpc.StatusCode.NOT_FOUND,
            "CERTIFICATE_NOT_FOUND",
        )
        # Once the pool and its node are gone, so can the other be.
        await agent.close()
        await pools.DeletePool(pool_pb2.DeletePoolRequest(name="pools/p"))
        async with asyncio.timeout(30):
            while "p" in server.cp.pools:
                await server.cp.flush()
                await asyncio.sleep(0.05)
        await certs.DeleteCertificate(C.DeleteCertificateRequest(name=_name(tp)))
        assert not (await certs.ListCertificates(C.ListCertificatesRequest())).certificates


async def test_certificates_survive_a_restart_with_keys_sealed(tmp_path) -> None:
    pfx, tp = make_pfx("kept", "pw")
    data = tmp_path / "data"
    server = await start_server(data)
    try:
        async with server_channel(server) as ch:
            await certificate_pb2_grpc.CertificateServiceStub(ch).AddCertificate(
                C.AddCertificateRequest(data=pfx, format=PFX, password="pw")
            )
        key_pem = server.cp.node_certificates("default", [C.CertificateReference(thumbprint=tp)])[0].private_key
    finally:
        await server.stop(stop_agents=True)
    with sqlite3.connect(data / "shoal.db") as db:
        rows = [r[0] for r in db.execute("SELECT data FROM certificates")]
    assert len(rows) == 1
    stored = rows[0] if isinstance(rows[0], bytes) else str(rows[0]).encode()
    assert _pem_body(key_pem)[:40] not in stored and base64.b64encode(key_pem)[:40] not in stored
    server = await start_server(data)
    try:
        async with server_channel(server) as ch:
            got = await certificate_pb2_grpc.CertificateServiceStub(ch).GetCertificate(
                C.GetCertificateRequest(name=_name(tp))
            )
        assert got.state == C.CERTIFICATE_STATE_ACTIVE and got.has_private_key
        again = server.cp.node_certificates("default", [C.CertificateReference(thumbprint=tp)])[0].private_key
        assert again == key_pem
    finally:
        await server.stop(stop_agents=True)
