"""``shoal schedule ...``: job schedules (create from flags or JSON, read, update, disable/enable, terminate,
delete, and the jobs a schedule made)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click

from .cli_common import _OUTPUT, _client, _emit, _emit_one, _given, _parse_env, _read_json_file
from .cli_params import DURATION, POSITIVE_DURATION
from .cli_watch import list_or_watch, watch_option

__all__ = ["schedule"]

_STATES = ["active", "disabled", "terminating", "completed", "deleting"]
_JOB_STATES = ["active", "disabling", "disabled", "enabling", "terminating", "completed", "deleting"]


def _when(s: Any) -> str:
    if s.schedule.cron:
        return f"cron {s.schedule.cron!r}" + (f" {s.schedule.time_zone}" if s.schedule.time_zone else "")
    if s.schedule.recurrence_interval is not None:
        return f"every {s.schedule.recurrence_interval.total_seconds():g}s"
    return "once"


_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda s: s.id),
    ("state", lambda s: s.state),
    ("pool", lambda s: s.pool_id),
    ("when", _when),
    ("next run", lambda s: s.next_run_time),
    ("recent job", lambda s: s.recent_job_id or None),
]
_JOB_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda j: j.id),
    ("state", lambda j: j.state),
    ("created", lambda j: j.creation_time),
    ("ended", lambda j: j.terminate_reason or None),
]


class TimeType(click.ParamType):
    """An ISO 8601 time (``2026-05-01T09:30``, ``2026-05-01T09:30+02:00``); without an offset, this
    machine's local time."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            t = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2026-05-01T09:30", param, ctx)
        return t if t.tzinfo is not None else t.astimezone()


TIME = TimeType()

_SCHEDULE_OPTIONS = ("interval", "cron", "time_zone", "start_window", "do_not_run_until", "do_not_run_after")
_JOB_OPTIONS = (
    "pool_id",
    "job_manager",
    "job_manager_id",
    "priority",
    "max_task_retry_count",
    "env",
    "on_all_tasks_complete",
    "max_wall_clock",
)


def _schedule_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--interval", type=DURATION, default=None, help="Time between two runs (at least 1m)."),
            click.option("--cron", default=None, help="Instead of --interval: five cron fields ('30 2 * * 1-5')."),
            click.option("--time-zone", default=None, help="The IANA time zone --cron is read in (default UTC)."),
            click.option(
                "--start-window",
                type=DURATION,
                default=None,
                help="A run not started this long after it is due "
                "(the previous job still running) is skipped; at least 1m [default: no limit].",
            ),
            click.option("--do-not-run-until", type=TIME, default=None, help="No run before this time."),
            click.option("--do-not-run-after", type=TIME, default=None, help="No run after this time."),
        ]
    ):
        f = option(f)
    return f


@click.group()
def schedule() -> None:
    """Job schedules: a job made at each due time (an interval or a cron expression), one at a time."""


