"""``--watch`` on list verbs: the listing, then a line per change, as ``kubectl get -w`` prints them.

Where the server has a watch stream (a job's tasks, a pool's nodes) the changes come from it; other
listings are read again every ``--watch-interval`` seconds and only the rows that changed are printed.
Ctrl-C ends a watch (exit status 130, as for any interrupted command).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import click

from .cli_common import (
    _META,
    _data_output,
    _emit_list,
    _flags,
    _is_terminal,
    _OutputFlags,
    _plain,
    _terminal_width,
)
from .cli_params import DURATION
from .cli_render import (
    Column,
    ColumnLike,
    as_columns,
    cell_text,
    choose_columns,
    column_widths,
    fmt_value,
    row_line,
    tsv_lines,
)

__all__ = ["Changes", "WatchPrinter", "list_or_watch", "watch_option", "watch_polled", "watch_stream"]


def _store_interval(ctx: click.Context, param: click.Parameter, value: timedelta) -> timedelta:
    if value < timedelta(seconds=0.1):
        raise click.BadParameter("at least 0.1s", ctx=ctx, param=param)
    flags = ctx.meta.setdefault(_META, _OutputFlags())
    flags.watch_interval = value.total_seconds()
    return value


def watch_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``-w/--watch`` (passed to the command as ``watch``) and ``--watch-interval``."""
    f = click.option(
        "--watch-interval",
        type=DURATION,
        default="2s",
        show_default=True,
        expose_value=False,
        callback=_store_interval,
        help="With --watch, how often a listing without a server watch stream is read again.",
    )(f)
    return click.option(
        "-w",
        "--watch",
        is_flag=True,
        default=False,
        help="After the listing, print a line for each change until Ctrl-C.",
    )(f)


@dataclass(frozen=True)
class Changes:
    """One message of a watch: items as they are now, and the keys of items that are gone."""

    items: Sequence[Any] = ()
    removed: Sequence[str] = ()
    initial: bool = False
    """Part of the first listing (the snapshot)."""
    initial_complete: bool = False
    """The last message of the first listing."""


