"""The store contract, run against every backend."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.server.store.base import Delete, Row, Rows, Store, StoredRow
from shoal.server.store.sqlite import SqliteStore

BACKENDS: dict[str, Callable[[Path], Store]] = {"sqlite": lambda d: SqliteStore(d / "s.db")}


@pytest.fixture(params=sorted(BACKENDS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return lambda: BACKENDS[request.param](tmp_path)


async def test_rows_survive_reopen_in_seq_order(make) -> None:
    s = make()
    await s.open()
    await s.commit([Row("tasks", "j/b", b"2", "j", 2), Row("tasks", "j/a", b"1", "j", 1), Row("pools", "p", b"x")])
    await s.close()
    s2 = make()
    loaded = await s2.open()
    assert [r.key for r in loaded.tables["tasks"]] == ["j/a", "j/b"]
    assert loaded.tables["pools"][0].data == b"x"
    await s2.close()


async def test_later_write_wins_and_deletes_by_key_and_parent(make) -> None:
    s = make()
    await s.open()
    await s.commit([Row("tasks", "j/a", b"1", "j", 1), Row("tasks", "k/a", b"1", "k", 2)])
    await s.commit([Row("tasks", "j/a", b"new", "j", 1)])
    await s.commit([Delete("tasks", parent="k")])
    await s.close()
    s2 = make()
    loaded = await s2.open()
    assert [(r.key, r.data) for r in loaded.tables["tasks"]] == [("j/a", b"new")]
    await s2.commit([Delete("tasks", "j/a")])
    await s2.close()
    s3 = make()
    assert (await s3.open()).tables["tasks"] == []
    await s3.close()


async def test_concurrent_commits_are_grouped(make) -> None:
    s = make()
    await s.open()
    await asyncio.gather(*(s.commit([Row("tasks", f"j/{i}", b"x", "j", i)]) for i in range(500)))
    if isinstance(s, SqliteStore):
        assert s.transactions < 500
    await s.close()
    s2 = make()
    assert len((await s2.open()).tables["tasks"]) == 500
    await s2.close()


async def test_commit_after_close_fails(make) -> None:
    s = make()
    await s.open()
    await s.close()
    with pytest.raises(RuntimeError):
        await s.commit([Row("pools", "p", b"x")])


async def test_tag_survives_reopen(make) -> None:
    s = make()
    await s.open()
    await s.commit([Row("tasks", "j/a", b"1", "j", 1, tag=3 | (1 << 8)), Row("tasks", "j/b", b"2", "j", 2)])
    await s.close()
    s2 = make()
    loaded = await s2.open()
    assert [(r.key, r.tag) for r in loaded.tables["tasks"]] == [("j/a", 3 | (1 << 8)), ("j/b", 0)]
    await s2.close()


async def test_sqlite_database_from_before_tags_opens(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "old.db")
    for t in ("pools", "nodes", "jobs", "tasks", "meta", "requests"):
        conn.execute(
            f"CREATE TABLE {t} (key TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '', "
            "seq INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL)"
        )
    conn.execute("INSERT INTO tasks VALUES ('j/a', 'j', 1, x'08')")
    conn.commit()
    conn.close()
    s = SqliteStore(tmp_path / "old.db")
    loaded = await s.open()
    assert loaded.tables["tasks"] == [StoredRow("j/a", b"\x08", "j", 1, 0)]
    await s.commit([Row("tasks", "j/b", b"", "j", 2, 5)])
    await s.close()


async def test_large_mixed_commits_keep_every_row_and_the_last_write(make) -> None:
    """Hundreds of rows in one commit (the backend may pack them several to a statement), runs of tables
    interleaved with deletes, then most of them rewritten."""
    s = make()
    await s.open()
    ops: list[Row | Delete] = [Row("tasks", f"j/t{i:03}", b"v1", "j", i, 1) for i in range(150)]
    ops += [Row("nodes", f"n{i}", b"node", "p") for i in range(70)]
    ops += [Delete("tasks", "j/t000")]
    ops += [Row("tasks", f"k/t{i:03}", b"v1", "k", 1000 + i) for i in range(129)]
    await s.commit(ops)
    await s.commit([Row("tasks", f"j/t{i:03}", b"v2", "j", i, 3) for i in range(1, 150, 2)])
    await s.close()
    s2 = make()
    loaded = await s2.open()
    tasks = {r.key: (r.data, r.tag, r.parent) for r in loaded.tables["tasks"]}
    assert len(tasks) == 149 + 129
    assert "j/t000" not in tasks
    assert tasks["j/t001"] == (b"v2", 3, "j") and tasks["j/t002"] == (b"v1", 1, "j")
    assert tasks["k/t128"] == (b"v1", 0, "k")
    assert [r.key for r in loaded.tables["tasks"]][:2] == ["j/t001", "j/t002"]  # seq order survives
    assert len(loaded.tables["nodes"]) == 70
    await s2.close()


async def test_sqlite_checkpoints_off_the_event_loop(tmp_path: Path) -> None:
    """Automatic checkpoints are off on the writing connection; the store runs its own on another thread."""
    from shoal.server.store import sqlite as backend

    s = backend.SqliteStore(tmp_path / "s.db")
    await s.open()
    per_commit = backend.CHECKPOINT_ROWS // 4 + 1
    for c in range(5):
        await s.commit([Row("tasks", f"j/t{c}-{i}", b"x" * 100, "j", c * per_commit + i) for i in range(per_commit)])
    for _ in range(500):
        if s.checkpoints:
            break
        await asyncio.sleep(0.01)
    assert s.checkpoints >= 1
    await s.close()
    s2 = backend.SqliteStore(tmp_path / "s.db")
    assert len((await s2.open()).tables["tasks"]) == 5 * per_commit
    await s2.close()


async def test_rows_with_equal_seq_load_in_key_order(make) -> None:
    s = make()
    await s.open()
    await s.commit([Row("nodes", "n2", b"2", "p"), Row("nodes", "n1", b"1", "p"), Row("nodes", "n3", b"3", "p")])
    await s.commit([Row("nodes", "n1", b"1b", "p")])
    await s.close()
    s2 = make()
    loaded = await s2.open()
    assert [(r.key, r.data) for r in loaded.tables["nodes"]] == [("n1", b"1b"), ("n2", b"2"), ("n3", b"3")]
    await s2.close()


def flat(rows: list[Row]) -> Rows:
    """`rows` (all of one table) as one `Rows`."""
    values: list[object] = []
    for r in rows:
        values += [r.key, r.parent, r.seq, r.data, r.tag]
    return Rows(rows[0].table, values)


def test_rows_give_back_their_rows() -> None:
    rows = [Row("tasks", f"j/{i}", b"d", "j", i, 7) for i in range(3)]
    assert list(flat(rows).rows()) == rows and flat(rows).size() == 3


@pytest.mark.parametrize("n", [1, 3, 64, 1023, 1024, 2 * 1024 + 64 + 5])
async def test_flat_rows_are_written_as_the_same_rows_one_by_one(make, n: int) -> None:
    """A `Rows` op writes what its rows, as `Row` ops, would: in order with the ops around it, updates in place."""
    s = make()
    await s.open()
    await s.commit([Row("pools", "p", b"x"), flat([Row("tasks", f"j/{i}", b"v1", "j", i, 1) for i in range(n)])])
    await s.commit(
        [
            flat([Row("tasks", f"j/{i}", b"v2", "j", i, 2) for i in range(0, n, 2)]),
            Delete("tasks", key="j/0"),
            flat([Row("tasks", "j/0", b"v3", "j", 0, 3)]),
        ]
    )
    await s.close()
    s2 = make()
    loaded = await s2.open()
    rows = loaded.tables["tasks"]
    assert [r.key for r in rows] == [f"j/{i}" for i in range(n)]
    expect = [(b"v3", 3) if i == 0 else (b"v2", 2) if i % 2 == 0 else (b"v1", 1) for i in range(n)]
    assert [(r.data, r.tag) for r in rows] == expect
    assert [r.key for r in loaded.tables["pools"]] == ["p"]
    await s2.close()


@pytest.mark.parametrize("n", [1, 3, 64, 1023, 1024, 2 * 1024 + 64 + 5])
async def test_runs_of_any_length_are_written_whole(make, n: int) -> None:
    s = make()
    await s.open()
    await s.commit([Row("tasks", f"j/{i}", f"v{i}".encode(), "j", i, i % 7) for i in range(n)])
    # An update of every other row, in place (their order by seq is kept).
    await s.commit([Row("tasks", f"j/{i}", b"new", "j", i, 9) for i in range(0, n, 2)])
    await s.close()
    s2 = make()
    rows = (await s2.open()).tables["tasks"]
    assert [r.key for r in rows] == [f"j/{i}" for i in range(n)]
    assert all(r.data == (b"new" if i % 2 == 0 else f"v{i}".encode()) for i, r in enumerate(rows))
    assert all(r.tag == (9 if i % 2 == 0 else i % 7) for i, r in enumerate(rows))
    await s2.close()


async def test_what_is_handed_over_while_a_commit_runs_goes_into_the_next_one(make) -> None:
    s = make()
    await s.open()
    big = s.submit([Row("tasks", f"j/a{i}", b"x", "j", i) for i in range(3000)])
    # Handed over while the first is written: one more transaction for all three.
    more = [
        s.submit([Row("tasks", f"j/b{k}-{i}", b"y", "j", 10_000 + 1000 * k + i) for i in range(300)]) for k in range(3)
    ]
    # Nothing to write: done once everything handed over before it is.
    after = s.submit([])
    await after
    assert big.done() and all(f.done() for f in more)
    if isinstance(s, SqliteStore):
        assert s.transactions == 2
    await s.close()
    s2 = make()
    assert len((await s2.open()).tables["tasks"]) == 3000 + 900
    await s2.close()


async def test_nothing_to_write_and_nothing_under_way_is_done_at_once(make) -> None:
    s = make()
    await s.open()
    assert s.submit([]).done()
    await s.close()


async def test_after_a_failed_commit_nothing_more_is_reported_committed(tmp_path: Path) -> None:
    from shoal.server.store.sqlite import StoreFailedError

    s = SqliteStore(tmp_path / "s.db")
    await s.open()
    with pytest.raises(sqlite3.OperationalError):
        await s.commit([Delete("no_such_table", "k")])
    # The control plane's memory may now hold what the database does not: nothing after is "done".
    with pytest.raises(StoreFailedError):
        await s.submit([])
    with pytest.raises(StoreFailedError):
        await s.commit([Row("tasks", "j/a", b"x", "j", 1)])
    await s.close()


def test_statements_fit_the_variable_limit_of_this_sqlite() -> None:
    from shoal.server.store.sqlite import ROWS_PER_STATEMENT, _write_rows, rows_per_statement

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE tasks (key TEXT PRIMARY KEY, parent TEXT, seq INTEGER, data BLOB, tag INTEGER)")
    assert rows_per_statement(conn) == ROWS_PER_STATEMENT
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # SQLite before 3.32
    most = rows_per_statement(conn)
    assert most == 128
    _write_rows(conn, "tasks", [Row("tasks", f"j/{i}", b"x", "j", i) for i in range(300)], most)
    assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (300,)
