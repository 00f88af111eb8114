"""``shoal node ...``: list, show, files (list, cat, stat, rm), logs, disable/enable scheduling; ``shoal pool counts``.

``pool nodes`` (in ``cli.py``) shares the node table of this file; ``pool counts`` is defined here and
added to the ``pool`` group there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import click

from .cli_common import _FILE_COLUMNS, _OUTPUT, _client, _emit, _emit_one
from .cli_params import DURATION, seconds_of
from .cli_render import Column
from .cli_watch import Changes, list_or_watch, watch_option
from .durations import parse_duration
from .node_types import DisableNodeSchedulingOption, NodeCounts, PoolNodeCounts

__all__ = ["NODE_STATE_CHOICE", "list_nodes", "node", "pool_counts"]

_DEALLOCATION_CHOICE = click.Choice(["requeue", "terminate", "taskcompletion", "retaineddata"])

# The priorities say which columns a narrow terminal keeps (lower first): a node's id, state and slots.
NODE_COLUMNS: list[Column] = [
    Column("id", lambda n: n.id, priority=0),
    Column("pool", lambda n: n.pool_id, priority=20),
    Column("state", lambda n: n.state, priority=1),
    Column("kind", lambda n: "dedicated" if n.is_dedicated else "low-priority", priority=6),
    Column("scheduling", lambda n: n.scheduling_state, priority=4),
    Column("address", lambda n: n.ip_address, priority=3),
    Column("slots", lambda n: f"{n.running_task_slots}/{n.task_slots}", priority=2),
    Column("run", lambda n: n.total_tasks_run, priority=7),
    Column("ok", lambda n: n.total_tasks_succeeded, priority=8),
    Column("cpu%", lambda n: f"{n.cpu_percent:.0f}", priority=9),
    Column(
        "start task",
        lambda n: (n.start_task_info.result or n.start_task_info.state) if n.start_task_info else None,
        priority=10,
    ),
    Column("heartbeat", lambda n: n.last_heartbeat_time, priority=12),
    Column("errors", lambda n: ",".join(e.code for e in n.errors) or None, priority=5),
    Column("containers", lambda n: n.container_engine or None, priority=11),
    Column("metrics", lambda n: n.metrics_address or None, priority=13, wide=True),
]

NODE_STATE_CHOICE = click.Choice(
    [
        "creating",
        "starting",
        "waitingforstarttask",
        "starttaskfailed",
        "idle",
        "running",
        "unknown",
        "leavingpool",
        "offline",
        "rebooting",
        "reimaging",
        "unusable",
        "preempted",
    ]
)

# Batch's spellings; "task_completion" is accepted too (the client takes any of its spellings).
_DISABLE_OPTION_CHOICE = click.Choice([o.value for o in DisableNodeSchedulingOption] + ["task_completion"])


def list_nodes(ctx: click.Context, pool_id: str, state: str | None, output: str, watch: bool = False) -> None:
    """Print the nodes of ``pool_id`` (those in ``state`` when given); with ``watch``, then each change
    (from the server's watch stream)."""
    client = _client(ctx)

    def stream() -> Iterator[Changes]:
        for changes in client.pools.watch_nodes(pool_id):
            yield Changes(
                items=changes.nodes,
                removed=changes.removed_node_ids,
                initial=changes.initial,
                initial_complete=changes.initial_complete,
            )

    list_or_watch(
        output,
        watch,
        lambda: client.pools.nodes(pool_id, state=state),
        NODE_COLUMNS,
        f"nodes of pool {pool_id}",
        key=lambda n: n.id,
        stream=stream,
        match=None if state is None else (lambda n: n.state == state),
    )


@click.group()
def node() -> None:
    """Compute nodes."""


@node.command("list")
@click.argument("pool_id")
@click.option("--state", type=NODE_STATE_CHOICE, default=None, help="Only nodes in this state.")
@_OUTPUT
@watch_option
@click.pass_context
def node_list(ctx: click.Context, pool_id: str, state: str | None, output: str, watch: bool) -> None:
    """List the nodes of pool POOL_ID."""
    list_nodes(ctx, pool_id, state, output, watch)


@node.command("get")
@click.argument("pool_id")
@click.argument("node_id")
@_OUTPUT
@click.pass_context
def node_get(ctx: click.Context, pool_id: str, node_id: str, output: str) -> None:
    """Show node NODE_ID of pool POOL_ID."""
    _emit_one(output, _client(ctx).pools.node(pool_id, node_id), f"pools/{pool_id}/nodes/{node_id}")


@node.command("files")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("path", required=False, default=None)
@click.option("--path", "path_option", default="", help="Directory relative to the node root (or give it as PATH).")
@click.option("-r", "--recursive", is_flag=True, help="List the whole tree under the directory.")
@_OUTPUT
@watch_option
@click.pass_context
def node_files(
    ctx: click.Context,
    pool_id: str,
    node_id: str,
    path: str | None,
    path_option: str,
    recursive: bool,
    output: str,
    watch: bool,
) -> None:
    """List files in the root directory of node NODE_ID of pool POOL_ID (or in its directory PATH)."""
    if path is not None and path_option and path != path_option:
        raise click.UsageError("give the directory once: as PATH or as --path")
    where = path if path is not None else path_option
    fetch = lambda: _client(ctx).pools.node_files(pool_id, node_id, path=where, recursive=recursive)  # noqa: E731
    list_or_watch(output, watch, fetch, _FILE_COLUMNS, f"files of node {pool_id}/{node_id}")


@node.command("cat")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("path")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing what is appended to the file until interrupted (Ctrl-C)."
)
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Start at this byte of the file."
)
@click.pass_context
def node_cat(ctx: click.Context, pool_id: str, node_id: str, path: str, follow: bool, offset: int) -> None:
    """Print file PATH (relative to the root directory of node NODE_ID of pool POOL_ID), e.g. agent.log."""
    out: BinaryIO = sys.stdout.buffer
    with _client(ctx).pools.read_node_file(pool_id, node_id, path, offset=offset, follow=follow) as chunks:
        try:
            for chunk in chunks:
                out.write(chunk)
                out.flush()
        except KeyboardInterrupt:
            # Ctrl-C ends a follow: the normal way out, not an error.
            return


