"""Accounting, decided purely: rolling attempts' statistics up into a task's, a job's, a pool's.

No I/O and no clock: the times come in as arguments. `lifecycle/accounting.py` applies these.

An attempt's statistics (`TaskStatistics`) add up field by field, except the peak memory, which is
the largest seen (sums of peaks of attempts that did not run at the same time would mean nothing).
A `Tally` is the running roll-up (`UsageStatistics`) as plain numbers, cheap to add to on the
completion path and turned into a message only when someone asks.
"""

from __future__ import annotations

import struct
from typing import Final

from google.protobuf import timestamp_pb2

from shoal.v1 import common_pb2

#: `TaskStatistics` fields that add up (all but the peak memory).
SUMMED: Final = (
    "wall_clock_seconds",
    "user_cpu_seconds",
    "kernel_cpu_seconds",
    "read_bytes",
    "write_bytes",
    "read_ops",
    "write_ops",
)
#: `UsageStatistics` counters.
COUNTERS: Final = ("tasks_succeeded", "tasks_failed", "task_retries", "task_requeues", "attempts")


def add_stats(into: common_pb2.TaskStatistics, s: common_pb2.TaskStatistics) -> None:
    """Add attempt (or instance) statistics `s` to `into`: sums, and the larger peak."""
    into.wall_clock_seconds += s.wall_clock_seconds
    into.user_cpu_seconds += s.user_cpu_seconds
    into.kernel_cpu_seconds += s.kernel_cpu_seconds
    into.read_bytes += s.read_bytes
    into.write_bytes += s.write_bytes
    into.read_ops += s.read_ops
    into.write_ops += s.write_ops
    if s.peak_memory_bytes > into.peak_memory_bytes:
        into.peak_memory_bytes = s.peak_memory_bytes


def add_instance(attempt: common_pb2.TaskStatistics, instance: common_pb2.TaskStatistics) -> None:
    """A multi-instance attempt sums its instances (peak: the largest instance's). Wall time too:
    node-seconds, as Batch sums its tasks' wall clock time."""
    add_stats(attempt, instance)


def seconds_between(start: timestamp_pb2.Timestamp, since: timestamp_pb2.Timestamp) -> float:
    """`start - since` in seconds, never negative (clocks of different machines, unset times)."""
    d = (start.seconds - since.seconds) + (start.nanos - since.nanos) / 1e9
    return d if d > 0 else 0.0


def waited_since(
    creation: timestamp_pb2.Timestamp, retried: timestamp_pb2.Timestamp, requeued: timestamp_pb2.Timestamp
) -> timestamp_pb2.Timestamp:
    """When the task last joined the queue: added, or retried, or requeued (the latest)."""
    best = creation
    for t in (retried, requeued):
        if (t.seconds, t.nanos) > (best.seconds, best.nanos):
            best = t
    return best


#: An attempt's statistics as plain numbers: wall, user and kernel CPU seconds, bytes read and written,
#: read and write calls, peak memory (read from the message once, added to several roll-ups).
Measured = tuple[float, float, float, int, int, int, int, int]


def measured(s: common_pb2.TaskStatistics) -> Measured:
    """`s` as plain numbers (see `Measured`)."""
    return (
        s.wall_clock_seconds,
        s.user_cpu_seconds,
        s.kernel_cpu_seconds,
        s.read_bytes,
        s.write_bytes,
        s.read_ops,
        s.write_ops,
        s.peak_memory_bytes,
    )


#: `Tally`'s fields that add up (all but the peak memory).
TALLY_SUMS: Final = (*SUMMED, *COUNTERS, "wait_seconds")


