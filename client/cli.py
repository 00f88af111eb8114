"""The ``shoal`` command line: ``shoal <resource> <verb>``.

Talks to the server through :class:`shoal.client.Client`; ``shoal server``,
``shoal up`` and ``shoal agent`` start processes in the foreground.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import click

from shoal.pool_providers import DEFAULT_POOL_PROVIDER, POOL_PROVIDERS

from .errors import InvalidArgument, ShoalError

if TYPE_CHECKING:
    from rich.console import Console

    from ._client import Client
    from .types import TaskSpec

__all__ = ["cli", "main"]

_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


# --------------------------------------------------------------------------- plumbing


class _ShoalGroup(click.Group):
    """A group that turns client errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShoalError as e:
            line = _error_line(e)
            if e.code.name == "UNAVAILABLE" and not e.reason:
                state = ctx.find_object(_State)
                if state is not None and state._client is not None:
                    line += f" (is a Shoal server running at {state._client.address}?)"
            _fail(line)
        except OSError as e:
            _fail(f"error: {e}")
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None


def _error_line(e: ShoalError) -> str:
    code = e.code.name if e.code is not None else "UNKNOWN"
    parts = [f"error: {code}"]
    if e.reason:
        parts.append(e.reason)
    line = " ".join(parts) + f": {e.message}"
    if e.field_violations:
        fields = "; ".join(f"{f}: {d}" for f, d in e.field_violations)
        line += f" [{fields}]"
    return line.replace("\n", " ")


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise click.exceptions.Exit(1)


class _State:
    def __init__(self, address: str | None):
        self.address = address
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from ._client import Client

            self._client = Client.connect(self.address)
        return self._client


def _client(ctx: click.Context) -> Client:
    state = ctx.find_object(_State)
    assert state is not None
    return state.client


