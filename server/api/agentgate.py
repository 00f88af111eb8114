"""Who may register which node on the agent port: the peer's certificate against the Register's claims.

The TLS handshake already proved the certificate is the cluster CA's; here its identity decides:

* role ``node``: only its own node, of its own pool (a Register naming none gets them filled in), and
  only while its certificate is not revoked;
* role ``provider``: a process that speaks for many nodes (the bench's simulated fleet, a test's agent):
  any node, any pool;
* anything else (the server's own client certificate, a certificate naming no Shoal identity): no.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.agent.v1 import agent_pb2
from shoal.certs.authority import ROLE_NODE, ROLE_PROVIDER, CertificateError, PeerIdentity, identity_of
from shoal.server.domain.errors import PermissionDenied, Unauthenticated, shown
from shoal.server.domain.ids import key as idkey

REASON_NO_CERTIFICATE = "AGENT_CERTIFICATE_REQUIRED"
REASON_NOT_AN_AGENT = "NOT_AN_AGENT_CERTIFICATE"
REASON_REVOKED = "NODE_CERTIFICATE_REVOKED"
REASON_OTHER_NODE = "NODE_CERTIFICATE_MISMATCH"


def admit_register(
    ident: PeerIdentity | None,
    reg: agent_pb2.Register,
    *,
    revoked: bool,
    node_pool_key: str | None,
) -> agent_pb2.Register:
    """The Register to attach with (ids filled in from a node certificate), or a refusal.

    `revoked`: the certificate's serial is revoked; `node_pool_key`: the pool key of the node the
    Register names when the server knows it (None otherwise). Pure: it changes nothing.
    """
    if ident is None:
        raise Unauthenticated(REASON_NO_CERTIFICATE, "the agent service needs a client certificate of the cluster CA")
    if ident.role == ROLE_PROVIDER:
        return reg
    if ident.role != ROLE_NODE:
        raise PermissionDenied(REASON_NOT_AN_AGENT, f"a {ident.role} certificate cannot register nodes")
    if revoked:
        raise PermissionDenied(REASON_REVOKED, f"the certificate of node {shown(ident.node_id)} was revoked")
    if reg.node_id and idkey(reg.node_id) != idkey(ident.node_id):
        raise PermissionDenied(
            REASON_OTHER_NODE,
            f"the certificate is node {shown(ident.node_id)}'s, not {shown(reg.node_id)}'s",
        )
    if reg.pool_id and idkey(reg.pool_id) != idkey(ident.pool_id):
        raise PermissionDenied(
            REASON_OTHER_NODE,
            f"the certificate is for pool {shown(ident.pool_id)}, not {shown(reg.pool_id)}",
        )
    if node_pool_key is not None and node_pool_key != idkey(ident.pool_id):
        raise PermissionDenied(REASON_OTHER_NODE, f"node {shown(ident.node_id)} is not of pool {shown(ident.pool_id)}")
    if reg.node_id and reg.pool_id:
        return reg
    out = agent_pb2.Register()
    out.CopyFrom(reg)
    out.node_id = out.node_id or ident.node_id
    out.pool_id = out.pool_id or ident.pool_id
    return out


class AgentGate:
    """`admit_register` with the facts it needs: the peer's certificate, revocations, the known nodes."""

    def __init__(self, is_revoked: Callable[[int], bool], node_pool_key: Callable[[str], str | None]) -> None:
        self._is_revoked = is_revoked
        self._node_pool_key = node_pool_key

    @staticmethod
    def identity(cert_pem: bytes | None) -> PeerIdentity | None:
        """The identity of a peer's certificate; None when it showed none."""
        if cert_pem is None:
            return None
        try:
            return identity_of(cert_pem)
        except CertificateError:
            raise PermissionDenied(REASON_NOT_AN_AGENT, "the client certificate names no Shoal identity") from None

    def admit(self, ident: PeerIdentity | None, reg: agent_pb2.Register) -> agent_pb2.Register:
        """The Register to attach with, or a refusal (see `admit_register`)."""
        node_id = reg.node_id or (ident.node_id if ident is not None else "")
        return admit_register(
            ident,
            reg,
            revoked=ident is not None and self._is_revoked(ident.serial),
            node_pool_key=self._node_pool_key(node_id) if node_id else None,
        )
