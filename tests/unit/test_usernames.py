"""The names of the users nodes make for tasks, who runs tasks as whom, and account files written by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shoal.nodeagent import passwd, usernames
from shoal.nodeagent.users import isolation_decision, unreachable_part
from tests.taskusers import open_dir

LINUX_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")


@pytest.mark.parametrize("pool", ["p", "Pool_1", "a" * 64, "x-" * 32, "UPPER"])
def test_names_are_valid_linux_names_within_32_characters(pool: str) -> None:
    for name in (
        usernames.pool_user("shoal", pool),
        usernames.task_user("shoal", pool, "/mnt/shoal/nodes/n1", 12345),
        usernames.account_user("shoal", pool, "a" * 20),
        usernames.pool_user("abcdefghijkl", pool),
    ):
        assert len(name) <= usernames.MAX_USER_NAME, name
        assert LINUX_NAME.match(name), name
        assert name.startswith(("shoal-", "abcdefghijkl-"))


def test_names_are_readable_stable_and_distinct() -> None:
    assert usernames.pool_user("shoal", "mypool").startswith("shoal-mypool-")
    assert usernames.pool_user("shoal", "mypool") == usernames.pool_user("shoal", "mypool")
    # Pool ids are unique ignoring case: so are their users.
    assert usernames.pool_user("shoal", "MyPool") == usernames.pool_user("shoal", "mypool")
    names = {
        usernames.pool_user("shoal", "p"),
        usernames.pool_user("shoal", "q"),
        usernames.account_user("shoal", "p", "alice"),
        usernames.account_user("shoal", "q", "alice"),
        usernames.account_user("shoal", "p", "bob"),
        usernames.task_user("shoal", "p", "/root1", 0),
        usernames.task_user("shoal", "p", "/root1", 1),
        # Two nodes on one machine never lend the same user.
        usernames.task_user("shoal", "p", "/root2", 0),
    }
    assert len(names) == 8
    # Cut short, long pool ids still differ (by their digest).
    a, b = usernames.pool_user("shoal", "a" * 60 + "x"), usernames.pool_user("shoal", "a" * 60 + "y")
    assert a != b and a[:-8] == b[:-8]
    # A pool "p-u" with account "x" and a pool "p" with account "u-x" read alike and still differ.
    assert usernames.account_user("shoal", "p-u", "x") != usernames.account_user("shoal", "p", "u-x")


@pytest.mark.parametrize("prefix", ["", "Shoal", "a-b", "toolongprefix", "1abc", "a b"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(usernames.BadPrefix):
        usernames.check_prefix(prefix)


def test_isolation_decision() -> None:
    slash = Path("/")
    assert isolation_decision(euid=0, enabled=True, root=slash / "tmp", can_make_users=True) == (True, "")
    off, why = isolation_decision(euid=1000, enabled=True, root=slash / "tmp", can_make_users=True)
    assert not off and "root" in why
    off, why = isolation_decision(euid=0, enabled=False, root=slash / "tmp", can_make_users=True)
    assert not off and "turned off" in why
    off, why = isolation_decision(euid=0, enabled=True, root=slash / "tmp", can_make_users=False)
    assert not off and "useradd" in why
    with open_dir() as reachable:
        assert unreachable_part(reachable / "node") is None
        closed = reachable / "closed"
        closed.mkdir(mode=0o700)
        closed.chmod(0o700)
        assert unreachable_part(closed / "node") == closed
        off, why = isolation_decision(euid=0, enabled=True, root=closed / "node", can_make_users=True)
        assert not off and str(closed) in why


def test_free_id() -> None:
    assert passwd.free_id(set()) == passwd.FIRST_ID
    assert passwd.free_id({1000, 1001, 1003}) == 1002
    with pytest.raises(passwd.UserError):
        passwd.free_id({1, 2}, first=1, last=2)


def test_account_files_written_by_hand(tmp_path: Path) -> None:
    """Without useradd: entries appended to the account files (here copies, so no lock on /etc's)."""
    files = passwd.AccountFiles(
        passwd=tmp_path / "passwd", group=tmp_path / "group", shadow=tmp_path / "shadow", gshadow=tmp_path / "gshadow"
    )
    files.passwd.write_text("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    files.group.write_text("root:x:0:\nalice:x:1000:\nstaff:x:5000:\n")
    files.shadow.write_text("root:*:1::::::\n")
    files.gshadow.write_text("root:*::\n")
    pw = passwd.ensure_user(passwd.UserSpec("shoal-p-1"), files)
    assert (pw.pw_uid, pw.pw_gid, pw.pw_gecos, pw.pw_dir) == (1001, 1001, passwd.COMMENT, passwd.NO_HOME)
    assert "shoal-p-1:x:1001:" in files.group.read_text()
    assert files.shadow.read_text().splitlines()[-1].startswith("shoal-p-1:!:")
    # Again: found, not added twice.
    assert passwd.ensure_user(passwd.UserSpec("shoal-p-1"), files).pw_uid == 1001
    assert files.passwd.read_text().count("shoal-p-1:") == 1
    # Given ids; an existing group of that gid is used as it is.
    pw = passwd.ensure_user(passwd.UserSpec("shoal-p-2", 7000, 5000), files)
    assert (pw.pw_uid, pw.pw_gid) == (7000, 5000)
    assert files.group.read_text().count(":5000:") == 1
    with pytest.raises(passwd.UserError, match="uid 7000"):
        passwd.ensure_user(passwd.UserSpec("shoal-p-3", 7000, 7000), files)


def test_agent_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.nodeagent.__main__ import parse_config

    base = ["--server", "127.0.0.1:1", "--node-root", str(tmp_path), "--ip", "127.0.0.1"]
    monkeypatch.setenv("SHOAL_USER_PREFIX", "fromenv")
    cfg, _ = parse_config(base)
    assert cfg.task_users and cfg.user_prefix == "fromenv"
    cfg, _ = parse_config([*base, "--no-task-users", "--user-prefix", "acme"])
    assert not cfg.task_users and cfg.user_prefix == "acme"
    with pytest.raises(SystemExit):
        parse_config([*base, "--user-prefix", "Not-A-Prefix"])
    monkeypatch.delenv("SHOAL_USER_PREFIX")
    assert parse_config(base)[0].user_prefix == usernames.DEFAULT_PREFIX
