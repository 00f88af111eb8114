"""JoinService: join tokens for a pool, and node certificates for the agents that bring one.

On the public port: a joining machine has no certificate yet, the token is its credential. The token
is never logged nor echoed in an error (it admits nodes until it expires).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

import grpc

from shoal.certs.authority import CertificateError, not_after
from shoal.certs.jointokens import JoinTokenError, check_join_token, make_join_token
from shoal.clock import to_timestamp
from shoal.server.api.errors import invalid, rpc_errors
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import FailedPrecondition, Unauthenticated
from shoal.server.domain.ids import id_problem
from shoal.server.domain.ids import key as idkey
from shoal.server.security import ServerSecurity
from shoal.v1 import join_pb2, join_pb2_grpc, pool_pb2

log = logging.getLogger("shoal.join")

Ctx = grpc.aio.ServicerContext

DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(days=7)
MAX_CSR_BYTES = 16 * 1024


def check_ttl(seconds: float) -> list[tuple[str, str]]:
    """Field violations of a token's requested lifetime (0: the default)."""
    if seconds < 0 or seconds > MAX_TTL.total_seconds():
        return [("ttl", f"must be positive and at most {int(MAX_TTL.total_seconds())} seconds")]
    return []


def _check_joinable(pool: pool_pb2.Pool) -> None:
    """Only a pool whose nodes are agents started elsewhere (provider "join") takes joining nodes: the
    local provider makes the nodes of its pools itself."""
    if pool.provider != "join":
        raise FailedPrecondition(
            "POOL_NOT_JOINABLE",
            f"the nodes of pool {pool.id!r} are made by its {pool.provider or 'local'} provider; "
            "nodes join pools of provider 'join'",
        )


class JoinServicer(join_pb2_grpc.JoinServiceServicer):
    """Makes join tokens and trades them, with a CSR, for node certificates."""

    def __init__(self, cp: ControlPlane, security: ServerSecurity, *, agent_port: int, agent_address: str) -> None:
        self.cp = cp
        self.security = security
        self.agent_port = agent_port
        self.agent_address = agent_address

    @rpc_errors
    async def CreateJoinToken(self, request: join_pb2.CreateJoinTokenRequest, context: Ctx) -> join_pb2.JoinToken:
        problem = id_problem(request.pool_id)
        violations = [("pool_id", problem)] if problem else []
        ttl_seconds = request.ttl.seconds + request.ttl.nanos / 1e9
        violations += check_ttl(ttl_seconds)
        if violations:
            raise invalid("INVALID_JOIN_TOKEN_REQUEST", violations)
        pool = self.cp.pool(request.pool_id)  # NOT_FOUND POOL_NOT_FOUND
        _check_joinable(pool.proto)
        ttl = timedelta(seconds=ttl_seconds) if ttl_seconds else DEFAULT_TTL
        expires = self.cp.clock.now() + ttl
        token = make_join_token(self.security.join_key, pool.proto.id, expires, self.security.ca.fingerprint)
        log.info("join token made for pool %s, until %s", pool.proto.id, expires.isoformat(timespec="seconds"))
        return join_pb2.JoinToken(
            token=token,
            pool_id=pool.proto.id,
            expire_time=to_timestamp(expires.replace(microsecond=0)),
            ca_fingerprint=self.security.ca.fingerprint,
        )

    @rpc_errors
    async def JoinNode(self, request: join_pb2.JoinNodeRequest, context: Ctx) -> join_pb2.JoinNodeResponse:
        try:
            claim = check_join_token(self.security.join_key, request.token, self.cp.clock.now())
        except JoinTokenError as e:
            # (The reason says why; the token itself is never repeated.)
            log.info("join refused: %s", e.reason)
            raise Unauthenticated(e.reason, e.message) from None
        if claim.ca_fingerprint != self.security.ca.fingerprint:
            raise Unauthenticated("JOIN_TOKEN_INVALID", "the join token names another cluster CA")
        pool = self.cp.pool(claim.pool_id)  # NOT_FOUND POOL_NOT_FOUND: the pool went since
        if pool.proto.state != pool_pb2.POOL_STATE_ACTIVE:
            raise FailedPrecondition("POOL_NOT_ACTIVE", f"pool {pool.proto.id!r} is being deleted")
        _check_joinable(pool.proto)
        if not request.csr_pem or len(request.csr_pem) > MAX_CSR_BYTES:
            problem = f"must be a PEM certificate request of at most {MAX_CSR_BYTES} bytes"
            raise invalid("INVALID_CSR", [("csr_pem", problem)])
        node_id = self._new_node_id()
        try:
            cert = self.security.sign_node_csr(request.csr_pem, node_id, pool.proto.id)
        except CertificateError as e:
            raise invalid("INVALID_CSR", [("csr_pem", str(e))]) from None
        log.info("node %s joined pool %s with a token", node_id, pool.proto.id)
        return join_pb2.JoinNodeResponse(
            node_id=node_id,
            pool_id=pool.proto.id,
            certificate_pem=cert,
            ca_certificate_pem=self.security.ca.cert_pem,
            agent_port=self.agent_port,
            agent_address=self.agent_address,
            expire_time=to_timestamp(not_after(cert)),
        )

    def _new_node_id(self) -> str:
        """A node id no node has had (random: a removed node's id, revoked, is never handed out again)."""
        taken = self.security.node_certs.issued_ids()
        while True:
            node_id = f"node-{secrets.token_hex(5)}"
            if idkey(node_id) not in self.cp.nodes and node_id not in taken:
                return node_id
