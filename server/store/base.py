"""The store interface: durable rows behind the in-memory model.

The control plane keeps its working state in memory and writes every change
through a :class:`Store`. A write is acknowledged (and so may be acted on or
reported to a client) only once :meth:`Store.commit` has returned. Backends
coalesce concurrent commits into one transaction (group commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

#: `tallies`: the task counters of the nodes whose counters a commit changed, with that commit (see
#: `Kernel._tally_row`).
#: `tombstones`: the ids of deleted tasks that had not satisfied the tasks depending on them, which stay
#: blocked by them (see `lifecycle.dependencies`); `parent` is the job.
#: `jobtasks`: per job and node, its preparation and release tasks' runs there (`lifecycle.jobprep`).
#: `accounts`: the tenants and their sealed keys, and the sealed administrator key (`server.accounts`).
#: `certificates`: the accounts' certificates, private keys sealed; `parent` is the account
#: (`server.certificates`).
#: `nodeusers`: the users of each node, password hashes only; `parent` is the node (`server.nodeusers`).
#: `applications`: the accounts' applications, each with its packages; `parent` is the account
#: (`server.applications`).
#: `usage`: the jobs' and pools' statistics, written every so often (`lifecycle.accounting`).
#: `schedules`: the job schedules, with their run counters (`lifecycle.schedules`).
#: `credentials`: the registry passwords of pools' container configurations, sealed; `parent` is the account
#: (`server.containers.credentials`).
TABLES = (
    "pools",
    "nodes",
    "jobs",
    "tasks",
    "meta",
    "requests",
    "tallies",
    "tombstones",
    "jobtasks",
    "accounts",
    "certificates",
    "nodeusers",
    "usage",
    "schedules",
    "applications",
    "credentials",
)


class Row(NamedTuple):
    """One stored row: `key` is unique within `table`; `data` is opaque bytes.

    A named tuple rather than a dataclass: a restart reads a million of them.
    """

    table: str
    key: str
    data: bytes
    #: Secondary grouping (the job of a task, the pool of a node); "" when unused.
    parent: str = ""
    #: Ordering within the table (creation sequence).
    seq: int = 0
    #: A small number the owner may read without decoding `data` (a task's state); 0 when unused.
    tag: int = 0


@dataclass(frozen=True)
class Delete:
    """Remove one row (`key`), or every row with `parent` when `key` is empty."""

    table: str
    key: str = ""
    parent: str = ""


#: Values per row in `Rows.values`.
ROW_VALUES = 5


class Rows(NamedTuple):
    """Many rows of one table, flat: `values` holds each row's key, parent, seq, data and tag in turn.

    The order is the one SQLite binds them in, so a store's writer thread, which holds the GIL while it
    gets rows ready and the event loop's thread waits for it, only slices the list: a busy flush writes
    tens of thousands of task rows, and making a tuple of each, then a flat list of them, was half of
    the writer's hold on the GIL.
    """

    table: str
    values: list[object]

    def size(self) -> int:
        """How many rows."""
        return len(self.values) // ROW_VALUES

    def rows(self) -> Iterator[Row]:
        """The same rows as `Row`s."""
        v = self.values
        for i in range(0, len(v), ROW_VALUES):
            key, parent, seq, data, tag = v[i : i + ROW_VALUES]
            yield Row(self.table, key, data, parent, seq, tag)  # type: ignore[arg-type]


Op = Row | Delete | Rows


class StoredRow(NamedTuple):
    """A row as read at start-up: a `Row` without its table (the list it is in says which). A restart
    reads a million task rows: the table's name, one more string per row, cost a tenth of the read."""

    key: str
    data: bytes
    parent: str
    seq: int
    tag: int


@dataclass
class Loaded:
    """Every row of every table, in `seq` order, as read at start-up."""

    tables: dict[str, list[StoredRow]] = field(default_factory=lambda: {t: [] for t in TABLES})


class Store(Protocol):
    """A durable home for rows."""

    async def open(self) -> Loaded:
        """Open (creating if needed) and read everything."""
        ...

    async def commit(self, ops: list[Op]) -> None:
        """Make `ops` durable, in order, atomically with respect to a crash."""
        ...

    def submit(self, ops: list[Op]) -> asyncio.Future[None]:
        """Hand `ops` over now, in order after everything handed over before; the future is done once
        they and everything before them are durable (`commit` is `await submit(ops)`; no ops: just wait
        for what was handed over before)."""
        ...

    async def close(self) -> None:
        """Finish pending commits and release the backend."""
        ...
