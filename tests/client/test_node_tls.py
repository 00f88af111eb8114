"""The Node.js client's TLS (`examples/node/shoal.js`): with `ca_cert` in the credentials file it
verifies the server against that CA, and refuses a server of another CA. The server here is a gRPC
server over TLS with a certificate of a cluster CA, answering PoolService.GetPool to callers with
the file's account and key (until the public API serves TLS itself; then
tests/e2e/test_node_client.py goes over TLS too)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from shoal.certs.authority import ClusterCA
from shoal.tlsconfig import server_credentials
from shoal.v1 import pool_pb2, pool_pb2_grpc
from tests.nodejs import PROTOS, ROOT, RPC_PROTOS, NodeUnavailable, node_binary, node_modules
from tests.tlshelp import other_ca, shared_ca

pytestmark = pytest.mark.timeout(120)

ACCOUNT, KEY = "default", "the-account-key"
# Connects with the credentials file and prints GetPool's answer, or the refusal.
SCRIPT = """
const shoal = require(process.env.SHOAL_JS);
const [creds, protos, rpc] = process.argv.slice(1);
const api = shoal.connect({ credentialsFile: creds, protosDir: protos, rpcProtosDir: rpc });
api.call(api.pools, "GetPool", { name: "pools/p1" }, { deadlineSeconds: 10 })
  .then((pool) => ({ tls: api.tls, id: pool.id }), (e) => ({ tls: api.tls, error: e }))
  .then((out) => { api.close(); process.stdout.write(JSON.stringify(out)); });
"""


class _Pools(pool_pb2_grpc.PoolServiceServicer):
    def GetPool(self, request: pool_pb2.GetPoolRequest, context: grpc.ServicerContext) -> pool_pb2.Pool:
        md = dict(context.invocation_metadata())
        if md.get("shoal-account") != ACCOUNT or md.get("authorization") != f"Bearer {KEY}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong credentials")
        return pool_pb2.Pool(name=request.name, id=request.name.split("/")[-1])


@pytest.fixture
def tls_server() -> Iterator[str]:
    cert, key = shared_ca().issue_server_cert(["localhost", "127.0.0.1"], days=1)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pool_pb2_grpc.add_PoolServiceServicer_to_server(_Pools(), server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert, key))
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def _run(tmp_path: Path, address: str, ca: ClusterCA) -> dict[str, object]:
    try:
        modules, node = node_modules(), node_binary()
    except NodeUnavailable as e:
        pytest.skip(str(e))
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"address": address, "account": ACCOUNT, "key": KEY, "ca_cert": ca.cert_pem.decode()}))
    env = dict(os.environ, NODE_PATH=str(modules), SHOAL_JS=str(ROOT / "examples" / "node" / "shoal.js"))
    done = subprocess.run(
        [node, "-e", SCRIPT, str(creds), str(PROTOS), str(RPC_PROTOS)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


def test_node_client_verifies_the_server_against_the_ca_of_the_credentials_file(
    tmp_path: Path, tls_server: str
) -> None:
    assert _run(tmp_path, tls_server, shared_ca()) == {"tls": True, "id": "p1"}


def test_node_client_refuses_a_server_of_another_ca(tmp_path: Path, tls_server: str) -> None:
    out = _run(tmp_path, tls_server, other_ca())
    assert out["tls"] is True
    error = out["error"]
    assert isinstance(error, dict) and error["codeName"] == "UNAVAILABLE", out
