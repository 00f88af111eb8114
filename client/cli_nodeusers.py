"""``shoal node users ...`` (list, add, update, delete) and ``shoal node login``: a node's login accounts and
the SSH command that reaches it. Added to the ``node`` group in ``cli.py``.

A password is never taken on the command line (where `ps` and the shell's history would keep it): it is
read from a file (``--password-file``, ``-`` for standard input) or asked for (``--prompt-password``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ._nodeusers import NodeUser
from .cli_common import _OUTPUT, _client, _emit, _fail
from .cli_watch import list_or_watch, watch_option
from .durations import DURATION_FORMS, parse_duration

__all__ = ["node_login", "node_users"]

USER_COLUMNS = [
    ("name", lambda u: u.name),
    ("admin", lambda u: "yes" if u.is_admin else ""),
    ("expires", lambda u: u.expiry_time),
    ("ssh key", lambda u: _short_key(u.ssh_public_key)),
]


def _short_key(key: str) -> str:
    parts = key.split()
    if len(parts) < 2:
        return ""
    return f"{parts[0]} ...{parts[1][-8:]}" + (f" {' '.join(parts[2:])}" if len(parts) > 2 else "")


def _expiry(value: str | None) -> datetime | timedelta | None:
    """``--expiry``: an ISO 8601 time (UTC unless it says), or a duration from now (``90m``, ``8h``, ``7d``:
    any form of :func:`~shoal.client.durations.parse_duration`)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            return parse_duration(value)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is neither a duration ({DURATION_FORMS}) nor an ISO 8601 time",
                param_hint="--expiry",
            ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _password(password_file: Any, prompt: bool) -> str | None:
    if password_file is not None and prompt:
        raise click.UsageError("give --password-file or --prompt-password, not both")
    if password_file is not None:
        text: str = password_file.read()
        return text[:-1] if text.endswith("\n") else text
    if prompt:
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    return None


def _ssh_key(key: str | None, key_file: Any) -> str | None:
    if key is not None and key_file is not None:
        raise click.UsageError("give --ssh-key or --ssh-key-file, not both")
    if key_file is not None:
        text: str = key_file.read()
        return text.strip()
    return key


class _ListByDefault(click.Group):
    """A group whose subcommand may be left out: ``users POOL NODE`` is ``users list POOL NODE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


_CREDENTIALS = [
    click.option(
        "--password-file",
        type=click.File("r"),
        default=None,
        help="Read the password from this file ('-': standard input); the node keeps only its hash.",
    ),
    click.option("--prompt-password", is_flag=True, help="Ask for the password (not echoed)."),
    click.option("--ssh-key", default=None, metavar="KEY", help="An OpenSSH public key line that logs in as the user."),
    click.option(
        "--ssh-key-file", type=click.File("r"), default=None, help="Read the OpenSSH public key from this file."
    ),
    click.option(
        "--expiry",
        default=None,
        metavar="WHEN",
        help="When the account stops working: a duration from now (90m, 8h, 7d) or an ISO 8601 time "
        "(default: a day from now).",
    ),
]


def _with_credentials(f: Any) -> Any:
    for option in reversed(_CREDENTIALS):
        f = option(f)
    return f


@click.group("users", cls=_ListByDefault)
def node_users() -> None:
    """A node's login accounts (`shoal node users POOL NODE` lists them)."""


@node_users.command("list")
@click.argument("pool_id")
@click.argument("node_id")
@_OUTPUT
@watch_option
@click.pass_context
def users_list(ctx: click.Context, pool_id: str, node_id: str, output: str, watch: bool) -> None:
    """List the users of node NODE_ID of pool POOL_ID."""
    fetch = lambda: _client(ctx).pools.list_node_users(pool_id, node_id)  # noqa: E731
    list_or_watch(output, watch, fetch, USER_COLUMNS, f"users of node {node_id}")


@node_users.command("add")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("name")
@click.option("--admin", is_flag=True, help="A member of the node's sudo group.")
@_with_credentials
@_OUTPUT
@click.pass_context
def users_add(
    ctx: click.Context,
    pool_id: str,
    node_id: str,
    name: str,
    admin: bool,
    password_file: Any,
    prompt_password: bool,
    ssh_key: str | None,
    ssh_key_file: Any,
    expiry: str | None,
    output: str,
) -> None:
    """Add user NAME to node NODE_ID of pool POOL_ID (made on the node by its agent)."""
    user = _client(ctx).pools.add_node_user(
        pool_id,
        node_id,
        name,
        password=_password(password_file, prompt_password),
        ssh_public_key=_ssh_key(ssh_key, ssh_key_file),
        expiry=_expiry(expiry),
        is_admin=admin,
    )
    _emit(output, [user], USER_COLUMNS, "node user added")


@node_users.command("update")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("name")
@_with_credentials
@_OUTPUT
@click.pass_context
def users_update(
    ctx: click.Context,
    pool_id: str,
    node_id: str,
    name: str,
    password_file: Any,
    prompt_password: bool,
    ssh_key: str | None,
    ssh_key_file: Any,
    expiry: str | None,
    output: str,
) -> None:
    """Replace the password, SSH key and expiry of user NAME on node NODE_ID of pool POOL_ID (one not given is
    removed, as in Batch)."""
    user: NodeUser = _client(ctx).pools.update_node_user(
        pool_id,
        node_id,
        name,
        password=_password(password_file, prompt_password),
        ssh_public_key=_ssh_key(ssh_key, ssh_key_file),
        expiry=_expiry(expiry),
    )
    _emit(output, [user], USER_COLUMNS, "node user updated")


@node_users.command("delete")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("name")
@click.pass_context
def users_delete(ctx: click.Context, pool_id: str, node_id: str, name: str) -> None:
    """Remove user NAME from node NODE_ID of pool POOL_ID."""
    _client(ctx).pools.delete_node_user(pool_id, node_id, name)
    click.echo(f"node user {name} deleted")


@click.command("login")
@click.argument("pool_id")
@click.argument("node_id")
@click.option("--user", "user", default=None, help="Log in as this node user (default: the only one, or USER).")
@click.pass_context
def node_login(ctx: click.Context, pool_id: str, node_id: str, user: str | None) -> None:
    """Print the ssh command that logs in to node NODE_ID of pool POOL_ID (see `shoal node users add`)."""
    client = _client(ctx)
    settings = client.pools.remote_login_settings(pool_id, node_id)
    if not settings.available:
        _fail(f"node {node_id}: no remote login: {settings.reason}")
    if user is None:
        users = client.pools.list_node_users(pool_id, node_id)
        user = users[0].name if len(users) == 1 else "USER"
    click.echo(settings.ssh_command(user))
