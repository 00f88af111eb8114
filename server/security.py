"""The server's keys and certificates, kept under ``<data dir>/certs/``, and the credentials made from them.

* ``ca.pem`` / ``ca.key``: the cluster CA (`shoal.certs.authority`);
* ``server.secret``: the server secret (`shoal.certs.secret`): join tokens' MAC key, the Exec secrets
  of attempts, and sealing of what must be kept encrypted;
* ``node-certs.json``: node certificates issued and revoked (`shoal.certs.nodecerts`).

The agent port's certificate and the server's client certificate (for its calls to agents) are made
afresh at each start and kept in memory only.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from pathlib import Path

import grpc

from shoal.agentidentity import AgentIdentity
from shoal.certs.authority import ROLE_PROVIDER, ROLE_SERVER, ClusterCA, not_after
from shoal.certs.nodecerts import NodeCertRegistry
from shoal.certs.secret import ServerSecret
from shoal.clock import Clock
from shoal.tlsconfig import SERVER_TLS_NAME, channel_credentials, server_credentials

CERTS_DIR = "certs"
SECRET_FILE = "server.secret"
#: How long a node certificate is good for. Nodes do not renew theirs yet: a node outliving it joins
#: again; leaving the pool revokes it at once.
NODE_CERT_TTL = timedelta(days=365)
#: The server's own client certificate and the agent port's certificate (made at each start).
SERVER_CERT_DAYS = 825


class ServerSecurity:
    """The cluster CA, the server secret and the node certificate registry of one server."""

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.dir = data_dir / CERTS_DIR
        self.clock = clock
        self.ca = ClusterCA.load_or_create(self.dir, clock)
        self.secret = ServerSecret.load_or_create(self.dir / SECRET_FILE)
        self.node_certs = NodeCertRegistry.load(self.dir, clock)
        self._server_client = self.ca.issue_client_cert("shoal-server", role=ROLE_SERVER, days=SERVER_CERT_DAYS)
        self._exec_key = self.secret.derive("exec-secret")

    @property
    def join_key(self) -> bytes:
        """The key join tokens are signed with."""
        return self.secret.derive("join-token")

    def agent_port_credentials(self, hosts: list[str]) -> grpc.ServerCredentials:
        """Mutual TLS for the agent port: a certificate for `hosts` (and "shoal-server"), clients of the CA only."""
        cert, key = self.ca.issue_server_cert([SERVER_TLS_NAME, *hosts], days=SERVER_CERT_DAYS)
        # The CA certificate goes with the chain, so a peer that pins it by fingerprint finds it there.
        return server_credentials(cert + self.ca.cert_pem, key, client_ca_pem=self.ca.cert_pem)

    def node_channel_credentials(self) -> grpc.ChannelCredentials:
        """For the server's calls to agents: trusts the CA, shows the server's client certificate."""
        cert, key = self._server_client
        return channel_credentials(self.ca.cert_pem, cert, key)

    def issue_node(self, node_id: str, pool_id: str, *, agent_address: str = "") -> AgentIdentity:
        """A node certificate and key for a node whose agent the server starts itself (recorded, so
        that the node's leaving revokes it)."""
        cert, key = self.ca.issue_node_cert(node_id=node_id, pool_id=pool_id, ttl=NODE_CERT_TTL)
        self.record_issued(node_id, cert)
        return AgentIdentity(self.ca.cert_pem, cert, key, agent_address)

    def sign_node_csr(self, csr_pem: bytes, node_id: str, pool_id: str) -> bytes:
        """A node certificate for a joining agent's CSR (recorded like `issue_node`'s)."""
        cert = self.ca.sign_csr(csr_pem, node_id=node_id, pool_id=pool_id, ttl=NODE_CERT_TTL)
        self.record_issued(node_id, cert)
        return cert

    def record_issued(self, node_id: str, cert_pem: bytes) -> None:
        from shoal.certs.authority import identity_of

        self.node_certs.issued(node_id, identity_of(cert_pem).serial, not_after(cert_pem))

    def provider_identity(self, name: str, *, days: int = 30) -> AgentIdentity:
        """A certificate that may speak for any node (a process hosting many agents, a test's)."""
        cert, key = self.ca.issue_client_cert(name, role=ROLE_PROVIDER, days=days)
        return AgentIdentity(self.ca.cert_pem, cert, key)

    def exec_secret(self, job_id: str, task_id: str, attempt: int) -> str:
        """The Exec secret of one attempt: the same on every node of its gang, and after a restart."""
        msg = f"{job_id}\x00{task_id}\x00{attempt}".encode()
        return hmac.new(self._exec_key, msg, "sha256").hexdigest()


def provider_identity_from(data_dir: Path, name: str, agent_address: str, *, days: int = 7) -> AgentIdentity:
    """A "provider" certificate (it may speak for any node) of the CA in a server's data directory, for a
    process on the server's machine that can read that directory anyway: the bench's simulated fleet,
    a test's agents. The server must have started once (it makes the CA)."""
    directory = data_dir / CERTS_DIR
    if not (directory / "ca.key").exists():
        raise FileNotFoundError(f"no cluster CA in {directory}: start the server first")
    from shoal.clock import SystemClock

    ca = ClusterCA.load_or_create(directory, SystemClock())
    cert, key = ca.issue_client_cert(name, role=ROLE_PROVIDER, days=days)
    return AgentIdentity(ca.cert_pem, cert, key, agent_address)
