"""``shoal job ...``: create (from flags or a JSON file), read, update, disable/enable, end, wait, and the
preparation and release status of a job's nodes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from .cli_autopools import AUTO_POOL_OPTIONS, auto_pool_of, auto_pool_options
from .cli_common import (
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
from .cli_params import DURATION, POSITIVE_DURATION, WALL_CLOCK_LIMIT, limit_of, seconds_of
from .cli_watch import list_or_watch, watch_option
from .errors import InvalidArgument

__all__ = ["job"]

_JOB_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda j: j.id),
    ("pool", lambda j: j.pool_id),
    ("state", lambda j: j.state),
    ("priority", lambda j: j.priority),
    ("retries", lambda j: j.max_task_retry_count),
    ("on complete", lambda j: j.on_all_tasks_complete),
    ("created", lambda j: j.creation_time),
    ("ended", lambda j: j.terminate_reason or (j.scheduling_error.code if j.scheduling_error else None)),
]

_JOB_STATES = ["active", "disabling", "disabled", "enabling", "terminating", "completed", "deleting"]
_ON_ALL_TASKS_COMPLETE = click.Choice(["noaction", "terminatejob"])
_ON_TASK_FAILURE = click.Choice(["noaction", "performexitoptionsjobaction"])
_ON_DEPENDENCY_FAILURE = click.Choice(["block", "fail"])


@click.group()
def job() -> None:
    """Jobs."""


# Options that describe the job; with --json-file the file describes it instead.
_SPEC_OPTIONS = (
    "pool_id",
    "priority",
    "max_task_retry_count",
    "env",
    "on_all_tasks_complete",
    "max_wall_clock",
    "display_name",
    "uses_task_dependencies",
    "on_task_failure",
    "on_dependency_failure",
    "max_parallel_tasks",
    "metadata",
    "dedicated_nodes_only",
    *AUTO_POOL_OPTIONS,
)


@job.command("create")
@click.argument("job_id", required=False)
@click.option("--pool", "pool_id", default=None, help="Pool the job's tasks run on (required without --json-file).")
@click.option("--priority", type=int, default=0, show_default=True, help="-1000..1000; higher runs first.")
@click.option(
    "--max-retries",
    "max_task_retry_count",
    type=int,
    default=0,
    show_default=True,
    help="Default retries of its tasks after a failure (-1 unlimited).",
)
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="Common environment variable (repeatable).")
@click.option(
    "--on-all-tasks-complete",
    type=_ON_ALL_TASKS_COMPLETE,
    default="noaction",
    show_default=True,
    help="What the job does once all its tasks completed: nothing, or terminate (complete).",
)
@click.option(
    "--max-wall-clock",
    type=POSITIVE_DURATION,
    default=None,
    help="The job is terminated this long after it was created [default: no limit].",
)
@click.option("--display-name", default="", help="A name for people (any text).")
@click.option("--uses-task-dependencies", is_flag=True, help="Let the job's tasks depend on others (--depends-on).")
@click.option(
    "--on-task-failure",
    type=_ON_TASK_FAILURE,
    default=None,
    help="What a task failing for good does [default: noaction; performexitoptionsjobaction applies the job "
    "action of its exit conditions].",
)
@click.option(
    "--on-dependency-failure",
    type=_ON_DEPENDENCY_FAILURE,
    default=None,
    help="What happens to the dependents of a task that failed for good [default: block; fail completes them, "
    "failed with DependencyFailed].",
)
@click.option("--max-parallel-tasks", type=int, default=None, help="At most this many of its tasks run at once.")
@click.option("--metadata", multiple=True, metavar="NAME=VALUE", help="Metadata kept with the job (repeatable).")
@click.option(
    "--dedicated-nodes-only", is_flag=True, help="None of its tasks runs on a low-priority (preemptible) node."
)
@click.option(
    "--json-file",
    type=click.File("r"),
    default=None,
    help="The whole job as JSON in the API's field names (a shoal.v1.Job; '-' for stdin), for what flags "
    "cannot say: job_manager_task, job_preparation_task, job_release_task...",
)
@auto_pool_options
@_OUTPUT
@click.pass_context
def job_create(
    ctx: click.Context,
    job_id: str | None,
    pool_id: str | None,
    priority: int,
    max_task_retry_count: int,
    env: tuple[str, ...],
    on_all_tasks_complete: str,
    max_wall_clock: timedelta | None,
    display_name: str,
    uses_task_dependencies: bool,
    on_task_failure: str | None,
    on_dependency_failure: str | None,
    max_parallel_tasks: int | None,
    metadata: tuple[str, ...],
    dedicated_nodes_only: bool,
    json_file: Any,
    output: str,
    **auto_pool_flags: Any,
) -> None:
    """Create job JOB_ID, from options or from --json-file.

    The job runs on --pool, or on a pool made for it (--auto-pool-nodes, --auto-pool-json...) and deleted
    when it completes or is deleted, unless --auto-pool-keep-alive.
    """
    if json_file is not None:
        mixed = _given(ctx, _SPEC_OPTIONS)
        if mixed or job_id:
            raise click.UsageError("--json-file describes the whole job: give no JOB_ID and no other job options")
        data = _read_json_file(json_file, reason="INVALID_JOB_FILE")
        try:
            j = _client(ctx).jobs.create_from_json(data)
        except InvalidArgument as e:
            if e.reason != "INVALID_JOB_SPEC":
                raise
            name = getattr(json_file, "name", "<file>")
            raise InvalidArgument(
                f"{name}: {e.message}", reason=e.reason, field_violations=e.field_violations
            ) from None
    else:
        auto_pool = auto_pool_of(ctx, auto_pool_flags)
        if not job_id or (pool_id is None) == (auto_pool is None):
            raise click.UsageError("give JOB_ID and either --pool or --auto-pool-... options (or --json-file)")
        j = _client(ctx).jobs.create(
            id=job_id,
            pool_id=pool_id or "",
            auto_pool=auto_pool,
            priority=priority,
            max_task_retry_count=max_task_retry_count,
            common_environment=_parse_env(env),
            on_all_tasks_complete=on_all_tasks_complete,
            max_wall_clock_time=max_wall_clock,
            display_name=display_name,
            uses_task_dependencies=uses_task_dependencies,
            on_task_failure=on_task_failure,
            on_dependency_failure=on_dependency_failure,
            max_parallel_tasks=max_parallel_tasks,
            metadata=_parse_env(metadata, "--metadata"),
            dedicated_nodes_only=dedicated_nodes_only,
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
@click.option("--state", type=click.Choice(_JOB_STATES), default=None, help="Only jobs in this state.")
@_OUTPUT
@watch_option
@click.pass_context
def job_list(ctx: click.Context, state: str | None, output: str, watch: bool) -> None:
    """List jobs."""
    list_or_watch(output, watch, lambda: _client(ctx).jobs.list(state=state), _JOB_COLUMNS, "jobs")


@job.command("update")
@click.argument("job_id")
@click.option("--priority", type=int, default=None, help="-1000..1000; higher runs first.")
@click.option("--max-parallel-tasks", type=int, default=None, help="At most this many tasks at once; -1 unlimited.")
@click.option("--on-all-tasks-complete", type=_ON_ALL_TASKS_COMPLETE, default=None, help="Never back to noaction.")
@click.option(
    "--on-task-failure",
    type=_ON_TASK_FAILURE,
    default=None,
    help="What a task failing for good does: noaction, or performexitoptionsjobaction (the job action of its "
    "exit conditions).",
)
@click.option(
    "--metadata", multiple=True, metavar="NAME=VALUE", help="Replaces the job's metadata with these (repeatable)."
)
@click.option("--clear-metadata", is_flag=True, help="Remove the job's metadata.")
@click.option("--max-wall-clock", type=WALL_CLOCK_LIMIT, default=None, help="The job's wall clock limit.")
@click.option("--max-task-retry-count", type=int, default=None, help="Default retries of its tasks (-1 unlimited).")
@click.option(
    "--auto-pool-keep-alive/--no-auto-pool-keep-alive",
    default=None,
    help="Whether the job's auto pool outlives it.",
)
@_OUTPUT
@click.pass_context
def job_update(
    ctx: click.Context,
    job_id: str,
    priority: int | None,
    max_parallel_tasks: int | None,
    on_all_tasks_complete: str | None,
    on_task_failure: str | None,
    metadata: tuple[str, ...],
    clear_metadata: bool,
    max_wall_clock: timedelta | None,
    max_task_retry_count: int | None,
    auto_pool_keep_alive: bool | None,
    output: str,
) -> None:
    """Change the given fields of job JOB_ID (only those).

    The constraints (--max-wall-clock, --max-task-retry-count) change together:
    the one not given keeps its value, read from the job just before and
    updated only if the job has not changed since.
    """
    from .workflow_types import JobConstraints

    if metadata and clear_metadata:
        raise click.UsageError("--metadata and --clear-metadata exclude each other")
    client = _client(ctx)
    wall_clock = limit_of(max_wall_clock) if max_wall_clock is not None else None
    constraints = None
    etag = None
    if max_wall_clock is not None or max_task_retry_count is not None:
        # Constraints are replaced whole: keep the one not given, on the job as read (etag).
        current = client.jobs.get(job_id)
        etag = current.etag
        constraints = JobConstraints(
            max_wall_clock_time=current.max_wall_clock_time if max_wall_clock is None else wall_clock,
            max_task_retry_count=current.max_task_retry_count if max_task_retry_count is None else max_task_retry_count,
        )
    new_metadata = {} if clear_metadata else (_parse_env(metadata, "--metadata") if metadata else None)
    if (
        priority is None
        and constraints is None
        and on_all_tasks_complete is None
        and on_task_failure is None
        and max_parallel_tasks is None
        and new_metadata is None
        and auto_pool_keep_alive is None
    ):
        raise click.UsageError("nothing to update: give at least one field")
    j = client.jobs.update(
        job_id,
        priority=priority,
        constraints=constraints,
        on_all_tasks_complete=on_all_tasks_complete,
        on_task_failure=on_task_failure,
        max_parallel_tasks=max_parallel_tasks,
        metadata=new_metadata,
        auto_pool_keep_alive=auto_pool_keep_alive,
        etag=etag,
    )
    _emit(output, [j], _JOB_COLUMNS, "job updated")


@job.command("disable")
@click.argument("job_id")
@click.option(
    "--disable-tasks",
    type=click.Choice(["requeue", "terminate", "wait"]),
    default="requeue",
    show_default=True,
    help="What happens to its running tasks: ended and run again once enabled, ended as failed, or left to finish.",
)
@click.pass_context
def job_disable(ctx: click.Context, job_id: str, disable_tasks: str) -> None:
    """Disable job JOB_ID: none of its tasks is scheduled until it is enabled."""
    j = _client(ctx).jobs.disable(job_id, disable_tasks=disable_tasks)
    click.echo(f"job {job_id}: {_fmt(j.state)}")


@job.command("enable")
@click.argument("job_id")
@click.pass_context
def job_enable(ctx: click.Context, job_id: str) -> None:
    """Enable disabled job JOB_ID: its tasks are scheduled again."""
    j = _client(ctx).jobs.enable(job_id)
    click.echo(f"job {job_id}: {_fmt(j.state)}")


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
    ("waiting on dependencies", lambda c: c.waiting_on_dependencies),
    ("blocked", lambda c: c.blocked),
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
    """Task counts of job JOB_ID (active ones waiting on dependencies, or blocked, counted apart too), and
    why its active tasks wait: its pool missing or empty, nodes starting or broken, a task too big for the
    pool's nodes, a failed dependency, its max parallel tasks running... Those marked stuck will not run
    unless something changes."""
    from .cli_waiting import diagnosis_lines, diagnosis_plain, read_diagnosis

    client = _client(ctx)
    counts = client.jobs.task_counts(job_id)
    # (The counts' running tasks are those running or preparing: what its max_parallel_tasks counts.)
    diagnosis = read_diagnosis(client, job_id, busy=counts.running) if counts.active else None
    if _data_output(output):
        data = _plain(counts)
        data["waiting"] = diagnosis_plain(diagnosis) if diagnosis is not None else None
        _emit_data(output, data)
        return
    _emit(output, [counts], _COUNT_COLUMNS, f"tasks of job {job_id}")
    lines = diagnosis_lines(diagnosis, active=counts.active) if diagnosis is not None else []
    # A blank line between the table and the reasons: they read apart, and the table stays a table.
    for line in ["", *lines] if lines else []:
        click.echo(line)


def _run_state(info: Any) -> Any:
    return (info.result or info.state) if info is not None else None


_PREP_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("node", lambda s: s.node_id),
    ("pool", lambda s: s.pool_id),
    ("preparation", lambda s: _run_state(s.preparation)),
    ("prep exit", lambda s: s.preparation.exit_code if s.preparation else None),
    ("prep failure", lambda s: s.preparation.failure.code if s.preparation and s.preparation.failure else None),
    ("prep retries", lambda s: s.preparation.retry_count if s.preparation else None),
    ("release", lambda s: _run_state(s.release)),
    ("release exit", lambda s: s.release.exit_code if s.release else None),
    ("release failure", lambda s: s.release.failure.code if s.release and s.release.failure else None),
]


@job.command("prep-status")
@click.argument("job_id")
@_OUTPUT
@watch_option
@click.pass_context
def job_prep_status(ctx: click.Context, job_id: str, output: str, watch: bool) -> None:
    """Per node, the job preparation and release tasks of job JOB_ID: state, exit code, failure."""
    fetch = lambda: _client(ctx).jobs.prep_release_status(job_id)  # noqa: E731
    list_or_watch(output, watch, fetch, _PREP_COLUMNS, f"preparation and release tasks of job {job_id}")


@job.command("wait")
@click.argument("job_id")
@click.option(
    "--timeout", type=DURATION, default=None, help="Give up after this long (exit code 1) [default: wait for ever]."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--check", is_flag=True, help="Exit with code 1 when any task failed.")
@click.pass_context
def job_wait(ctx: click.Context, job_id: str, timeout: timedelta | None, quiet: bool, check: bool) -> None:
    """Wait until every task of job JOB_ID completed."""
    _wait_with_progress(ctx, job_id, None, seconds_of(timeout), quiet, check)
