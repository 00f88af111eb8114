"""The agent's part of node users, piece by piece: the SSH probe, the expiry date, authorized_keys written
without following a symlink, and users that are not the node's left alone."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from shoal.nodeagent import nodeusers

pytestmark = pytest.mark.timeout(30)

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
NOBODY = 65534


async def _serve(first: bytes | None) -> tuple[asyncio.Server, int]:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if first is not None:
            writer.write(first)
            await writer.drain()
        await reader.read(100)  # until the prober hangs up
        writer.close()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_probe_finds_an_ssh_server_and_nothing_else() -> None:
    ssh, ssh_port = await _serve(b"SSH-2.0-OpenSSH_9.6 Debian\r\n")
    web, web_port = await _serve(b"HTTP/1.1 400 Bad Request\r\n")
    silent, silent_port = await _serve(None)
    try:
        assert await nodeusers.probe_ssh("127.0.0.1", ssh_port)
        assert not await nodeusers.probe_ssh("127.0.0.1", web_port)
        started = time.monotonic()
        assert not await nodeusers.probe_ssh("127.0.0.1", silent_port, timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        for s in (ssh, web, silent):
            s.close()
    # Nothing listens there any more; port 0: not looked for.
    assert not await nodeusers.probe_ssh("127.0.0.1", ssh_port)
    assert not await nodeusers.probe_ssh("127.0.0.1", 0)
    logins = nodeusers.NodeLoginUsers(root=Path("/nonexistent"), prefix="shoal", ip="127.0.0.1", ssh_port=0)
    await logins.probe_ssh()
    assert logins.ssh_port == 0


def test_expire_date_is_the_first_day_the_account_no_longer_works() -> None:
    day = 20_000 * 86400  # 2024-10-04 00:00 UTC
    assert nodeusers._expire_date(day) == "2024-10-04"
    assert nodeusers._expire_date(day + 1) == "2024-10-05"
    assert nodeusers._expire_date(day + 86399.5) == "2024-10-05"


def test_the_comment_names_the_node_root() -> None:
    a, b = nodeusers.comment(Path("/srv/a")), nodeusers.comment(Path("/srv/b"))
    assert a != b and a.startswith("Shoal node user ") and ":" not in a and "," not in a


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    return home


@AS_ROOT
def test_authorized_keys_written_replaced_and_removed(tmp_path: Path) -> None:
    home = _home(tmp_path)
    nodeusers.write_authorized_keys(str(home), NOBODY, NOBODY, "ssh-ed25519 AAAA one")
    keys = home / ".ssh" / "authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAA one\n"
    for path, mode in ((home / ".ssh", 0o700), (keys, 0o600)):
        st = os.lstat(path)
        assert stat.S_IMODE(st.st_mode) == mode and (st.st_uid, st.st_gid) == (NOBODY, NOBODY), path
    nodeusers.write_authorized_keys(str(home), NOBODY, NOBODY, "ssh-ed25519 AAAA two")
    assert keys.read_text() == "ssh-ed25519 AAAA two\n"
    assert sorted(p.name for p in (home / ".ssh").iterdir()) == ["authorized_keys"]
    nodeusers.write_authorized_keys(str(home), NOBODY, NOBODY, "")
    assert not keys.exists()


@AS_ROOT
def test_a_symlink_the_user_planted_is_never_followed(tmp_path: Path) -> None:
    home = _home(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "authorized_keys"
    target.write_text("root's own\n")
    # ~/.ssh a symlink to a directory of root's: refused, nothing written there.
    (home / ".ssh").symlink_to(elsewhere)
    with pytest.raises(OSError):
        nodeusers.write_authorized_keys(str(home), NOBODY, NOBODY, "ssh-ed25519 AAAA evil")
    assert target.read_text() == "root's own\n" and os.stat(elsewhere).st_uid == 0
    # ~/.ssh/authorized_keys a symlink to a file of root's: replaced by a file of the user's, the target kept.
    (home / ".ssh").unlink()
    (home / ".ssh").mkdir()
    (home / ".ssh" / "authorized_keys").symlink_to(target)
    nodeusers.write_authorized_keys(str(home), NOBODY, NOBODY, "ssh-ed25519 AAAA mine")
    keys = home / ".ssh" / "authorized_keys"
    assert not keys.is_symlink() and keys.read_text() == "ssh-ed25519 AAAA mine\n"
    assert target.read_text() == "root's own\n"
    # A home that is not the user's is not written to.
    os.chown(home, 0, 0)
    with pytest.raises(nodeusers.NodeUserError):
        nodeusers.write_authorized_keys(str(home), NOBODY, NOBODY, "ssh-ed25519 AAAA x")


def test_users_that_are_not_the_nodes_are_left_alone(tmp_path: Path) -> None:
    daemon = pwd.getpwnam("daemon")
    wanted = [
        nodeusers.Wanted("daemon", True, time.time() + 3600, "", "ssh-ed25519 AAAA x"),
        nodeusers.Wanted("shoal-p-00000000", False, time.time() + 3600, "", ""),
    ]
    outcome = nodeusers.reconcile(wanted, marker=nodeusers.comment(tmp_path), prefix="shoal", now=time.time())
    assert sorted(outcome.failed) == ["daemon", "shoal-p-00000000"] and not outcome.applied
    assert "not this node's" in outcome.failed["daemon"]
    assert pwd.getpwnam("daemon") == daemon
    with pytest.raises(KeyError):
        pwd.getpwnam("shoal-p-00000000")


async def test_an_agent_not_running_as_root_makes_no_users(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from shoal.agent.v1 import agent_pb2

    logins = nodeusers.NodeLoginUsers(root=tmp_path, prefix="shoal", ip="127.0.0.1", euid=1000)
    logins.apply([agent_pb2.NodeUserSpec(name="alice")])
    assert "not run as root" in caplog.text and logins.last is None
    await logins.close()
