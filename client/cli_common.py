"""What every ``shoal`` command shares: the client from the context, errors as one line, tables and JSON.

The commands live in a file per resource (``cli.py``: the root, pools,
storage and processes; ``cli_nodes.py``; ``cli_jobs.py``; ``cli_tasks.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .errors import ShoalError

if TYPE_CHECKING:
    from rich.console import Console

    from ._client import Client

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
    def __init__(
        self, address: str | None, account: str | None = None, key: str | None = None, ca_cert: Path | None = None
    ):
        self.address = address
        self.account = account
        self.key = key
        self.ca_cert = ca_cert
        self._client: Client | None = None
        self._admin: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from ._client import Client

            self._client = Client.connect(self.address, account=self.account, key=self.key, ca_cert=self.ca_cert)
        return self._client

    @property
    def admin_client(self) -> Client:
        """A client with the administrator's credential (for `shoal account`)."""
        if self._admin is None:
            from ._client import Client

            self._admin = Client.connect(self.address, key=self.key, admin=True, ca_cert=self.ca_cert)
        return self._admin


def _client(ctx: click.Context) -> Client:
    state = ctx.find_object(_State)
    assert state is not None
    return state.client


def _admin_client(ctx: click.Context) -> Client:
    state = ctx.find_object(_State)
    assert state is not None
    return state.admin_client


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
    if isinstance(value, bytes):
        # As the proto JSON mapping writes bytes.
        return base64.b64encode(value).decode()
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


def _parse_env(values: Sequence[str], param_hint: str = "--env") -> dict[str, str]:
    """``NAME=VALUE`` items as a dict, in their order (the value may hold ``=``)."""
    env: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=param_hint)
        name, value = item.split("=", 1)
        env[name] = value
    return env


def _given(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """Which of the parameters ``names`` the user gave (rather than left at their defaults)."""
    from click.core import ParameterSource

    return [n for n in names if ctx.get_parameter_source(n) not in (None, ParameterSource.DEFAULT)]


def _read_json_file(file: Any, *, reason: str) -> Any:
    """The JSON content of an open ``click.File``; :class:`InvalidArgument` naming the file when it is not JSON."""
    from .json_specs import load_json

    return load_json(file.read(), source=getattr(file, "name", "<file>"), reason=reason)


def _tell(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _wait_with_progress(
    ctx: click.Context,
    job_id: str,
    task_ids: Sequence[str] | None,
    timeout: float | None,
    quiet: bool,
    check: bool = False,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .cli_waiting import telling_why

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
        # Why tasks have not started, once each, on stderr (above the bar on a terminal: rich redirects it).
        telling_why(client, job_id, task_ids, _tell),
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


_FILE_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("path", lambda f: f.path + ("/" if f.is_directory else "")),
    ("size", lambda f: None if f.is_directory else f.size),
    ("mode", lambda f: f.file_mode or None),
    ("modified", lambda f: f.modify_time),
]
