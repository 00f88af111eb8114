"""Joining through a public API that speaks TLS: the agent fetches the chain unverified, pins the CA by the
token's fingerprint, and joins over a verified connection (or refuses a server showing another CA).

The public port of `ShoalServer` is served here over TLS by a second grpc server carrying the same
JoinService, with a certificate of the cluster CA (its chain holding the CA), as a TLS public API does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from shoal.certs.authority import ClusterCA, identity_of
from shoal.nodeagent.join import JoinError, join
from shoal.server.api.join import JoinServicer
from shoal.server.app import ShoalServer
from shoal.tlsconfig import fetch_unverified_chain, pick_pinned, server_credentials
from shoal.v1 import join_pb2, join_pb2_grpc, pool_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs
from tests.tlshelp import identity_channel, other_ca

pytestmark = pytest.mark.timeout(60)


async def _tls_public(server: ShoalServer, ca: ClusterCA) -> tuple[grpc.aio.Server, str]:
    port_server = grpc.aio.server()
    agent_port = int(server.agent_address.rsplit(":", 1)[1])
    servicer = JoinServicer(server.cp, server.security, agent_port=agent_port, agent_address="")
    join_pb2_grpc.add_JoinServiceServicer_to_server(servicer, port_server)
    cert, key = ca.issue_server_cert(["localhost", "127.0.0.1"])
    port = port_server.add_secure_port("127.0.0.1:0", server_credentials(cert + ca.cert_pem, key))
    await port_server.start()
    return port_server, f"127.0.0.1:{port}"


@pytest.fixture
async def token(server: ShoalServer, stubs: Stubs) -> AsyncIterator[str]:
    pool = pool_pb2.Pool(id="p", target_nodes=1, provider="join")
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    async with server_channel(server) as ch:
        made = await join_pb2_grpc.JoinServiceStub(ch).CreateJoinToken(join_pb2.CreateJoinTokenRequest(pool_id="p"))
    yield made.token


async def test_join_pins_the_ca_it_fetches(server: ShoalServer, token: str) -> None:
    tls, address = await _tls_public(server, server.security.ca)
    try:
        chain = fetch_unverified_chain(address)
        assert chain and pick_pinned(chain, server.security.ca.fingerprint) == server.security.ca.cert_pem
        identity, node_id, pool_id = await join(address, token)
    finally:
        await tls.stop(None)
    assert pool_id == "p" and identity_of(identity.cert_pem).node_id == node_id
    # The agent port is on the host it joined through.
    assert identity.agent_address == f"127.0.0.1:{server.agent_address.rsplit(':', 1)[1]}"
    async with identity_channel(identity):
        pass


async def test_a_server_showing_another_ca_is_not_trusted(server: ShoalServer, token: str) -> None:
    tls, address = await _tls_public(server, other_ca())
    try:
        with pytest.raises(JoinError, match="does not show the cluster CA"):
            await join(address, token)
    finally:
        await tls.stop(None)
    assert not server.security.node_certs.issued_ids()  # the token never reached it


async def test_the_public_api_shows_the_cluster_ca_in_its_chain(server: ShoalServer, tmp_path) -> None:
    chain = fetch_unverified_chain(server.address)
    assert chain and pick_pinned(chain, server.security.ca.fingerprint) == server.security.ca.cert_pem
    from shoal.server.app import ServerConfig

    plain = ShoalServer(
        ServerConfig(data_dir=tmp_path / "plain", listen="127.0.0.1:0", publish_address=False, secure=False)
    )
    await plain.start()
    try:
        assert fetch_unverified_chain(plain.address) is None
    finally:
        await plain.stop()
