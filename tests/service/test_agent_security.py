"""The agent port: mutual TLS with the cluster CA, each certificate registering only what it names; join tokens.

Every refusal here is a real one: a real server, real TLS handshakes, real certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.agentidentity import AgentIdentity
from shoal.certs.authority import ROLE_PROVIDER, ROLE_SERVER, make_csr, new_key_pem
from shoal.certs.jointokens import make_join_token
from shoal.server.app import ServerConfig, ShoalServer
from shoal.v1 import join_pb2, join_pb2_grpc, pool_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs
from tests.tlshelp import identity_channel, other_ca

pytestmark = pytest.mark.timeout(60)

A = agent_pb2


def _reason(e: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None, e
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return info.reason


def _register(node_id: str = "", pool_id: str = "p") -> agent_pb2.AgentMessage:
    reg = A.Register(node_id=node_id, pool_id=pool_id, ip_address="127.0.3.9", cores=1, boot_id=uuid.uuid4().hex)
    return A.AgentMessage(register=reg)


async def _connect(channel: grpc.aio.Channel, *messages: agent_pb2.AgentMessage) -> agent_pb2.ServerMessage:
    """Open Connect, send `messages`, and return the first answer (or raise the call's error)."""
    call = agent_pb2_grpc.AgentServiceStub(channel).Connect(timeout=15)
    for m in messages:
        await call.write(m)
    first = await call.read()
    call.cancel()
    if first is grpc.aio.EOF:  # type: ignore[attr-defined]
        await call
    return first


async def _refused(channel: grpc.aio.Channel, *messages: agent_pb2.AgentMessage) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await _connect(channel, *messages)
    return e.value


def _identity(server: ShoalServer, cert: bytes, key: bytes) -> AgentIdentity:
    return AgentIdentity(server.security.ca.cert_pem, cert, key, server.agent_address)


@pytest.fixture
async def fast_server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    """A server that forgets a silent leaving node within about a second."""
    srv = ShoalServer(
        ServerConfig(
            data_dir=tmp_path / "data",
            listen="127.0.0.1:0",
            publish_address=False,
            heartbeat_interval=0.2,
            heartbeat_timeout=1.0,
        )
    )
    await srv.start()
    try:
        yield srv
    finally:
        with contextlib.suppress(Exception):
            await srv.stop()


async def _join_pool(server: ShoalServer, pool_id: str = "p", target: int = 1) -> None:
    async with server_channel(server) as channel:
        pool = pool_pb2.Pool(id=pool_id, target_nodes=target, provider="join")
        await Stubs(channel).pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))


async def _join(server: ShoalServer, token: str) -> tuple[join_pb2.JoinNodeResponse, bytes]:
    key = new_key_pem()
    async with server_channel(server) as ch:
        resp = await join_pb2_grpc.JoinServiceStub(ch).JoinNode(
            join_pb2.JoinNodeRequest(token=token, csr_pem=make_csr(key, "somehost")), timeout=10
        )
    return resp, key


async def test_a_plaintext_agent_is_refused_by_the_handshake(server: ShoalServer) -> None:
    async with grpc.aio.insecure_channel(server.agent_address) as ch:
        e = await _refused(ch, _register())
    assert e.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_public_port_no_longer_serves_agents(server: ShoalServer) -> None:
    async with server_channel(server) as ch:
        e = await _refused(ch, _register())
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_certificate_of_another_ca_fails_the_handshake(server: ShoalServer) -> None:
    ca = other_ca()
    cert, key = ca.issue_client_cert("intruder", role=ROLE_PROVIDER, days=1)
    async with identity_channel(_identity(server, cert, key)) as ch:
        e = await _refused(ch, _register())
    assert e.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_node_certificate_of_another_ca_fails_the_handshake(server: ShoalServer) -> None:
    await _join_pool(server)
    cert, key = other_ca().issue_node_cert(node_id="node-x", pool_id="p", ttl=timedelta(hours=1))
    async with identity_channel(_identity(server, cert, key)) as ch:
        e = await _refused(ch, _register())
    assert e.code() == grpc.StatusCode.UNAVAILABLE
    assert not server.cp.nodes


async def test_the_servers_own_certificate_registers_no_node(server: ShoalServer) -> None:
    cert, key = server.security.ca.issue_client_cert("shoal-server", role=ROLE_SERVER, days=1)
    async with identity_channel(_identity(server, cert, key)) as ch:
        e = await _refused(ch, _register())
    assert (e.code(), _reason(e)) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_AGENT_CERTIFICATE")


async def test_a_node_certificate_registers_its_own_node_only(server: ShoalServer) -> None:
    await _join_pool(server)
    await _join_pool(server, "q")
    ident = server.security.issue_node("node-a", "p", agent_address=server.agent_address)
    async with identity_channel(ident) as ch:
        for reg in (_register("node-b", "p"), _register("node-a", "q"), _register("", "q")):
            e = await _refused(ch, reg)
            assert (e.code(), _reason(e)) == (grpc.StatusCode.PERMISSION_DENIED, "NODE_CERTIFICATE_MISMATCH")
        assert not server.cp.nodes  # nothing was changed by the refusals
        # Naming nothing, it is the node its certificate names.
        first = await _connect(ch, _register("", ""))
    assert first.welcome.node_id == "node-a" and first.welcome.pool_id == "p"


