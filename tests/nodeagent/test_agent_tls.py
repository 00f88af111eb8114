"""Who may call an agent: files only for the server's certificate, Exec only with the attempt's secret.

A real agent (in process) with a node certificate of the tests' CA, called over real TLS.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.certs.authority import ROLE_PROVIDER
from shoal.v1 import pool_pb2
from tests.mpi.exec_client import ExecResult, exec_call
from tests.nodeagent.conftest import assignment, start_tasks
from tests.tlshelp import exec_channel, node_channel, other_ca

pytestmark = pytest.mark.timeout(60)

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING


def _reason(e: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None, e
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return info.reason


async def _exec(address: str, secret: str | None, argv: list[str]) -> ExecResult:
    hello: dict[str, object] = {"job_id": "j1", "task_id": "t", "attempt": 1, "argv": argv}
    if secret is not None:
        hello["secret"] = secret
    return await exec_call(address, hello)


async def _list(channel: grpc.aio.Channel) -> agent_pb2.ListFilesResponse:
    request = agent_pb2.ListFilesRequest(scope=agent_pb2.FILE_SCOPE_NODE)
    return await agent_pb2_grpc.NodeServiceStub(channel).ListFiles(request, timeout=10)


@pytest.fixture
async def running(plane_server, run_agent, tmp_path: Path):
    """An agent running attempt j1/t/1, which wrote its Exec secret to a file: (register, that secret)."""
    plane = plane_server.plane
    await run_agent()
    reg = (await plane.wait_for(lambda: plane.registers))[0]
    cmd = 'sh -c \'printf %s "$SHOAL_EXEC_SECRET" > secret; test -r "$SHOAL_AGENT_CA_FILE" && sleep 30\''
    await plane.send(start_tasks(1, assignment("t", cmd)))
    await plane.wait_event("t", RUNNING)
    secret_file = tmp_path / "node/workitems/j1/job-1/t/wd/secret"
    async with asyncio.timeout(10):
        while not (secret_file.exists() and secret_file.read_text()):
            await asyncio.sleep(0.02)
    return reg, secret_file.read_text()


async def test_exec_needs_the_attempts_secret(running, tmp_path: Path) -> None:
    reg, secret = running
    address = f"127.0.0.1:{reg.exec_port}"
    for wrong in (None, "", "0" * len(secret), secret[:-1]):
        out = await _exec(address, wrong, ["touch", "ran"])
        assert (out.refusal["code"], out.refusal["reason"]) == ("PERMISSION_DENIED", "EXEC_SECRET_MISMATCH")
        assert out.exit_code is None and secret not in out.refusal["message"]
    assert not (tmp_path / "node/workitems/j1/job-1/t/wd/ran").exists()
    out = await _exec(address, secret, ["sh", "-c", "echo inside $SHOAL_TASK_ID"])
    assert out.stdout == b"inside t\n" and out.exit_code == 0
    # NodeService (the server's port, mutual TLS) runs commands only for the server's certificate.
    async with node_channel(f"127.0.0.1:{reg.node_service_port}", role=ROLE_PROVIDER) as ch:

        async def requests():
            yield pool_pb2.ExecNodeRequest(start=pool_pb2.ExecNodeStart(name="pools/p/nodes/n", argv=["true"]))

        with pytest.raises(grpc.aio.AioRpcError) as e:
            _ = [r async for r in agent_pb2_grpc.NodeServiceStub(ch).ExecNode(requests(), timeout=20)]
    assert (e.value.code(), _reason(e.value)) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_SERVER")
    # The server's certificate: the command runs (no attempt's secret asked).
    async with node_channel(f"127.0.0.1:{reg.node_service_port}") as ch:
        answers = [r async for r in agent_pb2_grpc.NodeServiceStub(ch).ExecNode(requests(), timeout=20)]
    assert [r.WhichOneof("body") for r in answers] == ["exit"] and answers[0].exit.exit_code == 0


async def test_files_are_the_servers_alone(running, tmp_path: Path) -> None:
    reg, _secret = running
    # The exec port asks for no client certificate, and speaks no gRPC: files are not served there.
    async with exec_channel(f"127.0.0.1:{reg.exec_port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await _list(ch)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # A certificate of the cluster CA that is not the server's: not served either.
    async with node_channel(f"127.0.0.1:{reg.node_service_port}", role=ROLE_PROVIDER) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await _list(ch)
    assert (e.value.code(), _reason(e.value)) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_SERVER")
    # No certificate at all, or another CA's: the handshake fails.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{reg.node_service_port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await _list(ch)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    async with node_channel(f"127.0.0.1:{reg.node_service_port}", ca=other_ca()) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await _list(ch)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # The server's certificate is served.
    async with node_channel(f"127.0.0.1:{reg.node_service_port}") as ch:
        listing = await _list(ch)
    assert "workitems" in {f.path for f in listing.files}


async def test_an_agent_without_a_certificate_or_token_exits(plane_server, tmp_path: Path) -> None:
    from shoal.nodeagent.agent import EXIT_NO_IDENTITY, Agent
    from shoal.nodeagent.config import AgentConfig

    cfg = AgentConfig(server=plane_server.address, node_root=tmp_path / "bare", ip="127.0.0.1", watchdog=False)
    assert await asyncio.wait_for(Agent(cfg).run(), 20) == EXIT_NO_IDENTITY
    assert not plane_server.plane.registers
