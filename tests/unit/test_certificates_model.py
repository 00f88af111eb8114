"""The pure parts of certificates: reading files, thumbprints, references, states and deletion."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.certificates import model
from shoal.server.domain.errors import FailedPrecondition, InvalidInput
from shoal.v1 import certificate_pb2 as C
from tests.certfiles import make_cert, make_pfx

PFX, CER = C.CERTIFICATE_FORMAT_PFX, C.CERTIFICATE_FORMAT_CER
ACTIVE, DELETING, FAILED = (
    C.CERTIFICATE_STATE_ACTIVE,
    C.CERTIFICATE_STATE_DELETING,
    C.CERTIFICATE_STATE_DELETE_FAILED,
)


def _fields(e: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f for f, _ in e.value.violations]


def test_pfx_with_and_without_a_password() -> None:
    for password in ("pw", ""):
        pfx, tp = make_pfx("x", password)
        parsed = model.parse(pfx, PFX, password)
        assert parsed.thumbprint == tp == hashlib.sha1(parsed.der).hexdigest()
        assert parsed.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert b"BEGIN CERTIFICATE" in parsed.cert_pem
    pfx, _ = make_pfx("x", "pw")
    with pytest.raises(InvalidInput) as e:
        model.parse(pfx, PFX, "wrong")
    assert _fields(e) == ["data"]


def test_cer_in_der_or_pem_and_bad_files() -> None:
    pem, _key, der, tp = make_cert("y")
    assert model.parse(der, CER, "").thumbprint == tp
    assert model.parse(pem, CER, "") == model.parse(der, CER, "")
    assert model.parse(der, CER, "").key_pem == b""
    for data, fmt, password, field in (
        (b"", CER, "", "data"),
        (b"junk", CER, "", "data"),
        (b"junk", PFX, "", "data"),
        (der, CER, "pw", "password"),
        (der, 0, "", "format"),
        (b"x" * (model.MAX_DATA_BYTES + 1), CER, "", "data"),
    ):
        with pytest.raises(InvalidInput) as e:
            model.parse(data, fmt, password)
        assert _fields(e) == [field]


def test_claimed_thumbprints_and_names() -> None:
    _pem, _key, der, tp = make_cert("z")
    parsed = model.parse(der, CER, "")
    model.check_claimed_thumbprint(parsed, "SHA1-" + tp.upper(), "SHA1")
    model.check_claimed_thumbprint(parsed, "", "")
    with pytest.raises(InvalidInput) as e:
        model.check_claimed_thumbprint(parsed, "00" * 20, "md5")
    assert _fields(e) == ["thumbprint_algorithm", "thumbprint"]
    assert model.thumbprint_from_name(model.name_of(tp)) == tp
    for bad in ("certificates/" + tp, "certificates/sha1-xyz", "pools/p", ""):
        with pytest.raises(InvalidInput):
            model.thumbprint_from_name(bad)


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40), st.sampled_from(["", "sha1-", "SHA1-"]))
def test_normalized_thumbprints_are_plain(digits: str, prefix: str) -> None:
    tp = model.normalize_thumbprint(prefix + digits)
    assert tp == digits.lower() and model.thumbprint_problem(tp) is None


def test_reference_problems_name_each_field() -> None:
    a, b, c = "aa" * 20, "bb" * 20, "cc" * 20
    states = {a: ACTIVE, b: FAILED}
    refs = [
        C.CertificateReference(thumbprint=a),
        C.CertificateReference(thumbprint=a.upper()),
        C.CertificateReference(thumbprint=b),
        C.CertificateReference(thumbprint=c),
        C.CertificateReference(thumbprint="nope"),
        C.CertificateReference(thumbprint=a, thumbprint_algorithm="md5", visibility=[7]),
    ]
    got = model.reference_problems(refs, states)
    where = [f for f, _ in got]
    assert where == [
        "pool.certificate_references[1].thumbprint",
        "pool.certificate_references[2].thumbprint",
        "pool.certificate_references[3].thumbprint",
        "pool.certificate_references[4].thumbprint",
        "pool.certificate_references[5].thumbprint_algorithm",
        "pool.certificate_references[5].thumbprint",
        "pool.certificate_references[5].visibility",
    ]
    assert model.reference_problems([C.CertificateReference(thumbprint=a)], states) == []
    (norm,) = model.normalized_references([C.CertificateReference(thumbprint="SHA1-" + a.upper())])
    assert norm.thumbprint == a and norm.thumbprint_algorithm == "sha1"
    assert tuple(norm.visibility) == model.ALL_VISIBILITIES
    assert model.normalized_references([norm]) == [norm]


def test_in_use_is_per_account() -> None:
    tp = "ab" * 20
    users = [
        model.Usage("pool", "p1", "acct", frozenset({tp})),
        model.Usage("node", "pools/p1/nodes/n1", "acct", frozenset({tp})),
        model.Usage("pool", "p2", "other", frozenset({tp})),
        model.Usage("pool", "p3", "acct", frozenset({"cd" * 20})),
    ]
    err = model.in_use_error("acct", tp, users)
    assert err is not None and err.code == model.IN_USE
    assert [(v.name, v.value) for v in err.values] == [("node", "pools/p1/nodes/n1"), ("pool", "p1")]
    assert model.in_use_error("third", tp, users) is None


@given(st.lists(st.tuples(st.sampled_from(["delete", "cancel"]), st.booleans()), max_size=30))
def test_deletions_and_cancellations_follow_the_table(ops: list[tuple[str, bool]]) -> None:
    """Whatever callers do, a certificate moves only along the table, and is gone only from DELETING."""
    state: int | None = ACTIVE
    for op, in_use in ops:
        if state is None:
            break
        before = state
        try:
            if op == "delete":
                model.check_deletable(state)
                assert model.can_transition(state, DELETING)
                state = FAILED if in_use else None
                if state is not None:
                    assert model.can_transition(DELETING, state)
            else:
                model.check_cancellable(state)
                assert model.can_transition(state, ACTIVE)
                state = ACTIVE
        except FailedPrecondition:
            assert state == before
    for old, news in model.TRANSITIONS.items():
        for new in (ACTIVE, DELETING, FAILED):
            assert model.can_transition(old, new) == (new in news)