@node.command("stat")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("path")
@_OUTPUT
@click.pass_context
def node_stat(ctx: click.Context, pool_id: str, node_id: str, path: str, output: str) -> None:
    """Show the size, modification time and mode of file or directory PATH on node NODE_ID of pool POOL_ID
    (a link as itself)."""
    f = _client(ctx).pools.node_file_properties(pool_id, node_id, path)
    _emit_one(output, f, f"{pool_id}/{node_id}:{path}")


@node.command("rm")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Delete a directory and everything under it.")
@click.pass_context
def node_rm(ctx: click.Context, pool_id: str, node_id: str, path: str, recursive: bool) -> None:
    """Delete file PATH (relative to the root directory of node NODE_ID of pool POOL_ID); a link goes, not its
    target."""
    _client(ctx).pools.delete_node_file(pool_id, node_id, path, recursive=recursive)
    click.echo(f"{pool_id}/{node_id}:{path}: deleted")


def parse_when(value: str, option: str, now: datetime | None = None) -> datetime:
    """A time given on the command line: ISO 8601 (``2026-03-01T12:00``, local time without a zone),
    ``now``, or a duration ago (``90s``, ``30m``, ``1h30m``, ``1d``, ``01:30:00``: any form of
    :func:`~shoal.client.durations.parse_duration`)."""
    now = now or datetime.now(UTC)
    text = value.strip().lower()
    if text == "now":
        return now
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            return now - parse_duration(text)
        except (ValueError, OverflowError):
            raise click.BadParameter(
                f"{value!r} is not a time: give ISO 8601 (2026-03-01T12:00), now, or a duration ago (30m, 2h, 1d)",
                param_hint=option,
            ) from None
    return when if when.tzinfo is not None else when.astimezone()


