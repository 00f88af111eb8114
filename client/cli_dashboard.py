"""``shoal dashboard``: where the server's web dashboard is, and how to sign in to it."""

from __future__ import annotations

import webbrowser

import click

from .credentials import saved_server


def _text(data: dict[str, object], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


@click.command("dashboard")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in this machine's web browser too.")
@click.option("--show-key", is_flag=True, help="Print the account's saved key, to paste into the sign-in form.")
@click.pass_context
def dashboard_cmd(ctx: click.Context, open_browser: bool, show_key: bool) -> None:
    """Print the web dashboard's address (served by the server on its HTTP port) and how to sign in.

    The dashboard shows pools (a heat map of their nodes), jobs and their progress, tasks with their live
    output, nodes and their files, schedules, and the last hour of the server's metrics. It signs in with
    an account's key, as the API does.
    """
    root = ctx.find_root()
    address = root.params.get("address") if root.params else None
    saved = saved_server(address if isinstance(address, str) else None)
    url = _text(saved, "http_url")
    if url is None:
        where = f" for {address}" if address else ""
        raise click.ClickException(
            f"no dashboard address saved{where}: start the server with `shoal server` or `shoal up` on this "
            "machine (its HTTP port is on by default), or open https://HOST:PORT/ of its --http-listen"
        )
    account = _text(saved, "account") or "default"
    click.echo(f"{url}/")
    if saved.get("tls"):
        click.echo(f"Sign in as account {account!r} with its key; the certificate is of the cluster's own CA.")
    if show_key:
        click.echo(_text(saved, "key") or "(no key saved)")
    if open_browser:
        webbrowser.open(f"{url}/")