async def test_connect_many_checks_each_conversation(server: ShoalServer) -> None:
    await _join_pool(server)
    ident = server.security.issue_node("node-a", "p", agent_address=server.agent_address)
    async with identity_channel(ident) as ch:
        call = agent_pb2_grpc.AgentServiceStub(ch).ConnectMany(timeout=15)
        reg = _register("node-b", "p")
        await call.write(A.AgentFrames(frames=[A.AgentFrame(channel=1, message=reg)]))
        reply = await call.read()
        call.cancel()
    (frame,) = reply.frames
    assert frame.channel == 1 and frame.end.code == grpc.StatusCode.PERMISSION_DENIED.value[0]


async def test_join_with_a_token_then_mutual_tls(server: ShoalServer, stubs: Stubs) -> None:
    await _join_pool(server)
    async with server_channel(server) as ch:
        join = join_pb2_grpc.JoinServiceStub(ch)
        request = join_pb2.CreateJoinTokenRequest(pool_id="p")
        request.ttl.FromSeconds(600)
        token = await join.CreateJoinToken(request)
        assert token.ca_fingerprint == server.security.ca.fingerprint
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await join.CreateJoinToken(join_pb2.CreateJoinTokenRequest(pool_id="nope"))
        assert (e.value.code(), _reason(e.value)) == (grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
        await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="mine", target_nodes=0)))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await join.CreateJoinToken(join_pb2.CreateJoinTokenRequest(pool_id="mine"))
        assert (e.value.code(), _reason(e.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "POOL_NOT_JOINABLE")
        request.ttl.FromSeconds(8 * 24 * 3600)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await join.CreateJoinToken(request)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ttl" in (e.value.details() or "")
        request.ttl.FromSeconds(600)
    resp, key = await _join(server, token.token)
    assert resp.pool_id == "p" and resp.node_id.startswith("node-")
    assert resp.ca_certificate_pem == server.security.ca.cert_pem
    assert server.agent_address.endswith(f":{resp.agent_port}")
    ident = _identity(server, resp.certificate_pem, key)
    async with identity_channel(ident) as ch:
        first = await _connect(ch, _register("", ""))
    assert first.welcome.node_id == resp.node_id
    nodes = await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p"))
    assert [n.id for n in nodes.nodes] == [resp.node_id]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        ("expired", "JOIN_TOKEN_EXPIRED"),
        ("other-secret", "JOIN_TOKEN_INVALID"),
        ("other-ca", "JOIN_TOKEN_INVALID"),
        ("garbage", "JOIN_TOKEN_MALFORMED"),
    ],
)
async def test_a_bad_join_token_is_refused(server: ShoalServer, make: str, reason: str) -> None:
    await _join_pool(server)
    now = server.cp.clock.now()
    fp = server.security.ca.fingerprint
    token = {
        "expired": make_join_token(server.security.join_key, "p", now - timedelta(seconds=1), fp),
        "other-secret": make_join_token(b"k" * 32, "p", now + timedelta(hours=1), fp),
        "other-ca": make_join_token(server.security.join_key, "p", now + timedelta(hours=1), other_ca().fingerprint),
        "garbage": "shoal1.not-a-token",
    }[make]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await _join(server, token)
    assert (e.value.code(), _reason(e.value)) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    assert token not in (e.value.details() or "")
    assert not server.security.node_certs.issued_ids()  # nothing issued


async def test_a_removed_nodes_certificate_is_revoked(fast_server: ShoalServer) -> None:
    server = fast_server
    await _join_pool(server)
    public = server_channel(server)
    stubs = Stubs(public)
    token = await join_pb2_grpc.JoinServiceStub(public).CreateJoinToken(join_pb2.CreateJoinTokenRequest(pool_id="p"))
    resp, key = await _join(server, token.token)
    ident = _identity(server, resp.certificate_pem, key)
    async with identity_channel(ident) as ch:
        call = agent_pb2_grpc.AgentServiceStub(ch).Connect(timeout=30)
        await call.write(_register())
        assert (await call.read()).welcome.node_id == resp.node_id
        # The pool shrinks: the node is told to go, goes silent, and is forgotten.
        await stubs.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=0))
        while True:
            msg = await call.read()
            if msg.WhichOneof("body") == "shutdown":
                break
        call.cancel()
        async with asyncio.timeout(20):
            while server.cp.nodes:
                await asyncio.sleep(0.05)
        # Its certificate still verifies, but it is revoked: the node cannot come back with it.
        e = await _refused(ch, _register())
    assert (e.code(), _reason(e)) == (grpc.StatusCode.PERMISSION_DENIED, "NODE_CERTIFICATE_REVOKED")
    assert not server.cp.nodes
    await public.close()
    # Nor after a restart of the server (the revocation is kept under <data>/certs).
    await server.stop()
    again = ShoalServer(ServerConfig(data_dir=server.data_dir, listen="127.0.0.1:0", publish_address=False))
    await again.start()
    try:
        ident2 = AgentIdentity(ident.ca_pem, ident.cert_pem, ident.key_pem, again.agent_address)
        async with identity_channel(ident2) as ch:
            e = await _refused(ch, _register())
        assert _reason(e) == "NODE_CERTIFICATE_REVOKED"
    finally:
        await again.stop()