class Tally:
    """A running `UsageStatistics`, as plain numbers (see the module docstring)."""

    wall_clock_seconds: float
    user_cpu_seconds: float
    kernel_cpu_seconds: float
    peak_memory_bytes: int
    read_bytes: int
    write_bytes: int
    read_ops: int
    write_ops: int
    tasks_succeeded: int
    tasks_failed: int
    task_retries: int
    task_requeues: int
    wait_seconds: float
    attempts: int

    def __init__(self) -> None:
        self.wall_clock_seconds = 0.0
        self.user_cpu_seconds = 0.0
        self.kernel_cpu_seconds = 0.0
        self.peak_memory_bytes = 0
        self.read_bytes = 0
        self.write_bytes = 0
        self.read_ops = 0
        self.write_ops = 0
        self.tasks_succeeded = 0
        self.tasks_failed = 0
        self.task_retries = 0
        self.task_requeues = 0
        self.wait_seconds = 0.0
        self.attempts = 0

    def add_attempt(self, s: common_pb2.TaskStatistics, wait: float, *, count: bool = True) -> None:
        """One attempt's statistics (`count`: it is an attempt; not for an instance reported late)."""
        self.add_measured(measured(s), wait, count=count)

    def add_measured(self, m: Measured, wait: float, *, count: bool = True) -> None:
        """One attempt's statistics, read once (`measured`) for the several roll-ups it goes into."""
        self.wall_clock_seconds += m[0]
        self.user_cpu_seconds += m[1]
        self.kernel_cpu_seconds += m[2]
        self.read_bytes += m[3]
        self.write_bytes += m[4]
        self.read_ops += m[5]
        self.write_ops += m[6]
        if m[7] > self.peak_memory_bytes:
            self.peak_memory_bytes = m[7]
        self.wait_seconds += wait
        if count:
            self.attempts += 1

    def add_unmeasured(self, wait: float) -> None:
        """An attempt its agent did not measure: it counts, with its wait."""
        self.wait_seconds += wait
        self.attempts += 1

    def add_tally(self, other: Tally) -> None:
        """Another roll-up: sums, and the larger peak (the fields of `Tally` only, not a subclass's)."""
        self.peak_memory_bytes = max(self.peak_memory_bytes, other.peak_memory_bytes)
        for name in TALLY_SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_proto(self) -> common_pb2.UsageStatistics:
        """As the API returns it."""
        totals = common_pb2.TaskStatistics(peak_memory_bytes=self.peak_memory_bytes)
        for name in SUMMED:
            setattr(totals, name, getattr(self, name))
        out = common_pb2.UsageStatistics(totals=totals, wait_seconds=self.wait_seconds)
        for name in COUNTERS:
            setattr(out, name, getattr(self, name))
        return out

    @classmethod
    def from_proto(cls, u: common_pb2.UsageStatistics) -> Tally:
        """Back from its message (a stored roll-up)."""
        t = cls()
        t.peak_memory_bytes = u.totals.peak_memory_bytes
        for name in SUMMED:
            setattr(t, name, getattr(u.totals, name))
        for name in COUNTERS:
            setattr(t, name, getattr(u, name))
        t.wait_seconds = u.wait_seconds
        return t


def add_usage(into: common_pb2.UsageStatistics, attempt: common_pb2.TaskStatistics, wait: float) -> None:
    """A task's roll-up (`Task.stats`) gains one attempt's statistics and the wait before it."""
    add_stats(into.totals, attempt)
    into.wait_seconds += wait
    into.attempts += 1


# ---------------------------------------------------------------- the task's bytes (see `domain.wire`)

_TASK_CREATION_TIME: Final = 12
_DOUBLE: Final = struct.Struct("<d")


def _varint(data: bytes, i: int) -> tuple[int, int]:
    n = 0
    shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i
        shift += 7


def _timestamp_parts(data: bytes, i: int, end: int) -> tuple[int, int]:
    """A serialized Timestamp (`data[i:end]`): its fields 1 (seconds) and 2 (nanos)."""
    seconds = nanos = 0
    while i < end:
        tag = data[i]
        value, i = _varint(data, i + 1)
        if value >= 1 << 63:
            value -= 1 << 64  # (int64 and int32 are two's complement in 64 bits)
        if tag == 1 << 3:
            seconds = value
        elif tag == 2 << 3:
            nanos = value
        # (A Timestamp has no other field.)
    return seconds, nanos


