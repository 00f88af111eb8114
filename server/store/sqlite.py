"""SQLite backend (WAL) with group commit on a single writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, groupby, islice
from operator import itemgetter, lt
from pathlib import Path

from shoal.server.store.base import TABLES, Delete, Loaded, Op, Row

log = logging.getLogger("shoal.store")

_SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '', "
    "seq INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL, tag INTEGER NOT NULL DEFAULT 0)"
    for t in TABLES
] + [f"CREATE INDEX IF NOT EXISTS {t}_parent ON {t}(parent)" for t in TABLES]
#: Rows per INSERT statement. SQLite gives up the GIL for every statement it steps and the writer
#: thread must win it back, from the event loop's thread, before the next: one statement per row
#: made a commit of a few hundred rows cost as many thread switches.
ROWS_PER_STATEMENT = 64
#: Transactions of at most this many rows are written on the event loop's thread (see _write_loop);
#: larger ones go to the writer thread, where SQLite's own work overlaps the event loop's.
INLINE_OPS = 100
#: Rows written between two WAL checkpoints.
CHECKPOINT_ROWS = 20_000


def _upsert(table: str, rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    if table == "tasks":
        # A task row's parent (its job) follows from its key ("job/task"), so an update in place need not
        # touch the parent index: a third cheaper than REPLACE's delete and insert, and tasks are most writes.
        return (
            f"INSERT INTO tasks (key, parent, seq, data, tag) VALUES {values} "
            "ON CONFLICT(key) DO UPDATE SET seq = excluded.seq, data = excluded.data, tag = excluded.tag"
        )
    return f"INSERT OR REPLACE INTO {table} (key, parent, seq, data, tag) VALUES {values}"


_UPSERT = {t: _upsert(t, 1) for t in TABLES}
_UPSERT_MANY = {t: _upsert(t, ROWS_PER_STATEMENT) for t in TABLES}


#: The order rows are loaded in: `seq`, then key (Row fields 4 and 1).
_SEQ_ORDER = itemgetter(4, 1)
#: A Row's values in the order of the INSERT's columns (key, parent, seq, data, tag), picked in C.
_VALUES = itemgetter(1, 3, 4, 2, 5)


def _run_of(op: Op) -> tuple[type, str]:
    return type(op), op.table


def _write_rows(conn: sqlite3.Connection, table: str, rows: list[Row]) -> None:
    """Upsert `rows` into `table`, ROWS_PER_STATEMENT to a statement.

    The per-row work is left to C (itemgetter, chain): this runs on the writer thread, and any
    Python it runs holds the GIL the event loop's thread needs.
    """
    values = list(map(_VALUES, rows))
    full = len(values) - len(values) % ROWS_PER_STATEMENT
    if full:
        conn.executemany(
            _UPSERT_MANY[table],
            (list(chain.from_iterable(values[i : i + ROWS_PER_STATEMENT])) for i in range(0, full, ROWS_PER_STATEMENT)),
        )
    if full < len(values):
        conn.executemany(_UPSERT[table], values[full:])


class SqliteStore:
    """Rows in one SQLite file; every :meth:`commit` waiting at the same moment shares a transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-store")
        self._pending: list[tuple[list[Op], asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._lock = threading.Lock()
        #: Transactions written (for tests and benchmarks).
        self.transactions = 0
        #: WAL checkpoints run here, on a connection of their own, never on the event loop's thread
        #: (where small transactions are written): a checkpoint writes back and syncs the database file.
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-store-ckpt")
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._rows_since_checkpoint = 0
        #: Checkpoints run (for tests).
        self.checkpoints = 0

    async def open(self) -> Loaded:
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(self._executor, self._open_sync)
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="shoal-store-writer")
        return loaded

    def _open_sync(self) -> Loaded:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (not a power cut).
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints are this store's to run (see _checkpointer), not the committing thread's.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        for stmt in _SCHEMA:
            conn.execute(stmt)
        for t in TABLES:
            # Databases written before the tag column existed get it (0: unknown).
            if "tag" not in {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}:
                conn.execute(f"ALTER TABLE {t} ADD COLUMN tag INTEGER NOT NULL DEFAULT 0")
        self._conn = conn
        loaded = Loaded()
        make = Row._make
        for t in TABLES:
            # In the order rows were first written, which is `seq` order for task rows as long as they
            # are updated in place (as this store does): then no sort, which for a million rows cost
            # ~0.6 s. Otherwise (rows replaced, so moved to the end; equal seqs, ordered by key) the
            # rows are put in (seq, key) order here.
            query = f"SELECT ?, key, data, parent, seq, tag FROM {t} ORDER BY rowid"
            rows = [make(r) for r in conn.execute(query, (t,))]
            seqs = [r.seq for r in rows]
            if not all(map(lt, seqs, islice(seqs, 1, None))):
                rows.sort(key=_SEQ_ORDER)
            loaded.tables[t] = rows
        return loaded

    async def commit(self, ops: list[Op]) -> None:
        if not ops:
            return
        if self._closed or self._wake is None:
            raise RuntimeError("store is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((ops, fut))
        self._wake.set()
        await fut

    async def _write_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                if self._closed:
                    return
                continue
            ops = [op for ops, _ in batch for op in ops]
            try:
                if len(ops) <= INLINE_OPS:
                    # Handing a small transaction to the writer thread and back (two thread wake-ups,
                    # an executor future) cost more than writing it; only large ones leave the loop.
                    self._apply_sync(ops)
                else:
                    await loop.run_in_executor(self._executor, self._apply_sync, ops)
            except Exception as e:  # the futures carry the failure to every waiter
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
                self._rows_since_checkpoint += len(ops)
                if self._rows_since_checkpoint >= CHECKPOINT_ROWS and self._checkpoint is None:
                    self._rows_since_checkpoint = 0
                    self._checkpoint = loop.run_in_executor(self._checkpointer, self._checkpoint_sync)
                    self._checkpoint.add_done_callback(self._checkpoint_done)
            if self._closed and not self._pending:
                return

    def _checkpoint_sync(self) -> None:
        if self._checkpoint_conn is None:
            self._checkpoint_conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # PASSIVE: copies what it can without waiting for (or blocking) the writer.
        self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.checkpoints += 1

    def _checkpoint_done(self, fut: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("WAL checkpoint failed: %s", fut.exception())

    def _apply_sync(self, ops: list[Op]) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            # Runs of rows for one table go in one executemany (order between runs is kept).
            for (kind, table), run in groupby(ops, _run_of):
                if kind is Row:
                    _write_rows(conn, table, list(run))  # type: ignore[arg-type]
                    continue
                for op in run:
                    assert isinstance(op, Delete)
                    if op.key:
                        conn.execute(f"DELETE FROM {op.table} WHERE key = ?", (op.key,))
                    else:
                        conn.execute(f"DELETE FROM {op.table} WHERE parent = ?", (op.parent,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.transactions += 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if self._writer is not None:
            await self._writer
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        if self._checkpoint_conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._checkpointer, self._checkpoint_conn.close)
            self._checkpoint_conn = None
        self._checkpointer.shutdown(wait=True)
        if self._conn is not None:
            conn = self._conn
            # The last connection to close checkpoints the whole WAL into the database.
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