class WatchPrinter:
    """Prints a watched listing: first the listing as the list verb does, then, for each item whose
    shown values changed, a line (a table row aligned with the first listing's columns, its id, or a
    JSON object / tab-separated values on a line of its own). What counts as a change is a change of
    the item's cells in the table (all columns, ``-o wide``'s too, but those that tick with the clock)."""

    def __init__(
        self,
        output: str,
        columns: Sequence[ColumnLike],
        title: str,
        *,
        key: Callable[[Any], str],
        name: Callable[[Any], Any] | None = None,
        match: Callable[[Any], bool] | None = None,
    ) -> None:
        self.output = output
        self.columns: list[Column] = as_columns(columns)
        self.title = title
        self.key = key
        self.name = name if name is not None else self.columns[0].get
        self.match = match
        self.flags: _OutputFlags = _flags()
        self.data = _data_output(output)
        self.kept: list[int] = []
        self.widths: list[int] = []
        # The cells of each item shown, as last printed: an item is printed again only when one of
        # them changes (but for those that tick with the clock).
        self.shown: dict[str, tuple[str, ...]] = {}
        self._steady = [i for i, c in enumerate(self.columns) if not c.ticks]

    # -- what one item looks like

    def _cells(self, item: Any) -> tuple[str, ...]:
        return tuple(cell_text(c.get(item)) for c in self.columns)

    def _same(self, a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        return all(a[i] == b[i] for i in self._steady)

    def _data_lines(self, value: Any) -> list[str]:
        query = self.flags.query
        if query is not None:
            import jmespath

            value = jmespath.search(query, value)
        if self.output == "tsv":
            return tsv_lines([value]) if not isinstance(value, list) else tsv_lines(value)
        return [json.dumps(value)]

    def _line(self, cells: Sequence[str]) -> str:
        return row_line([cells[i] for i in self.kept], self.widths)

    # -- printing

    def first(self, items: Iterable[Any]) -> None:
        """Print the first listing (those of ``items`` that match)."""
        items = [i for i in items if self.match is None or self.match(i)]
        for item in items:
            self.shown[self.key(item)] = self._cells(item)
        if self.data:
            for item in items:
                for line in self._data_lines(_plain(item)):
                    click.echo(line)
            return
        if self.output == "name":
            for item in items:
                click.echo(fmt_value(self.name(item)))
            return
        rows = [list(self._cells(i)) for i in items]
        headers = not self.flags.no_headers
        self.kept = choose_columns(
            self.columns, rows, wide=self.output == "wide", width=_terminal_width(), headers=headers
        )
        heads = [self.columns[i].name for i in self.kept]
        self.widths = column_widths(heads if headers else None, [[r[i] for i in self.kept] for r in rows], len(heads))
        if headers and _is_terminal() and self.title:
            click.echo(click.style(self.title, dim=True))
        if headers:
            names = [c.name for c in self.columns]
            click.echo(click.style(self._line(names), bold=True))
        for row in rows:
            click.echo(self._line(row))

    def changed(self, items: Iterable[Any]) -> None:
        """Print a line for each of ``items`` whose shown values changed (or that is new); an item that
        stopped matching the filter is printed once more, then forgotten."""
        for item in items:
            k = self.key(item)
            matches = self.match is None or self.match(item)
            if not matches and k not in self.shown:
                continue
            cells = self._cells(item)
            last = self.shown.get(k)
            if last is not None and self._same(last, cells):
                continue
            if matches:
                self.shown[k] = cells
            else:
                self.shown.pop(k, None)
            self._print(item)

    def removed(self, keys: Iterable[str]) -> None:
        """Print a line for each item gone (its last row, its state ``deleted``)."""
        for k in keys:
            last = self.shown.pop(k, None)
            if last is None:
                continue
            if self.data:
                click.echo(json.dumps({"deleted": k}) if self.output == "json" else f"{k}\tdeleted")
            elif self.output == "name":
                click.echo(k)
            else:
                cells = ["deleted" if c.name == "state" else cell for c, cell in zip(self.columns, last, strict=True)]
                click.echo(self._line(cells))

    def _print(self, item: Any) -> None:
        if self.data:
            for line in self._data_lines(_plain(item)):
                click.echo(line)
        elif self.output == "name":
            click.echo(fmt_value(self.name(item)))
        else:
            click.echo(self._line(self._cells(item)))


def watch_stream(printer: WatchPrinter, changes: Iterator[Changes]) -> None:
    """Follow a server's watch stream: the snapshot as the first listing, then each change. Ends when
    the stream does (its resource is gone) or on Ctrl-C."""
    snapshot: list[Any] = []
    started = False
    try:
        for message in changes:
            if not started:
                if message.initial:
                    snapshot.extend(message.items)
                    if not message.initial_complete:
                        continue
                printer.first(snapshot)
                started = True
                if message.initial:
                    continue
            printer.changed(message.items)
            printer.removed(message.removed)
    finally:
        # Ends the server's stream at once (Ctrl-C included), not when the generator is collected.
        close = getattr(changes, "close", None)
        if close is not None:
            close()
    if not started:
        printer.first(snapshot)


def list_or_watch(
    output: str,
    watch: bool,
    fetch: Callable[[], Iterable[Any]],
    columns: Sequence[ColumnLike],
    title: str,
    *,
    key: Callable[[Any], str] | None = None,
    name: Callable[[Any], Any] | None = None,
    stream: Callable[[], Iterator[Changes]] | None = None,
    match: Callable[[Any], bool] | None = None,
) -> None:
    """What a list verb does: print the listing ``fetch`` reads; with ``watch``, then follow its changes
    (from ``stream``, the server's watch, when there is one; else by reading it again). ``key`` names an
    item among the others (default: ``name``, else the first column); ``match`` filters a stream."""
    if not watch:
        _emit_list(output, fetch(), columns, title, name=name)
        return
    get = name if name is not None else as_columns(columns)[0].get
    printer = WatchPrinter(
        output, columns, title, key=key if key is not None else (lambda i: str(get(i))), name=name, match=match
    )
    if stream is not None:
        watch_stream(printer, stream())
    else:
        watch_polled(printer, fetch)


def watch_polled(
    printer: WatchPrinter,
    fetch: Callable[[], Iterable[Any]],
    *,
    interval: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> None:
    """Read a listing every ``interval`` seconds (``--watch-interval``): the first as it is, then a line
    per item that changed, appeared or went. Runs until Ctrl-C (or for ``rounds`` more readings)."""
    every = printer.flags.watch_interval if interval is None else interval
    items = list(fetch())
    printer.first(items)
    keys = {printer.key(i) for i in items}
    done = 0
    while rounds is None or done < rounds:
        sleep(every)
        items = list(fetch())
        now = {printer.key(i) for i in items}
        printer.changed(items)
        printer.removed(k for k in keys if k not in now)
        keys = now
        done += 1
