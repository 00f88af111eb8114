"""The pure parts of certificates: reading a PFX or CER file, thumbprints, states, and deletion.

No I/O and no clock here: the registry (`registry.py`) applies what these decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from shoal.server.domain.errors import FailedPrecondition, invalid_input
from shoal.v1 import certificate_pb2 as C

#: The only thumbprint algorithm (as Batch).
SHA1 = "sha1"
#: 40 lowercase hexadecimal digits.
THUMBPRINT_RE = re.compile(r"^[0-9a-f]{40}$")
#: The largest certificate file accepted (a PFX with a long chain is a few KiB).
MAX_DATA_BYTES = 256 * 1024
#: What a reference without a visibility means: every one of them.
ALL_VISIBILITIES = (
    C.CERTIFICATE_VISIBILITY_START_TASK,
    C.CERTIFICATE_VISIBILITY_TASK,
    C.CERTIFICATE_VISIBILITY_REMOTE_USER,
)
#: The most certificate references one pool may hold.
MAX_REFERENCES = 64
#: Batch's code for a certificate a pool or node still uses.
IN_USE = "CertificateInUse"

#: The certificate state machine. Leaving DELETING for "gone" is not a state: the row is deleted.
TRANSITIONS: dict[int, frozenset[int]] = {
    C.CERTIFICATE_STATE_ACTIVE: frozenset({C.CERTIFICATE_STATE_DELETING}),
    C.CERTIFICATE_STATE_DELETING: frozenset({C.CERTIFICATE_STATE_DELETE_FAILED}),
    C.CERTIFICATE_STATE_DELETE_FAILED: frozenset({C.CERTIFICATE_STATE_DELETING, C.CERTIFICATE_STATE_ACTIVE}),
}


def can_transition(old: int, new: int) -> bool:
    """Whether the table allows `old` → `new`."""
    return new in TRANSITIONS.get(old, frozenset())


@dataclass(frozen=True)
class ParsedCertificate:
    """What a certificate file holds, as the server keeps it."""

    thumbprint: str
    #: The certificate, DER.
    der: bytes
    #: The private key, PEM (PKCS #8, unencrypted; sealed at rest by the registry); b"" when none.
    key_pem: bytes = field(default=b"", repr=False)

    @property
    def cert(self) -> x509.Certificate:
        """The certificate, decoded."""
        return x509.load_der_x509_certificate(self.der)

    @property
    def cert_pem(self) -> bytes:
        """The certificate, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def thumbprint_of(cert: x509.Certificate) -> str:
    """Batch's thumbprint: SHA-1 of the DER encoding, lowercase hexadecimal."""
    return cert.fingerprint(hashes.SHA1()).hex()


def normalize_thumbprint(value: str) -> str:
    """A thumbprint as given by a user (any case, perhaps with a "sha1-" prefix or separators), normalized."""
    text = value.strip().lower()
    if text.startswith(SHA1 + "-"):
        text = text[len(SHA1) + 1 :]
    return text.replace(":", "").replace(" ", "")


def thumbprint_problem(value: str) -> str | None:
    """Why `value` (normalized) is not a thumbprint, or None."""
    return None if THUMBPRINT_RE.match(value) else "must be a SHA-1 thumbprint: 40 hexadecimal digits"


def algorithm_problem(value: str) -> str | None:
    """Why `value` is not a thumbprint algorithm Shoal knows, or None ("" means sha1)."""
    return None if value.lower() in ("", SHA1) else "must be 'sha1' (or empty)"


def _load_pfx(data: bytes, password: str) -> tuple[object, x509.Certificate | None]:
    # A PFX made without a password and one made with an empty password differ on the wire: try both.
    attempts = [password.encode()] if password else [None, b""]
    last: Exception | None = None
    for pw in attempts:
        try:
            key, cert, _chain = pkcs12.load_key_and_certificates(data, pw)
            return key, cert
        except (ValueError, TypeError) as e:
            last = e
    raise invalid_input(
        "INVALID_CERTIFICATE",
        [("data", "is not a PKCS #12 (PFX) file, or the password does not open it")],
    ) from last


def _key_pem(key: object) -> bytes:
    try:
        return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    except (AttributeError, ValueError, TypeError) as e:
        raise invalid_input("INVALID_CERTIFICATE", [("data", "holds a private key of a kind Shoal cannot use")]) from e


def parse(data: bytes, fmt: int, password: str) -> ParsedCertificate:
    """Read a certificate file (PFX with its key, or CER: DER or PEM); InvalidInput naming the field."""
    if not data:
        raise invalid_input("INVALID_CERTIFICATE", [("data", "must not be empty")])
    if len(data) > MAX_DATA_BYTES:
        raise invalid_input("INVALID_CERTIFICATE", [("data", f"must be at most {MAX_DATA_BYTES} bytes")])
    if fmt == C.CERTIFICATE_FORMAT_PFX:
        key, cert = _load_pfx(data, password)
        if cert is None:
            raise invalid_input("INVALID_CERTIFICATE", [("data", "the PFX file holds no certificate")])
        key_pem = _key_pem(key) if key is not None else b""
    elif fmt == C.CERTIFICATE_FORMAT_CER:
        if password:
            raise invalid_input("INVALID_CERTIFICATE", [("password", "only a PFX file has a password")])
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                cert = x509.load_pem_x509_certificate(data)
            else:
                cert = x509.load_der_x509_certificate(data)
        except ValueError as e:
            raise invalid_input("INVALID_CERTIFICATE", [("data", "is not an X.509 certificate (DER or PEM)")]) from e
        key_pem = b""
    else:
        raise invalid_input("INVALID_CERTIFICATE_FORMAT", [("format", "must be PFX or CER")])
    der = cert.public_bytes(serialization.Encoding.DER)
    return ParsedCertificate(thumbprint_of(cert), der, key_pem)


