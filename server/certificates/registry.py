"""An account's certificates: kept in the store, private keys sealed under the server secret.

Certificates sit beside the scheduling state rather than in it, as accounts do: nothing on the hot path
reads them; the lifecycles only ask, when a node joins, what to install there (`node_certificates`), and
a deletion asks which pools and nodes use one (`usages`, read from the control plane). Private keys are
unsealed only in this process's memory and leave it only in a Welcome, over the agent port's mutual TLS.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from google.protobuf import json_format

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock, to_timestamp
from shoal.server.accounts.registry import Sealer
from shoal.server.certificates import model
from shoal.server.domain.errors import AlreadyExists, NotFound
from shoal.server.store.base import Delete, Row, Store, StoredRow
from shoal.v1 import certificate_pb2 as C

TABLE = "certificates"


@dataclass(frozen=True)
class CertRec:
    """One certificate of one account, with its state (the private key in memory only)."""

    account: str
    parsed: model.ParsedCertificate
    state: int
    state_time: datetime
    previous_state: int = C.CERTIFICATE_STATE_UNSPECIFIED
    previous_time: datetime | None = None
    delete_error: C.DeleteCertificateError | None = field(default=None, compare=False)

    @property
    def thumbprint(self) -> str:
        return self.parsed.thumbprint

    def moved_to(self, state: int, now: datetime, error: C.DeleteCertificateError | None = None) -> CertRec:
        """This certificate in `state` (checked against the transition table)."""
        if not model.can_transition(self.state, state):
            raise ValueError(f"certificate state {self.state} -> {state} is not in the table")
        return replace(
            self,
            state=state,
            state_time=now,
            previous_state=self.state,
            previous_time=self.state_time,
            delete_error=error,
        )


def _row_key(account: str, thumbprint: str) -> str:
    return f"{account}/{thumbprint}"


class CertificateRegistry:
    """Every account's certificates."""

    def __init__(self, store: Store, sealer: Sealer, clock: Clock) -> None:
        self.store = store
        self.sealer = sealer
        self.clock = clock
        self.certs: dict[tuple[str, str], CertRec] = {}

    # -- loading and persistence ------------------------------------------------------------------
    def load(self, rows: Iterable[StoredRow]) -> None:
        """Read the certificates table (at start-up)."""
        for row in rows:
            blob = json.loads(row.data)
            key_pem = self.sealer.unseal(base64.b64decode(blob["key"])) if blob.get("key") else b""
            parsed = model.ParsedCertificate(blob["thumbprint"], base64.b64decode(blob["der"]), key_pem)
            error = None
            if blob.get("delete_error"):
                error = json_format.ParseDict(blob["delete_error"], C.DeleteCertificateError())
            rec = CertRec(
                account=row.parent,
                parsed=parsed,
                state=int(blob["state"]),
                state_time=datetime.fromisoformat(blob["state_time"]),
                previous_state=int(blob.get("previous_state", 0)),
                previous_time=datetime.fromisoformat(blob["previous_time"]) if blob.get("previous_time") else None,
                delete_error=error,
            )
            self.certs[(rec.account, rec.thumbprint)] = rec

    def _row(self, rec: CertRec) -> Row:
        blob = {
            "thumbprint": rec.thumbprint,
            "der": base64.b64encode(rec.parsed.der).decode(),
            "key": base64.b64encode(self.sealer.seal(rec.parsed.key_pem)).decode() if rec.parsed.key_pem else "",
            "state": rec.state,
            "state_time": rec.state_time.isoformat(),
            "previous_state": rec.previous_state,
            "previous_time": rec.previous_time.isoformat() if rec.previous_time else "",
            "delete_error": json_format.MessageToDict(rec.delete_error) if rec.delete_error else None,
        }
        return Row(TABLE, _row_key(rec.account, rec.thumbprint), json.dumps(blob).encode(), parent=rec.account)

    async def _put(self, rec: CertRec) -> CertRec:
        await self.store.commit([self._row(rec)])
        self.certs[(rec.account, rec.thumbprint)] = rec
        return rec

    # -- reads ----------------------------------------------------------------------------------
    def get(self, account: str, thumbprint: str) -> CertRec:
        """The account's certificate, or NotFound (another account's answers as a missing one)."""
        rec = self.certs.get((account, thumbprint))
        if rec is None:
            raise NotFound("CERTIFICATE_NOT_FOUND", f"certificate {model.name_of(thumbprint)!r} does not exist")
        return rec

    def of_account(self, account: str) -> list[CertRec]:
        """The account's certificates, by thumbprint."""
        return sorted((r for (a, _), r in self.certs.items() if a == account), key=lambda r: r.thumbprint)

    def states(self, account: str) -> dict[str, int]:
        """thumbprint → state of each of the account's certificates."""
        return {tp: r.state for (a, tp), r in self.certs.items() if a == account}

    def holds_any(self, account: str) -> bool:
        """Whether the account has certificates (an account is deleted only when empty)."""
        return any(a == account for a, _ in self.certs)

    # -- changes --------------------------------------------------------------------------------
    async def add(self, account: str, parsed: model.ParsedCertificate) -> CertRec:
        """A new ACTIVE certificate; AlreadyExists when the account has one with that thumbprint."""
        k = (account, parsed.thumbprint)
        if k in self.certs:
            raise AlreadyExists(
                "CERTIFICATE_EXISTS", f"certificate {model.name_of(parsed.thumbprint)!r} exists already"
            )
        rec = CertRec(account, parsed, C.CERTIFICATE_STATE_ACTIVE, self.clock.now())
        # Taken before the commit's await: a second add of the same certificate is refused, not doubled.
        self.certs[k] = rec
        try:
            await self.store.commit([self._row(rec)])
        except BaseException:
            self.certs.pop(k, None)
            raise
        return rec

    async def delete(self, account: str, thumbprint: str, usages: Callable[[], Iterable[model.Usage]]) -> CertRec:
        """Delete: DELETING, persisted first; then gone, or DELETE_FAILED while a pool or node uses it.

        Returns the record as the deletion left it (DELETING when it is gone). `usages` is read after the
        DELETING state is in memory: a pool created from then on cannot reference the certificate.
        """
        rec = self.get(account, thumbprint)
        model.check_deletable(rec.state)
        deleting = await self._put(rec.moved_to(C.CERTIFICATE_STATE_DELETING, self.clock.now()))
        error = model.in_use_error(account, thumbprint, usages())
        if error is not None:
            return await self._put(deleting.moved_to(C.CERTIFICATE_STATE_DELETE_FAILED, self.clock.now(), error))
        await self.store.commit([Delete(TABLE, _row_key(account, thumbprint))])
        self.certs.pop((account, thumbprint), None)
        return deleting

    async def cancel_deletion(self, account: str, thumbprint: str) -> CertRec:
        """DELETE_FAILED → ACTIVE (as Batch's CancelDeletion)."""
        rec = self.get(account, thumbprint)
        model.check_cancellable(rec.state)
        return await self._put(rec.moved_to(C.CERTIFICATE_STATE_ACTIVE, self.clock.now()))

    # -- nodes ----------------------------------------------------------------------------------
    def node_certificates(
        self, account: str, refs: Sequence[C.CertificateReference]
    ) -> list[agent_pb2.NodeCertificate]:
        """What a node of a pool with `refs` installs: each referenced certificate that still exists."""
        out = []
        for ref in refs:
            rec = self.certs.get((account, model.normalize_thumbprint(ref.thumbprint)))
            if rec is None:
                continue
            out.append(
                agent_pb2.NodeCertificate(
                    thumbprint=rec.thumbprint,
                    certificate=rec.parsed.cert_pem,
                    private_key=rec.parsed.key_pem,
                    visibility=model.visibilities(ref),
                )
            )
        return out

    # -- API messages ---------------------------------------------------------------------------
    @staticmethod
    def message(rec: CertRec) -> C.Certificate:
        """The API's view of a certificate: never its private key."""
        subject, issuer, not_before, not_after = model.describe(rec.parsed.cert)
        msg = C.Certificate(
            name=model.name_of(rec.thumbprint),
            thumbprint=rec.thumbprint,
            thumbprint_algorithm=model.SHA1,
            state=rec.state,
            state_transition_time=to_timestamp(rec.state_time),
            previous_state=rec.previous_state,
            public_data=rec.parsed.der,
            subject=subject,
            issuer=issuer,
            not_before=to_timestamp(not_before),
            not_after=to_timestamp(not_after),
            has_private_key=bool(rec.parsed.key_pem),
            account=rec.account,
        )
        if rec.previous_time is not None:
            msg.previous_state_transition_time.CopyFrom(to_timestamp(rec.previous_time))
        if rec.delete_error is not None:
            msg.delete_certificate_error.CopyFrom(rec.delete_error)
        return msg
