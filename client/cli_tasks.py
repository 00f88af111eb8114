"""``shoal task ...``: add (from flags, a JSON file, JSON lines or a template), read, update, end, wait,
and read a task's files."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from .cli_applications import app_package_option, app_package_references
from .cli_common import (
    _FILE_COLUMNS,
    _OUTPUT,
    _client,
    _data_output,
    _emit,
    _emit_data,
    _emit_one,
    _fmt,
    _given,
    _parse_env,
    _plain,
    _read_json_file,
    _wait_with_progress,
)
from .cli_containers import TASK_CONTAINER_OPTIONS, task_container_options, task_container_settings_from_options
from .cli_params import (
    DURATION,
    OUTPUT_FILE,
    POSITIVE_DURATION,
    RESOURCE_FILE,
    WALL_CLOCK_LIMIT,
    OutputFileParam,
    ResourceFileParam,
    limit_of,
    seconds_of,
)
from .cli_render import display_tree
from .cli_stats import human_statistics, human_usage
from .cli_watch import Changes, list_or_watch, watch_option
from .errors import InvalidArgument

if TYPE_CHECKING:
    from .common_types import OutputFileSpec, ResourceFileSpec
    from .types import TaskSpec

__all__ = ["task"]

_TASK_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda t: t.id),
    ("state", lambda t: t.state),
    ("result", lambda t: t.result),
    ("exit", lambda t: t.exit_code),
    ("node", lambda t: t.node_id or None),
    ("retries", lambda t: t.retry_count),
    ("requeues", lambda t: t.requeue_count),
    ("failure", lambda t: t.failure.code if t.failure else None),
    ("dependencies", lambda t: t.dependency_state.summary if t.dependency_state else None),
    ("command", lambda t: t.command_line),
]


@click.group()
def task() -> None:
    """Tasks of jobs."""


def _id_range(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)
    if not match:
        raise click.BadParameter(f"{value!r} is not START-END (integers)", param_hint="--depends-on-range")
    start, end = int(match.group(1)), int(match.group(2))
    if start > end:
        raise click.BadParameter(f"{value!r} ends before it starts", param_hint="--depends-on-range")
    return start, end


# Options that describe the task; with --json-file the file describes it instead.
_SPEC_OPTIONS = (
    "env",
    "resource",
    "output_file",
    "max_task_retry_count",
    "max_wall_clock",
    "retention",
    "required_slots",
    "display_name",
    "instances",
    "coordination_command",
    "common_resource",
    "depends_on",
    "depends_on_range",
    "run_as",
    "elevation",
    "dedicated_nodes_only",
    "app_packages",
    *TASK_CONTAINER_OPTIONS,
)


@task.command("add")
@click.argument("job_id")
@click.argument("task_id", required=False)
@click.argument("command_line", required=False)
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="Environment variable (repeatable).")
@click.option(
    "--resource",
    type=RESOURCE_FILE,
    multiple=True,
    help="A file to stage before the task runs (repeatable): " + ResourceFileParam.HELP,
)
@click.option("--output-file", type=OUTPUT_FILE, multiple=True, help="Repeatable. " + OutputFileParam.help())
@click.option(
    "--max-retries",
    "max_task_retry_count",
    type=int,
    default=None,
    help="Retries after a failure (-1 unlimited) [default: the job's].",
)
@click.option(
    "--max-wall-clock",
    type=POSITIVE_DURATION,
    default=None,
    help="Kill the task (it fails) past this long running [default: no limit].",
)
@click.option(
    "--retention",
    type=DURATION,
    default=None,
    help="Keep the task's directory on its node this long after it completed [default: 7d].",
)
@click.option(
    "--slots", "required_slots", type=int, default=1, show_default=True, help="Task slots of its node it takes."
)
@click.option("--display-name", default="", help="A name for people (any text).")
@click.option("--instances", type=int, default=None, help="Multi-instance (MPI) task on this many nodes.")
@click.option("--coordination-command", default="", help="Multi-instance: runs on every instance first.")
@click.option(
    "--common-resource",
    type=RESOURCE_FILE,
    multiple=True,
    help="Multi-instance: staged by every instance into SHOAL_TASK_SHARED_DIR (repeatable; as --resource).",
)
@click.option(
    "--depends-on",
    multiple=True,
    metavar="TASK_ID",
    help="A task this one waits for (repeatable; the job must use task dependencies).",
)
@click.option(
    "--depends-on-range",
    multiple=True,
    metavar="START-END",
    help="Wait for the tasks whose ids are the integers START..END ('4' and '04' are both 4; repeatable).",
)
@click.option(
    "--json-file",
    type=click.File("r"),
    default=None,
    help="The task, or a list of tasks, as JSON in the API's field names (shoal.v1.TaskSpec; '-' for stdin), "
    "for what flags cannot say: exit_conditions...",
)
@click.option(
    "--chunk-size", type=int, default=10_000, show_default=True, help="With a --json-file list: tasks per request."
)
@click.option(
    "--run-as",
    default=None,
    metavar="pool|task|user:NAME",
    help="Who the task runs as: the pool's auto user (default), an auto user of its own, or one of the pool's "
    "user accounts.",
)
@click.option(
    "--elevation", type=click.Choice(["nonadmin", "admin"]), default=None, help="Of the auto user (admin: root)."
)
@click.option(
    "--dedicated-nodes-only", is_flag=True, help="Never on a low-priority (preemptible) node (every instance too)."
)
@app_package_option
@task_container_options
@_OUTPUT
@click.pass_context
def task_add(
    ctx: click.Context,
    job_id: str,
    task_id: str | None,
    command_line: str | None,
    env: tuple[str, ...],
    resource: tuple[ResourceFileSpec, ...],
    output_file: tuple[OutputFileSpec, ...],
    max_task_retry_count: int | None,
    max_wall_clock: timedelta | None,
    retention: timedelta | None,
    required_slots: int,
    display_name: str,
    instances: int | None,
    coordination_command: str,
    common_resource: tuple[ResourceFileSpec, ...],
    depends_on: tuple[str, ...],
    depends_on_range: tuple[str, ...],
    json_file: Any,
    chunk_size: int,
    run_as: str | None,
    elevation: str | None,
    dedicated_nodes_only: bool,
    app_packages: tuple[str, ...],
    image: str | None,
    container_run_options: str,
    container_workdir: str | None,
    registry_server: str | None,
    registry_user: str | None,
    output: str,
) -> None:
    """Add task TASK_ID running COMMAND_LINE to job JOB_ID, or the task(s) of --json-file.

    With --image it runs in a container of that image (on a container pool), its command line the
    container's command."""
    from .identity_types import UserIdentity
    from .types import MultiInstanceSettings, TaskSpec
    from .workflow_types import TaskDependencies

    if json_file is not None:
        if task_id or command_line or _given(ctx, _SPEC_OPTIONS):
            raise click.UsageError("--json-file describes the task(s): give no TASK_ID, COMMAND_LINE or task options")
        _add_from_json_file(ctx, job_id, json_file, chunk_size, output)
        return
    if not task_id or not command_line:
        raise click.UsageError("give TASK_ID and COMMAND_LINE (or --json-file)")
    multi = None
    if instances is not None:
        multi = MultiInstanceSettings(
            number_of_instances=instances,
            coordination_command_line=coordination_command,
            common_resource_files=common_resource,
        )
    elif coordination_command or common_resource:
        raise click.UsageError("--coordination-command and --common-resource need --instances")

    spec = TaskSpec(
        id=task_id,
        command_line=command_line,
        environment=_parse_env(env),
        resource_files=resource,
        output_files=output_file,
        max_task_retry_count=max_task_retry_count,
        max_wall_clock_time=max_wall_clock,
        retention_time=retention,
        required_slots=required_slots,
        display_name=display_name,
        multi_instance_settings=multi,
        depends_on=(
            TaskDependencies.of(*depends_on, ranges=[_id_range(r) for r in depends_on_range])
            if depends_on or depends_on_range
            else None
        ),
        user_identity=UserIdentity.parse(run_as or "pool", elevation) if run_as or elevation else None,
        dedicated_nodes_only=dedicated_nodes_only,
        application_package_references=tuple(app_package_references(app_packages)),
        container_settings=task_container_settings_from_options(
            image, container_run_options, container_workdir, registry_server, registry_user
        ),
    )
    t = _client(ctx).tasks.add(job_id, spec)
    _emit(output, [t], _TASK_COLUMNS, "task added")


