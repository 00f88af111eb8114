"""Certificates: ``client.certificates`` (an account's X.509 certificates, as Batch's), and the
:class:`CertificateReference` with which a pool installs them on its nodes.

A certificate is named by its SHA-1 thumbprint (40 hexadecimal digits of the SHA-1 of its DER
encoding). Every method takes a thumbprint in any case, with or without a ``sha1-`` prefix (or a
whole ``certificates/sha1-...`` name), and with or without the ``:`` of ``openssl x509 -fingerprint``.
A certificate's private key (from a PFX) is never returned: it reaches only the nodes of pools
that reference the certificate.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shoal.v1 import certificate_pb2

from ._rpc import PAGE_SIZE, Rpc
from .common_types import _choice, _ts
from .errors import InvalidArgument

__all__ = [
    "Certificate",
    "CertificateFormat",
    "CertificateReference",
    "CertificateState",
    "CertificateVisibility",
    "CertificatesAPI",
    "DeleteCertificateError",
    "detect_format",
    "normalize_thumbprint",
]

C = certificate_pb2


class CertificateState(enum.StrEnum):
    """Where a certificate is in its deletion (Batch names)."""

    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    DELETING = "deleting"
    """Being deleted; a certificate whose deletion succeeded is gone (``get`` raises ``NotFound``)."""
    DELETE_FAILED = "deletefailed"
    """A pool or node still uses it (see :attr:`Certificate.delete_certificate_error`); delete again
    once they stopped, or :meth:`CertificatesAPI.cancel_deletion` to make it ``active`` again."""


class CertificateVisibility(enum.StrEnum):
    """Who on a pool's nodes gets a certificate (Batch names; ``start_task`` etc. are accepted too)."""

    START_TASK = "starttask"
    """The start task: in its ``certs/`` directory."""
    TASK = "task"
    """Every task (and job manager, preparation and release task): in the task's ``certs/`` directory."""
    REMOTE_USER = "remoteuser"
    """The pool's named user accounts: in ``certs/`` of each one's home."""


class CertificateFormat(enum.StrEnum):
    """How the data given to :meth:`CertificatesAPI.add` is encoded."""

    PFX = "pfx"
    """PKCS #12 (``.pfx``, ``.p12``): the certificate and its private key, under a password (may be empty)."""
    CER = "cer"
    """An X.509 certificate alone (``.cer``, ``.crt``, ``.pem``, ``.der``), DER or PEM."""


_STATES = {
    C.CERTIFICATE_STATE_UNSPECIFIED: CertificateState.UNSPECIFIED,
    C.CERTIFICATE_STATE_ACTIVE: CertificateState.ACTIVE,
    C.CERTIFICATE_STATE_DELETING: CertificateState.DELETING,
    C.CERTIFICATE_STATE_DELETE_FAILED: CertificateState.DELETE_FAILED,
}
_STATES_TO_PROTO = {v: k for k, v in _STATES.items()}

_VISIBILITIES = {
    C.CERTIFICATE_VISIBILITY_START_TASK: CertificateVisibility.START_TASK,
    C.CERTIFICATE_VISIBILITY_TASK: CertificateVisibility.TASK,
    C.CERTIFICATE_VISIBILITY_REMOTE_USER: CertificateVisibility.REMOTE_USER,
}
_VISIBILITIES_TO_PROTO = {v: k for k, v in _VISIBILITIES.items()}

_FORMATS_TO_PROTO = {CertificateFormat.PFX: C.CERTIFICATE_FORMAT_PFX, CertificateFormat.CER: C.CERTIFICATE_FORMAT_CER}

_PFX_SUFFIXES = frozenset({".pfx", ".p12"})
_CER_SUFFIXES = frozenset({".cer", ".crt", ".pem", ".der"})

_HEX40 = re.compile(r"[0-9a-f]{40}")
_PEM_BEGIN = b"-----BEGIN"


