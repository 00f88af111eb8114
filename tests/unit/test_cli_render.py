"""The CLI's layout functions (client/cli_render.py): which columns fit, aligned rows, key: value lines,
tab-separated values and the rows a watch prints; examples and hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from shoal.client.cli_render import (
    GAP,
    Column,
    as_columns,
    cell_text,
    changed_rows,
    choose_columns,
    column_widths,
    display_tree,
    fit_columns,
    key_value_lines,
    row_line,
    table_lines,
    tsv_lines,
)

# --------------------------------------------------------------------------- fit_columns


def _used(widths: list[int], kept: list[int]) -> int:
    return sum(widths[i] for i in kept) + GAP * (len(kept) - 1)


def test_everything_fits_when_there_is_room() -> None:
    assert fit_columns([2, 6, 9], [0, 1, 2], 80) == [0, 1, 2]


def test_the_least_important_columns_go_first() -> None:
    # id(2) state(9) node(6) command(40): at 30 cells the command goes, the rest stays in order.
    assert fit_columns([2, 9, 6, 40], [0, 1, 2, 3], 30) == [0, 1, 2]
    # Priorities, not positions, decide: the node matters more than the state here.
    assert fit_columns([2, 9, 6], [0, 2, 1], 12) == [0, 2]


def test_a_narrow_column_of_lower_priority_fills_the_room_a_wide_one_leaves() -> None:
    # The wide column 1 does not fit; column 2, less important but narrow, does.
    assert fit_columns([4, 50, 3], [0, 1, 2], 20) == [0, 2]


def test_the_first_column_stays_even_when_it_alone_is_too_wide() -> None:
    assert fit_columns([100, 3], [0, 1], 80) == [0]
    assert fit_columns([], [], 80) == []


_widths = st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=14)


@settings(max_examples=300, deadline=None)
@given(_widths, st.integers(min_value=1, max_value=250), st.randoms(use_true_random=False))
def test_fit_properties(widths: list[int], width: int, rnd) -> None:  # type: ignore[no-untyped-def]
    priorities = list(range(len(widths)))
    rnd.shuffle(priorities)
    kept = fit_columns(widths, priorities, width)
    # The id column always, the others in table order.
    assert kept[0] == 0 and kept == sorted(set(kept))
    # Within the width, unless the id column alone is wider.
    assert _used(widths, kept) <= width or kept == [0]
    # Maximal: no column left out would have fitted beside the ones kept.
    for i in set(range(len(widths))) - set(kept):
        assert _used(widths, sorted([*kept, i])) > width
    # The most important column after the id is kept whenever it fits beside the id.
    if len(widths) > 1:
        top = min(range(1, len(widths)), key=lambda i: (priorities[i], i))
        assert (top in kept) == (widths[0] + GAP + widths[top] <= width)
    assert fit_columns(widths, priorities, 10_000) == list(range(len(widths)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.text(alphabet="abcdefghij-_./:", min_size=1, max_size=12), min_size=4, max_size=4),
        min_size=0,
        max_size=6,
    ),
    st.integers(min_value=10, max_value=120),
)
def test_a_fitted_table_is_no_wider_than_the_terminal_and_keeps_words_whole(rows: list[list[str]], width: int) -> None:
    columns = as_columns([(f"c{i}", lambda x, i=i: x[i]) for i in range(4)])
    kept = choose_columns(columns, rows, wide=False, width=width, headers=True)
    lines = table_lines([columns[i].name for i in kept], [[r[i] for i in kept] for r in rows])
    first = max([cell_len("c0"), *(cell_len(r[0]) for r in rows)])
    for line in lines:
        assert cell_len(line) <= max(width, first)
    # Every cell shown is whole, on the line of its row.
    for row, line in zip(rows, lines[1:], strict=True):
        assert line.split() == [row[i] for i in kept]


# --------------------------------------------------------------------------- tables


def test_rows_align_and_end_without_spaces() -> None:
    lines = table_lines(["id", "state", "node"], [["t1", "completed", "-"], ["t10", "active", "node-2"]])
    assert lines == [
        "id   state      node",
        "t1   completed  -",
        "t10  active     node-2",
    ]
    assert table_lines(None, [["a", "b"]]) == ["a  b"]
    assert row_line(["x", "y"], [3, 5]) == "x    y"


def test_cells_are_one_line_and_say_unset_values() -> None:
    assert cell_text(None) == "-"
    assert cell_text("") == "-"
    assert cell_text("a\nb\tc") == "a\\nb c"
    assert cell_text(True) == "yes"
    assert cell_text(timedelta(seconds=90)) == "90s"


def test_wide_only_and_empty_columns() -> None:
    columns = [Column("id", lambda r: r[0]), Column("a", lambda r: r[1]), Column("more", lambda r: r[2], wide=True)]
    cols = as_columns(columns)
    rows = [["x", "-", "m"]]
    assert choose_columns(cols, rows, wide=False, width=None, headers=True) == [0, 1]
    assert choose_columns(cols, rows, wide=True, width=5, headers=True) == [0, 1, 2]
    # An empty column counts as the least important when the room is short.
    cols = as_columns([("id", lambda r: r[0]), ("empty", lambda r: r[1]), ("b", lambda r: r[2])])
    assert choose_columns(cols, [["x", "-", "bbbb"]], wide=False, width=9, headers=True) == [0, 2]
    assert column_widths(["id", "state"], [["t1", "completed"]], 2) == [2, 9]


# --------------------------------------------------------------------------- key: value


def test_key_value_lines_indent_nested_fields_and_skip_unset_ones() -> None:
    data = {
        "id": "t1",
        "state": "running",
        "exit_code": None,
        "spec": {"command_line": "echo hi", "environment": {"A": "1"}, "resource_files": []},
        "tags": ["a", "b"],
        "files": [{"path": "x", "size": "3"}, {"path": "y"}],
    }
    assert key_value_lines(data) == [
        "id:    t1",
        "state: running",
        "spec:",
        "  command_line: echo hi",
        "  environment:",
        "    A: 1",
        "tags:  a, b",
        "files:",
        "  - path: x",
        "    size: 3",
        "  - path: y",
    ]


def test_key_value_lines_wrap_long_values_at_spaces_only() -> None:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
    lines = key_value_lines({"command_line": words, "id": "a-very-long-unbreakable-identifier-of-fifty-chars"}, 40)
    assert all(cell_len(line) <= 40 for line in lines[:-1])
    # The words come back whole and in order; continuation lines start under the value.
    assert " ".join(" ".join(line.split()) for line in lines[:-1]).replace("command_line: ", "") == words
    assert all(line.startswith(" " * 14) for line in lines[1:-1])
    # A word longer than the room stays whole (the terminal folds it, never this code).
    assert lines[-1] == "id:           a-very-long-unbreakable-identifier-of-fifty-chars"


def test_a_path_too_long_for_a_line_is_cut_after_its_slashes() -> None:
    path = "/tmp/pytest-of-root/pytest-32/cli-output0/data/nodes/node-2/workitems/j/job-1/t-long-a"
    lines = key_value_lines({"task_root_directory": path, "id": "t"}, 60)
    assert all(cell_len(line) <= 60 for line in lines)
    head = "task_root_directory: "
    assert lines[0].startswith(head) and all(line.startswith(" " * len(head)) for line in lines[1:-1])
    pieces = [line.strip() for line in lines[:-1]]
    assert "".join(pieces).replace(head.strip(), "", 1).strip() == path
    assert all(p.endswith("/") for p in pieces[:-1])


def test_display_tree_formats_values_for_people() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class R:
        id: str
        when: datetime
        took: timedelta
        raw: bytes
        ok: bool
        proto: object = None

    tree = display_tree(R("r", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), timedelta(seconds=5), b"abc", False))
    assert tree["id"] == "r" and tree["took"] == "5s" and tree["raw"] == "3 bytes" and tree["ok"] == "no"
    assert "proto" not in tree and tree["when"].count(":") == 2


# --------------------------------------------------------------------------- tsv and watch rows


def test_tsv_lines() -> None:
    assert tsv_lines([{"id": "a", "n": 1, "nested": {"x": 1}, "ok": True}, {"id": "b", "n": None, "ok": False}]) == [
        "a\t1\ttrue",
        "b\t\tfalse",
    ]
    assert tsv_lines(["a", "b"]) == ["a", "b"]
    assert tsv_lines("x") == ["x"]
    assert tsv_lines(None) == []
    assert tsv_lines([["a", 1]]) == ["a\t1"]


def test_changed_rows() -> None:
    before = {"a": ("a", "active"), "b": ("b", "running"), "c": ("c", "running")}
    after = {"a": ("a", "active"), "b": ("b", "completed"), "d": ("d", "active")}
    assert changed_rows(before, after) == [("b", ("b", "completed")), ("d", ("d", "active")), ("c", None)]