@schedule.command("create")
@click.argument("schedule_id", required=False)
@_schedule_options
@click.option("--pool", "pool_id", default=None, help="The pool its jobs run on.")
@click.option("--job-manager", default=None, metavar="COMMAND", help="Each job's job manager task's command line.")
@click.option("--job-manager-id", default="", help="The job manager task's id [default: jobmanager].")
@click.option("--priority", type=int, default=0, show_default=True, help="Its jobs' priority, -1000..1000.")
@click.option(
    "--max-retries",
    "max_task_retry_count",
    type=int,
    default=0,
    show_default=True,
    help="Default retries of its jobs' tasks after a failure (-1 unlimited).",
)
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="Common environment of its jobs (repeatable).")
@click.option(
    "--on-all-tasks-complete",
    type=click.Choice(["noaction", "terminatejob"]),
    default="noaction",
    show_default=True,
    help="What each job does once all its tasks completed: nothing, or terminate (complete).",
)
@click.option("--max-wall-clock", type=POSITIVE_DURATION, default=None, help="Each job's wall clock limit.")
@click.option("--display-name", default="", help="A name for people (any text).")
@click.option("--metadata", multiple=True, metavar="NAME=VALUE", help="Metadata kept with the schedule (repeatable).")
@click.option(
    "--job-json-file",
    type=click.File("r"),
    default=None,
    help="Each job as JSON in the API's field names (a shoal.v1.Job without id; '-' for stdin), instead of "
    "--pool, --job-manager and the other job options.",
)
@click.option(
    "--json-file",
    type=click.File("r"),
    default=None,
    help="The whole schedule as JSON in the API's field names (a shoal.v1.JobSchedule; '-' for stdin).",
)
@_OUTPUT
@click.pass_context
def schedule_create(
    ctx: click.Context,
    schedule_id: str | None,
    interval: timedelta | None,
    cron: str | None,
    time_zone: str | None,
    start_window: timedelta | None,
    do_not_run_until: datetime | None,
    do_not_run_after: datetime | None,
    pool_id: str | None,
    job_manager: str | None,
    job_manager_id: str,
    priority: int,
    max_task_retry_count: int,
    env: tuple[str, ...],
    on_all_tasks_complete: str,
    max_wall_clock: timedelta | None,
    display_name: str,
    metadata: tuple[str, ...],
    job_json_file: Any,
    json_file: Any,
    output: str,
) -> None:
    """Create job schedule SCHEDULE_ID: its jobs are SCHEDULE_ID:job-1, SCHEDULE_ID:job-2, ...

    With neither --interval nor --cron it makes one job. A job manager task (--job-manager) is the usual
    way to give each job its tasks; by default the job completes when it does.
    """
    from ._schedules import job_specification
    from .schedule_types import Schedule
    from .workflow_types import JobManagerTask

    client = _client(ctx)
    if json_file is not None:
        given = _given(ctx, (*_SCHEDULE_OPTIONS, *_JOB_OPTIONS, "display_name", "metadata", "job_json_file"))
        if given or schedule_id:
            raise click.UsageError("--json-file describes the whole schedule: give no SCHEDULE_ID and no other options")
        data = _read_json_file(json_file, reason="INVALID_JOB_SCHEDULE_FILE")
        created = client.schedules.create_from_json(data)
        _emit(output, [created], _COLUMNS, "job schedule created")
        return
    if not schedule_id:
        raise click.UsageError("give SCHEDULE_ID (or --json-file)")
    job: Any
    if job_json_file is not None:
        if _given(ctx, _JOB_OPTIONS):
            raise click.UsageError("--job-json-file describes each job: give no --pool, --job-manager or job options")
        job = _read_json_file(job_json_file, reason="INVALID_JOB_FILE")
    else:
        if not pool_id:
            raise click.UsageError("give --pool (or --job-json-file)")
        job = job_specification(
            pool_id=pool_id,
            job_manager_task=JobManagerTask(command_line=job_manager, id=job_manager_id) if job_manager else None,
            priority=priority,
            max_task_retry_count=max_task_retry_count,
            max_wall_clock_time=max_wall_clock,
            common_environment=_parse_env(env),
            on_all_tasks_complete=on_all_tasks_complete,
        )
    when = Schedule(
        recurrence_interval=interval,
        cron=cron or "",
        time_zone=time_zone or "",
        start_window=start_window,
        do_not_run_until=do_not_run_until,
        do_not_run_after=do_not_run_after,
    )
    created = client.schedules.create(
        id=schedule_id,
        job=job,
        schedule=when,
        display_name=display_name,
        metadata=_parse_env(metadata, "--metadata"),
    )
    _emit(output, [created], _COLUMNS, "job schedule created")


@schedule.command("get")
@click.argument("schedule_id")
@_OUTPUT
@click.pass_context
def schedule_get(ctx: click.Context, schedule_id: str, output: str) -> None:
    """Show job schedule SCHEDULE_ID."""
    _emit_one(output, _client(ctx).schedules.get(schedule_id), f"jobschedules/{schedule_id}")


@schedule.command("list")
@click.option("--state", type=click.Choice(_STATES), default=None, help="Only schedules in this state.")
@_OUTPUT
@watch_option
@click.pass_context
def schedule_list(ctx: click.Context, state: str | None, output: str, watch: bool) -> None:
    """List job schedules."""
    list_or_watch(output, watch, lambda: _client(ctx).schedules.list(state=state), _COLUMNS, "job schedules")