def normalize_thumbprint(thumbprint: str) -> str:
    """``thumbprint`` as the API names it: 40 lowercase hexadecimal digits.

    Accepts any case, a ``sha1-`` or ``certificates/sha1-`` prefix, and the ``:`` separators and spaces
    of ``openssl x509 -fingerprint -sha1``. :class:`InvalidArgument` ``INVALID_THUMBPRINT`` otherwise.
    """
    text = thumbprint.strip().lower().removeprefix("certificates/").removeprefix("sha1-")
    text = text.removeprefix("sha1 fingerprint=").replace(":", "").replace(" ", "")
    if not _HEX40.fullmatch(text):
        raise InvalidArgument(
            f"{thumbprint!r} is not a SHA-1 thumbprint (40 hexadecimal digits)",
            reason="INVALID_THUMBPRINT",
            field_violations=[("thumbprint", "40 hexadecimal digits")],
        )
    return text


def _name(thumbprint: str) -> str:
    return f"certificates/sha1-{normalize_thumbprint(thumbprint)}"


def certificate_state_to_proto(state: CertificateState | str) -> int:
    """The proto enum value of a certificate state given as :class:`CertificateState` or its string."""
    return int(_STATES_TO_PROTO[_choice(CertificateState, state, field="state", reason="INVALID_CERTIFICATE_STATE")])


def _looks_like_certificate(data: bytes) -> bool:
    """Whether ``data`` parses as one X.509 certificate, PEM or DER (a PKCS #12 file does not)."""
    from cryptography import x509

    try:
        if data.lstrip().startswith(_PEM_BEGIN):
            x509.load_pem_x509_certificate(data)
        else:
            x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def detect_format(data: bytes, filename: str | os.PathLike[str] | None = None) -> CertificateFormat:
    """The format of ``data`` (read from ``filename`` when given), as :meth:`CertificatesAPI.add` guesses it.

    By the file's suffix first: ``.pfx``/``.p12`` are PFX; ``.cer``/``.crt``/``.pem``/``.der`` are CER.
    Otherwise by content: CER when it parses as one X.509 certificate (PEM or DER), else PFX.
    """
    if filename is not None:
        suffix = Path(filename).suffix.lower()
        if suffix in _PFX_SUFFIXES:
            return CertificateFormat.PFX
        if suffix in _CER_SUFFIXES:
            return CertificateFormat.CER
    return CertificateFormat.CER if _looks_like_certificate(data) else CertificateFormat.PFX


def _read(data: bytes | str | os.PathLike[str]) -> tuple[bytes, str | os.PathLike[str] | None]:
    """The bytes to send and the file they came from (None for bytes or PEM text)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), None
    if isinstance(data, str) and data.lstrip().startswith(_PEM_BEGIN.decode()):
        return data.encode(), None
    path = Path(data)
    if not path.is_file():
        raise InvalidArgument(
            f"{path} is not a file", reason="LOCAL_FILE_NOT_FOUND", field_violations=[("data", "not a file")]
        )
    return path.read_bytes(), data


@dataclass(frozen=True, kw_only=True)
class DeleteCertificateError:
    """Why a certificate's deletion failed (Batch's ``deleteCertificateError``)."""

    code: str
    """``CertificateInUse``."""
    message: str
    """For people."""
    values: tuple[tuple[str, str], ...] = ()
    """``("pool", id)`` and ``("node", name)`` pairs: what still uses the certificate."""

    @property
    def pools(self) -> tuple[str, ...]:
        """The pools that still reference the certificate."""
        return tuple(v for n, v in self.values if n == "pool")

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes that still have it installed."""
        return tuple(v for n, v in self.values if n == "node")

    @classmethod
    def from_proto(cls, msg: certificate_pb2.DeleteCertificateError) -> DeleteCertificateError:
        """Build from a ``shoal.v1.DeleteCertificateError``."""
        return cls(code=msg.code, message=msg.message, values=tuple((v.name, v.value) for v in msg.values))


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """A certificate of the account (never its private key)."""

    name: str
    """Resource name ``certificates/sha1-{thumbprint}``."""
    thumbprint: str
    """40 lowercase hexadecimal digits: SHA-1 of the certificate's DER encoding."""
    thumbprint_algorithm: str
    """``sha1``."""
    state: CertificateState
    """``active``, ``deleting`` or ``deletefailed``."""
    state_transition_time: datetime | None
    """When its state last changed."""
    previous_state: CertificateState | None
    """Its state before, if it had one."""
    previous_state_transition_time: datetime | None
    """When it entered its previous state."""
    public_data: bytes = field(repr=False)
    """The certificate, DER-encoded."""
    delete_certificate_error: DeleteCertificateError | None
    """Why its deletion failed, while ``deletefailed``."""
    subject: str
    """Its subject's distinguished name."""
    issuer: str
    """Its issuer's distinguished name."""
    not_before: datetime | None
    """Valid from."""
    not_after: datetime | None
    """Valid until."""
    has_private_key: bool
    """Whether it was added with its private key (from a PFX), which nodes receive."""
    account: str
    """The account it belongs to."""
    proto: certificate_pb2.Certificate = field(repr=False, compare=False)
    """The raw ``shoal.v1.Certificate`` message."""

    @classmethod
    def from_proto(cls, msg: certificate_pb2.Certificate) -> Certificate:
        """Build from a ``shoal.v1.Certificate``."""
        previous = _STATES.get(msg.previous_state, CertificateState.UNSPECIFIED)
        return cls(
            name=msg.name,
            thumbprint=msg.thumbprint,
            thumbprint_algorithm=msg.thumbprint_algorithm,
            state=_STATES.get(msg.state, CertificateState.UNSPECIFIED),
            state_transition_time=_ts(msg, "state_transition_time"),
            previous_state=None if previous == CertificateState.UNSPECIFIED else previous,
            previous_state_transition_time=_ts(msg, "previous_state_transition_time"),
            public_data=msg.public_data,
            delete_certificate_error=(
                DeleteCertificateError.from_proto(msg.delete_certificate_error)
                if msg.HasField("delete_certificate_error")
                else None
            ),
            subject=msg.subject,
            issuer=msg.issuer,
            not_before=_ts(msg, "not_before"),
            not_after=_ts(msg, "not_after"),
            has_private_key=msg.has_private_key,
            account=msg.account,
            proto=msg,
        )

    def pem(self) -> str:
        """The certificate as PEM text."""
        import base64
        import textwrap

        body = "\n".join(textwrap.wrap(base64.b64encode(self.public_data).decode(), 64))
        return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _visibility(value: CertificateVisibility | str) -> CertificateVisibility:
    return _choice(CertificateVisibility, value, field="visibility", reason="INVALID_CERTIFICATE_VISIBILITY")


