"""A node agent's TLS identity on disk: ``<node root>/volatile/tls/``.

* ``ca.pem``: the cluster CA certificate (mode 0644: the node's tasks read it, through
  ``SHOAL_AGENT_CA_FILE``, to reach other nodes' agents over TLS);
* ``node.pem``: the node's certificate, ``node.key`` its private key (mode 0600, the agent's alone);
* ``agent-address``: where the server's agent port is, as the join told it (absent: the agent is told).

Written by the local provider before it starts an agent, or by the agent itself when it joins with a
token; read by the agent at start.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TLS_DIR = ("volatile", "tls")
CA_FILE = "ca.pem"
CERT_FILE = "node.pem"
KEY_FILE = "node.key"
ADDRESS_FILE = "agent-address"


def identity_dir(node_root: Path) -> Path:
    """Where the agent of `node_root` keeps its identity."""
    return node_root.joinpath(*TLS_DIR)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with `mode` from the start (a key is never readable by others, not even briefly)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # (the umask may have taken bits off a public file)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class AgentIdentity:
    """The CA to trust, and the certificate and key to show."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    #: The server's agent port (``host:port``), when known.
    agent_address: str = ""

    def __repr__(self) -> str:
        # Never the key: a repr ends up in logs and tracebacks.
        return f"AgentIdentity(agent_address={self.agent_address!r})"

    def save(self, directory: Path) -> None:
        """Write the files (directory 0700 for the key; the CA certificate stays readable)."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o711)  # others may open ca.pem by name, list nothing
        _write(directory / KEY_FILE, self.key_pem, 0o600)
        _write(directory / CERT_FILE, self.cert_pem, 0o644)
        _write(directory / CA_FILE, self.ca_pem, 0o644)
        if self.agent_address:
            _write(directory / ADDRESS_FILE, self.agent_address.encode(), 0o644)

    @classmethod
    def load(cls, directory: Path) -> AgentIdentity | None:
        """The identity kept in `directory`, or None when it has none (yet)."""
        try:
            ca, cert, key = ((directory / n).read_bytes() for n in (CA_FILE, CERT_FILE, KEY_FILE))
        except FileNotFoundError:
            return None
        try:
            address = (directory / ADDRESS_FILE).read_text().strip()
        except FileNotFoundError:
            address = ""
        return cls(ca, cert, key, address)