@node.command("logs")
@click.argument("pool_id")
@click.argument("node_id")
@click.option("--container", required=True, help="Storage container of the account to upload to (made if missing).")
@click.option(
    "--start",
    default="24h",
    show_default=True,
    help="Logs written from then: ISO 8601 time, or a duration ago (30m, 2h, 1d).",
)
@click.option("--end", default=None, help="Logs written until then (default: now); as --start.")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also download the uploaded files into this directory.",
)
@click.pass_context
def node_logs(
    ctx: click.Context,
    pool_id: str,
    node_id: str,
    container: str,
    start: str,
    end: str | None,
    download_dir: str | None,
) -> None:
    """Upload the agent logs of node NODE_ID of pool POOL_ID written in a time window to a storage container (Batch's
    "upload Batch service logs"); prints where they went."""
    start_time = parse_when(start, "--start")
    end_time = parse_when(end, "--end") if end is not None else None
    client = _client(ctx)
    up = client.pools.upload_node_logs(pool_id, node_id, container, start_time=start_time, end_time=end_time)
    click.echo(f"{up.number_of_files_uploaded} file(s) uploaded to {up.container}/{up.virtual_directory_name}/")
    if download_dir is not None and up.number_of_files_uploaded:
        for path in client.storage.download_prefix(up.container, up.virtual_directory_name + "/", download_dir):
            click.echo(str(path))


@node.command("disable")
@click.argument("pool_id")
@click.argument("node_id")
@click.option(
    "--option",
    "option",
    type=_DISABLE_OPTION_CHOICE,
    default=DisableNodeSchedulingOption.REQUEUE.value,
    show_default=True,
    help="What happens to the tasks running on the node: requeue (stopped and queued again, to run "
    "elsewhere), terminate (stopped; they complete as failed, not rerun) or taskcompletion (left to finish).",
)
@click.option(
    "--wait",
    "wait_timeout",
    type=DURATION,
    default=None,
    help="Wait up to this long until the node is offline (no task runs on it any more).",
)
@_OUTPUT
@click.pass_context
def node_disable(
    ctx: click.Context, pool_id: str, node_id: str, option: str, wait_timeout: timedelta | None, output: str
) -> None:
    """Stop scheduling tasks on node NODE_ID of pool POOL_ID (it is offline once no task runs there)."""
    client = _client(ctx)
    n = client.pools.disable_node_scheduling(pool_id, node_id, option=option)
    if wait_timeout is not None:
        n = client.pools.wait_node_state(pool_id, node_id, "offline", timeout=seconds_of(wait_timeout))
    _emit(output, [n], NODE_COLUMNS, "node scheduling disabled")


@node.command("remove")
@click.argument("pool_id")
@click.argument("node_ids", nargs=-1, required=True)
@click.option(
    "--deallocation",
    type=_DEALLOCATION_CHOICE,
    default="requeue",
    show_default=True,
    help="What happens to the tasks running on the nodes that leave (retaineddata waits for them, as "
    "taskcompletion: the files of a node that leaves go with it).",
)
@click.option(
    "--resize-timeout",
    type=DURATION,
    default=None,
    help="How long the removal may take (at least 5; default: the pool's).",
)
@click.pass_context
def node_remove(
    ctx: click.Context, pool_id: str, node_ids: tuple[str, ...], deallocation: str, resize_timeout: timedelta | None
) -> None:
    """Remove nodes NODE_IDS (1 to 100) from pool POOL_ID; its target drops by as many."""
    p = _client(ctx).pools.remove_nodes(
        pool_id, node_ids, node_deallocation_option=deallocation, resize_timeout=resize_timeout
    )
    click.echo(f"pool {p.id}: {len(node_ids)} node(s) leaving, target {p.target_nodes}")


