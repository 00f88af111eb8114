"""``shoal app``: the account's applications and their packages (create, upload, list, get, set-default,
delete; package list and delete), and the ``--app-package APP[:VERSION]`` option of pools and tasks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_common import _OUTPUT, _client, _emit, _emit_one
from .cli_watch import list_or_watch, watch_option

if TYPE_CHECKING:
    from .application_types import ApplicationPackageReference

__all__ = ["app", "app_package_option", "app_package_references"]

_APP_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda a: a.id),
    ("default", lambda a: a.default_version or None),
    ("versions", lambda a: ", ".join(a.versions) or None),
    ("allow updates", lambda a: a.allow_updates),
    ("display name", lambda a: a.display_name or None),
]
_PACKAGE_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("version", lambda p: p.version),
    ("state", lambda p: p.state),
    ("format", lambda p: p.format),
    ("size", lambda p: p.size),
    ("sha256", lambda p: p.sha256[:16] or None),
]

#: `--app-package APP[:VERSION]`, repeatable: for `pool create`, `task add` and job manager options.
app_package_option = click.option(
    "--app-package",
    "app_packages",
    multiple=True,
    metavar="APP[:VERSION]",
    help="An application package (`shoal app upload`) deployed on the node first, in the environment as "
    "$AZ_BATCH_APP_PACKAGE_<APP>_<VERSION> (and $AZ_BATCH_APP_PACKAGE_<APP> without a version: the "
    "default version). Repeatable.",
)


def app_package_references(values: Sequence[str]) -> list[ApplicationPackageReference]:
    """The references `--app-package` values name."""
    from .application_types import ApplicationPackageReference

    return [ApplicationPackageReference.parse(v) for v in values]


@click.group()
def app() -> None:
    """The account's applications: versioned packages (zip or tar archives, or directories) that pools
    (`shoal pool create --app-package APP`) and tasks (`shoal task add --app-package APP:VERSION`) deploy to
    their nodes, under `$AZ_BATCH_NODE_ROOT_DIR/applications/<app>#<version>`."""


@app.command("create")
@click.argument("app_id")
@click.option("--display-name", default="", help="A name for people (any text).")
@click.option(
    "--no-updates",
    is_flag=True,
    help="An active package may not be uploaded again or deleted (until `shoal app update --allow-updates`).",
)
@_OUTPUT
@click.pass_context
def create_cmd(ctx: click.Context, app_id: str, display_name: str, no_updates: bool, output: str) -> None:
    """Create application APP_ID (no packages yet: `shoal app upload`)."""
    a = _client(ctx).applications.create(app_id, display_name=display_name, allow_updates=not no_updates)
    _emit(output, [a], _APP_COLUMNS, "application created")


@app.command("upload")
@click.argument("app_id")
@click.argument("version")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--format", "fmt", type=click.Choice(["zip", "tar"]), default=None, help="Default: from the content.")
@click.option("--set-default", is_flag=True, help="Make it the application's default version.")
@_OUTPUT
@click.pass_context
def upload_cmd(
    ctx: click.Context, app_id: str, version: str, path: Path, fmt: str | None, set_default: bool, output: str
) -> None:
    """Upload PATH (a zip or tar archive, plain or compressed, or a directory, which is zipped) as
    VERSION of APP_ID, and activate it (the server checks the archive)."""
    p = _client(ctx).applications.upload(app_id, version, path, format=fmt, set_default=set_default)
    _emit(output, [p], _PACKAGE_COLUMNS, f"applications/{app_id}/versions/{p.version}")


@app.command("list")
@_OUTPUT
@watch_option
@click.pass_context
def list_cmd(ctx: click.Context, output: str, watch: bool) -> None:
    """The account's applications."""
    list_or_watch(output, watch, lambda: _client(ctx).applications.list(), _APP_COLUMNS, "applications")


@app.command("get")
@click.argument("app_id")
@_OUTPUT
@click.pass_context
def get_cmd(ctx: click.Context, app_id: str, output: str) -> None:
    """Show application APP_ID."""
    _emit_one(output, _client(ctx).applications.get(app_id), f"applications/{app_id}")


@app.command("set-default")
@click.argument("app_id")
@click.argument("version")
@click.pass_context
def set_default_cmd(ctx: click.Context, app_id: str, version: str) -> None:
    """Make VERSION (an active package) the default version of APP_ID."""
    a = _client(ctx).applications.set_default(app_id, version)
    click.echo(f"applications/{a.id}: default version {a.default_version}")


@app.command("update")
@click.argument("app_id")
@click.option("--display-name", default=None, help="A new name for people.")
@click.option("--allow-updates/--no-updates", default=None, help="Whether active packages may change.")
@click.pass_context
def update_cmd(ctx: click.Context, app_id: str, display_name: str | None, allow_updates: bool | None) -> None:
    """Change APP_ID's display name or whether its active packages may change."""
    a = _client(ctx).applications.update(app_id, display_name=display_name, allow_updates=allow_updates)
    click.echo(f"applications/{a.id}: updated")


@app.command("delete")
@click.argument("app_id")
@click.pass_context
def delete_cmd(ctx: click.Context, app_id: str) -> None:
    """Delete APP_ID with all its packages."""
    _client(ctx).applications.delete(app_id)
    click.echo(f"applications/{app_id}: deleted")


@app.group("package")
def package() -> None:
    """An application's packages (versions)."""


@package.command("list")
@click.argument("app_id")
@_OUTPUT
@watch_option
@click.pass_context
def package_list_cmd(ctx: click.Context, app_id: str, output: str, watch: bool) -> None:
    """APP_ID's packages, in the order they were created."""
    fetch = lambda: _client(ctx).applications.list_packages(app_id)  # noqa: E731
    list_or_watch(output, watch, fetch, _PACKAGE_COLUMNS, f"packages of application {app_id}")


@package.command("get")
@click.argument("app_id")
@click.argument("version")
@_OUTPUT
@click.pass_context
def package_get_cmd(ctx: click.Context, app_id: str, version: str, output: str) -> None:
    """Show package VERSION of application APP_ID."""
    p = _client(ctx).applications.get_package(app_id, version)
    _emit_one(output, p, f"applications/{app_id}/versions/{version}")


@package.command("delete")
@click.argument("app_id")
@click.argument("version")
@click.pass_context
def package_delete_cmd(ctx: click.Context, app_id: str, version: str) -> None:
    """Delete VERSION of APP_ID."""
    _client(ctx).applications.delete_package(app_id, version)
    click.echo(f"applications/{app_id}/versions/{version}: deleted")
