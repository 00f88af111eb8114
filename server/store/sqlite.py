"""SQLite backend (WAL) with group commit on a single writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, groupby, islice
from operator import itemgetter, lt
from pathlib import Path

from shoal.server.store.base import ROW_VALUES, TABLES, Delete, Loaded, Op, Row, Rows, StoredRow

log = logging.getLogger("shoal.store")

_SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '', "
    "seq INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL, tag INTEGER NOT NULL DEFAULT 0)"
    for t in TABLES
] + [f"CREATE INDEX IF NOT EXISTS {t}_parent ON {t}(parent)" for t in TABLES]
#: Rows per INSERT statement, at most: a power of two; a run of rows is written in statements of
#: this many, then of the powers of two its remainder is made of (64 + 16 + 2 for 82). SQLite gives
#: up the GIL for every statement it steps, and the writer thread must win it back before the next,
#: from an event loop thread that is busy: one statement per row made a commit of a few hundred rows
#: cost as many thread switches, and 64 rows per statement still left a 14,400-row commit 225
#: switches (1.8 s, up to 5 ms each) while the loop was busy.
ROWS_PER_STATEMENT = 1024
#: Transactions of at most this many rows are written on the event loop's thread (see _write_pending);
#: larger ones go to the writer thread, where SQLite's own work overlaps the event loop's.
INLINE_OPS = 100
#: How much of the database file the start-up read maps into memory (see _open_sync).
LOAD_MMAP_BYTES = 1 << 31
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


#: The statement for each table and each power of two up to ROWS_PER_STATEMENT rows.
_UPSERTS = {(t, 1 << k): _upsert(t, 1 << k) for t in TABLES for k in range(ROWS_PER_STATEMENT.bit_length())}


#: The order rows are loaded in: `seq`, then key (StoredRow fields 3 and 0).
_SEQ_ORDER = itemgetter(3, 0)
#: A Row's values in the order of the INSERT's columns (key, parent, seq, data, tag), picked in C.
_VALUES = itemgetter(1, 3, 4, 2, 5)


def _run_of(op: Op) -> tuple[type, str]:
    return type(op), op.table


def rows_per_statement(conn: sqlite3.Connection) -> int:
    """ROWS_PER_STATEMENT, or less where this SQLite binds fewer variables per statement (5 per row;
    999 in all before SQLite 3.32): the largest power of two that fits."""
    fits = max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 5)
    return min(ROWS_PER_STATEMENT, 1 << (fits.bit_length() - 1))


def _write_rows(conn: sqlite3.Connection, table: str, rows: list[Row], most: int = ROWS_PER_STATEMENT) -> None:
    """Upsert `rows` into `table` (see `_write_values`)."""
    _write_values(conn, table, list(chain.from_iterable(map(_VALUES, rows))), most)


def _write_values(conn: sqlite3.Connection, table: str, values: list[object], most: int = ROWS_PER_STATEMENT) -> None:
    """Upsert the rows whose values `values` holds flat (see `Rows`) into `table`, in as few statements of
    at most `most` rows (a power of two) as the sizes allow (see ROWS_PER_STATEMENT).

    Each statement's parameters are a slice of `values`: this runs on the writer thread, and any
    Python it runs holds the GIL the event loop's thread needs.
    """
    n = len(values) // ROW_VALUES
    done = 0
    size = most
    while done < n:
        while size > n - done:
            size >>= 1
        count = (n - done) // size * size
        step = size * ROW_VALUES
        start = done * ROW_VALUES
        conn.executemany(
            _UPSERTS[table, size], (values[i : i + step] for i in range(start, start + count * ROW_VALUES, step))
        )
        done += count


def _weight(ops: list[Op]) -> int:
    """Rows written (or deleted) by `ops`: a `Rows` counts as its rows."""
    return sum(op.size() if type(op) is Rows else 1 for op in ops)


class StoreFailedError(RuntimeError):
    """A commit refused because an earlier one failed (see `SqliteStore._fail`)."""


def _settle(batch: list[tuple[list[Op], asyncio.Future[None]]], error: BaseException | None) -> None:
    """Tell every waiter of a transaction how it went."""
    for _, fut in batch:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


class SqliteStore:
    """Rows in one SQLite file; every :meth:`commit` waiting at the same moment shares a transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-store")
        #: Handed in while a transaction was being written: the next transaction, all of them.
        self._pending: list[tuple[list[Op], asyncio.Future[None]]] = []
        #: A transaction is being written on the writer thread.
        self._writing = False
        #: Ops in `_pending`, and whether a small transaction is to be written at the next turn.
        self._pending_ops = 0
        self._write_soon = False
        #: Set while nothing is being written or waiting to be (close waits for it).
        self._idle: asyncio.Event | None = None
        self._closed = False
        self._rows_per_statement = ROWS_PER_STATEMENT
        #: The first transaction that failed: every later one fails too (see `submit`).
        self._failed: BaseException | None = None
        #: Transactions written and the rows they wrote (for tests, benchmarks and the metrics).
        self.transactions = 0
        self.rows_written = 0
        #: Called on the event loop's thread with each transaction's duration in seconds (BEGIN to
        #: COMMIT, on whichever thread wrote it) and its rows; None: not measured (see the metrics).
        self.commit_observer: Callable[[float, int], None] | None = None
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
        self._idle = asyncio.Event()
        self._idle.set()
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
        self._rows_per_statement = rows_per_statement(conn)
        loaded = Loaded()
        # StoredRow._make without its Python frame: a million rows are made here at a restart.
        make = functools.partial(tuple.__new__, StoredRow)
        # The whole database is read once: through a memory map, SQLite does not copy each page it reads
        # (a tenth of the read of a million rows). Only for this read: the writes that follow need none.
        conn.execute(f"PRAGMA mmap_size={LOAD_MMAP_BYTES}")
        for t in TABLES:
            # In the order rows were first written, which is `seq` order for task rows as long as they
            # are updated in place (as this store does): then no sort, which for a million rows cost
            # ~0.6 s. Otherwise (rows replaced, so moved to the end; equal seqs, ordered by key) the
            # rows are put in (seq, key) order here.
            query = f"SELECT key, data, parent, seq, tag FROM {t} ORDER BY rowid"
            rows: list[StoredRow] = list(map(make, conn.execute(query)))
            seqs = [r.seq for r in rows]
            if not all(map(lt, seqs, islice(seqs, 1, None))):
                rows.sort(key=_SEQ_ORDER)
            loaded.tables[t] = rows
        conn.execute("PRAGMA mmap_size=0")
        return loaded

    async def commit(self, ops: list[Op]) -> None:
        await self.submit(ops)

    def submit(self, ops: list[Op]) -> asyncio.Future[None]:
        """Hand `ops` over now; the future is done once they, and all handed over before, are committed.

        Group commit: handed over while a transaction is being written, `ops` wait for it to end and
        go, with everything else handed over meanwhile, into the next one, so the size of a transaction
        follows the time the last one took. Otherwise a large transaction starts on the writer thread
        at once, and small ones are written together at the next turn of the event loop. Either way no
        more than one turn passes before a commit starts: when the loop is busy, a turn is long (every
        agent stream with a report ready runs in it), and a commit started from a task of its own
        waited several turns.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._failed is not None:
            fut.set_exception(self._failure())
            return fut
        if not ops and not self._writing and not self._pending:
            fut.set_result(None)
            return fut
        if self._closed or self._idle is None:
            raise RuntimeError("store is closed")
        self._pending.append((ops, fut))
        self._pending_ops += _weight(ops)
        self._idle.clear()
        if self._writing:
            return fut
        if self._pending_ops > INLINE_OPS:
            # Large enough for the writer thread: it starts now.
            self._write_pending()
        elif not self._write_soon:
            # Small: written on this thread at the next turn, with every other small one of this turn.
            self._write_soon = True
            loop.call_soon(self._write_pending)
        return fut

    def _write_pending(self) -> None:
        """Write everything handed over as one transaction: a small one here, a large one on the writer
        thread (when it ends, the next starts: see `_written`)."""
        assert self._idle is not None
        self._write_soon = False
        if self._writing:
            return
        while self._pending:
            # (`_pending_ops` is the batch's weight: `submit` counted it.)
            batch, self._pending = self._pending, []
            weight, self._pending_ops = self._pending_ops, 0
            ops = [op for ops, _ in batch for op in ops]
            if self._failed is not None:
                _settle(batch, self._failure())
                continue
            if not ops:
                _settle(batch, None)  # (only waiting for what was handed over before them)
                continue
            if weight <= INLINE_OPS:
                # Handing a small transaction to the writer thread and back (two thread wake-ups,
                # an executor future) cost more than writing it; only large ones leave the loop.
                try:
                    seconds = self._apply_sync(ops)
                except Exception as e:  # the futures carry the failure to every waiter
                    self._fail(batch, e)
                else:
                    _settle(batch, None)
                    self._wrote(weight, seconds)
                continue
            self._writing = True
            done = asyncio.get_running_loop().run_in_executor(self._executor, self._apply_sync, ops)
            done.add_done_callback(functools.partial(self._written, batch, weight))
            return
        self._idle.set()

    def _written(
        self, batch: list[tuple[list[Op], asyncio.Future[None]]], rows: int, done: asyncio.Future[float]
    ) -> None:
        self._writing = False
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        if error is None:
            _settle(batch, None)
            self._wrote(rows, done.result())
        else:
            self._fail(batch, error)
        self._write_pending()

    def _fail(self, batch: list[tuple[list[Op], asyncio.Future[None]]], error: BaseException) -> None:
        """A transaction failed: its waiters get the error, and so does every later one. The control
        plane's memory now holds changes the database does not, so nothing after may be reported
        committed (a later transaction could succeed on its own and be taken to cover them)."""
        if self._failed is None:
            self._failed = error
            log.error("store: a transaction failed; every later commit fails too: %r", error)
        _settle(batch, error)

    def _failure(self) -> StoreFailedError:
        err = StoreFailedError(f"an earlier commit failed ({self._failed!r}); nothing more is committed")
        err.__cause__ = self._failed
        return err

    def _wrote(self, rows: int, seconds: float) -> None:
        """Count rows written (in `seconds`); past CHECKPOINT_ROWS, start a WAL checkpoint (if none is running)."""
        self.rows_written += rows
        if self.commit_observer is not None:
            self.commit_observer(seconds, rows)
        self._rows_since_checkpoint += rows
        if self._rows_since_checkpoint >= CHECKPOINT_ROWS and self._checkpoint is None:
            self._rows_since_checkpoint = 0
            self._checkpoint = asyncio.get_running_loop().run_in_executor(self._checkpointer, self._checkpoint_sync)
            self._checkpoint.add_done_callback(self._checkpoint_done)

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

    def _apply_sync(self, ops: list[Op]) -> float:
        """Write `ops` in one transaction; how long it took (seconds)."""
        conn = self._conn
        assert conn is not None
        start = time.perf_counter()
        conn.execute("BEGIN")
        try:
            # Runs of rows for one table go in one executemany (order between runs is kept).
            for (kind, table), run in groupby(ops, _run_of):
                if kind is Row:
                    _write_rows(conn, table, list(run), self._rows_per_statement)  # type: ignore[arg-type]
                    continue
                if kind is Rows:
                    for op in run:
                        _write_values(conn, table, op.values, self._rows_per_statement)  # type: ignore[union-attr]
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
        return time.perf_counter() - start

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._idle is not None:
            # What was handed over before is written first.
            await self._idle.wait()
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