def _add_from_json_file(ctx: click.Context, job_id: str, json_file: Any, chunk_size: int, output: str) -> None:
    """One task (a JSON object) with AddTask, or a list of them with AddTasks."""
    from .types import TaskSpec

    name = getattr(json_file, "name", "<file>")
    data = _read_json_file(json_file, reason="INVALID_TASK_FILE")
    try:
        if isinstance(data, list):
            specs = [TaskSpec.from_json(item, path=f"[{i}]") for i, item in enumerate(data)]
        else:
            spec = TaskSpec.from_json(data)
    except InvalidArgument as e:
        raise InvalidArgument(f"{name}: {e.message}", reason=e.reason, field_violations=e.field_violations) from None
    if not isinstance(data, list):
        t = _client(ctx).tasks.add(job_id, spec)
        _emit(output, [t], _TASK_COLUMNS, "task added")
        return
    _add_many_with_progress(ctx, job_id, specs, total=len(specs), chunk_size=chunk_size, output=output)


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
    count: int, command: str, id_format: str, start: int, max_retries: int | None, max_wall_clock: timedelta | None
) -> Iterator[TaskSpec]:
    from .types import TaskSpec

    for i in range(start, start + count):
        yield TaskSpec(
            id=id_format.format(i=i),
            command_line=command.format(i=i),
            max_task_retry_count=max_retries,
            max_wall_clock_time=max_wall_clock,
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
@click.option("--max-wall-clock", type=POSITIVE_DURATION, default=None, help="For generated tasks.")
@click.option("--chunk-size", type=int, default=10_000, show_default=True, help="Tasks sent to the server per request.")
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
    max_wall_clock: timedelta | None,
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
    _add_many_with_progress(ctx, job_id, specs, total=count, chunk_size=chunk_size, output=output)


def _add_many_with_progress(
    ctx: click.Context, job_id: str, specs: Iterable[TaskSpec], *, total: int | None, chunk_size: int, output: str
) -> None:
    """Add ``specs`` in chunks with a progress bar on a terminal; report, and exit 1 if any was refused."""
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
        bar = progress.add_task("add", total=total)
        results = _client(ctx).tasks.add_many(
            job_id, specs, chunk_size=chunk_size, on_chunk=lambda rs: progress.advance(bar, len(rs))
        )
    elapsed = time.monotonic() - started
    errors = [r for r in results if not r.ok]
    if _data_output(output):
        _emit_data(
            output,
            {
                "added": len(results) - len(errors),
                "failed": len(errors),
                "seconds": round(elapsed, 3),
                "errors": [_plain(r) for r in errors],
            },
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
    if output not in ("table", "wide"):
        _emit_one(output, t, f"jobs/{job_id}/tasks/{task_id}")
        return
    data = display_tree(t)
    if t.dependency_state is not None:
        # One line for people ("blocked by a (TaskFailed)") rather than the fields.
        data["dependency_state"] = t.dependency_state.summary
    # What it used, in human units (the JSON output keeps the numbers).
    data["last_attempt_stats"] = human_statistics(t.last_attempt_stats) if t.last_attempt_stats else None
    data["stats"] = human_usage(t.stats) if t.stats else None
    _emit_one(output, data, f"jobs/{job_id}/tasks/{task_id}")


@task.command("list")
@click.argument("job_id")
@click.option(
    "--state",
    type=click.Choice(["active", "preparing", "running", "completed"]),
    default=None,
    help="Only tasks in this state.",
)
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@_OUTPUT
@watch_option
@click.pass_context
def task_list(ctx: click.Context, job_id: str, state: str | None, limit: int | None, output: str, watch: bool) -> None:
    """List the tasks of job JOB_ID."""
    client = _client(ctx)

    def fetch() -> list[Any]:
        return list(itertools.islice(client.tasks.list(job_id, state=state), limit))

    def stream() -> Iterator[Changes]:
        for changes in client.tasks.watch(job_id):
            yield Changes(items=changes.tasks, initial=changes.initial, initial_complete=changes.initial_complete)

    list_or_watch(
        output,
        watch,
        fetch,
        _TASK_COLUMNS,
        f"tasks of job {job_id}",
        key=lambda t: t.id,
        stream=stream,
        match=None if state is None else (lambda t: t.state == state),
    )


@task.command("subtasks")
@click.argument("job_id")
@click.argument("task_id")
@_OUTPUT
@watch_option
@click.pass_context
def task_subtasks(ctx: click.Context, job_id: str, task_id: str, output: str, watch: bool) -> None:
    """List the instances of multi-instance task TASK_ID of job JOB_ID."""
    list_or_watch(
        output,
        watch,
        lambda: _client(ctx).tasks.subtasks(job_id, task_id),
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
    """Terminate task TASK_ID of job JOB_ID: it completes (killed if it runs)."""
    t = _client(ctx).tasks.terminate(job_id, task_id)
    click.echo(f"task {job_id}/{task_id}: {_fmt(t.state)}")


@task.command("delete")
@click.argument("job_id")
@click.argument("task_id")
@click.pass_context
def task_delete(ctx: click.Context, job_id: str, task_id: str) -> None:
    """Delete task TASK_ID of job JOB_ID."""
    _client(ctx).tasks.delete(job_id, task_id)
    click.echo(f"task {job_id}/{task_id}: deleted")


@task.command("reactivate")
@click.argument("job_id")
@click.argument("task_id")
@click.pass_context
def task_reactivate(ctx: click.Context, job_id: str, task_id: str) -> None:
    """Reactivate failed task TASK_ID of job JOB_ID (back to active, retries reset)."""
    t = _client(ctx).tasks.reactivate(job_id, task_id)
    click.echo(f"task {job_id}/{task_id}: {_fmt(t.state)}")


@task.command("update")
@click.argument("job_id")
@click.argument("task_id")
@click.option("--max-wall-clock", type=WALL_CLOCK_LIMIT, default=None, help="The task's wall clock limit.")
@click.option(
    "--max-retries", "max_task_retry_count", type=int, default=None, help="Retries after a failure (-1 unlimited)."
)
@click.option(
    "--retention", type=DURATION, default=None, help="Keep its directory on the node this long after it completed."
)
@_OUTPUT
@click.pass_context
def task_update(
    ctx: click.Context,
    job_id: str,
    task_id: str,
    max_wall_clock: timedelta | None,
    max_task_retry_count: int | None,
    retention: timedelta | None,
    output: str,
) -> None:
    """Change the constraints of task TASK_ID of job JOB_ID; those not given keep their values.

    They are replaced together: the ones not given are read from the task just
    before, and the update applies only if the task has not changed since.
    """
    if max_wall_clock is None and max_task_retry_count is None and retention is None:
        raise click.UsageError("nothing to update: give --max-wall-clock, --max-retries or --retention")
    wall_clock = limit_of(max_wall_clock) if max_wall_clock is not None else None
    client = _client(ctx)
    current = client.tasks.get(job_id, task_id)
    now = current.spec.constraints
    constraints = dataclasses.replace(
        now,
        max_wall_clock_time=now.max_wall_clock_time if max_wall_clock is None else wall_clock,
        max_task_retry_count=now.max_task_retry_count if max_task_retry_count is None else max_task_retry_count,
        retention_time=now.retention_time if retention is None else retention,
    )
    t = client.tasks.update(job_id, task_id, constraints=constraints, etag=current.etag)
    _emit(output, [t], _TASK_COLUMNS, "task updated")


@task.command("wait")
@click.argument("job_id")
@click.argument("task_ids", nargs=-1)
@click.option(
    "--timeout", type=DURATION, default=None, help="Give up after this long (exit code 1) [default: wait for ever]."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--check", is_flag=True, help="Exit with code 1 when any task failed.")
@click.pass_context
def task_wait(
    ctx: click.Context, job_id: str, task_ids: tuple[str, ...], timeout: timedelta | None, quiet: bool, check: bool
) -> None:
    """Wait until the tasks of job JOB_ID (or only TASK_IDS) completed, with a progress bar."""
    _wait_with_progress(ctx, job_id, list(task_ids) or None, seconds_of(timeout), quiet, check)


@task.command("files")
@click.argument("job_id")
@click.argument("task_id")
@click.option("--path", default="", help="Directory relative to the task directory.")
@click.option("-r", "--recursive", is_flag=True, help="List the whole tree under --path.")
@_OUTPUT
@watch_option
@click.pass_context
def task_files(
    ctx: click.Context, job_id: str, task_id: str, path: str, recursive: bool, output: str, watch: bool
) -> None:
    """List files in the directory of task TASK_ID of job JOB_ID (or in its directory --path)."""
    fetch = lambda: _client(ctx).tasks.files(job_id, task_id, path=path, recursive=recursive)  # noqa: E731
    list_or_watch(output, watch, fetch, _FILE_COLUMNS, f"files of task {job_id}/{task_id}")


@task.command("stat")
@click.argument("job_id")
@click.argument("task_id")
@click.argument("path")
@_OUTPUT
@click.pass_context
def task_stat(ctx: click.Context, job_id: str, task_id: str, path: str, output: str) -> None:
    """Show the size, modification time and mode of PATH in the directory of task TASK_ID of job JOB_ID."""
    f = _client(ctx).tasks.file_properties(job_id, task_id, path)
    _emit_one(output, f, f"{job_id}/{task_id}:{path}")


@task.command("rm")
@click.argument("job_id")
@click.argument("task_id")
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Delete a directory and everything under it.")
@click.pass_context
def task_rm(ctx: click.Context, job_id: str, task_id: str, path: str, recursive: bool) -> None:
    """Delete PATH in the directory of task TASK_ID of job JOB_ID (also while it runs); a link goes, not its
    target."""
    _client(ctx).tasks.delete_file(job_id, task_id, path, recursive=recursive)
    click.echo(f"{job_id}/{task_id}:{path}: deleted")


@task.command("cat")
@click.argument("job_id")
@click.argument("task_id")
@click.argument("path", default="stdout.txt")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the task completes.")
@click.pass_context
def task_cat(ctx: click.Context, job_id: str, task_id: str, path: str, follow: bool) -> None:
    """Print file PATH of task TASK_ID of job JOB_ID (default stdout.txt; stderr.txt, wd/...)."""
    client = _client(ctx)
    out: BinaryIO = sys.stdout.buffer
    if follow:
        for chunk in client.tasks.follow_file(job_id, task_id, path):
            out.write(chunk)
            out.flush()
    else:
        out.write(client.tasks.read_file(job_id, task_id, path))
        out.flush()
