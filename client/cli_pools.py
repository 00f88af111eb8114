"""``shoal pool update``, and the start task options it shares with ``shoal pool create`` (in ``cli.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from .cli_applications import app_package_references
from .cli_common import _OUTPUT, _client, _emit, _parse_env
from .cli_params import DURATION

__all__ = ["pool_update", "start_task_from_options", "start_task_options"]

F = TypeVar("F", bound=Callable[..., Any])


def start_task_options(f: F) -> F:
    """The ``--start-task`` options of ``pool create`` and ``pool update``."""
    options = [
        click.option("--start-task", "start_task", default=None, help="Command line every node runs when it joins."),
        click.option("--start-task-env", multiple=True, metavar="NAME=VALUE", help="Start task environment variable."),
        click.option(
            "--start-task-retries",
            type=int,
            default=0,
            show_default=True,
            help="Runs of the start task again after it failed (-1 unlimited).",
        ),
        click.option(
            "--no-wait-for-success", is_flag=True, help="Schedule tasks even before the start task succeeded."
        ),
        click.option(
            "--start-task-run-as",
            default=None,
            metavar="pool|user:NAME",
            help="Who the start task runs as (default: the pool's auto user).",
        ),
        click.option(
            "--start-task-elevation",
            type=click.Choice(["nonadmin", "admin"]),
            default=None,
            help="Of the start task's auto user (admin: root, to install software).",
        ),
        click.option(
            "--start-task-image",
            default=None,
            metavar="IMAGE",
            help="Run the start task in a container of IMAGE (the pool must be a container pool).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def start_task_from_options(
    start_task: str | None,
    start_task_env: tuple[str, ...],
    start_task_retries: int,
    no_wait_for_success: bool,
    start_task_run_as: str | None,
    start_task_elevation: str | None,
    start_task_image: str | None = None,
) -> Any:
    """The :class:`StartTaskSpec` the ``--start-task`` options describe, or None without ``--start-task``."""
    from .container_types import TaskContainerSettings
    from .identity_types import UserIdentity
    from .types import StartTaskSpec

    if not start_task:
        if start_task_run_as or start_task_elevation or start_task_image:
            raise click.UsageError(
                "--start-task-run-as, --start-task-elevation and --start-task-image need --start-task"
            )
        return None
    identity = None
    if start_task_run_as or start_task_elevation:
        identity = UserIdentity.parse(start_task_run_as or "pool", start_task_elevation)
    return StartTaskSpec(
        command_line=start_task,
        environment=_parse_env(start_task_env, "--start-task-env"),
        max_task_retry_count=start_task_retries,
        wait_for_success=not no_wait_for_success,
        user_identity=identity,
        container_settings=TaskContainerSettings(image_name=start_task_image) if start_task_image else None,
    )


@click.command("update")
@click.argument("pool_id")
@click.option("--display-name", default=None, help="A new display name.")
@click.option(
    "--metadata", multiple=True, metavar="NAME=VALUE", help="Replaces the pool's metadata with these (repeatable)."
)
@click.option("--clear-metadata", is_flag=True, help="Remove the pool's metadata.")
@start_task_options
@click.option("--remove-start-task", is_flag=True, help="Remove the pool's start task.")
@click.option(
    "--certificate",
    "certificates",
    multiple=True,
    metavar="THUMBPRINT[:VIS[,VIS...]]",
    help="Replaces the pool's certificate references with these (repeatable; as `pool create`).",
)
@click.option("--clear-certificates", is_flag=True, help="Remove the pool's certificate references.")
@click.option(
    "--app-package",
    "app_packages",
    multiple=True,
    metavar="APP[:VERSION]",
    help="Replaces the pool's application packages with these (repeatable): every node deploys them now.",
)
@click.option("--clear-app-packages", is_flag=True, help="Remove the pool's application packages.")
@click.option("--target", "--nodes", "target_nodes", type=int, default=None, help="A new target node count.")
@click.option("--resize-timeout", type=DURATION, default=None, help="How long a resize may take (at least 5s).")
@click.option(
    "--fill-type", type=click.Choice(["spread", "pack"]), default=None, help="How the next tasks go to nodes."
)
@click.option("--etag", default=None, help="Only if the pool is still as read with this etag.")
@_OUTPUT
@click.pass_context
def pool_update(
    ctx: click.Context,
    pool_id: str,
    display_name: str | None,
    metadata: tuple[str, ...],
    clear_metadata: bool,
    start_task: str | None,
    start_task_env: tuple[str, ...],
    start_task_retries: int,
    no_wait_for_success: bool,
    start_task_run_as: str | None,
    start_task_elevation: str | None,
    start_task_image: str | None,
    remove_start_task: bool,
    certificates: tuple[str, ...],
    clear_certificates: bool,
    app_packages: tuple[str, ...],
    clear_app_packages: bool,
    target_nodes: int | None,
    resize_timeout: timedelta | None,
    fill_type: str | None,
    etag: str | None,
    output: str,
) -> None:
    """Change pool POOL_ID: only the fields given. A new start task or new certificates reach nodes when
    their agent next joins (new nodes, reboots, reimages), not the nodes running now; a new target resizes
    the pool (only while its allocation is steady)."""
    from ._certificates import CertificateReference

    for given, clear, what in (
        (metadata, clear_metadata, "--metadata and --clear-metadata"),
        (start_task, remove_start_task, "--start-task and --remove-start-task"),
        (certificates, clear_certificates, "--certificate and --clear-certificates"),
        (app_packages, clear_app_packages, "--app-package and --clear-app-packages"),
    ):
        if given and clear:
            raise click.UsageError(f"{what} exclude each other")
    st = start_task_from_options(
        start_task,
        start_task_env,
        start_task_retries,
        no_wait_for_success,
        start_task_run_as,
        start_task_elevation,
        start_task_image,
    )
    new_metadata = _parse_env(metadata, "--metadata") if metadata else ({} if clear_metadata else None)
    refs = [CertificateReference.parse(c) for c in certificates] if certificates else None
    p = _client(ctx).pools.update(
        pool_id,
        display_name=display_name,
        metadata=new_metadata,
        start_task=st,
        remove_start_task=remove_start_task,
        certificates=refs if refs is not None else ([] if clear_certificates else None),
        application_packages=app_package_references(app_packages)
        if app_packages
        else ([] if clear_app_packages else None),
        target_nodes=target_nodes,
        resize_timeout=resize_timeout,
        node_fill_type=fill_type,
        etag=etag,
    )
    from .cli import _POOL_COLUMNS

    _emit(output, [p], _POOL_COLUMNS, "pool updated")
