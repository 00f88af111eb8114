"""``shoal certificate``: the account's certificates (add, list, get, delete, cancel-delete)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_common import _OUTPUT, _client, _emit_one, _fail
from .cli_render import display_tree
from .cli_watch import list_or_watch, watch_option

if TYPE_CHECKING:
    from ._certificates import Certificate

__all__ = ["certificate"]

_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("thumbprint", lambda c: c.thumbprint),
    ("state", lambda c: c.state),
    ("subject", lambda c: c.subject),
    ("not after", lambda c: c.not_after),
    ("private key", lambda c: c.has_private_key),
    ("used by", lambda c: _used_by(c) or None),
]

_STATE_CHOICE = click.Choice(["active", "deleting", "deletefailed"])


def _used_by(c: Certificate) -> str:
    error = c.delete_certificate_error
    return ", ".join(f"{n} {v}" for n, v in error.values) if error else ""


def _show(output: str, c: Certificate, title: str) -> None:
    """One certificate: in a table, its DER data as a size (``--pem`` prints it); in JSON, base64."""
    if output not in ("table", "wide"):
        _emit_one(output, c, title, name=lambda c: c.thumbprint)
        return
    data = display_tree(c)
    data["public_data"] = f"{len(c.public_data)} bytes DER (--pem prints it)" if c.public_data else None
    _emit_one(output, data, title)


def _password(password: str | None, password_file: Path | None, password_stdin: bool) -> str:
    given = [g for g in (password is not None, password_file is not None, password_stdin) if g]
    if len(given) > 1:
        raise click.UsageError("give at most one of --password, --password-file and --password-stdin")
    if password_file is not None:
        # One trailing newline is the file's, not the password's (as `docker login --password-stdin`).
        return password_file.read_text().removesuffix("\n").removesuffix("\r")
    if password_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    return password or ""


@click.group()
def certificate() -> None:
    """The account's certificates: added once, installed on the nodes of pools that reference them
    (`shoal pool create --certificate THUMBPRINT`).

    A certificate is named by its SHA-1 thumbprint (any case; `sha1-` prefix and openssl's `:` allowed).
    Private keys are never shown.
    """


@certificate.command("add")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pfx", "cer"]),
    default=None,
    help="pfx: PKCS #12 with the private key; cer: a certificate alone, DER or PEM. Default: by FILE's "
    "suffix (.pfx/.p12; .cer/.crt/.pem/.der), else cer if FILE parses as a certificate, else pfx.",
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Read the PFX's password from this file (one trailing newline ignored).",
)
@click.option("--password-stdin", is_flag=True, help="Read the PFX's password from the first line of stdin.")
@click.option(
    "--password",
    default=None,
    metavar="PASSWORD",
    help="The PFX's password. Discouraged: it shows in process lists and shell history; prefer "
    "--password-file or --password-stdin.",
)
@click.option(
    "--thumbprint",
    default=None,
    metavar="THUMBPRINT",
    help="The certificate's expected SHA-1 thumbprint; the server refuses the file if it differs.",
)
@_OUTPUT
@click.pass_context
def add_cmd(
    ctx: click.Context,
    file: Path,
    fmt: str | None,
    password_file: Path | None,
    password_stdin: bool,
    password: str | None,
    thumbprint: str | None,
    output: str,
) -> None:
    """Add the certificate in FILE (a .pfx with its private key, or a .cer) to the account."""
    secret = _password(password, password_file, password_stdin)
    c = _client(ctx).certificates.add(file, password=secret, format=fmt, thumbprint=thumbprint or "")
    _show(output, c, f"certificate sha1-{c.thumbprint}")


@certificate.command("list")
@click.option("--state", type=_STATE_CHOICE, default=None, help="Only certificates in this state.")
@_OUTPUT
@watch_option
@click.pass_context
def list_cmd(ctx: click.Context, state: str | None, output: str, watch: bool) -> None:
    """The account's certificates."""
    list_or_watch(output, watch, lambda: _client(ctx).certificates.list(state=state), _COLUMNS, "certificates")


@certificate.command("get")
@click.argument("thumbprint")
@click.option("--pem", is_flag=True, help="Print only the certificate, as PEM (never a private key).")
@_OUTPUT
@click.pass_context
def get_cmd(ctx: click.Context, thumbprint: str, pem: bool, output: str) -> None:
    """Show the certificate whose SHA-1 thumbprint is THUMBPRINT."""
    c = _client(ctx).certificates.get(thumbprint)
    if pem:
        click.echo(c.pem(), nl=False)
        return
    _show(output, c, f"certificate sha1-{c.thumbprint}")


@certificate.command("delete")
@click.argument("thumbprint")
@click.pass_context
def delete_cmd(ctx: click.Context, thumbprint: str) -> None:
    """Delete certificate THUMBPRINT. Refused (state deletefailed, exit code 1) while a pool or node uses it:
    delete again once they stopped, or `shoal certificate cancel-delete`."""
    from ._certificates import CertificateState, normalize_thumbprint

    c = _client(ctx).certificates.delete(thumbprint)
    name = f"certificate sha1-{c.thumbprint or normalize_thumbprint(thumbprint)}"
    if c.state == CertificateState.DELETE_FAILED:
        error = c.delete_certificate_error
        why = f"{error.code}: {error.message}" if error else "in use"
        used = _used_by(c)
        _fail(f"error: {name}: deletion failed ({why})" + (f"; used by {used}" if used else ""))
    click.echo(f"{name}: deleted")


@certificate.command("cancel-delete")
@click.argument("thumbprint")
@click.pass_context
def cancel_delete_cmd(ctx: click.Context, thumbprint: str) -> None:
    """Make certificate THUMBPRINT, whose deletion failed, active again."""
    c = _client(ctx).certificates.cancel_deletion(thumbprint)
    click.echo(f"certificate sha1-{c.thumbprint}: {c.state.value}")