def creation_parts(data: bytes) -> tuple[int, int]:
    """A stored task's `creation_time` (seconds, nanos), read from its bytes without parsing them: only
    its top-level fields are stepped over (the name and spec come first, then the state and the
    creation time). (0, 0) when it has none. This runs once per completion of a task kept as bytes."""
    i = 0
    end = len(data)
    while i < end:
        tag = data[i]
        i += 1
        if tag >= 0x80:
            tag, i = _varint(data, i - 1)
        kind = tag & 7
        if kind == 2:
            length = data[i]
            i += 1
            if length >= 0x80:
                length, i = _varint(data, i - 1)
            if tag >> 3 == _TASK_CREATION_TIME:
                return _timestamp_parts(data, i, i + length)
            i += length
        elif kind == 0:
            while data[i] >= 0x80:
                i += 1
            i += 1
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        else:
            break
    return 0, 0


def creation_time(data: bytes) -> timestamp_pb2.Timestamp:
    """`creation_parts` as a Timestamp."""
    seconds, nanos = creation_parts(data)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def since_parts(start: timestamp_pb2.Timestamp, since: tuple[int, int]) -> float:
    """`seconds_between` with `since` as (seconds, nanos): the same arithmetic, the same float."""
    d = (start.seconds - since[0]) + (start.nanos - since[1]) / 1e9
    return d if d > 0 else 0.0


#: The varint of every length below 128 (a statistics message is shorter).
_LENGTH: Final = [bytes([n]) for n in range(128)]


def _len_field(tag: bytes, body: bytes) -> bytes:
    n = len(body)
    if n < 128:
        return tag + _LENGTH[n] + body
    out = bytearray(tag)
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + body


#: `Task.execution_info` (14), `TaskExecutionInfo.last_attempt_stats` (10), `Task.stats` (22, a two-byte
#: tag), `UsageStatistics` fields: totals (1), tasks_succeeded (2), tasks_failed (3), wait_seconds (6,
#: a double), attempts (7).
_EXECUTION_INFO: Final = bytes([14 << 3 | 2])
_LAST_ATTEMPT_STATS: Final = bytes([10 << 3 | 2])
_TASK_STATS: Final = bytes([22 << 3 | 2 | 0x80, 1])
_TOTALS: Final = bytes([1 << 3 | 2])
#: Both completion counters written out, the zero too: a task Shoal ended before it ever ran (terminated
#: while queued, then reactivated) may hold the other one already, and merging keeps what is not written.
_SUCCEEDED: Final = bytes([2 << 3, 1, 3 << 3, 0])
_FAILED: Final = bytes([2 << 3, 0, 3 << 3, 1])
_WAIT: Final = bytes([6 << 3 | 1])
_ATTEMPTS_ONE: Final = bytes([7 << 3, 1])


def first_attempt_change(stats: bytes | None, wait: float, succeeded: bool) -> bytes:
    """What a task's first attempt, which completed it, adds to its stored bytes (appended, it merges
    into the message: see `domain.wire`): `last_attempt_stats` and `stats` (the task never ran: at most
    a completion counter is there, which this replaces).
    `stats`: the attempt's serialized `TaskStatistics`, None when its agent measured nothing."""
    tail = (_SUCCEEDED if succeeded else _FAILED) + _WAIT + _DOUBLE.pack(wait) + _ATTEMPTS_ONE
    if stats is None:
        return _len_field(_TASK_STATS, tail)
    usage = _len_field(_TOTALS, stats) + tail
    return _len_field(_EXECUTION_INFO, _len_field(_LAST_ATTEMPT_STATS, stats)) + _len_field(_TASK_STATS, usage)
