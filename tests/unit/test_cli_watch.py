"""What `--watch` prints (client/cli_watch.py), fed by listings and stream messages given here: the
first listing as a table, then one aligned line per item whose shown cells changed, new or gone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from shoal.client.cli_render import Column
from shoal.client.cli_watch import Changes, WatchPrinter, watch_polled, watch_stream


@dataclass(frozen=True)
class Item:
    id: str
    state: str
    elapsed: str = "1s"


COLUMNS = [
    Column("id", lambda i: i.id),
    Column("state", lambda i: i.state),
    Column("time", lambda i: i.elapsed, ticks=True),
]


def _printed(monkeypatch: pytest.MonkeyPatch, run) -> list[str]:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("COLUMNS", raising=False)
    with CliRunner().isolation() as (out, _err, _):
        run()
        return out.getvalue().decode().splitlines()


def test_a_polled_listing_prints_only_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(
        [
            [Item("a", "active"), Item("bb", "running")],
            # Only a ticking column changed: nothing to print.
            [Item("a", "active", "2s"), Item("bb", "running", "2s")],
            # a changed, c is new, bb is gone.
            [Item("a", "completed"), Item("c", "active")],
        ]
    )
    printer = WatchPrinter("table", COLUMNS, "items", key=lambda i: i.id)
    lines = _printed(
        monkeypatch, lambda: watch_polled(printer, lambda: next(readings), interval=0, sleep=lambda s: None, rounds=2)
    )
    assert lines == [
        "id  state    time",
        "a   active   1s",
        "bb  running  1s",
        "a   completed  1s",
        "c   active   1s",
        "bb  deleted  1s",  # as last printed
    ]


def test_a_stream_prints_its_snapshot_as_a_table_then_each_change(monkeypatch: pytest.MonkeyPatch) -> None:
    def messages() -> Iterator[Changes]:
        yield Changes(items=[Item("a", "active")], initial=True)
        yield Changes(items=[Item("b", "running")], initial=True, initial_complete=True)
        yield Changes(items=[Item("a", "running"), Item("b", "running")])
        yield Changes(removed=["a"])

    printer = WatchPrinter("table", COLUMNS, "items", key=lambda i: i.id, match=lambda i: i.state != "done")
    lines = _printed(monkeypatch, lambda: watch_stream(printer, messages()))
    assert lines == ["id  state    time", "a   active   1s", "b   running  1s", "a   running  1s", "a   deleted  1s"]


def test_json_and_names_are_a_line_per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    def messages() -> Iterator[Changes]:
        yield Changes(items=[Item("a", "active")], initial=True, initial_complete=True)
        yield Changes(items=[Item("a", "completed")])

    printer = WatchPrinter("json", COLUMNS, "items", key=lambda i: i.id)
    lines = _printed(monkeypatch, lambda: watch_stream(printer, messages()))
    assert lines == [
        '{"id": "a", "state": "active", "elapsed": "1s"}',
        '{"id": "a", "state": "completed", "elapsed": "1s"}',
    ]
    printer = WatchPrinter("name", COLUMNS, "items", key=lambda i: i.id)
    assert _printed(monkeypatch, lambda: watch_stream(printer, messages())) == ["a", "a"]
