"""What every ``shoal`` command shares: the client from the context, errors as one line, and output: the
options every command that prints resources takes (:func:`output_options`) and the printing of lists,
single results and JSON.

The commands live in a file per resource (``cli.py``: the root, pools, storage and processes;
``cli_nodes.py``; ``cli_jobs.py``; ``cli_tasks.py``; ``cli_queue.py``, the queue across jobs ...); the
layout of tables and ``key: value`` lines is pure, in ``cli_render.py``; ``--watch`` is ``cli_watch.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .cli_render import (
    ColumnLike,
    as_columns,
    cell_text,
    choose_columns,
    display_tree,
    fmt_value,
    key_value_lines,
    table_lines,
    tsv_lines,
)
from .errors import ShoalError

if TYPE_CHECKING:
    from rich.console import Console

    from ._client import Client

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
    """``error: CODE REASON: message [field: violation; ...]`` on one line, each thing said once: a field
    violation the message already says (a message is often the violations joined) is not repeated."""
    code = e.code.name if e.code is not None else "UNKNOWN"
    head = " ".join([f"error: {code}", *([e.reason] if e.reason else [])])
    said = {part.strip() for part in e.message.split(";")}
    fresh = [f"{f}: {d}" for f, d in e.field_violations if f"{f}: {d}" not in said]
    line = f"{head}: {e.message}"
    if fresh:
        line += f" [{'; '.join(fresh)}]"
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


# --------------------------------------------------------------------------- output

_fmt = fmt_value

OUTPUT_FORMATS = ("table", "wide", "name", "json", "tsv")
_OUTPUT_HELP = (
    "table: the columns that fit the terminal; wide: every column; name: the ids, one per line; "
    "json: the whole resources; tsv: tab-separated values."
)
_META = "shoal.output"


@dataclass
class _OutputFlags:
    """The output options other than ``-o`` (kept in the click context, so that commands take only ``output``)."""

    no_headers: bool = False
    query: str | None = None
    watch_interval: float = 2.0


def _flags() -> _OutputFlags:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return _OutputFlags()
    flags = ctx.meta.get(_META)
    return flags if isinstance(flags, _OutputFlags) else _OutputFlags()


def _store_flag(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        flags = ctx.meta.setdefault(_META, _OutputFlags())
        if name == "query" and value is not None:
            import jmespath
            from jmespath.exceptions import JMESPathError

            try:
                jmespath.compile(value)
            except JMESPathError as e:
                raise click.BadParameter(f"not a JMESPath expression: {e}", param_hint="--query") from None
        setattr(flags, name, value)
        _check_output_flags(ctx)
        return value

    return store


def _check_output(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta.setdefault(_META, _OutputFlags())
    ctx.meta["shoal.output.format"] = value
    _check_output_flags(ctx)
    return value


def _check_output_flags(ctx: click.Context) -> None:
    """Refuse combinations that say two things (before the command does anything)."""
    flags = ctx.meta.get(_META)
    fmt = ctx.meta.get("shoal.output.format")
    if isinstance(flags, _OutputFlags) and flags.query is not None and fmt == "name":
        raise click.UsageError("--query selects from the JSON form: use it with -o json or -o tsv, not -o name")


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The output options of every command that prints resources: ``-o/--output`` (passed to the command
    as ``output``), ``--no-headers`` and ``--query`` (read by :func:`_emit` and :func:`_emit_one`)."""
    f = click.option(
        "--query",
        default=None,
        metavar="JMESPATH",
        expose_value=False,
        callback=_store_flag("query"),
        help="A JMESPath expression applied to the JSON output (as `az --query`), e.g. \"[?state=='running'].id\"; "
        "prints JSON (or, with -o tsv, plain values).",
    )(f)
    f = click.option(
        "--no-headers",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_store_flag("no_headers"),
        help="Print tables without their header line.",
    )(f)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default="table",
        show_default=True,
        callback=_check_output,
        help=_OUTPUT_HELP,
    )(f)


_OUTPUT = output_options


