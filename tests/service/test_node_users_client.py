"""Node users through the Python client and the CLI against a real in-process server, with a scripted
agent: add, list, update, delete, the errors as client exceptions, the remote login settings and the ssh
command `shoal node login` prints; the CLI never takes a password as an argument."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shoal.client import AlreadyExists, FailedPrecondition, InvalidArgument, NodeUser, NotFound
from shoal.client.cli import cli
from shoal.server.nodeusers.model import verify_password
from shoal.v1 import pool_pb2
from tests.channels import credentials
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_certificates_client import in_thread
from tests.service.test_node_users import ssh_key

pytestmark = pytest.mark.timeout(90)


async def _node(server: Any, stubs: Stubs, ssh_port: int = 0) -> ScriptedAgent:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.80")
    agent.register_extra = {"agent_user": "root", "ssh_port": ssh_port}
    await agent.connect()
    return agent


async def test_the_client_adds_lists_updates_and_deletes(server, stubs) -> None:
    agent = await _node(server, stubs)
    nid = agent.node_id
    key = ssh_key()

    def scenario(client: Any) -> None:
        added = client.pools.add_node_user(
            "p", nid, "alice", password="pw-1", ssh_public_key=key, expiry=timedelta(hours=2), is_admin=True
        )
        assert isinstance(added, NodeUser) and added.is_admin and added.ssh_public_key == key
        assert abs(added.expiry_time - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(seconds=30)
        with pytest.raises(AlreadyExists) as e:
            client.pools.add_node_user("p", nid, "alice")
        assert e.value.reason == "NODE_USER_EXISTS"
        with pytest.raises(InvalidArgument) as bad:
            client.pools.add_node_user("p", nid, "Bob", ssh_public_key="nope")
        assert [f for f, _ in bad.value.field_violations] == ["user.name", "user.ssh_public_key"]
        assert [u.name for u in client.pools.list_node_users("p", nid)] == ["alice"]
        updated = client.pools.update_node_user("p", nid, "alice", password="pw-2")
        assert updated.is_admin and updated.ssh_public_key == ""
        client.pools.delete_node_user("p", nid, "alice")
        with pytest.raises(NotFound):
            client.pools.delete_node_user("p", nid, "alice")
        settings = client.pools.remote_login_settings("p", nid)
        assert not settings.available and settings.ip_address == "127.0.2.80" and settings.reason

    await in_thread(server, scenario)
    hashes = []
    for _ in range(3):
        msg = (await agent.expect("node_users")).node_users
        hashes.append([u.password_hash for u in msg.users])
    assert verify_password("pw-1", hashes[0][0]) and verify_password("pw-2", hashes[1][0]) and hashes[2] == []
    await agent.close()


async def test_the_cli(server, stubs, tmp_path: Path) -> None:
    agent = await _node(server, stubs, ssh_port=2222)
    nid = agent.node_id
    creds = credentials(server.data_dir)
    args = ["--address", server.address, "--account", creds["account"], "--key", creds["key"]]
    if creds.get("ca_cert"):
        ca = tmp_path / "ca.pem"
        ca.write_text(creds["ca_cert"])
        args += ["--ca-cert", str(ca)]
    key_file = tmp_path / "id.pub"
    key_file.write_text(ssh_key("cli") + "\n")
    password_file = tmp_path / "pw"
    password_file.write_text("from-a-file\n")

    def scenario(_: Any) -> None:
        runner = CliRunner()

        def run(*more: str, input: str | None = None, code: int = 0) -> str:
            result = runner.invoke(cli, [*args, *more], input=input, catch_exceptions=False)
            assert result.exit_code == code, result.output
            return result.output

        out = run(
            "node", "users", "add", "p", nid, "carol", "--admin", "--ssh-key-file", str(key_file),
            "--password-file", str(password_file), "--expiry", "8h", "-o", "json",
        )  # fmt: skip
        assert '"carol"' in out and "from-a-file" not in out
        run("node", "users", "add", "p", nid, "dave", "--prompt-password", input="typed\ntyped\n")
        # `users POOL NODE` lists.
        listed = run("node", "users", "p", nid)
        assert "carol" in listed and "dave" in listed
        run("node", "users", "update", "p", nid, "dave", "--expiry", "2031-01-01T00:00:00")
        # No password on the command line.
        out = run("node", "users", "add", "p", nid, "erin", "--password", "x", code=2)
        assert "No such option" in out
        out = run("node", "users", "delete", "p", nid, "nobody", code=1)
        assert "NODE_USER_NOT_FOUND" in out
        assert run("node", "login", "p", nid, "--user", "carol").strip() == "ssh -p 2222 carol@127.0.2.80"
        run("node", "users", "delete", "p", nid, "dave")
        assert run("node", "login", "p", nid).strip() == "ssh -p 2222 carol@127.0.2.80"

    await in_thread(server, scenario)
    msgs = []
    async with asyncio.timeout(10):
        while len(msgs) < 4:
            msgs.append((await agent.expect("node_users")).node_users)
    carol = next(u for u in msgs[0].users if u.name == "carol")
    assert carol.is_admin and verify_password("from-a-file", carol.password_hash) and carol.ssh_public_key
    dave = next(u for u in msgs[1].users if u.name == "dave")
    assert verify_password("typed", dave.password_hash)
    dave = next(u for u in msgs[2].users if u.name == "dave")
    assert dave.password_hash == "" and dave.expiry_time.ToDatetime(tzinfo=UTC) == datetime(2031, 1, 1, tzinfo=UTC)
    await agent.close()


async def test_a_node_not_ready_is_a_failed_precondition(server, stubs) -> None:
    from shoal.v1 import common_pb2

    start = common_pb2.StartTask(command_line="/bin/true", wait_for_success=True)
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="s", target_nodes=1, provider="join", start_task=start))
    )
    agent = ScriptedAgent(server, "s", "127.0.2.81")
    await agent.connect()

    def scenario(client: Any) -> None:
        with pytest.raises(FailedPrecondition) as e:
            client.pools.add_node_user("s", agent.node_id, "frank")
        assert e.value.reason == "NODE_BEING_STARTED"

    await in_thread(server, scenario)
    await agent.close()
