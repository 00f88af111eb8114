"""The node certificates the CA issued, by node, and the serials revoked: ``<certs>/node-certs.json``.

A node that leaves its pool for good (removed, its pool deleted) has every certificate issued for it
revoked: its agent, or anyone holding its key, is refused from then on, even though the certificate
itself would still verify. Entries go once the certificate has expired (the TLS handshake refuses it
then), so the file holds at most the certificates still valid.

Small (one entry per node), written whole and atomically on each change, which is rare (a join, a
node leaving).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from shoal.clock import Clock

log = logging.getLogger("shoal.certs")

FILE_NAME = "node-certs.json"


class NodeCertRegistry:
    """Issued node certificates (node id -> serials) and revoked serials, each with its expiry."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        #: node id -> {serial (hex): not-after (Unix seconds)}
        self._issued: dict[str, dict[str, int]] = {}
        #: serial (hex) -> not-after (Unix seconds)
        self._revoked: dict[str, int] = {}

    @classmethod
    def load(cls, directory: Path, clock: Clock) -> NodeCertRegistry:
        """The registry kept in `directory` (empty when there is no file yet)."""
        reg = cls(Path(directory) / FILE_NAME, clock)
        if reg.path.exists():
            try:
                data = json.loads(reg.path.read_text())
                reg._issued = {str(k): {str(s): int(t) for s, t in v.items()} for k, v in data["issued"].items()}
                reg._revoked = {str(s): int(t) for s, t in data["revoked"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                # Refusing to start is better than forgetting revocations.
                raise ValueError(f"the node certificate registry {reg.path} is unreadable: {e}") from e
        return reg

    def issued(self, node_id: str, serial: int, not_after: datetime) -> None:
        """Remember that a certificate of `serial` was issued for `node_id`."""
        self._issued.setdefault(node_id, {})[format(serial, "x")] = int(not_after.timestamp())
        self._save()

    def issued_ids(self) -> set[str]:
        """Node ids with a certificate issued (and not expired at the last write)."""
        return set(self._issued)

    def revoke_node(self, node_id: str) -> int:
        """Revoke every certificate issued for `node_id`; how many were."""
        serials = self._issued.pop(node_id, {})
        if not serials:
            return 0
        self._revoked.update(serials)
        self._save()
        log.info("revoked %d certificate(s) of node %s", len(serials), node_id)
        return len(serials)

    def is_revoked(self, serial: int) -> bool:
        """Whether the certificate of `serial` was revoked."""
        return format(serial, "x") in self._revoked

    def _save(self) -> None:
        now = int(self._clock.now().timestamp())
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        for node_id in list(self._issued):
            live = {s: t for s, t in self._issued[node_id].items() if t > now}
            if live:
                self._issued[node_id] = live
            else:
                del self._issued[node_id]
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"issued": self._issued, "revoked": self._revoked}, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