def _data_output(output: str) -> bool:
    """Whether ``output`` asks for data (JSON, tab-separated values, or a --query) rather than a view."""
    return output in ("json", "tsv") or _flags().query is not None


def _emit_data(output: str, data: Any) -> None:
    """JSON data (a list of resources or one) as JSON or tab-separated values, after ``--query``."""
    query = _flags().query
    if query is not None:
        import jmespath

        data = jmespath.search(query, data)
    if output == "tsv":
        for line in tsv_lines(data):
            click.echo(line)
    else:
        click.echo(json.dumps(data, indent=2))


def _terminal_width() -> int | None:
    """How wide the output may be: $COLUMNS when set, the terminal's width on a terminal, else no limit."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _name_getter(columns: Sequence[ColumnLike], name: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    return name if name is not None else as_columns(columns)[0].get


def _emit(
    output: str,
    items: Iterable[Any],
    columns: Sequence[ColumnLike],
    title: str,
    *,
    name: Callable[[Any], Any] | None = None,
) -> None:
    """Print what a command did to ``items`` (``title`` says what: "pool created"), as :func:`_emit_list`
    does, the title above the table whether on a terminal or not."""
    _print_items(output, list(items), columns, title, name=name, title_always=True)


def _emit_list(
    output: str,
    items: Iterable[Any],
    columns: Sequence[ColumnLike],
    title: str,
    *,
    name: Callable[[Any], Any] | None = None,
) -> None:
    """Print a listing: a table of ``columns`` (on a terminal, those that fit it; ``title`` above it
    there), the items' ids (``-o name``; ``name`` gives an item's, else the first column), or JSON /
    tab-separated values (a list)."""
    _print_items(output, list(items), columns, title, name=name, title_always=False)


def _print_items(
    output: str,
    items: list[Any],
    columns: Sequence[ColumnLike],
    title: str,
    *,
    name: Callable[[Any], Any] | None,
    title_always: bool,
) -> None:
    if _data_output(output):
        _emit_data(output, [_plain(i) for i in items])
        return
    if output == "name":
        get = _name_getter(columns, name)
        for item in items:
            click.echo(fmt_value(get(item)))
        return
    if not items and not title_always and _is_terminal():
        # As `kubectl get`: a word to the person rather than a header over nothing.
        click.echo(f"No {title}.", err=True)
        return
    if (title_always or _is_terminal()) and title and not _flags().no_headers:
        click.echo(click.style(title, dim=True))
    for line in _table_lines(output, items, columns):
        click.echo(line)


def _table_lines(output: str, items: Sequence[Any], columns: Sequence[ColumnLike]) -> list[str]:
    """The lines of a table of ``items``: the columns ``output`` and the terminal's width leave, with a
    bold header line (unless --no-headers)."""
    cols = as_columns(columns)
    rows = [[cell_text(c.get(item)) for c in cols] for item in items]
    headers = not _flags().no_headers
    kept = choose_columns(cols, rows, wide=output == "wide", width=_terminal_width(), headers=headers)
    lines = table_lines([cols[i].name for i in kept] if headers else None, [[r[i] for i in kept] for r in rows])
    if headers and lines:
        lines[0] = click.style(lines[0], bold=True)
    return lines


def _emit_one(output: str, item: Any, title: str, *, name: Callable[[Any], Any] | None = None) -> None:
    """Print one result as ``key: value`` lines (nested fields indented), its id (``-o name``), or as a
    JSON object / tab-separated values."""
    if _data_output(output):
        _emit_data(output, _plain(item))
        return
    if output == "name":
        value = name(item) if name is not None else _field(item, "id")
        if value is None:
            raise click.UsageError("-o name: this result has no id")
        click.echo(fmt_value(value))
        return
    tree = display_tree(item)
    if not isinstance(tree, dict):
        tree = {"value": tree}
    if _is_terminal() and title and not _flags().no_headers:
        click.echo(click.style(title, dim=True))
    for line in key_value_lines(tree, _terminal_width()):
        click.echo(line)


def _field(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


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
