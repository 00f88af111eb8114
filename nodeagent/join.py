"""Joining a pool with a token: a key made here, a CSR sent, a node certificate of the cluster CA back.

Whom to trust comes from the token: it carries the SHA-256 of the cluster CA certificate. When the
public API speaks TLS, the agent fetches the certificate chain it shows without verifying it, takes
the certificate with that fingerprint as the only CA it trusts, and joins over a verified connection
(kubeadm's discovery hash). When the operator handed over the CA certificate (``--ca-cert``), it must be
that same certificate. Either way, the CA certificate in the answer must have the token's fingerprint.

The key never leaves the node; the token is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal.agentidentity import AgentIdentity
from shoal.certs.authority import ROLE_NODE, CertificateError, fingerprint_of, identity_of, make_csr, new_key_pem
from shoal.certs.jointokens import JoinTokenError, peek_join_token
from shoal.tlsconfig import channel_credentials, fetch_unverified_chain, pick_pinned, split_address
from shoal.v1 import join_pb2, join_pb2_grpc

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0


class JoinError(Exception):
    """The join did not give this node a certificate; `reason` is the server's, when it refused."""

    def __init__(self, message: str, reason: str = "", *, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        #: The server could not be reached (it may be starting): trying again may work.
        self.retryable = retryable


def _reason(e: grpc.aio.AioRpcError) -> str:
    try:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        return ""
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


async def _trusted_ca(server: str, want: str, ca_cert_file: Path | None) -> tuple[bytes | None, bool]:
    """(the CA certificate to trust or None, whether the public API speaks TLS)."""
    try:
        chain = await asyncio.to_thread(fetch_unverified_chain, server)
    except OSError as e:
        raise JoinError(f"cannot reach {server}: {e}", retryable=True) from None
    if ca_cert_file is not None:
        ca = ca_cert_file.read_bytes()
        if fingerprint_of(ca) != want:
            raise JoinError(f"{ca_cert_file} is not the cluster CA the join token names")
        return ca, chain is not None
    if chain is None:
        return None, False
    pinned = pick_pinned(chain, want)
    if pinned is None:
        raise JoinError(
            f"the server at {server} does not show the cluster CA the join token names "
            "(another cluster, or something in between): not joining"
        )
    return pinned, True


async def join(server: str, token: str, *, ca_cert_file: Path | None = None) -> tuple[AgentIdentity, str, str]:
    """Join through the public API at `server`: (the node's identity, its node id, its pool id)."""
    try:
        claim = peek_join_token(token)
    except JoinTokenError as e:
        raise JoinError(f"the join token is unusable: {e}", e.reason) from None
    ca, tls = await _trusted_ca(server, claim.ca_fingerprint, ca_cert_file)
    key = new_key_pem()
    csr = make_csr(key, socket.gethostname())
    if tls:
        assert ca is not None
        channel = grpc.aio.secure_channel(server, channel_credentials(ca))
    else:
        # The public API of this server has no TLS (a plaintext mode): the token can be read on the way.
        # What comes back is still checked against the token's fingerprint, and the key stays here.
        log.warning("the server at %s does not speak TLS: joining over plaintext", server)
        channel = grpc.aio.insecure_channel(server)
    async with channel:
        stub = join_pb2_grpc.JoinServiceStub(channel)
        try:
            resp = await stub.JoinNode(join_pb2.JoinNodeRequest(token=token, csr_pem=csr), timeout=JOIN_TIMEOUT)
        except grpc.aio.AioRpcError as e:
            retryable = e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            raise JoinError(
                f"the server refused the join: {e.code().name}: {e.details()}", _reason(e), retryable=retryable
            ) from None
    if fingerprint_of(resp.ca_certificate_pem) != claim.ca_fingerprint:
        raise JoinError("the server answered with a CA certificate other than the one the token names")
    try:
        cert = x509.load_pem_x509_certificate(resp.certificate_pem)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(resp.ca_certificate_pem))
        ident = identity_of(resp.certificate_pem)
    except (ValueError, TypeError, CertificateError) as e:
        raise JoinError(f"the node certificate the server sent does not verify: {e}") from None
    private = serialization.load_pem_private_key(key, password=None)
    if cert.public_key() != private.public_key() or ident.role != ROLE_NODE:
        raise JoinError("the node certificate the server sent is not for this node's key")
    host = split_address(server)[0]
    host = f"[{host}]" if ":" in host else host
    address = resp.agent_address or f"{host}:{resp.agent_port}"
    identity = AgentIdentity(resp.ca_certificate_pem, resp.certificate_pem, key, address)
    return identity, ident.node_id, ident.pool_id
