"""Node users on a real server with scripted agents: add, list, update, delete as the agent is told them
(committed, then the whole list), refusals with their reasons and fields, tenancy, a restart, no password
anywhere but as a hash, the users gone with their node, and the remote login settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf import timestamp_pb2

from shoal.server.nodeusers.model import verify_password
from shoal.v1 import common_pb2, identity_pb2, pool_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

P = pool_pb2
PASSWORD = "correct-horse-7781"
NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def ssh_key(comment: str = "me@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " " + comment


def stamp(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt)
    return ts


async def _node(server, stubs: Stubs, *, pool: str = "p", ip: str = "127.0.2.70", **register) -> ScriptedAgent:
    await stubs.pools.CreatePool(
        P.CreatePoolRequest(
            pool=P.Pool(
                id=pool,
                target_nodes=1,
                provider="join",
                user_accounts=[identity_pb2.UserAccount(name="builder")],
            )
        )
    )
    agent = ScriptedAgent(server, pool, ip)
    agent.register_extra = {"agent_user": "root", **register}
    await agent.connect()
    return agent


async def test_add_list_update_delete_reach_the_agent(server, stubs) -> None:
    agent = await _node(server, stubs)
    node = f"pools/p/nodes/{agent.node_id}"
    key = ssh_key()
    before = datetime.now(UTC)
    added = await stubs.pools.AddNodeUser(
        P.AddNodeUserRequest(
            parent=node, user=P.NodeUser(name="alice", password=PASSWORD, ssh_public_key=key, is_admin=True)
        )
    )
    # Never the password back; the expiry a day on, as in Batch.
    assert added.name == "alice" and added.is_admin and added.ssh_public_key == key and not added.password
    expiry = added.expiry_time.ToDatetime(tzinfo=UTC)
    assert before + timedelta(days=1) - timedelta(seconds=5) <= expiry <= datetime.now(UTC) + timedelta(days=1)
    # The agent gets the whole list, with a hash of the password only.
    msg = (await agent.expect("node_users")).node_users
    assert msg.command_id > 0 and [u.name for u in msg.users] == ["alice"]
    spec = msg.users[0]
    assert spec.is_admin and spec.ssh_public_key == key and spec.expiry_time == added.expiry_time
    assert spec.password_hash.startswith("$6$") and PASSWORD not in spec.password_hash
    assert verify_password(PASSWORD, spec.password_hash)

    # A second user, no password nor key (Batch allows it), its own expiry.
    later = datetime.now(UTC) + timedelta(hours=3)
    await stubs.pools.AddNodeUser(
        P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="bob_2", expiry_time=stamp(later)))
    )
    msg = (await agent.expect("node_users")).node_users
    assert [u.name for u in msg.users] == ["alice", "bob_2"] and msg.users[1].password_hash == ""
    listed = (await stubs.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=node))).users
    assert [(u.name, u.is_admin, u.password) for u in listed] == [("alice", True, ""), ("bob_2", False, "")]
    assert abs(listed[1].expiry_time.ToDatetime(tzinfo=UTC) - later) < timedelta(seconds=1)

    # An update replaces password, key and expiry; the admin flag stays as it was added.
    new_key = ssh_key("other")
    updated = await stubs.pools.UpdateNodeUser(
        P.UpdateNodeUserRequest(name=f"{node}/users/alice", user=P.NodeUser(ssh_public_key=new_key))
    )
    assert updated.is_admin and updated.ssh_public_key == new_key
    msg = (await agent.expect("node_users")).node_users
    alice = next(u for u in msg.users if u.name == "alice")
    assert alice.password_hash == "" and alice.ssh_public_key == new_key
    await stubs.pools.UpdateNodeUser(
        P.UpdateNodeUserRequest(name=f"{node}/users/alice", user=P.NodeUser(name="alice", password="n3w"))
    )
    msg = (await agent.expect("node_users")).node_users
    alice = next(u for u in msg.users if u.name == "alice")
    assert verify_password("n3w", alice.password_hash) and alice.ssh_public_key == ""

    await stubs.pools.DeleteNodeUser(P.DeleteNodeUserRequest(name=f"{node}/users/alice"))
    msg = (await agent.expect("node_users")).node_users
    assert [u.name for u in msg.users] == ["bob_2"]
    await refused(
        stubs.pools.DeleteNodeUser(P.DeleteNodeUserRequest(name=f"{node}/users/alice")),
        NOT_FOUND,
        "NODE_USER_NOT_FOUND",
    )
    # An agent that connects again is welcomed with the list.
    await agent.close()
    again = ScriptedAgent(server, "p", "127.0.2.70")
    again.register_extra = {"agent_user": "root"}
    welcome = await again.connect(agent.node_id)
    assert [u.name for u in welcome.node_users] == ["bob_2"]
    await again.close()


async def test_refusals(server, stubs) -> None:
    agent = await _node(server, stubs)
    node = f"pools/p/nodes/{agent.node_id}"

    async def add(user: P.NodeUser, code: grpc.StatusCode, reason: str) -> list[tuple[str, str]]:
        err = await refused(stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=user)), code, reason)
        return details(err)[1]

    for bad in ("", "Alice", "1abc", "-x", "a" * 21, "a b", "root", "shoal-x", "builder", "é"):
        v = await add(P.NodeUser(name=bad), INVALID, "INVALID_NODE_USER")
        assert [f for f, _ in v] == ["user.name"], (bad, v)
    v = await add(P.NodeUser(name="carol", ssh_public_key="ssh-rsa not-a-key"), INVALID, "INVALID_NODE_USER")
    assert [f for f, _ in v] == ["user.ssh_public_key"]
    v = await add(P.NodeUser(name="carol", ssh_public_key=ssh_key() + "\nssh-rsa AAAA"), INVALID, "INVALID_NODE_USER")
    assert [f for f, _ in v] == ["user.ssh_public_key"]
    past = stamp(datetime.now(UTC) - timedelta(minutes=1))
    v = await add(P.NodeUser(name="carol", expiry_time=past, password="x\ny"), INVALID, "INVALID_NODE_USER")
    assert sorted(f for f, _ in v) == ["user.expiry_time", "user.password"]
    # Nothing of the refused adds was kept, nor sent.
    assert not (await stubs.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=node))).users
    with pytest.raises(TimeoutError):
        await agent.expect("node_users", timeout=0.2)

    await stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="carol")))
    await add(P.NodeUser(name="carol"), grpc.StatusCode.ALREADY_EXISTS, "NODE_USER_EXISTS")
    await refused(
        stubs.pools.UpdateNodeUser(P.UpdateNodeUserRequest(name=f"{node}/users/dave", user=P.NodeUser())),
        NOT_FOUND,
        "NODE_USER_NOT_FOUND",
    )
    err = await refused(
        stubs.pools.UpdateNodeUser(P.UpdateNodeUserRequest(name=f"{node}/users/carol", user=P.NodeUser(name="x"))),
        INVALID,
        "INVALID_NODE_USER",
    )
    assert [f for f, _ in details(err)[1]] == ["user.name"]
    await refused(
        stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent="pools/p/nodes/nope", user=P.NodeUser(name="e"))),
        NOT_FOUND,
        "NODE_NOT_FOUND",
    )
    await refused(
        stubs.pools.ListNodeUsers(P.ListNodeUsersRequest(parent="pools/nope/nodes/n")), NOT_FOUND, "POOL_NOT_FOUND"
    )
    await refused(
        stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent="pools/p", user=P.NodeUser(name="e"))),
        INVALID,
        "INVALID_NAME",
    )


async def test_node_state_and_agent_user(server, stubs) -> None:
    # A node whose start task runs (STARTING) takes no users yet; a deletion is taken in any state.
    start = common_pb2.StartTask(command_line="/bin/true", wait_for_success=True)
    await stubs.pools.CreatePool(
        P.CreatePoolRequest(pool=P.Pool(id="s", target_nodes=1, provider="join", start_task=start))
    )
    starting = ScriptedAgent(server, "s", "127.0.2.71")
    starting.register_extra = {"agent_user": "root"}
    await starting.connect()
    node = f"pools/s/nodes/{starting.node_id}"
    err = await refused(
        stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="erin"))),
        PRECONDITION,
        "NODE_BEING_STARTED",
    )
    assert "STARTING" in err.details()
    await starting.send_start_task_done()
    async with asyncio.timeout(10):
        while (await stubs.pools.GetNode(P.GetNodeRequest(name=node))).state != P.NODE_STATE_IDLE:
            await asyncio.sleep(0.02)
    await stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="erin")))
    # Taken out of scheduling (OFFLINE): users still come and go.
    await stubs.pools.DisableNodeScheduling(P.DisableNodeSchedulingRequest(name=node))
    await stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="frank")))
    await stubs.pools.DeleteNodeUser(P.DeleteNodeUserRequest(name=f"{node}/users/erin"))
    await starting.close()

    # An agent not running as root cannot make users: refused up front.
    await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="u", target_nodes=1, provider="join")))
    plain = ScriptedAgent(server, "u", "127.0.2.72")
    plain.register_extra = {"agent_user": "someone"}
    await plain.connect()
    err = await refused(
        stubs.pools.AddNodeUser(
            P.AddNodeUserRequest(parent=f"pools/u/nodes/{plain.node_id}", user=P.NodeUser(name="gina"))
        ),
        PRECONDITION,
        "NODE_USERS_UNSUPPORTED",
    )
    assert "someone" in err.details()
    await plain.close()


async def test_another_account_sees_no_node_user(server, stubs) -> None:
    agent = await _node(server, stubs)
    node = f"pools/p/nodes/{agent.node_id}"
    await stubs.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="hank")))
    key = await make_account(server, "other")
    async with channel_as(server, "other", key) as ch:
        other = Stubs(ch)
        for call in (
            other.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=node)),
            other.pools.AddNodeUser(P.AddNodeUserRequest(parent=node, user=P.NodeUser(name="ivy"))),
            other.pools.UpdateNodeUser(P.UpdateNodeUserRequest(name=f"{node}/users/hank", user=P.NodeUser())),
            other.pools.DeleteNodeUser(P.DeleteNodeUserRequest(name=f"{node}/users/hank")),
            other.pools.GetRemoteLoginSettings(P.GetRemoteLoginSettingsRequest(name=node)),
        ):
            await refused(call, NOT_FOUND, "POOL_NOT_FOUND")
    users = (await stubs.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=node))).users
    assert [u.name for u in users] == ["hank"]
    await agent.close()


def _stored_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("shoal.db*")))


async def test_users_survive_a_restart_and_no_password_is_stored(tmp_path) -> None:
    data = tmp_path / "data"
    server = await start_server(data)
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            agent = await _node(server, stubs)
            node_id = agent.node_id
            await stubs.pools.AddNodeUser(
                P.AddNodeUserRequest(parent=f"pools/p/nodes/{node_id}", user=P.NodeUser(name="jill", password=PASSWORD))
            )
            await agent.close()
    finally:
        await server.stop(stop_agents=True)
    stored = _stored_bytes(data)
    assert b"jill" in stored and b"$6$" in stored
    assert PASSWORD.encode() not in stored
    server = await start_server(data)
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            users = (await stubs.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=f"pools/p/nodes/{node_id}"))).users
            assert [u.name for u in users] == ["jill"]
            agent = ScriptedAgent(server, "p", "127.0.2.70")
            agent.register_extra = {"agent_user": "root"}
            welcome = await agent.connect(node_id)
            assert [u.name for u in welcome.node_users] == ["jill"]
            assert verify_password(PASSWORD, welcome.node_users[0].password_hash)
            await agent.close()
    finally:
        await server.stop(stop_agents=True)
    assert PASSWORD.encode() not in _stored_bytes(data)


async def test_users_go_with_their_node(server, stubs) -> None:
    agent = await _node(server, stubs)
    node_key = agent.node_id.lower()
    await stubs.pools.AddNodeUser(
        P.AddNodeUserRequest(parent=f"pools/p/nodes/{agent.node_id}", user=P.NodeUser(name="kim"))
    )
    await agent.expect("node_users")
    registry = next(h.__self__ for h in server.cp.welcome_hooks if hasattr(h.__self__, "users"))  # type: ignore[attr-defined]
    assert "kim" in registry.users[node_key]
    await stubs.pools.RemoveNodes(P.RemoveNodesRequest(name="pools/p", node_ids=[agent.node_id]))
    await agent.expect("shutdown")
    await agent.close()
    async with asyncio.timeout(30):
        while node_key in server.cp.nodes:
            await asyncio.sleep(0.05)
    assert node_key not in registry.users
    # (The node leaves memory before the commit that deletes its rows lands: wait for the commit.)
    async with asyncio.timeout(10):
        while await asyncio.to_thread(_rows_of, server.data_dir / "shoal.db"):
            await asyncio.sleep(0.05)


def _rows_of(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM nodeusers").fetchone()[0])


async def test_remote_login_settings(server, stubs) -> None:
    agent = await _node(server, stubs, ssh_port=0)
    settings = await stubs.pools.GetRemoteLoginSettings(
        P.GetRemoteLoginSettingsRequest(name=f"pools/p/nodes/{agent.node_id}")
    )
    assert not settings.available and settings.remote_login_ip_address == "127.0.2.70"
    assert "no SSH server" in settings.reason and settings.remote_login_port == 0
    await agent.close()
    # The agent found one at its next registration.
    again = ScriptedAgent(server, "p", "127.0.2.70")
    again.register_extra = {"agent_user": "root", "ssh_port": 2222}
    await again.connect(agent.node_id)
    settings = await stubs.pools.GetRemoteLoginSettings(
        P.GetRemoteLoginSettingsRequest(name=f"pools/p/nodes/{agent.node_id}")
    )
    assert settings.available and settings.remote_login_port == 2222 and not settings.reason
    assert settings.remote_login_ip_address == "127.0.2.70"
    await again.close()