def _console() -> Console:
    from rich.console import Console

    # Wide when piped so that tables do not wrap into unreadable columns.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _plain(value: Any) -> Any:
    """A JSON-friendly view of a result dataclass (without its raw proto)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "proto"}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _emit(output: str, items: Iterable[Any], columns: Sequence[tuple[str, Callable[[Any], Any]]], title: str) -> None:
    """Print ``items`` as a rich table, or as JSON (a list)."""
    if output == "json":
        click.echo(json.dumps([_plain(i) for i in items], indent=2))
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for name, _ in columns:
        table.add_column(name, overflow="fold")
    for item in items:
        table.add_row(*[_fmt(getter(item)) for _, getter in columns])
    _console().print(table)


def _emit_one(output: str, item: Any, title: str) -> None:
    """Print one result as a two-column table, or as a JSON object."""
    data = _plain(item)
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        if value in (None, "", [], {}):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value)
        table.add_row(key, str(value))
    _console().print(table)


def _parse_env(values: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--env")
        name, value = item.split("=", 1)
        env[name] = value
    return env


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


# --------------------------------------------------------------------------- root


@click.group(cls=_ShoalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--address",
    envvar="SHOAL_ADDRESS",
    default=None,
    metavar="HOST:PORT",
    help="Server address (default: $SHOAL_ADDRESS, $SHOAL_HOME/server.json, 127.0.0.1:7420).",
)
@click.version_option(package_name="shoal", prog_name="shoal")
@click.pass_context
def cli(ctx: click.Context, address: str | None) -> None:
    """Shoal: a self-hosted batch and HPC cluster manager."""
    ctx.obj = _State(address)


# --------------------------------------------------------------------------- pools and nodes

_POOL_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda p: p.id),
    ("state", lambda p: p.state),
    ("allocation", lambda p: p.allocation_state),
    ("nodes", lambda p: f"{p.current_nodes}/{p.target_nodes}"),
    ("slots/node", lambda p: p.task_slots_per_node),
    ("provider", lambda p: p.provider),
    ("start task", lambda p: p.start_task.command_line if p.start_task else None),
    ("created", lambda p: p.creation_time),
]

_NODE_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda n: n.id),
    ("pool", lambda n: n.pool_id),
    ("state", lambda n: n.state),
    ("address", lambda n: n.ip_address),
    ("slots", lambda n: f"{n.running_task_slots}/{n.task_slots}"),
    ("run", lambda n: n.total_tasks_run),
    ("ok", lambda n: n.total_tasks_succeeded),
    ("cpu%", lambda n: f"{n.cpu_percent:.0f}"),
    ("start task", lambda n: (n.start_task_info.result or n.start_task_info.state) if n.start_task_info else None),
    ("heartbeat", lambda n: n.last_heartbeat_time),
]


@cli.group()
def pool() -> None:
    """Pools of compute nodes."""


@pool.command("create")
@click.argument("pool_id")
@click.option("--nodes", "target_nodes", type=int, default=1, show_default=True, help="Target node count.")
@click.option("--slots", "task_slots_per_node", type=int, default=1, show_default=True, help="Task slots per node.")
@click.option("--start-task", "start_task", default=None, help="Command line every node runs when it joins.")
@click.option("--start-task-env", multiple=True, metavar="NAME=VALUE", help="Start task environment variable.")
@click.option("--start-task-retries", type=int, default=0, show_default=True)
@click.option("--no-wait-for-success", is_flag=True, help="Schedule tasks even before the start task succeeded.")
@click.option("--inter-node", is_flag=True, help="Enable inter-node communication (multi-instance tasks).")
@click.option("--display-name", default="")
@click.option(
    "--provider",
    type=click.Choice(POOL_PROVIDERS),
    default=None,
    help=f"Who makes the nodes: {DEFAULT_POOL_PROVIDER} (default: agents the server starts on its machine) "
    "or join (agents started elsewhere with `shoal agent --pool`).",
)
@click.option("--wait", "wait_timeout", type=float, default=None, metavar="SECONDS", help="Wait for idle nodes.")
@_OUTPUT
@click.pass_context
def pool_create(
    ctx: click.Context,
    pool_id: str,
    target_nodes: int,
    task_slots_per_node: int,
    start_task: str | None,
    start_task_env: tuple[str, ...],
    start_task_retries: int,
    no_wait_for_success: bool,
    inter_node: bool,
    display_name: str,
    provider: str | None,
    wait_timeout: float | None,
    output: str,
) -> None:
    """Create pool POOL_ID."""
    from .types import StartTaskSpec

    st = None
    if start_task:
        st = StartTaskSpec(
            command_line=start_task,
            environment=_parse_env(start_task_env),
            max_task_retry_count=start_task_retries,
            wait_for_success=not no_wait_for_success,
        )
    client = _client(ctx)
    p = client.pools.create(
        id=pool_id,
        target_nodes=target_nodes,
        task_slots_per_node=task_slots_per_node,
        start_task=st,
        enable_inter_node_communication=inter_node,
        display_name=display_name,
        provider=provider or "",
    )
    if wait_timeout is not None:
        client.pools.wait_nodes_idle(pool_id, timeout=wait_timeout)
        p = client.pools.get(pool_id)
    _emit(output, [p], _POOL_COLUMNS, "pool created")


@pool.command("get")
@click.argument("pool_id")
@_OUTPUT
@click.pass_context
def pool_get(ctx: click.Context, pool_id: str, output: str) -> None:
    """Show pool POOL_ID."""
    _emit_one(output, _client(ctx).pools.get(pool_id), f"pools/{pool_id}")


@pool.command("list")
@_OUTPUT
@click.pass_context
def pool_list(ctx: click.Context, output: str) -> None:
    """List pools."""
    _emit(output, list(_client(ctx).pools.list()), _POOL_COLUMNS, "pools")


@pool.command("resize")
@click.argument("pool_id")
@click.option("--nodes", "target_nodes", type=int, required=True, help="New target node count.")
@click.option(
    "--deallocation",
    type=click.Choice(["requeue", "terminate", "taskcompletion"]),
    default="requeue",
    show_default=True,
    help="What happens to running tasks on nodes that leave.",
)
@click.option("--wait", "wait_timeout", type=float, default=None, metavar="SECONDS", help="Wait until steady.")
@_OUTPUT
@click.pass_context
def pool_resize(
    ctx: click.Context, pool_id: str, target_nodes: int, deallocation: str, wait_timeout: float | None, output: str
) -> None:
    """Resize pool POOL_ID (only while its allocation is steady; --wait before resizing it again)."""
    client = _client(ctx)
    p = client.pools.resize(pool_id, target_nodes=target_nodes, node_deallocation_option=deallocation)
    if wait_timeout is not None:
        p = client.pools.wait_steady(pool_id, timeout=wait_timeout)
    _emit(output, [p], _POOL_COLUMNS, "pool resized")


@pool.command("delete")
@click.argument("pool_id")
@click.pass_context
def pool_delete(ctx: click.Context, pool_id: str) -> None:
    """Delete pool POOL_ID (its nodes leave)."""
    p = _client(ctx).pools.delete(pool_id)
    click.echo(f"pool {p.id or pool_id}: {_fmt(p.state) if p.id else 'deleted'}")


def _list_nodes(ctx: click.Context, pool_id: str, state: str | None, output: str) -> None:
    nodes = list(_client(ctx).pools.nodes(pool_id, state=state))
    _emit(output, nodes, _NODE_COLUMNS, f"nodes of pool {pool_id}")


_NODE_STATE_CHOICE = click.Choice(
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
    ]
)


@pool.command("nodes")
@click.argument("pool_id")
@click.option("--state", type=_NODE_STATE_CHOICE, default=None, help="Only nodes in this state.")
@_OUTPUT
@click.pass_context
def pool_nodes(ctx: click.Context, pool_id: str, state: str | None, output: str) -> None:
    """List the nodes of pool POOL_ID."""
    _list_nodes(ctx, pool_id, state, output)


@cli.group()
def node() -> None:
    """Compute nodes."""


@node.command("list")
@click.argument("pool_id")
@click.option("--state", type=_NODE_STATE_CHOICE, default=None, help="Only nodes in this state.")
@_OUTPUT
@click.pass_context
def node_list(ctx: click.Context, pool_id: str, state: str | None, output: str) -> None:
    """List the nodes of pool POOL_ID."""
    _list_nodes(ctx, pool_id, state, output)


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
@click.option("--path", default="", help="Directory relative to the node root.")
@click.option("-r", "--recursive", is_flag=True)
@_OUTPUT
@click.pass_context
def node_files(ctx: click.Context, pool_id: str, node_id: str, path: str, recursive: bool, output: str) -> None:
    """List files in the root directory of node NODE_ID."""
    files = _client(ctx).pools.node_files(pool_id, node_id, path=path, recursive=recursive)
    _emit(output, files, _FILE_COLUMNS, f"files of node {pool_id}/{node_id}")


# --------------------------------------------------------------------------- jobs

_JOB_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda j: j.id),
    ("pool", lambda j: j.pool_id),
    ("state", lambda j: j.state),
    ("priority", lambda j: j.priority),
    ("retries", lambda j: j.max_task_retry_count),
    ("on complete", lambda j: j.on_all_tasks_complete),
    ("created", lambda j: j.creation_time),
    ("ended", lambda j: j.terminate_reason or None),
]


@cli.group()
def job() -> None:
    """Jobs."""


@job.command("create")
@click.argument("job_id")
@click.option("--pool", "pool_id", required=True, help="Pool the job's tasks run on.")
@click.option("--priority", type=int, default=0, show_default=True, help="-1000..1000; higher runs first.")
@click.option("--max-retries", "max_task_retry_count", type=int, default=0, show_default=True)
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="Common environment variable (repeatable).")
@click.option(
    "--on-all-tasks-complete",
    type=click.Choice(["noaction", "terminatejob"]),
    default="noaction",
    show_default=True,
)
@click.option("--max-wall-clock", type=float, default=None, metavar="SECONDS")
@click.option("--display-name", default="")
@_OUTPUT
@click.pass_context
def job_create(
    ctx: click.Context,
    job_id: str,
    pool_id: str,
    priority: int,
    max_task_retry_count: int,
    env: tuple[str, ...],
    on_all_tasks_complete: str,
    max_wall_clock: float | None,
    display_name: str,
    output: str,
) -> None:
    """Create job JOB_ID."""
    j = _client(ctx).jobs.create(
        id=job_id,
        pool_id=pool_id,
        priority=priority,
        max_task_retry_count=max_task_retry_count,
        common_environment=_parse_env(env),
        on_all_tasks_complete=on_all_tasks_complete,
        max_wall_clock_time=_seconds(max_wall_clock),
        display_name=display_name,
    )
    _emit(output, [j], _JOB_COLUMNS, "job created")


@job.command("get")
@click.argument("job_id")
@_OUTPUT
@click.pass_context
def job_get(ctx: click.Context, job_id: str, output: str) -> None:
    """Show job JOB_ID."""
    _emit_one(output, _client(ctx).jobs.get(job_id), f"jobs/{job_id}")


@job.command("list")
@click.option("--state", type=click.Choice(["active", "terminating", "completed", "deleting"]), default=None)
@_OUTPUT
@click.pass_context
def job_list(ctx: click.Context, state: str | None, output: str) -> None:
    """List jobs."""
    _emit(output, list(_client(ctx).jobs.list(state=state)), _JOB_COLUMNS, "jobs")


@job.command("terminate")
@click.argument("job_id")
@click.option("--reason", default="", help="Terminate reason (default UserTerminate).")
@click.pass_context
def job_terminate(ctx: click.Context, job_id: str, reason: str) -> None:
    """Terminate job JOB_ID: its running tasks end and it completes."""
    j = _client(ctx).jobs.terminate(job_id, reason=reason)
    click.echo(f"job {job_id}: {_fmt(j.state)}")


@job.command("delete")
@click.argument("job_id")
@click.pass_context
def job_delete(ctx: click.Context, job_id: str) -> None:
    """Delete job JOB_ID with its tasks."""
    j = _client(ctx).jobs.delete(job_id)
    click.echo(f"job {job_id}: {_fmt(j.state) if j.id else 'deleted'}")


_COUNT_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("active", lambda c: c.active),
    ("running", lambda c: c.running),
    ("completed", lambda c: c.completed),
    ("succeeded", lambda c: c.succeeded),
    ("failed", lambda c: c.failed),
]


@job.command("counts")
@click.argument("job_id")
@_OUTPUT
@click.pass_context
def job_counts(ctx: click.Context, job_id: str, output: str) -> None:
    """Task counts of job JOB_ID."""
    counts = _client(ctx).jobs.task_counts(job_id)
    if output == "json":
        click.echo(json.dumps(_plain(counts), indent=2))
    else:
        _emit(output, [counts], _COUNT_COLUMNS, f"tasks of job {job_id}")


def _wait_with_progress(
    ctx: click.Context,
    job_id: str,
    task_ids: Sequence[str] | None,
    timeout: float | None,
    quiet: bool,
    check: bool = False,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    client = _client(ctx)
    total: int | None = len(task_ids) if task_ids else None
    if total is None:
        total = client.jobs.task_counts(job_id).total
    succeeded = failed = 0
    watch = client.tasks.wait(job_id, task_ids=task_ids or None, timeout=timeout)
    console = _console()
    with (
        watch,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=False,
        ) as progress,
    ):
        bar = progress.add_task(f"job {job_id}", total=total or None, ok=0, failed=0)
        for task in watch:
            if task.result == "failure":
                failed += 1
            else:
                succeeded += 1
            if watch.total is not None and watch.total != total:
                total = watch.total
                progress.update(bar, total=total)
            progress.update(bar, completed=succeeded + failed, ok=succeeded, failed=failed)
        if watch.total is not None:
            progress.update(bar, total=watch.total, completed=succeeded + failed)
    click.echo(f"{succeeded + failed} task(s) completed: {succeeded} succeeded, {failed} failed")
    if check and failed:
        raise click.exceptions.Exit(1)


@job.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=float, default=None, metavar="SECONDS")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--check", is_flag=True, help="Exit with code 1 when any task failed.")
@click.pass_context
def job_wait(ctx: click.Context, job_id: str, timeout: float | None, quiet: bool, check: bool) -> None:
    """Wait until every task of job JOB_ID completed."""
    _wait_with_progress(ctx, job_id, None, timeout, quiet, check)


# --------------------------------------------------------------------------- tasks

_TASK_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda t: t.id),
    ("state", lambda t: t.state),
    ("result", lambda t: t.result),
    ("exit", lambda t: t.exit_code),
    ("node", lambda t: t.node_id or None),
    ("retries", lambda t: t.retry_count),
    ("requeues", lambda t: t.requeue_count),
    ("failure", lambda t: t.failure.code if t.failure else None),
    ("command", lambda t: t.command_line),
]


@cli.group()
def task() -> None:
    """Tasks of jobs."""


def _resource_file(value: str) -> Any:
    from .types import ResourceFileSpec

    if value.startswith(("http://", "https://")):
        url, sep, path = value.rpartition("=")
        if not sep:
            raise click.BadParameter("URL resource files are URL=FILE_PATH", param_hint="--resource")
        return ResourceFileSpec.from_url(url, file_path=path)
    parts = value.split(":")
    container = parts[0]
    prefix = parts[1] if len(parts) > 1 else ""
    path = parts[2] if len(parts) > 2 else ""
    return ResourceFileSpec.from_container(container, blob_prefix=prefix, file_path=path)


def _output_file(value: str) -> Any:
    from .types import OutputFileSpec

    parts = value.split(":")
    if len(parts) < 2:
        raise click.BadParameter("output files are PATTERN:CONTAINER[:PATH[:CONDITION]]", param_hint="--output-file")
    return OutputFileSpec(
        file_pattern=parts[0],
        container=parts[1],
        path=parts[2] if len(parts) > 2 else "",
        upload_condition=parts[3] if len(parts) > 3 else "success",
    )


@task.command("add")
@click.argument("job_id")
@click.argument("task_id")
@click.argument("command_line")
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="Environment variable (repeatable).")
@click.option(
    "--resource",
    multiple=True,
    metavar="CONTAINER[:PREFIX[:PATH]] | URL=PATH",
    help="Resource file (repeatable).",
)
@click.option(
    "--output-file", multiple=True, metavar="PATTERN:CONTAINER[:PATH[:COND]]", help="Output file (repeatable)."
)
@click.option("--max-retries", "max_task_retry_count", type=int, default=None)
@click.option("--max-wall-clock", type=float, default=None, metavar="SECONDS")
@click.option("--retention", type=float, default=None, metavar="SECONDS")
@click.option("--slots", "required_slots", type=int, default=1, show_default=True)
@click.option("--display-name", default="")
@click.option("--instances", type=int, default=None, help="Multi-instance (MPI) task on this many nodes.")
@click.option("--coordination-command", default="", help="Multi-instance: runs on every instance first.")
@click.option(
    "--common-resource",
    multiple=True,
    metavar="CONTAINER[:PREFIX[:PATH]] | URL=PATH",
    help="Multi-instance: staged by every instance into SHOAL_TASK_SHARED_DIR (repeatable).",
)
@_OUTPUT
@click.pass_context
def task_add(
    ctx: click.Context,
    job_id: str,
    task_id: str,
    command_line: str,
    env: tuple[str, ...],
    resource: tuple[str, ...],
    output_file: tuple[str, ...],
    max_task_retry_count: int | None,
    max_wall_clock: float | None,
    retention: float | None,
    required_slots: int,
    display_name: str,
    instances: int | None,
    coordination_command: str,
    common_resource: tuple[str, ...],
    output: str,
) -> None:
    """Add task TASK_ID running COMMAND_LINE to job JOB_ID."""
    from .types import MultiInstanceSettings, TaskSpec

    multi = None
    if instances is not None:
        multi = MultiInstanceSettings(
            number_of_instances=instances,
            coordination_command_line=coordination_command,
            common_resource_files=tuple(_resource_file(r) for r in common_resource),
        )
    elif coordination_command or common_resource:
        raise click.UsageError("--coordination-command and --common-resource need --instances")

    spec = TaskSpec(
        id=task_id,
        command_line=command_line,
        environment=_parse_env(env),
        resource_files=tuple(_resource_file(r) for r in resource),
        output_files=tuple(_output_file(o) for o in output_file),
        max_task_retry_count=max_task_retry_count,
        max_wall_clock_time=_seconds(max_wall_clock),
        retention_time=_seconds(retention),
        required_slots=required_slots,
        display_name=display_name,
        multi_instance_settings=multi,
    )
    t = _client(ctx).tasks.add(job_id, spec)
    _emit(output, [t], _TASK_COLUMNS, "task added")


def _specs_from_lines(lines: Iterable[str], source: str) -> Iterator[TaskSpec]:
    from .types import TaskSpec

    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            data = json.loads(line)
        except ValueError as e:
            raise InvalidArgument(
                f"{source}:{number}: not JSON: {e}",
                reason="INVALID_TASK_FILE",
                field_violations=[(f"line {number}", str(e))],
            ) from None
        if not isinstance(data, dict):
            raise InvalidArgument(f"{source}:{number}: expected a JSON object", reason="INVALID_TASK_FILE")
        try:
            yield TaskSpec.from_dict(data)
        except InvalidArgument as e:
            raise InvalidArgument(
                f"{source}:{number}: {e.message}", reason=e.reason, field_violations=e.field_violations
            ) from None
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"{source}:{number}: {e}", reason="INVALID_TASK_FILE") from None


def _specs_from_template(
    count: int, command: str, id_format: str, start: int, max_retries: int | None, max_wall_clock: float | None
) -> Iterator[TaskSpec]:
    from .types import TaskSpec

    for i in range(start, start + count):
        yield TaskSpec(
            id=id_format.format(i=i),
            command_line=command.format(i=i),
            max_task_retry_count=max_retries,
            max_wall_clock_time=_seconds(max_wall_clock),
        )


@task.command("add-many")
@click.argument("job_id")
@click.option(
    "-f",
    "--file",
    "task_file",
    type=click.File("r"),
    default=None,
    help='JSON lines, one task each ({"id": ..., "command_line": ...}); \'-\' for stdin.',
)
@click.option("--count", type=int, default=None, help="Generate this many tasks from --command.")
@click.option("--command", default=None, help="Command line template; {i} is the task number.")
@click.option("--id-format", default="t{i}", show_default=True, help="Task id template.")
@click.option("--start", type=int, default=0, show_default=True, help="First task number.")
@click.option("--max-retries", type=int, default=None, help="For generated tasks.")
@click.option("--max-wall-clock", type=float, default=None, metavar="SECONDS", help="For generated tasks.")
@click.option("--chunk-size", type=int, default=10_000, show_default=True)
@_OUTPUT
@click.pass_context
def task_add_many(
    ctx: click.Context,
    job_id: str,
    task_file: Any,
    count: int | None,
    command: str | None,
    id_format: str,
    start: int,
    max_retries: int | None,
    max_wall_clock: float | None,
    chunk_size: int,
    output: str,
) -> None:
    """Add many tasks to job JOB_ID, from a file of JSON lines or a --count/--command template."""
    if (task_file is None) == (count is None):
        raise click.UsageError("give either --file or --count with --command")
    if count is not None:
        if not command:
            raise click.UsageError("--count needs --command")
        specs = _specs_from_template(count, command, id_format, start, max_retries, max_wall_clock)
    else:
        specs = _specs_from_lines(task_file, getattr(task_file, "name", "<file>"))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    err_console = Console(stderr=True)
    with Progress(
        TextColumn("adding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as progress:
        bar = progress.add_task("add", total=count)
        results = _client(ctx).tasks.add_many(
            job_id, specs, chunk_size=chunk_size, on_chunk=lambda rs: progress.advance(bar, len(rs))
        )
    elapsed = time.monotonic() - started
    errors = [r for r in results if not r.ok]
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "added": len(results) - len(errors),
                    "failed": len(errors),
                    "seconds": round(elapsed, 3),
                    "errors": [_plain(r) for r in errors],
                },
                indent=2,
            )
        )
    else:
        rate = len(results) / elapsed if elapsed > 0 else 0.0
        click.echo(f"added {len(results) - len(errors)} of {len(results)} task(s) in {elapsed:.2f}s ({rate:.0f}/s)")
        for r in errors[:20]:
            click.echo(f"  {r.task_id}: {r.status} {r.error_reason}: {r.error_message}", err=True)
        if len(errors) > 20:
            click.echo(f"  ... and {len(errors) - 20} more", err=True)
    if errors:
        raise click.exceptions.Exit(1)


@task.command("get")
@click.argument("job_id")
@click.argument("task_id")
@_OUTPUT
@click.pass_context
def task_get(ctx: click.Context, job_id: str, task_id: str, output: str) -> None:
    """Show task TASK_ID of job JOB_ID."""
    t = _client(ctx).tasks.get(job_id, task_id)
    if output == "json":
        click.echo(json.dumps(_plain(t), indent=2))
        return
    _emit_one(output, t, f"jobs/{job_id}/tasks/{task_id}")


@task.command("list")
@click.argument("job_id")
@click.option("--state", type=click.Choice(["active", "preparing", "running", "completed"]), default=None)
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@_OUTPUT
@click.pass_context
def task_list(ctx: click.Context, job_id: str, state: str | None, limit: int | None, output: str) -> None:
    """List the tasks of job JOB_ID."""
    tasks = _client(ctx).tasks.list(job_id, state=state)
    items: list[Any] = []
    for t in tasks:
        if limit is not None and len(items) >= limit:
            break
        items.append(t)
    _emit(output, items, _TASK_COLUMNS, f"tasks of job {job_id}")


@task.command("subtasks")
@click.argument("job_id")
@click.argument("task_id")
@_OUTPUT
@click.pass_context
def task_subtasks(ctx: click.Context, job_id: str, task_id: str, output: str) -> None:
    """List the instances of multi-instance task TASK_ID."""
    subtasks = _client(ctx).tasks.subtasks(job_id, task_id)
    _emit(
        output,
        subtasks,
        [
            ("instance", lambda st: st.id),
            ("state", lambda st: st.state or None),
            ("node", lambda st: st.node_id or None),
            ("address", lambda st: st.node_address or None),
            ("exit", lambda st: st.exit_code),
            ("result", lambda st: st.result),
            ("failure", lambda st: st.failure.code if st.failure else None),
        ],
        f"subtasks of {job_id}/{task_id}",
    )


@task.command("terminate")
@click.argument("job_id")
@click.argument("task_id")
@click.pass_context
def task_terminate(ctx: click.Context, job_id: str, task_id: str) -> None:
    """Terminate task TASK_ID."""
    t = _client(ctx).tasks.terminate(job_id, task_id)
    click.echo(f"task {job_id}/{task_id}: {_fmt(t.state)}")


@task.command("delete")
@click.argument("job_id")
@click.argument("task_id")
@click.pass_context
def task_delete(ctx: click.Context, job_id: str, task_id: str) -> None:
    """Delete task TASK_ID."""
    _client(ctx).tasks.delete(job_id, task_id)
    click.echo(f"task {job_id}/{task_id}: deleted")


@task.command("reactivate")
@click.argument("job_id")
@click.argument("task_id")
@click.pass_context
def task_reactivate(ctx: click.Context, job_id: str, task_id: str) -> None:
    """Reactivate failed task TASK_ID (back to active, retries reset)."""
    t = _client(ctx).tasks.reactivate(job_id, task_id)
    click.echo(f"task {job_id}/{task_id}: {_fmt(t.state)}")


@task.command("wait")
@click.argument("job_id")
@click.argument("task_ids", nargs=-1)
@click.option("--timeout", type=float, default=None, metavar="SECONDS")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--check", is_flag=True, help="Exit with code 1 when any task failed.")
@click.pass_context
def task_wait(
    ctx: click.Context, job_id: str, task_ids: tuple[str, ...], timeout: float | None, quiet: bool, check: bool
) -> None:
    """Wait until the tasks of job JOB_ID (or only TASK_IDS) completed, with a progress bar."""
    _wait_with_progress(ctx, job_id, list(task_ids) or None, timeout, quiet, check)


_FILE_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("path", lambda f: f.path + ("/" if f.is_directory else "")),
    ("size", lambda f: None if f.is_directory else f.size),
    ("mode", lambda f: f.file_mode or None),
    ("modified", lambda f: f.modify_time),
]


@task.command("files")
@click.argument("job_id")
@click.argument("task_id")
@click.option("--path", default="", help="Directory relative to the task directory.")
@click.option("-r", "--recursive", is_flag=True)
@_OUTPUT
@click.pass_context
def task_files(ctx: click.Context, job_id: str, task_id: str, path: str, recursive: bool, output: str) -> None:
    """List files in the directory of task TASK_ID."""
    files = _client(ctx).tasks.files(job_id, task_id, path=path, recursive=recursive)
    _emit(output, files, _FILE_COLUMNS, f"files of task {job_id}/{task_id}")


@task.command("cat")
@click.argument("job_id")
@click.argument("task_id")
@click.argument("path", default="stdout.txt")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the task completes.")
@click.pass_context
def task_cat(ctx: click.Context, job_id: str, task_id: str, path: str, follow: bool) -> None:
    """Print a file of task TASK_ID (default stdout.txt)."""
    client = _client(ctx)
    out: BinaryIO = sys.stdout.buffer
    if follow:
        for chunk in client.tasks.follow_file(job_id, task_id, path):
            out.write(chunk)
            out.flush()
    else:
        out.write(client.tasks.read_file(job_id, task_id, path))
        out.flush()


# --------------------------------------------------------------------------- storage


@cli.group()
def storage() -> None:
    """Storage containers and blobs."""


@storage.command("create")
@click.argument("container")
@click.option("--fail-if-exists", is_flag=True)
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
    """Upload files or directories to CONTAINER."""
    client = _client(ctx)
    if blob_name is not None and (len(paths) != 1 or paths[0].is_dir()):
        raise click.UsageError("--name needs exactly one file")
    count = 0
    size = 0
    for p in paths:
        if p.is_dir():
            blobs = client.storage.upload_directory(container, p, prefix=prefix)
        else:
            blobs = [client.storage.upload_file(container, p, blob_name or prefix + p.name)]
        count += len(blobs)
        size += sum(b.size for b in blobs)
    click.echo(f"uploaded {count} blob(s), {size} bytes, to {container}")


@storage.command("download")
@click.argument("container")
@click.argument("name_or_prefix", default="")
@click.option("-d", "--dest", type=click.Path(path_type=Path), default=Path("."), show_default=True)
@click.option("--prefix", "as_prefix", is_flag=True, help="Download every blob starting with NAME_OR_PREFIX.")
@click.pass_context
def storage_download(ctx: click.Context, container: str, name_or_prefix: str, dest: Path, as_prefix: bool) -> None:
    """Download a blob (or with --prefix, or no name, every matching blob) from CONTAINER."""
    client = _client(ctx)
    if as_prefix or not name_or_prefix:
        paths = client.storage.download_prefix(container, name_or_prefix, dest)
        click.echo(f"downloaded {len(paths)} blob(s) to {dest}")
    else:
        target = dest / Path(name_or_prefix).name if dest.is_dir() else dest
        client.storage.download_blob(container, name_or_prefix, target)
        click.echo(f"downloaded {name_or_prefix} to {target}")


@storage.command("list")
@click.argument("container", required=False)
@click.option("--prefix", default="")
@_OUTPUT
@click.pass_context
def storage_list(ctx: click.Context, container: str | None, prefix: str, output: str) -> None:
    """List containers, or the blobs of CONTAINER."""
    client = _client(ctx)
    if container is None:
        _emit(
            output,
            client.storage.list_containers(),
            [("id", lambda c: c.id), ("created", lambda c: c.creation_time)],
            "containers",
        )
        return
    _emit(
        output,
        list(client.storage.list_blobs(container, prefix=prefix)),
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
@click.pass_context
def storage_delete(ctx: click.Context, container: str, blob_names: tuple[str, ...]) -> None:
    """Delete blobs of CONTAINER, or with no BLOB_NAMES the container itself."""
    client = _client(ctx)
    if blob_names:
        for name in blob_names:
            client.storage.delete_blob(container, name)
        click.echo(f"deleted {len(blob_names)} blob(s) from {container}")
    else:
        client.storage.delete_container(container)
        click.echo(f"container {container}: deleted")


# --------------------------------------------------------------------------- processes


@cli.command("server")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="State directory.")
@click.option("--listen", default="127.0.0.1:7420", show_default=True, help="Address to serve the API on.")
@click.option(
    "--allow-non-loopback-without-authentication",
    "allow_non_loopback",
    is_flag=True,
    help="Allow listening beyond loopback without authentication.",
)
@click.option(
    "--dispatch-ahead",
    type=click.IntRange(min=0),
    default=16,  # shoal.server.controlplane.DEFAULT_DISPATCH_AHEAD (not imported: the CLI starts light)
    show_default=True,
    help="The most assignments per slot a busy node may hold for jobs of short tasks, about 0.1 s of "
    "their work (0: none).",
)
def server_cmd(data_dir: Path, listen: str, allow_non_loopback: bool, dispatch_ahead: int) -> None:
    """Run the control plane in the foreground."""
    from shoal.server.app import main_server

    raise click.exceptions.Exit(
        main_server(
            data_dir=data_dir, listen=listen, allow_non_loopback=allow_non_loopback, dispatch_ahead=dispatch_ahead
        )
    )


@cli.command("up")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="State directory.")
@click.option("--listen", default="127.0.0.1:7420", show_default=True)
@click.option("--nodes", type=int, default=2, show_default=True, help="Nodes of the local pool.")
@click.option("--slots", type=int, default=1, show_default=True, help="Task slots per node.")
@click.option("--pool-id", default="local", show_default=True)
@click.option("--allow-non-loopback-without-authentication", "allow_non_loopback", is_flag=True)
def up_cmd(data_dir: Path, listen: str, nodes: int, slots: int, pool_id: str, allow_non_loopback: bool) -> None:
    """Run a server and a local pool in the foreground."""
    from shoal.server.app import main_up

    raise click.exceptions.Exit(
        main_up(
            data_dir=data_dir,
            listen=listen,
            nodes=nodes,
            slots=slots,
            pool_id=pool_id,
            allow_non_loopback=allow_non_loopback,
        )
    )


@cli.command(
    "agent",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def agent_cmd(args: tuple[str, ...]) -> None:
    """Run a node agent (arguments go to the agent unchanged)."""
    from shoal.nodeagent.__main__ import main as agent_main

    raise click.exceptions.Exit(agent_main(list(args)))


@cli.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--pool", "pool_id", required=True, help="Pool with inter-node communication enabled.")
@click.option("--nodes", type=int, default=2, show_default=True, help="Nodes (instances) to run on.")
@click.option("--ppn", type=int, default=1, show_default=True, help="MPI ranks per node.")
@click.option("--job", "job_id", default="shoal-run", show_default=True, help="Job for the task (created if new).")
@click.option("--id", "task_id", default=None, help="Task id (default: run-<random>).")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file to stage into the ranks' working directory (repeatable).",
)
@click.option("--flavor", type=click.Choice(["mpich", "openmpi"]), default="mpich", show_default=True)
@click.option("--mpiexec", "mpiexec", default="mpiexec", show_default=True, help="The launcher on the nodes (a path).")
@click.option("--wall-clock", "wall_clock", type=float, default=None, metavar="SECONDS")
@click.option("--retries", type=int, default=None, help="Retries of the whole task after a failure.")
@click.argument("program", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    pool_id: str,
    nodes: int,
    ppn: int,
    job_id: str,
    task_id: str | None,
    files: tuple[Path, ...],
    flavor: str,
    wall_clock: float | None,
    retries: int | None,
    mpiexec: str,
    program: tuple[str, ...],
) -> None:
    """Run an MPI program on NODES nodes with PPN ranks each: `shoal run --pool P --nodes 2 --ppn 2 -- python app.py`.

    Builds the multi-instance task and its mpiexec line, streams the output, and
    exits with the program's exit code.
    """
    from .run import run_mpi

    def out(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    task = run_mpi(
        _client(ctx),
        pool_id=pool_id,
        nodes=nodes,
        ppn=ppn,
        program=list(program),
        job_id=job_id,
        task_id=task_id,
        files=list(files),
        flavor="openmpi" if flavor == "openmpi" else "mpich",
        max_wall_clock_time=_seconds(wall_clock),
        max_task_retry_count=retries,
        on_output=out,
        mpiexec=mpiexec,
    )
    if not task.succeeded:
        click.echo(f"shoal run: task {task.id} failed: {task.failure_code}: {task.failure_message}", err=True)
        raise click.exceptions.Exit(task.exit_code or 1)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``shoal`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="shoal")


if __name__ == "__main__":
    main(sys.argv[1:])
