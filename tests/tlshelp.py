"""Certificates for tests: a cluster CA of the tests' own, and agent credentials from a running server.

`agent_channel(server)` is what a test that speaks for agents uses: a channel to the server's agent
port showing a certificate that may speak for any node ("provider"), trusting only that server's CA.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from shoal.agentidentity import AgentIdentity, identity_dir
from shoal.certs.authority import ROLE_PROVIDER, ROLE_SERVER, ClusterCA
from shoal.clock import SystemClock
from shoal.tlsconfig import NODE_TLS_NAME, SERVER_TLS_NAME, channel_credentials, name_options, server_credentials

if TYPE_CHECKING:
    from shoal.server.app import ShoalServer


@cache
def shared_ca() -> ClusterCA:
    """A cluster CA for tests that run without a server (agents against a fake control plane)."""
    return ClusterCA.load_or_create(Path(tempfile.mkdtemp(prefix="shoal-test-ca-")), SystemClock())


@cache
def other_ca() -> ClusterCA:
    """Another cluster's CA: its certificates must be refused."""
    return ClusterCA.load_or_create(Path(tempfile.mkdtemp(prefix="shoal-other-ca-")), SystemClock())


def node_identity(node_id: str = "node-1", pool_id: str = "pool1", *, ca: ClusterCA | None = None) -> AgentIdentity:
    """A node certificate of `ca` (the tests' CA by default) for `node_id` of `pool_id`."""
    ca = ca or shared_ca()
    cert, key = ca.issue_node_cert(node_id=node_id, pool_id=pool_id, ttl=timedelta(days=1))
    return AgentIdentity(ca.cert_pem, cert, key)


def give_node_identity(node_root: Path, node_id: str = "node-1", pool_id: str = "pool1", **kw: Any) -> AgentIdentity:
    """Put a node certificate where an agent of `node_root` looks for it; `kw`: agent_address, ca."""
    ident = node_identity(node_id, pool_id, ca=kw.get("ca"))
    ident = AgentIdentity(ident.ca_pem, ident.cert_pem, ident.key_pem, kw.get("agent_address", ""))
    ident.save(identity_dir(node_root))
    return ident


def plane_credentials(ca: ClusterCA | None = None) -> grpc.ServerCredentials:
    """Credentials for a fake control plane's agent port (as the server's: mutual TLS, the CA's clients)."""
    ca = ca or shared_ca()
    cert, key = ca.issue_server_cert([SERVER_TLS_NAME, "localhost", "127.0.0.1"], days=1)
    return server_credentials(cert, key, client_ca_pem=ca.cert_pem)


def node_channel(address: str, *, ca: ClusterCA | None = None, role: str = ROLE_SERVER) -> grpc.aio.Channel:
    """A channel to an agent's NodeService as the server calls it (mutual TLS, a `role` certificate)."""
    ca = ca or shared_ca()
    cert, key = ca.issue_client_cert(f"test-{role}", role=role, days=1)
    creds = channel_credentials(ca.cert_pem, cert, key)
    return grpc.aio.secure_channel(address, creds, options=name_options(NODE_TLS_NAME))


def server_role_credentials(*, ca: ClusterCA | None = None) -> grpc.ChannelCredentials:
    """What the server's `NodeChannels` use: its client certificate, the CA's trust."""
    ca = ca or shared_ca()
    cert, key = ca.issue_client_cert("test-server", role=ROLE_SERVER, days=1)
    return channel_credentials(ca.cert_pem, cert, key)


def node_service_credentials(node_id: str = "node-1", *, ca: ClusterCA | None = None) -> grpc.ServerCredentials:
    """An agent NodeService's mutual TLS port (a node certificate; clients of the CA only)."""
    ident = node_identity(node_id, "pool1", ca=ca)
    return server_credentials(ident.cert_pem, ident.key_pem, client_ca_pem=ident.ca_pem)


def exec_channel(address: str, *, ca: ClusterCA | None = None) -> grpc.aio.Channel:
    """A channel to an agent's Exec listener as an attempt's process opens it (TLS, no client certificate)."""
    ca = ca or shared_ca()
    return grpc.aio.secure_channel(address, channel_credentials(ca.cert_pem), options=name_options(NODE_TLS_NAME))


def agent_identity(server: ShoalServer) -> AgentIdentity:
    """A certificate of `server`'s CA that may speak for any node, with the agent port's address."""
    return server.agent_identity()


def agent_channel(server: ShoalServer, *, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """A channel to `server`'s agent port, speaking for any node (see `agent_identity`)."""
    ident = agent_identity(server)
    return identity_channel(ident, options=options)


def identity_channel(ident: AgentIdentity, *, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """A channel to `ident.agent_address` showing `ident`'s certificate."""
    creds = channel_credentials(ident.ca_pem, ident.cert_pem, ident.key_pem)
    options = [*(options or []), *name_options(SERVER_TLS_NAME)]
    return grpc.aio.secure_channel(ident.agent_address, creds, options=options)


__all__ = [
    "ROLE_PROVIDER",
    "agent_channel",
    "agent_identity",
    "exec_channel",
    "give_node_identity",
    "identity_channel",
    "node_channel",
    "node_identity",
    "node_service_credentials",
    "other_ca",
    "plane_credentials",
    "server_role_credentials",
    "shared_ca",
]