def _restart_command(reimage: bool) -> None:
    """Define ``node reboot`` or ``node reimage`` (the same options)."""
    verb = "reimage" if reimage else "reboot"
    summary = (
        "Reimage node NODE_ID of pool POOL_ID: its root directory is wiped and set up as new (start task, "
        "certificates, job preparations run again)."
        if reimage
        else "Reboot node NODE_ID of pool POOL_ID: its agent restarts (volatile/ cleared, task directories "
        "kept) and its start task runs again."
    )

    @node.command(verb, help=summary)
    @click.argument("pool_id")
    @click.argument("node_id")
    @click.option(
        "--option",
        "option",
        type=_DEALLOCATION_CHOICE,
        default="requeue",
        show_default=True,
        help="What happens to the tasks running on the node first: requeue (stopped and queued again), "
        "terminate (stopped; they complete as failed), taskcompletion (the restart waits for them), "
        "retaineddata (it waits for them and for their directories' retention to pass).",
    )
    @click.option(
        "--wait",
        "wait_timeout",
        type=DURATION,
        default=None,
        help="Wait up to this long until the node is back (idle, offline, starttaskfailed or unusable).",
    )
    @_OUTPUT
    @click.pass_context
    def restart_cmd(
        ctx: click.Context, pool_id: str, node_id: str, option: str, wait_timeout: timedelta | None, output: str
    ) -> None:
        client = _client(ctx)
        restart = client.pools.reimage_node if reimage else client.pools.reboot_node
        n = restart(pool_id, node_id, option=option)
        if wait_timeout is not None:
            back = ("idle", "running", "offline", "starttaskfailed", "unusable")
            n = client.pools.wait_node_state(pool_id, node_id, back, timeout=seconds_of(wait_timeout))
        _emit(output, [n], NODE_COLUMNS, f"node {verb} requested" if wait_timeout is None else f"node back from {verb}")


_restart_command(reimage=False)
_restart_command(reimage=True)


@node.command("enable")
@click.argument("pool_id")
@click.argument("node_id")
@_OUTPUT
@click.pass_context
def node_enable(ctx: click.Context, pool_id: str, node_id: str, output: str) -> None:
    """Schedule tasks on node NODE_ID of pool POOL_ID again (offline → idle)."""
    n = _client(ctx).pools.enable_node_scheduling(pool_id, node_id)
    _emit(output, [n], NODE_COLUMNS, "node scheduling enabled")


def _state_count(get: Callable[[PoolNodeCounts], NodeCounts], state: str) -> Callable[[Any], Any]:
    """A column getter: a pool's count of nodes in ``state`` (a function, so that each column keeps its own)."""
    return lambda c: get(c).by_state().get(state, 0)


def _count_columns(counts: list[PoolNodeCounts]) -> list[tuple[str, Callable[[Any], Any]]]:
    """pool, a column per state that some pool has nodes in (Batch's order), total; low-priority
    columns only when some pool has such nodes."""
    columns: list[tuple[str, Callable[[Any], Any]]] = [("pool", lambda c: c.pool_id)]

    def add(kind: str, get: Callable[[PoolNodeCounts], NodeCounts]) -> None:
        states: list[str] = []
        for c in counts:
            states += [s for s in get(c).by_state() if s not in states]
        order = list(NODE_STATE_CHOICE.choices)
        for s in sorted(states, key=order.index):
            columns.append((f"{kind}{s}", _state_count(get, s)))
        columns.append((f"{kind}total", lambda c: get(c).total))

    add("", lambda c: c.dedicated)
    if any(c.low_priority.total for c in counts):
        add("low-priority ", lambda c: c.low_priority)
    return columns


@click.command("counts")
@_OUTPUT
@watch_option
@click.pass_context
def pool_counts(ctx: click.Context, output: str, watch: bool) -> None:
    """Per pool of the account, how many of its nodes are in each state."""
    client = _client(ctx)
    counts = client.pools.node_counts()
    # (Watched, the columns stay those of the first reading; a state that appears later is in -o json.)
    fetch = lambda: client.pools.node_counts() if watch else counts  # noqa: E731
    list_or_watch(output, watch, fetch, _count_columns(counts), "nodes by state")