def check_claimed_thumbprint(parsed: ParsedCertificate, thumbprint: str, algorithm: str) -> None:
    """Refuse a thumbprint (or algorithm) the caller sent that does not describe the certificate."""
    violations = []
    problem = algorithm_problem(algorithm)
    if problem:
        violations.append(("thumbprint_algorithm", problem))
    if thumbprint and normalize_thumbprint(thumbprint) != parsed.thumbprint:
        violations.append(("thumbprint", "is not the certificate's SHA-1 thumbprint"))
    if violations:
        raise invalid_input("INVALID_CERTIFICATE", violations)


def name_of(thumbprint: str) -> str:
    """The resource name of a certificate."""
    return f"certificates/{SHA1}-{thumbprint}"


def thumbprint_from_name(name: str, field_name: str = "name") -> str:
    """The thumbprint a "certificates/sha1-{thumbprint}" name holds; InvalidInput otherwise."""
    prefix = f"certificates/{SHA1}-"
    if not name.lower().startswith(prefix):
        raise invalid_input("INVALID_NAME", [(field_name, "must look like 'certificates/sha1-{thumbprint}'")])
    thumbprint = name[len(prefix) :].lower()
    problem = thumbprint_problem(thumbprint)
    if problem:
        raise invalid_input("INVALID_NAME", [(field_name, problem)])
    return thumbprint


@dataclass(frozen=True)
class Usage:
    """Something that uses a certificate: a pool (by reference) or a node (installed)."""

    kind: str  # "pool" or "node"
    name: str
    account: str
    thumbprints: frozenset[str]


def in_use_error(account: str, thumbprint: str, users: Iterable[Usage]) -> C.DeleteCertificateError | None:
    """Why `account`'s certificate `thumbprint` cannot be deleted now (Batch's CertificateInUse), or None."""
    values = [
        C.CertificateErrorValue(name=u.kind, value=u.name)
        for u in users
        if u.account == account and thumbprint in u.thumbprints
    ]
    if not values:
        return None
    values.sort(key=lambda v: (v.name, v.value))
    pools = sum(1 for v in values if v.name == "pool")
    nodes = len(values) - pools
    return C.DeleteCertificateError(
        code=IN_USE,
        message=(
            f"the certificate is used by {pools} pool(s) and installed on {nodes} node(s): remove it from "
            "their certificate references (nodes drop it when their agent restarts), then delete it again"
        ),
        values=values,
    )


def check_deletable(state: int) -> None:
    """Refuse DeleteCertificate from a state other than ACTIVE or DELETE_FAILED."""
    if not can_transition(state, C.CERTIFICATE_STATE_DELETING):
        raise FailedPrecondition("CERTIFICATE_BEING_DELETED", "the certificate is being deleted already")


def check_cancellable(state: int) -> None:
    """Refuse CancelCertificateDeletion from a state other than DELETE_FAILED (as Batch)."""
    if state != C.CERTIFICATE_STATE_DELETE_FAILED:
        if state == C.CERTIFICATE_STATE_ACTIVE:
            raise FailedPrecondition("CERTIFICATE_STATE_ACTIVE", "the certificate is active: no deletion to cancel")
        raise FailedPrecondition(
            "CERTIFICATE_BEING_DELETED", "the certificate is being deleted: only a failed deletion can be cancelled"
        )


def visibilities(ref: C.CertificateReference) -> tuple[int, ...]:
    """The visibilities a reference grants (all of them when it names none), in order, without repeats."""
    return tuple(sorted(set(ref.visibility))) if ref.visibility else ALL_VISIBILITIES


def reference_problems(
    refs: Sequence[C.CertificateReference],
    state_of: dict[str, int],
    field_name: str = "pool.certificate_references",
) -> list[tuple[str, str]]:
    """Field violations of a pool's certificate references against its account's certificates.

    `state_of`: thumbprint → state of each certificate of the account. A reference must name an ACTIVE
    one (a certificate being deleted can no longer be referenced, as Batch), once.
    """
    if len(refs) > MAX_REFERENCES:
        return [(field_name, f"must hold at most {MAX_REFERENCES} references")]
    violations: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        where = f"{field_name}[{i}]"
        tp = normalize_thumbprint(ref.thumbprint)
        problem = algorithm_problem(ref.thumbprint_algorithm)
        if problem:
            violations.append((f"{where}.thumbprint_algorithm", problem))
        problem = thumbprint_problem(tp)
        if problem:
            violations.append((f"{where}.thumbprint", problem))
            continue
        if tp in seen:
            violations.append((f"{where}.thumbprint", "names a certificate referenced already"))
        seen.add(tp)
        for v in ref.visibility:
            if v not in ALL_VISIBILITIES:
                violations.append((f"{where}.visibility", "must be START_TASK, TASK or REMOTE_USER"))
                break
        state = state_of.get(tp)
        if state is None:
            violations.append((f"{where}.thumbprint", "no certificate of the account has this thumbprint"))
        elif state != C.CERTIFICATE_STATE_ACTIVE:
            violations.append((f"{where}.thumbprint", "the certificate is being deleted"))
    return violations


def normalized_references(refs: Sequence[C.CertificateReference]) -> list[C.CertificateReference]:
    """References as stored: lowercase thumbprint, algorithm "sha1", visibilities explicit."""
    return [
        C.CertificateReference(
            thumbprint=normalize_thumbprint(r.thumbprint), thumbprint_algorithm=SHA1, visibility=visibilities(r)
        )
        for r in refs
    ]


def describe(cert: x509.Certificate) -> tuple[str, str, datetime, datetime]:
    """Subject, issuer, not before, not after (UTC) of a certificate, for its API message."""
    return (
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