@dataclass(frozen=True, kw_only=True)
class CertificateReference:
    """A pool's use of one of its account's certificates: which of its nodes' users get it.

    ``visibility`` empty means every one (start task, tasks and remote users). The thumbprint is
    normalized (:func:`normalize_thumbprint`) and the visibilities made :class:`CertificateVisibility`
    on construction.
    """

    thumbprint: str
    """The certificate's SHA-1 thumbprint."""
    visibility: tuple[CertificateVisibility, ...] = ()
    """Who gets it; empty: everyone."""
    thumbprint_algorithm: str = "sha1"
    """Always ``sha1``."""

    def __post_init__(self) -> None:
        # Normalized once here, so that references compare equal however they were spelled.
        object.__setattr__(self, "thumbprint", normalize_thumbprint(self.thumbprint))
        visibility: Iterable[CertificateVisibility | str] = (
            (self.visibility,) if isinstance(self.visibility, str) else self.visibility
        )
        object.__setattr__(self, "visibility", tuple(dict.fromkeys(_visibility(v) for v in visibility)))
        algorithm = (self.thumbprint_algorithm or "sha1").lower()
        if algorithm != "sha1":
            raise InvalidArgument(
                f"thumbprint algorithm {self.thumbprint_algorithm!r}: only sha1",
                reason="INVALID_THUMBPRINT_ALGORITHM",
                field_violations=[("thumbprint_algorithm", "sha1")],
            )
        object.__setattr__(self, "thumbprint_algorithm", algorithm)

    def to_proto(self) -> certificate_pb2.CertificateReference:
        """The ``shoal.v1.CertificateReference`` message."""
        return C.CertificateReference(
            thumbprint=self.thumbprint,
            thumbprint_algorithm=self.thumbprint_algorithm,
            visibility=[_VISIBILITIES_TO_PROTO[v] for v in self.visibility],
        )

    @classmethod
    def from_proto(cls, msg: certificate_pb2.CertificateReference) -> CertificateReference:
        """Build from a ``shoal.v1.CertificateReference``."""
        visibility = tuple(_VISIBILITIES[v] for v in msg.visibility if v in _VISIBILITIES)
        algorithm = msg.thumbprint_algorithm or "sha1"
        try:
            return cls(thumbprint=msg.thumbprint, thumbprint_algorithm=algorithm, visibility=visibility)
        except InvalidArgument:
            # A result is read as it is, never refused: reading a pool must not fail on one reference.
            ref = object.__new__(cls)
            for name, value in (("thumbprint", msg.thumbprint), ("visibility", visibility)):
                object.__setattr__(ref, name, value)
            object.__setattr__(ref, "thumbprint_algorithm", algorithm)
            return ref

    @classmethod
    def parse(cls, text: str) -> CertificateReference:
        """From the CLI's ``--certificate THUMBPRINT[:VIS[,VIS...]]`` (VIS: ``start_task``, ``task``,
        ``remote_user``; none: all)."""
        # The thumbprint may itself hold ':' (openssl's AB:CD:...): the visibilities follow the last ':'
        # only when that part is not hexadecimal.
        head, sep, tail = text.rpartition(":")
        if sep and tail and not re.fullmatch(r"[0-9a-fA-F]{2}", tail.strip()):
            return cls(thumbprint=head, visibility=tuple(_visibility(v.strip()) for v in tail.split(",") if v.strip()))
        if sep and not tail:
            return cls(thumbprint=head)
        return cls(thumbprint=text)