@schedule.command("update")
@click.argument("schedule_id")
@_schedule_options
@click.option("--once", is_flag=True, help="No more interval or cron: one more job only.")
@click.option("--job-json-file", type=click.File("r"), default=None, help="Replaces each job's specification (JSON).")
@click.option("--display-name", default=None, help="A new name for people.")
@click.option("--metadata", multiple=True, metavar="NAME=VALUE", help="Replaces the schedule's metadata (repeatable).")
@click.option("--clear-metadata", is_flag=True, help="Remove the schedule's metadata.")
@_OUTPUT
@click.pass_context
def schedule_update(
    ctx: click.Context,
    schedule_id: str,
    interval: timedelta | None,
    cron: str | None,
    time_zone: str | None,
    start_window: timedelta | None,
    do_not_run_until: datetime | None,
    do_not_run_after: datetime | None,
    once: bool,
    job_json_file: Any,
    display_name: str | None,
    metadata: tuple[str, ...],
    clear_metadata: bool,
    output: str,
) -> None:
    """Change the given fields of job schedule SCHEDULE_ID; they apply to the jobs made from then on.

    The schedule's times change together: those not given keep their values, read from the schedule just
    before and updated only if it has not changed since. --interval replaces a cron expression and --cron
    an interval.
    """
    import dataclasses

    if metadata and clear_metadata:
        raise click.UsageError("--metadata and --clear-metadata exclude each other")
    client = _client(ctx)
    times = _given(ctx, _SCHEDULE_OPTIONS)
    new_schedule = None
    etag = None
    if times or once:
        current = client.schedules.get(schedule_id)
        etag = current.etag
        changes: dict[str, Any] = {}
        if once:
            changes.update(recurrence_interval=None, cron="", time_zone="")
        if interval is not None:
            changes.update(recurrence_interval=interval, cron="", time_zone="")
        if cron is not None:
            changes.update(cron=cron, recurrence_interval=None)
        for name, value in (
            ("time_zone", time_zone),
            ("start_window", start_window),
            ("do_not_run_until", do_not_run_until),
            ("do_not_run_after", do_not_run_after),
        ):
            if value is not None:
                changes[name] = value
        new_schedule = dataclasses.replace(current.schedule, **changes)
    job = _read_json_file(job_json_file, reason="INVALID_JOB_FILE") if job_json_file is not None else None
    new_metadata = {} if clear_metadata else (_parse_env(metadata, "--metadata") if metadata else None)
    if new_schedule is None and job is None and display_name is None and new_metadata is None:
        raise click.UsageError("nothing to update: give at least one field")
    updated = client.schedules.update(
        schedule_id,
        schedule=new_schedule,
        job=job,
        display_name=display_name,
        metadata=new_metadata,
        etag=etag,
    )
    _emit(output, [updated], _COLUMNS, "job schedule updated")


def _verb(name: str, doc: str) -> None:
    @schedule.command(name, help=doc)
    @click.argument("schedule_id")
    @click.option("--etag", default=None, help="Act only on the schedule as read (its etag).")
    @_OUTPUT
    @click.pass_context
    def command(ctx: click.Context, schedule_id: str, etag: str | None, output: str) -> None:
        s = getattr(_client(ctx).schedules, name)(schedule_id, etag=etag)
        _emit(output, [s], _COLUMNS, f"job schedule {name}d")


_verb("disable", "Make no job from job schedule SCHEDULE_ID until it is enabled (its active job goes on).")
_verb("enable", "Make jobs from job schedule SCHEDULE_ID again (one due now is made at once).")
_verb("terminate", "Terminate the active job of job schedule SCHEDULE_ID; the schedule then completes.")
_verb("delete", "Delete job schedule SCHEDULE_ID and its jobs.")


@schedule.command("jobs")
@click.argument("schedule_id")
@click.option("--state", type=click.Choice(_JOB_STATES), default=None, help="Only jobs in this state.")
@_OUTPUT
@watch_option
@click.pass_context
def schedule_jobs(ctx: click.Context, schedule_id: str, state: str | None, output: str, watch: bool) -> None:
    """List the jobs job schedule SCHEDULE_ID made (those not deleted), oldest first."""
    fetch = lambda: _client(ctx).schedules.jobs(schedule_id, state=state)  # noqa: E731
    list_or_watch(output, watch, fetch, _JOB_COLUMNS, f"jobs of {schedule_id}")
