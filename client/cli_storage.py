"""``shoal storage ...``: containers and blobs (create, upload, download, list, delete).

Uploads and downloads draw a progress bar on standard error when it is a terminal, and print nothing
more than their summary line otherwise. Deleting a container that still holds blobs asks first on a
terminal, and needs ``--force`` elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli_common import _OUTPUT, _client, _fail
from .cli_watch import list_or_watch, watch_option

if TYPE_CHECKING:
    from ._storage import Progress

__all__ = ["storage"]


@click.group()
def storage() -> None:
    """Storage containers and blobs."""


@contextmanager
def _progress(verb: str, total: int) -> Iterator[Progress]:
    """A byte counter for ``on_progress=``: a rich progress bar on a terminal (stderr), nothing elsewhere."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn(verb),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        bar = progress.add_task(verb, total=total)
        yield lambda n: progress.advance(bar, n)


@storage.command("create")
@click.argument("container")
@click.option("--fail-if-exists", is_flag=True, help="Exit with code 1 if CONTAINER exists already.")
@click.pass_context
def storage_create(ctx: click.Context, container: str, fail_if_exists: bool) -> None:
    """Create container CONTAINER."""
    c = _client(ctx).storage.create_container(container, exist_ok=not fail_if_exists)
    click.echo(f"container {c.id or container}")


@storage.command("upload")
@click.argument("container")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--prefix", default="", help="Prefix for blob names (directories keep relative paths below it).")
@click.option("--name", "blob_name", default=None, help="Blob name (one file only).")
@click.pass_context
def storage_upload(
    ctx: click.Context, container: str, paths: tuple[Path, ...], prefix: str, blob_name: str | None
) -> None:
    """Upload PATHS (files, or directories with everything under them) to CONTAINER, made if missing."""
    client = _client(ctx)
    if blob_name is not None and (len(paths) != 1 or paths[0].is_dir()):
        raise click.UsageError("--name needs exactly one file")
    total = sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    # Made first, so that no upload starts over (and counts its bytes twice) on finding it missing.
    client.storage.create_container(container, exist_ok=True)
    count = 0
    size = 0
    with _progress("uploading", total) as advance:
        for p in paths:
            if p.is_dir():
                blobs = client.storage.upload_directory(
                    container, p, prefix=prefix, create_container=False, on_progress=advance
                )
            else:
                name = blob_name or prefix + p.name
                blobs = [client.storage.upload_file(container, p, name, create_container=False, on_progress=advance)]
            count += len(blobs)
            size += sum(b.size for b in blobs)
    click.echo(f"uploaded {count} blob(s), {size} bytes, to {container}")


@storage.command("download")
@click.argument("container")
@click.argument("name_or_prefix", default="")
@click.option(
    "-d",
    "--dest",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The directory to write into, made (with its parents) if missing; a blob a/b.txt goes to DEST/b.txt, or "
    "with --prefix to DEST/a/b.txt.",
)
@click.option(
    "--to",
    "to_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the one blob NAME_OR_PREFIX to this file instead (its directory made if missing).",
)
@click.option("--prefix", "as_prefix", is_flag=True, help="Download every blob starting with NAME_OR_PREFIX.")
@click.pass_context
def storage_download(
    ctx: click.Context, container: str, name_or_prefix: str, dest: Path, to_file: Path | None, as_prefix: bool
) -> None:
    """Download blob NAME_OR_PREFIX of CONTAINER (with --prefix, or no name, every blob whose name starts with
    it, keeping their paths)."""
    client = _client(ctx)
    if as_prefix or not name_or_prefix:
        if to_file is not None:
            raise click.UsageError("--to names the file of one blob: not with --prefix")
        blobs = list(client.storage.list_blobs(container, prefix=name_or_prefix))
        with _progress("downloading", sum(b.size for b in blobs)) as advance:
            paths = client.storage.download_prefix(container, name_or_prefix, dest, blobs=blobs, on_progress=advance)
        click.echo(f"downloaded {len(paths)} blob(s) to {dest}")
        return
    target = to_file if to_file is not None else dest / Path(name_or_prefix).name
    size = next(
        (b.size for b in client.storage.list_blobs(container, prefix=name_or_prefix) if b.name == name_or_prefix), 0
    )
    with _progress("downloading", size) as advance:
        client.storage.download_blob(container, name_or_prefix, target, on_progress=advance)
    click.echo(f"downloaded {name_or_prefix} to {target}")


@storage.command("list")
@click.argument("container", required=False)
@click.option("--prefix", default="", help="Only blobs whose names start with this.")
@_OUTPUT
@watch_option
@click.pass_context
def storage_list(ctx: click.Context, container: str | None, prefix: str, output: str, watch: bool) -> None:
    """List containers, or the blobs of CONTAINER."""
    client = _client(ctx)
    if container is None:
        list_or_watch(
            output,
            watch,
            client.storage.list_containers,
            [("id", lambda c: c.id), ("created", lambda c: c.creation_time)],
            "containers",
        )
        return
    list_or_watch(
        output,
        watch,
        lambda: client.storage.list_blobs(container, prefix=prefix),
        [
            ("name", lambda b: b.name),
            ("size", lambda b: b.size),
            ("sha256", lambda b: b.sha256[:12] or None),
            ("modified", lambda b: b.modify_time),
        ],
        f"blobs of {container}",
    )


@storage.command("delete")
@click.argument("container")
@click.argument("blob_names", nargs=-1)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Delete the container even if it holds blobs, without asking (off a terminal it is needed then).",
)
@click.pass_context
def storage_delete(ctx: click.Context, container: str, blob_names: tuple[str, ...], force: bool) -> None:
    """Delete blobs BLOB_NAMES of CONTAINER, or with no BLOB_NAMES the container itself with its blobs.

    A container that holds blobs is deleted only with --force, or when you answer yes on a terminal."""
    client = _client(ctx)
    if blob_names:
        for name in blob_names:
            client.storage.delete_blob(container, name)
        click.echo(f"deleted {len(blob_names)} blob(s) from {container}")
        return
    if not force:
        held = sum(1 for _ in client.storage.list_blobs(container))
        if held:
            what = f"container {container} holds {held} blob(s)"
            if not sys.stdin.isatty():
                _fail(f"error: {what}: give --force to delete it with them")
            if not click.confirm(f"{what}: delete it with them?", default=False, err=True):
                _fail(f"container {container}: not deleted")
    client.storage.delete_container(container)
    click.echo(f"container {container}: deleted")
