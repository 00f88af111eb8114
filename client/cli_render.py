"""How the ``shoal`` CLI lays out what it prints: pure functions from values to lines of text.

No terminal and no I/O here: the caller says how wide the output may be (or that nothing limits it) and
prints the lines. Tables are plain aligned text, as ``kubectl get`` and ``squeue`` print them: a column
that does not fit is left out (the least important first), never wrapped, so no word is ever split.
``get`` verbs print ``key: value`` lines with nested fields indented under their parent.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.cells import cell_len

__all__ = [
    "GAP",
    "Column",
    "as_columns",
    "cell_text",
    "changed_rows",
    "choose_columns",
    "column_widths",
    "display_tree",
    "fit_columns",
    "fmt_value",
    "key_value_lines",
    "row_line",
    "table_lines",
    "tsv_lines",
]

GAP = 2
"""Spaces between two columns of a table."""

_EMPTY = "-"
"""What a table shows for a value that is not set."""

_ALIGN_KEYS_UP_TO = 24
"""``key: value`` lines align their values after keys shorter than this (a longer key is followed by one space)."""


@dataclass(frozen=True)
class Column:
    """One column of a list's table."""

    name: str
    """The header."""
    get: Callable[[Any], Any]
    """The column's value of an item (None shows as ``-``)."""
    priority: int | None = None
    """Lower is more important: on a narrow terminal the columns of the highest numbers are left out
    first. None: by position (the leftmost column is the most important)."""
    wide: bool = False
    """Shown only with ``-o wide``."""
    ticks: bool = False
    """Changes with the clock alone (an elapsed time): ``--watch`` does not print a row again for it."""


ColumnLike = Column | tuple[str, Callable[[Any], Any]]


def as_columns(columns: Sequence[ColumnLike]) -> list[Column]:
    """``(name, getter)`` pairs as :class:`Column` (columns as they are), each with its priority set."""
    out: list[Column] = []
    for i, c in enumerate(columns):
        col = c if isinstance(c, Column) else Column(c[0], c[1])
        out.append(dataclasses.replace(col, priority=i if col.priority is None else col.priority))
    return out


def fmt_value(value: Any) -> str:
    """One value for people: enums by their value, local times to the second, durations in seconds."""
    if value is None:
        return _EMPTY
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def cell_text(value: Any) -> str:
    """A value as one table cell: on one line (a line break shows as ``\\n``), ``-`` when not set."""
    text = fmt_value(value)
    if text == "":
        return _EMPTY
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")


def column_widths(headers: Sequence[str] | None, rows: Sequence[Sequence[str]], count: int) -> list[int]:
    """The width (in terminal cells) of each of ``count`` columns: its widest cell, header included."""
    widths = [cell_len(h) for h in headers] if headers is not None else [0] * count
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    return widths


def fit_columns(widths: Sequence[int], priorities: Sequence[int], width: int, gap: int = GAP) -> list[int]:
    """The columns of a table that fit in ``width`` cells, as indices in table order.

    The first column (the item's id) is always kept. The others are taken by priority (lower first, ties
    by position), each one kept when it fits in what the columns kept so far leave; so a column is left
    out only when the columns more important than it (and those kept after it) leave too little room.
    """
    if not widths:
        return []
    kept = {0}
    used = widths[0]
    for i in sorted(range(1, len(widths)), key=lambda i: (priorities[i], i)):
        if used + gap + widths[i] <= width:
            kept.add(i)
            used += gap + widths[i]
    return sorted(kept)


def choose_columns(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool,
    width: int | None,
    headers: bool,
) -> list[int]:
    """Which columns a table shows: all with ``wide``; else those not marked wide, and of them, when the
    output has a ``width``, those that fit (a column with no value in any row counts as least important)."""
    if wide:
        return list(range(len(columns)))
    shown = [i for i, c in enumerate(columns) if not c.wide]
    if width is None:
        return shown
    sub_rows = [[row[i] for i in shown] for row in rows]
    heads = [columns[i].name for i in shown] if headers else None
    widths = column_widths(heads, sub_rows, len(shown))
    lowest = max((c.priority or 0) for c in columns) + 1
    priorities = []
    for j, i in enumerate(shown):
        empty = bool(rows) and all(row[j] == _EMPTY for row in sub_rows)
        priorities.append(lowest + (columns[i].priority or 0) if empty else (columns[i].priority or 0))
    return [shown[j] for j in fit_columns(widths, priorities, width)]


def row_line(cells: Sequence[str], widths: Sequence[int], gap: int = GAP) -> str:
    """One row: each cell padded to its column's width (the last one not), no trailing spaces."""
    parts = []
    for i, cell in enumerate(cells):
        pad = widths[i] - cell_len(cell) if i < len(cells) - 1 else 0
        parts.append(cell + " " * max(0, pad))
    return (" " * gap).join(parts).rstrip()


def table_lines(headers: Sequence[str] | None, rows: Sequence[Sequence[str]], gap: int = GAP) -> list[str]:
    """A table as aligned lines: the headers' line (unless None), then a line per row."""
    count = len(headers) if headers is not None else (len(rows[0]) if rows else 0)
    widths = column_widths(headers, rows, count)
    lines = [row_line(headers, widths, gap)] if headers is not None else []
    lines.extend(row_line(row, widths, gap) for row in rows)
    return lines


