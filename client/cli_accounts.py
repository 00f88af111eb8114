"""``shoal account``: accounts, their keys and quotas (needs the administrator's credential)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from .cli_common import _OUTPUT, _admin_client, _emit_one
from .cli_watch import list_or_watch, watch_option

__all__ = ["account"]

_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda a: a.id),
    ("pools", lambda a: f"{a.pools}/{a.quotas.max_pools or '-'}"),
    ("nodes", lambda a: f"{a.nodes}/{a.quotas.max_nodes or '-'}"),
    ("active jobs", lambda a: f"{a.active_jobs}/{a.quotas.max_active_jobs or '-'}"),
    ("created", lambda a: a.creation_time),
]

_QUOTA_OPTIONS = [
    click.option("--max-pools", type=click.IntRange(min=0), default=0, show_default=True, help="0: no limit."),
    click.option(
        "--max-nodes",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="The most target nodes over all the account's pools (0: no limit).",
    ),
    click.option("--max-active-jobs", type=click.IntRange(min=0), default=0, show_default=True, help="0: no limit."),
]


def _with_quota_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_QUOTA_OPTIONS):
        f = option(f)
    return f


@click.group()
def account() -> None:
    """Accounts (tenants), their keys and quotas: the administrator's commands.

    The administrator's key is in ~/.shoal/credentials.json after `shoal up` (or give --key or
    $SHOAL_ADMIN_KEY).
    """


@account.command("create")
@click.argument("account_id")
@_with_quota_options
@_OUTPUT
@click.pass_context
def create_cmd(
    ctx: click.Context, account_id: str, max_pools: int, max_nodes: int, max_active_jobs: int, output: str
) -> None:
    """Create ACCOUNT_ID with two new keys (`shoal account keys ACCOUNT_ID` shows them)."""
    from ._accounts import AccountQuotas

    made = _admin_client(ctx).accounts.create(account_id, AccountQuotas(max_pools, max_nodes, max_active_jobs))
    _emit_one(output, made, f"account {made.id}")


@account.command("list")
@_OUTPUT
@watch_option
@click.pass_context
def list_cmd(ctx: click.Context, output: str, watch: bool) -> None:
    """Every account, with what it holds and may hold."""
    list_or_watch(output, watch, lambda: _admin_client(ctx).accounts.list(), _COLUMNS, "accounts")


@account.command("get")
@click.argument("account_id")
@_OUTPUT
@click.pass_context
def get_cmd(ctx: click.Context, account_id: str, output: str) -> None:
    """Show account ACCOUNT_ID (never its keys)."""
    _emit_one(output, _admin_client(ctx).accounts.get(account_id), f"account {account_id}")


@account.command("set-quotas")
@click.argument("account_id")
@_with_quota_options
@_OUTPUT
@click.pass_context
def set_quotas_cmd(
    ctx: click.Context, account_id: str, max_pools: int, max_nodes: int, max_active_jobs: int, output: str
) -> None:
    """Replace ACCOUNT_ID's quotas (what it holds stays; only growth past them is refused)."""
    from ._accounts import AccountQuotas

    changed = _admin_client(ctx).accounts.set_quotas(account_id, AccountQuotas(max_pools, max_nodes, max_active_jobs))
    _emit_one(output, changed, f"account {account_id}")


@account.command("keys")
@click.argument("account_id")
@click.pass_context
def keys_cmd(ctx: click.Context, account_id: str) -> None:
    """Print ACCOUNT_ID's primary and secondary keys (as JSON: treat the output as a secret)."""
    keys = _admin_client(ctx).accounts.keys(account_id)
    click.echo(json.dumps({"account": keys.account, "primary": keys.primary, "secondary": keys.secondary}, indent=2))


@account.command("regenerate-key")
@click.argument("account_id")
@click.argument("which", type=click.Choice(["primary", "secondary"]))
@click.pass_context
def regenerate_cmd(ctx: click.Context, account_id: str, which: str) -> None:
    """Replace ACCOUNT_ID's WHICH key, primary or secondary (the other keeps working), and print both."""
    keys = _admin_client(ctx).accounts.regenerate_key(account_id, which)
    click.echo(json.dumps({"account": keys.account, "primary": keys.primary, "secondary": keys.secondary}, indent=2))


@account.command("delete")
@click.argument("account_id")
@click.pass_context
def delete_cmd(ctx: click.Context, account_id: str) -> None:
    """Delete ACCOUNT_ID (refused while it holds pools, jobs or storage containers)."""
    _admin_client(ctx).accounts.delete(account_id)
    click.echo(f"account {account_id}: deleted")
