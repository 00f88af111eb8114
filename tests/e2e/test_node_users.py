"""Node users end to end: a real `shoal server` and its local agent (as root) make the user on this
machine (its password hash, its SSH key, its admin group, its expiry), change it, and remove it when it
is deleted or expires; the remote login settings say whether an SSH server runs here."""

from __future__ import annotations

import contextlib
import grp
import math
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf import timestamp_pb2

from shoal.nodeagent.nodeusers import ADMIN_GROUPS
from shoal.server.nodeusers.model import verify_password
from shoal.v1 import pool_pb2
from tests.e2e.harness import ServerProcess, wait_for
from tests.taskusers import SKIP_REASON, can_make_users

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not can_make_users(), reason=SKIP_REASON),
]

P = pool_pb2
PASSWORD = "Tr0ub4dor&3-e2e"


def _key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " e2e@test"


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _shadow(name: str) -> list[str]:
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise KeyError(name)


def _remove(names: list[str]) -> None:
    """Remove the test's users, whatever happened (only those Shoal's node made)."""
    for name in names:
        pw = _user(name)
        if pw is not None and pw.pw_gecos.startswith("Shoal node user "):
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)


def test_a_node_user_is_made_changed_and_removed_on_the_machine(tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    alice, brief = f"nu-{tag}-a", f"nu-{tag}-b"
    server = ServerProcess(tmp_path / "data").start()
    try:
        server.create_pool("p", nodes=1)
        (node,) = server.wait_nodes("p", 1)
        assert node.agent_user == "root"
        key = _key()
        server.pools.AddNodeUser(
            P.AddNodeUserRequest(
                parent=node.name,
                user=P.NodeUser(name=alice, password=PASSWORD, ssh_public_key=key, is_admin=True),
            )
        )
        pw = wait_for("the user on the machine", lambda: _user(alice))
        assert pw.pw_gecos.startswith("Shoal node user ") and pw.pw_dir == f"/home/{alice}"
        # The password works (the shadow entry holds its hash, never the password).
        shadow = wait_for("the password hash", lambda: (s := _shadow(alice))[1].startswith("$6$") and s)
        assert verify_password(PASSWORD, shadow[1]) and PASSWORD not in Path("/etc/shadow").read_text()
        # The account expires with the user (to the day: the day after its expiry time).
        expiry = server.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=node.name)).users[0].expiry_time
        assert int(shadow[7]) == math.ceil(expiry.seconds / 86400)
        keys = Path(pw.pw_dir) / ".ssh" / "authorized_keys"
        wait_for("authorized_keys", lambda: keys.exists() or None)
        assert keys.read_text() == key + "\n"
        for path, mode in ((keys.parent, 0o700), (keys, 0o600)):
            st = os.lstat(path)
            assert stat.S_IMODE(st.st_mode) == mode and st.st_uid == pw.pw_uid, path
        admin_group = next((g for g in ADMIN_GROUPS if _group(g)), "")
        if admin_group:
            assert alice in grp.getgrnam(admin_group).gr_mem

        # An update replaces key and password (none: `*`, no password matches).
        other = _key()
        server.pools.UpdateNodeUser(
            P.UpdateNodeUserRequest(name=f"{node.name}/users/{alice}", user=P.NodeUser(ssh_public_key=other))
        )
        wait_for("the new key", lambda: keys.read_text() == other + "\n" or None)
        wait_for("no password", lambda: _shadow(alice)[1] == "*" or None)

        # A user whose time is up is removed by the agent itself.
        soon = timestamp_pb2.Timestamp()
        soon.FromDatetime(datetime.now(UTC) + timedelta(seconds=3))
        server.pools.AddNodeUser(P.AddNodeUserRequest(parent=node.name, user=P.NodeUser(name=brief, expiry_time=soon)))
        wait_for("the brief user", lambda: _user(brief))
        wait_for("the brief user to go", lambda: _user(brief) is None or None, timeout=30)
        assert [u.name for u in server.pools.ListNodeUsers(P.ListNodeUsersRequest(parent=node.name)).users] == [alice]

        # Deleted: the user and its home are gone.
        server.pools.DeleteNodeUser(P.DeleteNodeUserRequest(name=f"{node.name}/users/{alice}"))
        wait_for("the user to go", lambda: _user(alice) is None or None)
        assert not Path(f"/home/{alice}").exists()
        if admin_group:
            # (userdel rewrites /etc/passwd and /etc/group one after the other: wait for both.)
            wait_for("the user to leave its group", lambda: alice not in grp.getgrnam(admin_group).gr_mem or None)

        settings = server.pools.GetRemoteLoginSettings(P.GetRemoteLoginSettingsRequest(name=node.name))
        assert settings.remote_login_ip_address == node.ip_address
        if _ssh_answers(node.ip_address):
            assert settings.available and settings.remote_login_port == 22
        else:
            assert not settings.available and "no SSH server" in settings.reason
        with pytest.raises(grpc.RpcError) as e:
            server.pools.DeleteNodeUser(P.DeleteNodeUserRequest(name=f"{node.name}/users/{alice}"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        # The password is in no log of the server or the node, nor in the database.
        logs = [p for p in server.data_dir.rglob("*") if p.is_file() and (p.suffix == ".log" or "shoal.db" in p.name)]
        assert any(p.name == "agent.log" for p in logs)
        for path in logs:
            assert PASSWORD.encode() not in path.read_bytes(), path
    finally:
        server.stop()
        _remove([alice, brief])


def _group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _ssh_answers(ip: str) -> bool:
    import socket

    if shutil.which("sshd") is None:
        return False
    with contextlib.suppress(OSError), socket.create_connection((ip, 22), timeout=1) as s:
        s.settimeout(1)
        return s.recv(4).startswith(b"SSH-")
    return False


def test_a_user_outlives_a_server_restart_and_goes_with_its_node(tmp_path: Path) -> None:
    """The server killed and started again: the agent, welcomed again with the same list, keeps the user;
    when the node leaves its pool, the user goes with it."""
    tag = secrets.token_hex(3)
    name = f"nu-{tag}-c"
    server = ServerProcess(tmp_path / "data").start()
    try:
        server.create_pool("p", nodes=1)
        (node,) = server.wait_nodes("p", 1)
        server.pools.AddNodeUser(P.AddNodeUserRequest(parent=node.name, user=P.NodeUser(name=name)))
        wait_for("the user", lambda: _user(name))
        # The server is killed and started again: the agent reconnects and is welcomed with the same list.
        server.kill()
        server.start()
        wait_for("the node back", lambda: server.nodes("p")[0].state == P.NODE_STATE_IDLE or None, timeout=60)
        assert _user(name) is not None
        # The node leaves its pool: its agent removes its users as it stops.
        server.pools.RemoveNodes(P.RemoveNodesRequest(name="pools/p", node_ids=[node.id]))
        wait_for("the user to go with its node", lambda: _user(name) is None or None)
    finally:
        server.stop()
        _remove([name])