def changed_rows(
    before: Mapping[str, tuple[str, ...]], after: Mapping[str, tuple[str, ...]]
) -> list[tuple[str, tuple[str, ...] | None]]:
    """What changed between two listings keyed by item: ``(key, cells)`` for each new or changed item in
    ``after``'s order, then ``(key, None)`` for each item gone."""
    out: list[tuple[str, tuple[str, ...] | None]] = [(k, v) for k, v in after.items() if before.get(k) != v]
    out.extend((k, None) for k in before if k not in after)
    return out


# --------------------------------------------------------------------------- one item: key: value


def display_tree(value: Any) -> Any:
    """A result (a dataclass, mapping or list of them) as nested dicts and lists of display strings,
    fields in their order, the raw proto left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: display_tree(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "proto"}
    if isinstance(value, Mapping):
        return {str(k): display_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [display_tree(v) for v in value]
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if value is None:
        return None
    return fmt_value(value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


def _break_path(word: str, room: int) -> list[str]:
    """A word longer than ``room`` cut after its slashes (a path, between two of its parts), each piece
    as long as fits; a word without slashes stays whole."""
    pieces: list[str] = []
    current = ""
    for part in re.findall(r"[^/]*/|[^/]+$", word):
        if current and cell_len(current + part) > room:
            pieces.append(current)
            current = part
        else:
            current += part
    pieces.append(current)
    return pieces


def _scalar_lines(text: str, first: int, rest: int, width: int | None) -> list[str]:
    """A value's lines: the first to follow its key (``first`` cells are taken already), the others
    indented by ``rest``; wrapped at spaces to ``width``, a path too long for a line cut after a slash
    (any other word longer than the room stays whole: never split inside a word)."""
    out: list[str] = []
    for n, line in enumerate(text.split("\n")):
        room = None if width is None else width - (first if n == 0 else rest)
        if room is None or room < 16 or cell_len(line) <= room:
            out.append(line)
            continue
        for piece in textwrap.wrap(line, room, break_long_words=False, break_on_hyphens=False) or [""]:
            out.extend(_break_path(piece, room) if cell_len(piece) > room else [piece])
    return out


def key_value_lines(data: Mapping[str, Any], width: int | None = None, indent: int = 0) -> list[str]:
    """A mapping of display values as ``key: value`` lines: values aligned, nested mappings and lists
    indented by two under their key, unset values left out, long values wrapped at spaces to ``width``."""
    items = [(k, v) for k, v in data.items() if not _empty(v)]
    scalar_keys = [k for k, v in items if not isinstance(v, dict | list)]
    # Values line up after the keys, but a key much longer than the others does not push them all right.
    key_width = max((cell_len(k) for k in scalar_keys if cell_len(k) < _ALIGN_KEYS_UP_TO), default=0) + 1
    pad = " " * indent
    lines: list[str] = []
    for key, value in items:
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.extend(key_value_lines(value, width, indent + 2))
        elif isinstance(value, list):
            inline = _inline_list(value)
            head = f"{pad}{key + ':':<{key_width}} "
            if inline is not None and (width is None or cell_len(head) + cell_len(inline) <= width):
                lines.append(head + inline)
            else:
                lines.append(f"{pad}{key}:")
                lines.extend(_list_lines(value, width, indent + 2))
        else:
            head = f"{pad}{key + ':':<{key_width}} "
            text = str(value)
            pieces = _scalar_lines(text, cell_len(head), cell_len(head), width)
            lines.append(head + pieces[0])
            lines.extend(" " * cell_len(head) + p for p in pieces[1:])
    return [line.rstrip() for line in lines]


def _inline_list(values: list[Any]) -> str | None:
    """A short list of plain values on one line (``a, b, c``); None when it had better be a list of lines."""
    if not all(isinstance(v, str) and "\n" not in v and ", " not in v for v in values):
        return None
    text = ", ".join(values)
    return text if cell_len(text) <= 60 else None


def _list_lines(values: list[Any], width: int | None, indent: int) -> list[str]:
    """A list as ``- item`` lines; an item that is a mapping shows its fields under its dash."""
    lines: list[str] = []
    pad = " " * indent
    for value in values:
        if isinstance(value, dict):
            sub = key_value_lines(value, width, indent + 2)
            if sub:
                lines.append(pad + "- " + sub[0][indent + 2 :])
                lines.extend(sub[1:])
            else:
                lines.append(pad + "- {}")
        elif isinstance(value, list):
            lines.append(pad + "-")
            lines.extend(_list_lines(value, width, indent + 2))
        else:
            pieces = _scalar_lines("-" if value is None else str(value), indent + 2, indent + 2, width)
            lines.append(pad + "- " + pieces[0])
            lines.extend(pad + "  " + p for p in pieces[1:])
    return [line.rstrip() for line in lines]


# --------------------------------------------------------------------------- tab-separated values


def _tsv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\t", " ").replace("\n", "\\n")


def _tsv_row(value: Any) -> str:
    if isinstance(value, dict):
        # As `az -o tsv`: the plain values of an object, in order; nested ones left out.
        return "\t".join(_tsv_value(v) for v in value.values() if not isinstance(v, dict | list))
    if isinstance(value, list):
        return "\t".join(_tsv_value(v) for v in value if not isinstance(v, dict | list))
    return _tsv_value(value)


def tsv_lines(data: Any) -> list[str]:
    """JSON data as tab-separated lines: a line per element of a list (an object's plain values, a
    value as it is), one line for an object or a value; nothing for null."""
    if data is None:
        return []
    if isinstance(data, list):
        return [_tsv_row(v) for v in data]
    return [_tsv_row(data)]
