"""ExecNode through the public API: commands and terminals on a node, relayed by the server to the agent.

A real in-process server, and a joined node (a scripted agent for the agent stream) whose NodeService is
the agent's own (`NodeFileService` with `NodeExec`) over a node root other users can reach: the control
plane's mutual TLS channel reaches it, the commands are real processes (as the pool's user, or root when
elevated, where this run is root), terminals real pseudo-terminals.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
import pytest

from shoal.agent.v1 import agent_pb2_grpc
from shoal.nodeagent.config import default_user_prefix
from shoal.nodeagent.fileservice import NodeFileService
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.nodeexec import RUNNING_KEY_PREFIX, NodeExec
from shoal.nodeagent.process import group_alive
from shoal.nodeagent.state import RunningFile
from shoal.nodeagent.users import NodeUsers
from shoal.server.app import ShoalServer
from shoal.tlsconfig import server_credentials
from shoal.v1 import common_pb2, pool_pb2, pool_pb2_grpc
from tests.channels import server_channel
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import channel_as, make_account
from tests.service.test_validation import details
from tests.taskusers import can_make_users, open_dir

pytestmark = pytest.mark.timeout(120)

P = pool_pb2


@dataclass
class Node:
    """The server's pool stub, the node's name and layout, and the agent's exec service."""

    server: ShoalServer
    pools: pool_pb2_grpc.PoolServiceStub
    name: str
    layout: NodeLayout
    node_exec: NodeExec
    running_file: RunningFile
    users: NodeUsers


@pytest.fixture
async def node(server: ShoalServer) -> AsyncIterator[Node]:
    with open_dir() as base:
        layout = NodeLayout(base / "node")
        layout.create()
        users = NodeUsers(root=layout.root, prefix=default_user_prefix())
        if users.decide():
            layout.open_to_task_users()
        users.configure("p", [])
        running_file = RunningFile(layout.running_file)
        ids = {"node": ""}
        node_exec = NodeExec(layout=layout, users=users, running_file=running_file, identity=lambda: (ids["node"], "p"))
        node_server = grpc.aio.server()
        agent_pb2_grpc.add_NodeServiceServicer_to_server(
            NodeFileService(layout, lambda job, task: None, node_exec.serve), node_server
        )
        ident = server.security.issue_node("exec-node", "p")
        port = node_server.add_secure_port(
            "127.0.0.1:0", server_credentials(ident.cert_pem, ident.key_pem, client_ca_pem=ident.ca_pem)
        )
        await node_server.start()
        agent: ScriptedAgent | None = None
        try:
            async with server_channel(server) as channel:
                stubs = Stubs(channel)
                await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join")))
                agent = ScriptedAgent(server, "p", "127.0.0.1", node_service_port=port)
                ids["node"] = (await agent.connect()).node_id
                yield Node(server, stubs.pools, f"pools/p/nodes/{ids['node']}", layout, node_exec, running_file, users)
        finally:
            if agent is not None:
                await agent.close()
            await node_server.stop(None)
            await users.close()
            running_file.close()


@dataclass
class Result:
    stdout: bytes = b""
    stderr: bytes = b""
    exit: P.ExecNodeExit | None = None
    #: Every response, in order.
    kinds: list[str] = field(default_factory=list)


def start(
    name: str,
    argv: Sequence[str] = (),
    *,
    tty: bool = False,
    rows: int = 0,
    columns: int = 0,
    env: dict[str, str] | None = None,
    elevated: bool = False,
) -> P.ExecNodeRequest:
    return P.ExecNodeRequest(
        start=P.ExecNodeStart(
            name=name,
            argv=list(argv),
            tty=tty,
            size=P.TerminalSize(rows=rows, columns=columns),
            environment=[common_pb2.EnvironmentSetting(name=k, value=v) for k, v in (env or {}).items()],
            elevated=elevated,
        )
    )


async def collect(call, result: Result | None = None, *, until: bytes | None = None) -> Result:  # type: ignore[no-untyped-def]
    """Read responses into `result` until the exit (or, with `until`, until stdout holds it)."""
    result = result or Result()
    async with asyncio.timeout(60):
        while True:
            if until is not None and until in result.stdout:
                return result
            r = await call.read()
            if r is grpc.aio.EOF:
                return result
            kind = r.WhichOneof("body")
            result.kinds.append(kind)
            if kind == "stdout":
                result.stdout += r.stdout
            elif kind == "stderr":
                result.stderr += r.stderr
            else:
                result.exit = r.exit


