"""Certificates in the client and the CLI: thumbprints, references, format detection, proto round trips,
and the calls and commands against the fake API (which reads the files as the API says they are encoded)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from shoal.client import (
    AlreadyExists,
    Certificate,
    CertificateFormat,
    CertificateReference,
    CertificateState,
    CertificateVisibility,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Pool,
)
from shoal.client._certificates import detect_format, normalize_thumbprint
from shoal.client.types import Node
from shoal.v1 import certificate_pb2, pool_pb2
from tests.certfiles import make_cert, make_pfx

from .fake_server import FakeServer

pytestmark = pytest.mark.timeout(60)

THUMB = "0123456789abcdef0123456789abcdef01234567"
V = CertificateVisibility


# --------------------------------------------------------------------------- thumbprints and references


@pytest.mark.parametrize(
    "text",
    [
        THUMB,
        THUMB.upper(),
        f"sha1-{THUMB}",
        f"SHA1-{THUMB.upper()}",
        f"certificates/sha1-{THUMB}",
        ":".join(THUMB[i : i + 2] for i in range(0, 40, 2)).upper(),
        f"  {THUMB}\n",
    ],
)
def test_thumbprints_in_any_spelling_normalize(text: str) -> None:
    assert normalize_thumbprint(text) == THUMB


@pytest.mark.parametrize("text", ["", "abc", THUMB + "0", THUMB[:-1] + "g", f"sha256-{THUMB}"])
def test_bad_thumbprints_are_invalid_arguments(text: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        normalize_thumbprint(text)
    assert e.value.reason == "INVALID_THUMBPRINT"


@pytest.mark.parametrize(
    ("text", "visibility"),
    [
        (THUMB, ()),
        (f"{THUMB}:", ()),
        (f"{THUMB}:task", (V.TASK,)),
        (f"sha1-{THUMB.upper()}:start_task,remote_user", (V.START_TASK, V.REMOTE_USER)),
        (f"{THUMB}:StartTask, task ,task", (V.START_TASK, V.TASK)),
        (":".join(THUMB[i : i + 2] for i in range(0, 40, 2)), ()),
        (":".join(THUMB[i : i + 2] for i in range(0, 40, 2)) + ":remote-user", (V.REMOTE_USER,)),
    ],
)
def test_reference_strings_parse(text: str, visibility: tuple[CertificateVisibility, ...]) -> None:
    ref = CertificateReference.parse(text)
    assert ref == CertificateReference(thumbprint=THUMB, visibility=visibility)
    assert ref.thumbprint == THUMB and ref.visibility == visibility and ref.thumbprint_algorithm == "sha1"


@pytest.mark.parametrize("text", [f"{THUMB}:everyone", f"{THUMB}:task,nobody", "nothex:task"])
def test_bad_reference_strings_are_invalid_arguments(text: str) -> None:
    with pytest.raises(InvalidArgument):
        CertificateReference.parse(text)


def test_reference_proto_round_trip() -> None:
    ref = CertificateReference(thumbprint=THUMB.upper(), visibility=("remote_user", V.START_TASK))
    msg = ref.to_proto()
    assert msg.thumbprint == THUMB and msg.thumbprint_algorithm == "sha1"
    assert list(msg.visibility) == [
        certificate_pb2.CERTIFICATE_VISIBILITY_REMOTE_USER,
        certificate_pb2.CERTIFICATE_VISIBILITY_START_TASK,
    ]
    assert CertificateReference.from_proto(msg) == ref
    # The API's default algorithm is sha1 when empty; anything else is refused here.
    assert CertificateReference.from_proto(certificate_pb2.CertificateReference(thumbprint=THUMB)).visibility == ()
    with pytest.raises(InvalidArgument):
        CertificateReference(thumbprint=THUMB, thumbprint_algorithm="sha256")
    # What a server answers is read as it is, even what this client would not send.
    odd = CertificateReference.from_proto(
        certificate_pb2.CertificateReference(thumbprint="x", thumbprint_algorithm="md5")
    )
    assert (odd.thumbprint, odd.thumbprint_algorithm, odd.visibility) == ("x", "md5", ())


def test_pool_and_node_carry_their_references() -> None:
    refs = [CertificateReference(thumbprint=THUMB, visibility=(V.TASK,)).to_proto()]
    pool = Pool.from_proto(pool_pb2.Pool(id="p", certificate_references=refs))
    node = Node.from_proto(pool_pb2.Node(id="n", certificate_references=refs))
    assert pool.certificate_references == node.certificate_references == (CertificateReference.parse(f"{THUMB}:task"),)
    assert Pool.from_proto(pool_pb2.Pool(id="q")).certificate_references == ()


# --------------------------------------------------------------------------- certificates


def test_certificate_from_proto_and_pem() -> None:
    pem, _key, der, thumb = make_cert("from-proto")
    msg = certificate_pb2.Certificate(
        name=f"certificates/sha1-{thumb}",
        thumbprint=thumb,
        thumbprint_algorithm="sha1",
        state=certificate_pb2.CERTIFICATE_STATE_DELETE_FAILED,
        previous_state=certificate_pb2.CERTIFICATE_STATE_DELETING,
        public_data=der,
        delete_certificate_error=certificate_pb2.DeleteCertificateError(
            code="CertificateInUse",
            message="used",
            values=[
                certificate_pb2.CertificateErrorValue(name="pool", value="p1"),
                certificate_pb2.CertificateErrorValue(name="node", value="pools/p1/nodes/n1"),
            ],
        ),
        subject="CN=from-proto",
        issuer="CN=from-proto",
        has_private_key=True,
        account="default",
    )
    msg.not_after.FromDatetime(datetime(2030, 1, 2, 3, 4, 5))
    c = Certificate.from_proto(msg)
    assert c.state == CertificateState.DELETE_FAILED == "deletefailed"
    assert c.previous_state == CertificateState.DELETING
    assert c.not_after == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC) and c.not_before is None
    assert c.delete_certificate_error is not None
    assert c.delete_certificate_error.pools == ("p1",)
    assert c.delete_certificate_error.nodes == ("pools/p1/nodes/n1",)
    assert c.has_private_key and c.account == "default" and c.public_data == der
    assert x509.load_pem_x509_certificate(c.pem().encode()) == x509.load_pem_x509_certificate(pem)
    assert der.hex() not in repr(c)  # the data stays out of reprs and logs
    plain = Certificate.from_proto(certificate_pb2.Certificate(thumbprint=thumb))
    assert plain.previous_state is None and plain.delete_certificate_error is None


def test_format_detection(tmp_path: Path) -> None:
    pem, key_pem, der, _ = make_cert("detect")
    pfx, _ = make_pfx("detect", "pw")
    # By suffix, whatever the content.
    for name, fmt in [("a.pfx", "pfx"), ("a.P12", "pfx"), ("a.cer", "cer"), ("a.crt", "cer"), ("a.pem", "cer")]:
        assert detect_format(b"anything", name) == fmt
    assert detect_format(der, tmp_path / "x.DER") == CertificateFormat.CER
    # By content otherwise.
    assert detect_format(pem) == detect_format(der) == CertificateFormat.CER
    assert detect_format(pem, "cert.txt") == CertificateFormat.CER
    assert detect_format(pfx) == detect_format(pfx, "bundle.bin") == CertificateFormat.PFX
    assert detect_format(key_pem) == CertificateFormat.PFX  # not a certificate: the server says what is wrong


def test_add_get_list_delete_cancel_through_the_client(fake: FakeServer, client: Client, tmp_path: Path) -> None:
    pfx, pfx_thumb = make_pfx("client-pfx", "s3cret")
    (tmp_path / "bundle.p12").write_bytes(pfx)
    pem, _key, der, cer_thumb = make_cert("client-cer")
    (tmp_path / "cert.txt").write_bytes(der)

    added = client.certificates.add(tmp_path / "bundle.p12", password="s3cret", thumbprint=pfx_thumb.upper())
    assert (added.thumbprint, added.state, added.has_private_key) == (pfx_thumb, CertificateState.ACTIVE, True)
    sent = fake.state.add_certificate_requests[-1]
    assert (sent.format, sent.password, sent.thumbprint, sent.thumbprint_algorithm) == (
        certificate_pb2.CERTIFICATE_FORMAT_PFX,
        "s3cret",
        pfx_thumb,
        "sha1",
    )
    assert sent.data == pfx

    cer = client.certificates.add(str(tmp_path / "cert.txt"))  # DER under an unknown suffix
    assert fake.state.add_certificate_requests[-1].format == certificate_pb2.CERTIFICATE_FORMAT_CER
    assert (cer.thumbprint, cer.has_private_key, cer.public_data) == (cer_thumb, False, der)
    client.certificates.add(make_cert("client-pem-text")[0].decode())  # PEM text, not a path
    assert fake.state.add_certificate_requests[-1].format == certificate_pb2.CERTIFICATE_FORMAT_CER
    with pytest.raises(AlreadyExists):  # the same certificate as PEM: the same thumbprint
        client.certificates.add(pem, format="CER")
    with pytest.raises(InvalidArgument) as e:
        client.certificates.add(tmp_path / "missing.pfx")
    assert e.value.reason == "LOCAL_FILE_NOT_FOUND"
    with pytest.raises(InvalidArgument):
        client.certificates.add(pfx, format="p7b")

    assert client.certificates.get(f"SHA1-{cer_thumb.upper()}").subject == "CN=client-cer"
    listed = list(client.certificates.list())  # the fake pages by two
    assert len(listed) == 3 and {pfx_thumb, cer_thumb} <= {c.thumbprint for c in listed}

    fake.state.certificates_in_use[pfx_thumb] = ["render"]
    failed = client.certificates.delete(pfx_thumb)
    assert failed.state == CertificateState.DELETE_FAILED
    assert failed.delete_certificate_error is not None and failed.delete_certificate_error.pools == ("render",)
    assert [c.thumbprint for c in client.certificates.list(state="delete_failed")] == [pfx_thumb]
    assert client.certificates.cancel_deletion(pfx_thumb).state == CertificateState.ACTIVE
    with pytest.raises(FailedPrecondition):
        client.certificates.cancel_deletion(pfx_thumb)

    gone = client.certificates.delete(cer_thumb)
    assert gone.state == CertificateState.DELETING
    with pytest.raises(NotFound):
        client.certificates.get(cer_thumb)
    with pytest.raises(InvalidArgument):
        client.certificates.get("not-a-thumbprint")
    with pytest.raises(InvalidArgument):
        list(client.certificates.list(state="gone"))


def test_pool_create_sends_references(client: Client) -> None:
    refs = [
        CertificateReference(thumbprint=THUMB, visibility=(V.START_TASK, V.TASK)),
        CertificateReference.parse("ab" * 20),
    ]
    pool = client.pools.create(id="certs", certificate_references=refs)
    assert pool.certificate_references == tuple(refs)
    assert client.pools.get("certs").certificate_references == tuple(refs)


# --------------------------------------------------------------------------- the CLI


def test_cli_add_with_each_password_source(run, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = []
    for i in range(3):
        pfx, thumb = make_pfx(f"cli-{i}", f"pw {i}")
        path = tmp_path / f"c{i}.pfx"
        path.write_bytes(pfx)
        files.append((path, thumb))
    (tmp_path / "pw").write_text("pw 0\n")

    r = run("certificate", "add", str(files[0][0]), "--password-file", str(tmp_path / "pw"), "-o", "json")
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["thumbprint"] == files[0][1] and shown["has_private_key"] is True
    assert x509.load_der_x509_certificate(base64.b64decode(shown["public_data"])).subject.rfc4514_string() == "CN=cli-0"
    r = run("certificate", "add", str(files[1][0]), "--password-stdin", input="pw 1\n")
    assert r.exit_code == 0, r.output
    assert files[1][1] in r.output and "pw 1" not in r.output
    r = run("certificate", "add", str(files[2][0]), "--password", "pw 2", "--thumbprint", f"sha1-{files[2][1]}")
    assert r.exit_code == 0, r.output
    assert [q.password for q in fake.state.add_certificate_requests] == ["pw 0", "pw 1", "pw 2"]

    r = run("certificate", "add", str(files[0][0]), "--password", "x", "--password-stdin")
    assert r.exit_code == 2 and "at most one" in r.output
    r = run("certificate", "add", str(files[0][0]), "--password", "wrong")
    assert r.exit_code == 1 and "INVALID_CERTIFICATE" in r.stderr


def test_cli_add_cer_list_get_delete_cancel(run, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pem, _key, _der, thumb = make_cert("cli-cer")
    (tmp_path / "c.bin").write_bytes(pem)
    r = run("certificate", "add", str(tmp_path / "c.bin"), "--format", "cer")
    assert r.exit_code == 0, r.output
    assert fake.state.add_certificate_requests[-1].format == certificate_pb2.CERTIFICATE_FORMAT_CER
    assert "bytes DER" in r.output

    r = run("certificate", "list")
    assert r.exit_code == 0 and thumb in r.output and "active" in r.output
    r = run("certificate", "list", "--state", "deletefailed", "-o", "json")
    assert json.loads(r.output) == []
    r = run("certificate", "get", thumb.upper(), "--pem")
    assert r.exit_code == 0 and x509.load_pem_x509_certificate(r.output.encode()) == x509.load_pem_x509_certificate(pem)
    r = run("certificate", "get", f"sha1-{thumb}")
    assert r.exit_code == 0 and "CN=cli-cer" in r.output

    fake.state.certificates_in_use[thumb] = ["p1", "p2"]
    r = run("certificate", "delete", thumb)
    assert r.exit_code == 1
    assert "deletion failed (CertificateInUse" in r.stderr and "pool p1, pool p2" in r.stderr
    r = run("certificate", "list", "--state", "deletefailed")
    assert thumb in r.output and "pool p1" in r.output
    r = run("certificate", "cancel-delete", thumb)
    assert r.exit_code == 0 and r.output.strip() == f"certificate sha1-{thumb}: active"
    del fake.state.certificates_in_use[thumb]
    r = run("certificate", "delete", thumb)
    assert r.exit_code == 0 and r.output.strip() == f"certificate sha1-{thumb}: deleted"
    r = run("certificate", "get", thumb)
    assert r.exit_code == 1 and "NOT_FOUND" in r.stderr
    r = run("certificate", "get", "xyz")
    assert r.exit_code == 1 and "INVALID_THUMBPRINT" in r.stderr


def test_cli_pool_create_with_certificates(run) -> None:  # type: ignore[no-untyped-def]
    other = "cd" * 20
    r = run(
        "pool", "create", "pc", "--nodes", "0", "--certificate", f"{THUMB.upper()}:start_task,task",
        "--certificate", other, "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["certificate_references"] == [
        {"thumbprint": THUMB, "visibility": ["starttask", "task"], "thumbprint_algorithm": "sha1"},
        {"thumbprint": other, "visibility": [], "thumbprint_algorithm": "sha1"},
    ]
    r = run("pool", "create", "bad", "--certificate", f"{THUMB}:everyone")
    assert r.exit_code == 1 and "INVALID_CERTIFICATE_VISIBILITY" in r.stderr


def test_cli_help_covers_every_option() -> None:
    from click.testing import CliRunner

    from shoal.client.cli import cli

    for args in (["certificate", "add"], ["certificate", "list"], ["certificate", "get"]):
        r = CliRunner().invoke(cli, [*args, "--help"])
        assert r.exit_code == 0
    r = CliRunner().invoke(cli, ["certificate", "add", "--help"])
    assert "process lists" in r.output
    r = CliRunner().invoke(cli, ["pool", "create", "--help"])
    assert "THUMBPRINT[:VIS[,VIS...]]" in r.output