class CertificatesAPI:
    """The account's certificates: ``client.certificates``."""

    def __init__(self, rpc: Rpc):
        self._rpc = rpc

    def add(
        self,
        data: bytes | str | os.PathLike[str],
        *,
        password: str = "",
        format: CertificateFormat | str | None = None,
        thumbprint: str = "",
    ) -> Certificate:
        """Add a certificate from a file (``str`` or path), its bytes, or PEM text.

        ``format``: ``pfx`` or ``cer``; by default guessed by :func:`detect_format` (the file's suffix,
        else CER when the data parses as an X.509 certificate, else PFX). ``password``: the PFX's
        (never stored nor logged). ``thumbprint``: when given, the server checks that it is the
        certificate's. Raises :class:`AlreadyExists` when the account has it already.
        """
        content, source = _read(data)
        fmt = (
            detect_format(content, source)
            if format is None
            else _choice(CertificateFormat, format, field="format", reason="INVALID_CERTIFICATE_FORMAT")
        )
        request = C.AddCertificateRequest(
            data=content,
            format=_FORMATS_TO_PROTO[fmt],  # type: ignore[arg-type]
            password=password,
            thumbprint=normalize_thumbprint(thumbprint) if thumbprint else "",
            thumbprint_algorithm="sha1",
        )
        return Certificate.from_proto(self._rpc.unary(self._rpc.certificates.AddCertificate, request))

    def get(self, thumbprint: str) -> Certificate:
        """The certificate ``thumbprint``."""
        request = C.GetCertificateRequest(name=_name(thumbprint))
        return Certificate.from_proto(self._rpc.unary(self._rpc.certificates.GetCertificate, request))

    def list(self, state: CertificateState | str | None = None) -> Iterator[Certificate]:
        """The account's certificates (all pages), only those in ``state`` when given."""
        state_value = certificate_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.certificates.ListCertificates,
            lambda token: C.ListCertificatesRequest(
                page_size=PAGE_SIZE,
                page_token=token,
                state=state_value,  # type: ignore[arg-type]
            ),
            "certificates",
        ):
            yield Certificate.from_proto(msg)

    def delete(self, thumbprint: str) -> Certificate:
        """Delete the certificate ``thumbprint``; the certificate as the deletion left it.

        When no pool or node uses it, it is gone (a later :meth:`get` raises :class:`NotFound`; the
        answer's state is ``deleting``). Otherwise its state is ``deletefailed`` and
        :attr:`Certificate.delete_certificate_error` names what uses it.
        """
        request = C.DeleteCertificateRequest(name=_name(thumbprint))
        return Certificate.from_proto(self._rpc.unary(self._rpc.certificates.DeleteCertificate, request))

    def cancel_deletion(self, thumbprint: str) -> Certificate:
        """Make a ``deletefailed`` certificate ``active`` again (:class:`FailedPrecondition` from any other state)."""
        request = C.CancelCertificateDeletionRequest(name=_name(thumbprint))
        return Certificate.from_proto(self._rpc.unary(self._rpc.certificates.CancelCertificateDeletion, request))