async def run(pools, first: P.ExecNodeRequest, *later: P.ExecNodeRequest) -> Result:  # type: ignore[no-untyped-def]
    """Send `first` and `later`, end the input, and collect everything."""
    call = pools.ExecNode()
    for r in (first, *later):
        await call.write(r)
    await call.done_writing()
    return await collect(call)


async def test_commands_their_output_exit_codes_and_input(node: Node) -> None:
    out = await run(node.pools, start(node.name, ["echo", "hi"]))
    assert (out.stdout, out.stderr, out.exit) == (b"hi\n", b"", P.ExecNodeExit(exit_code=0))
    assert out.kinds[-1] == "exit"

    out = await run(node.pools, start(node.name, ["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert (out.stdout, out.stderr, out.exit.exit_code, out.exit.signal) == (b"out\n", b"err\n", 3, 0)

    out = await run(
        node.pools, start(node.name, ["cat"]), P.ExecNodeRequest(stdin=b"abc"), P.ExecNodeRequest(stdin=b"def")
    )
    assert (out.stdout, out.exit.exit_code) == (b"abcdef", 0)

    # The node's context: its root as the working directory, the node's variables under both names, the
    # request's own.
    script = 'pwd; echo "$SHOAL_NODE_ID $AZ_BATCH_POOL_ID $SHOAL_NODE_SHARED_DIR $FOO"'
    out = await run(node.pools, start(node.name, ["sh", "-c", script], env={"FOO": "bar"}))
    node_id = node.name.rsplit("/", 1)[1]
    assert out.stdout.decode().splitlines() == [str(node.layout.root), f"{node_id} p {node.layout.shared} bar"]

    out = await run(node.pools, start(node.name, ["no-such-program-here"]))
    assert out.exit.exit_code == 127 and b"command not found" in out.stderr

    # No argv: the user's login shell, reading its commands from stdin.
    out = await run(node.pools, start(node.name), P.ExecNodeRequest(stdin=b"echo from the shell; exit 4\n"))
    assert (out.stdout, out.exit.exit_code) == (b"from the shell\n", 4)
    async with asyncio.timeout(20):
        while node.node_exec.sessions:  # (the agent ends its call just after the exit it sent)
            await asyncio.sleep(0.02)
    assert node.running_file.load() == {}


async def test_a_terminal_its_size_and_a_resize(node: Node) -> None:
    script = "tty; stty size; echo ready; read line; stty size; test -t 0 && test -t 2 && echo all-terminal"
    call = node.pools.ExecNode()
    await call.write(start(node.name, ["sh", "-c", script], tty=True, rows=30, columns=100))
    out = await collect(call, until=b"ready")
    lines = out.stdout.decode().splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "30 100", out
    await call.write(P.ExecNodeRequest(resize=P.TerminalSize(rows=40, columns=120)))
    await call.write(P.ExecNodeRequest(stdin=b"go\n"))
    out = await collect(call, out)
    # (The terminal echoes the input; its lines end in CR LF.)
    assert b"40 120\r\n" in out.stdout and b"all-terminal" in out.stdout, out
    assert out.exit == P.ExecNodeExit(exit_code=0)
    assert "stderr" not in out.kinds


async def test_ctrl_c_through_the_terminal_and_a_signal_request(node: Node) -> None:
    # Ctrl-C typed into the terminal: the line discipline sends SIGINT to the foreground process group.
    call = node.pools.ExecNode()
    await call.write(start(node.name, ["sh", "-c", "echo ready; exec sleep 60"], tty=True, rows=24, columns=80))
    out = await collect(call, until=b"ready")
    await call.write(P.ExecNodeRequest(stdin=b"\x03"))
    out = await collect(call, out)
    assert out.exit == P.ExecNodeExit(exit_code=130, signal=signal.SIGINT), out

    # A signal request, without a terminal.
    call = node.pools.ExecNode()
    await call.write(start(node.name, ["sh", "-c", "echo ready; exec sleep 60"]))
    out = await collect(call, until=b"ready")
    await call.write(P.ExecNodeRequest(signal=signal.SIGTERM))
    out = await collect(call, out)
    assert out.exit == P.ExecNodeExit(exit_code=128 + signal.SIGTERM, signal=signal.SIGTERM), out


async def test_the_caller_going_away_kills_the_command(node: Node) -> None:
    call = node.pools.ExecNode()
    # A background process too: the whole group goes.
    await call.write(start(node.name, ["sh", "-c", "sleep 60 & echo ready; sleep 60"]))
    await collect(call, until=b"ready")
    (pgid,) = node.node_exec.sessions
    assert group_alive(pgid)
    assert node.running_file.load() == {f"{RUNNING_KEY_PREFIX}{pgid}": pgid}
    call.cancel()
    async with asyncio.timeout(20):
        while node.node_exec.sessions or group_alive(pgid):
            await asyncio.sleep(0.02)
    assert node.running_file.load() == {}


@pytest.mark.skipif(not can_make_users(), reason="the user differs only under a root agent with useradd")
async def test_elevated_runs_as_root_and_otherwise_as_the_pools_user(node: Node) -> None:
    assert node.users.isolation, node.users.reason
    plain = await run(node.pools, start(node.name, ["sh", "-c", "id -u; echo $USER $HOME"]))
    elevated = await run(node.pools, start(node.name, ["id", "-u"], elevated=True))
    uid, who = plain.stdout.decode().splitlines()
    assert uid != "0" and elevated.stdout == b"0\n", (plain, elevated)
    user = await node.users.acquire(None, "test")
    assert user is not None and int(uid) == user.uid and who.split()[0] == user.name
    # A terminal is the user's own.
    out = await run(node.pools, start(node.name, ["sh", "-c", 'stat -c %u "$(tty)"'], tty=True))
    assert out.stdout.strip() == uid.encode(), out


async def refused(call, code: grpc.StatusCode, reason: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async with asyncio.timeout(30):
            while await call.read() is not grpc.aio.EOF:
                pass
    assert e.value.code() == code, e.value
    got_reason, violations = details(e.value)
    assert got_reason == reason, e.value
    return violations


async def test_refusals(node: Node) -> None:
    # The first request must start the command.
    call = node.pools.ExecNode()
    await call.write(P.ExecNodeRequest(stdin=b"ls\n"))
    violations = await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EXEC_REQUEST")
    assert [f for f, _ in violations] == ["start"]
    # Nor may a later one; out-of-range fields are named.
    call = node.pools.ExecNode()
    await call.write(start(node.name, ["sh", "-c", "echo ready; exec sleep 60"]))
    await collect(call, until=b"ready")
    await call.write(P.ExecNodeRequest(signal=999))
    violations = await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EXEC_REQUEST")
    assert [f for f, _ in violations] == ["signal"]
    call = node.pools.ExecNode()
    await call.write(start(node.name, ["true", "a\x00b"], rows=70000, env={"A=B": "x"}))
    violations = await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EXEC_REQUEST")
    assert {f for f, _ in violations} == {"start.argv[1]", "start.size.rows", "start.environment[0].name"}
    # Unknown nodes and pools.
    call = node.pools.ExecNode()
    await call.write(start("pools/p/nodes/nope", ["true"]))
    await refused(call, grpc.StatusCode.NOT_FOUND, "NODE_NOT_FOUND")
    call = node.pools.ExecNode()
    await call.write(start("pools/nope/nodes/n", ["true"]))
    await refused(call, grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
    # Another account's node is answered as a missing one, and nothing runs.
    key = await make_account(node.server, "other")
    marker = node.layout.root / "ran"
    async with channel_as(node.server, "other", key) as ch:
        other = pool_pb2_grpc.PoolServiceStub(ch)
        call = other.ExecNode()
        await call.write(start(node.name, ["touch", str(marker)], elevated=True))
        await refused(call, grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
    assert not marker.exists()
    # The command refused mid-call was killed (the server cancelled its call to the agent).
    async with asyncio.timeout(20):
        while node.node_exec.sessions:
            await asyncio.sleep(0.02)


async def test_a_node_not_connected(server: ShoalServer, stubs: Stubs) -> None:
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=1, provider="join")))
    agent = ScriptedAgent(server, "p", "127.0.0.1")
    name = f"pools/p/nodes/{(await agent.connect()).node_id}"
    await agent.close()
    async with asyncio.timeout(30):
        while True:
            call = stubs.pools.ExecNode()
            await call.write(start(name, ["true"]))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                while await call.read() is not grpc.aio.EOF:
                    pass
            if details(e.value)[0] == "NODE_NOT_CONNECTED":
                assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                return
            await asyncio.sleep(0.05)  # (the server has not seen the stream end yet)
