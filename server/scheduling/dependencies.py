"""Which tasks wait for which: a job's dependency index, a pure data structure (no I/O, no clock).

A dependent task D `depends_on` explicit task ids (matched by key, the id in lower case) and
inclusive ranges of integers. A task whose id is a decimal integer (ASCII digits only: "4", "04"
and "004" are all 4; "5flamingoes" is not) belongs to every range holding its value. Each of D's
parents is a *slot*: each listed id, and each integer of each range (an id listed twice, or an
integer in two overlapping ranges of D, is two slots). A slot is

- satisfied: the task with that key completed with dependency action SATISFY; for an integer, any
  task of that value did. **Satisfaction is final**: deleting or reactivating that task, or adding
  another task with the same key or value later, never un-satisfies the slot (a dependent that
  was released stays released);
- blocked: the task completed with dependency action BLOCK, or was deleted before it satisfied;
  for an integer, when no task of that value is satisfied or still unfinished and one of them is
  blocked ("04" failed while "4" still runs keeps the integer 4 waiting);
- waiting: otherwise (not finished yet, or not added yet: parents may be added after D).

D is READY when all its slots are satisfied, BLOCKED when any is blocked, else WAITING. A blocked
task that is reactivated (`unblocked`) waits again, and releases D if it then satisfies; a
deleted task whose id is added again (`task_added`) waits again. A deleted key is remembered as
deleted until it is added again (a dependent added later that names it is blocked by it).

Every event costs time proportional to the dependents it affects, never a walk over the job: a
dict maps each unsatisfied parent key to its dependents, and a dict of dyadic blocks
(level j, value >> j) maps integers to the dependents whose ranges hold them (a range sits in at
most two blocks per level, a point query is one dict lookup per level in use). Ranges are never
enumerated: a dependent keeps counters (slots, satisfied, blocked) and, when it arrives after some
integers finished, counts them in sorted sets built the first time a dependent has ranges.
Dependents removed while some of their parents are unsatisfied are dropped from those parents'
lists lazily (amortized constant time).

The index holds what the store holds: to rebuild it at restart, replay in any order
`add_dependent` for each unfinished dependent and, for each task key, its last state: `task_added`
(unfinished), `satisfied`, `blocked` (completed with BLOCK) or `deleted` (deleted and never
satisfied); the states reached do not depend on the order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

from sortedcontainers import SortedList

# Dependent status: the numbers of shoal.v1.DependencyStatus (READY is DEPENDENCY_STATUS_SATISFIED).
#: Not tracked (`status` of a key that is not a dependent).
UNTRACKED: Final = 0
WAITING: Final = 1
BLOCKED: Final = 2
READY: Final = 3

#: `DependencyView.reason` of a BLOCKED dependent: the parent completed with dependency action BLOCK.
REASON_TASK_FAILED: Final = "TaskFailed"
#: ... the parent was deleted before it satisfied.
REASON_TASK_DELETED: Final = "TaskDeleted"
#: `DependencyView.reason` of a WAITING dependent whose named parent does not exist yet.
REASON_NOT_ADDED: Final = "NotAdded"

#: Batch's limit on the ids of one task's depends_on, together.
MAX_TASK_IDS_CHARS: Final = 64_000
#: Shoal's limit on the ranges of one task's depends_on.
MAX_TASK_ID_RANGES: Final = 1_000
#: Range bounds are int64.
MAX_RANGE_END: Final = 2**63 - 1
_LEVELS: Final = 64

# What a key's task is known to have done (absent from `_keys`: never added).
_UNKNOWN: Final = 0
_PENDING: Final = 1  # added, not finished
_FAILED: Final = 2  # completed with dependency action BLOCK
_DELETED: Final = 3  # deleted before it satisfied
_SATISFIED: Final = 4  # completed with dependency action SATISFY: final

# What a slot is.
_WAIT: Final = 0
_BLOCK: Final = 1
_SAT: Final = 2

# Which status change an event reports (besides WAITING, BLOCKED, READY).
_UNBLOCKED: Final = 4

# Colours of the cycle search.
_GREY: Final = 1
_BLACK: Final = 2


def task_int_value(key: str) -> int | None:
    """The integer a task id stands for in ranges ("004" -> 4), or None when it is not all ASCII digits."""
    if key and key.isascii() and key.isdigit():
        return int(key)
    return None


def dependencies_problems(
    task_ids: Sequence[str], task_id_ranges: Sequence[tuple[int, int]], *, prefix: str = "depends_on"
) -> list[tuple[str, str]]:
    """What is wrong with a depends_on, as (field path below `prefix`, message) pairs; empty when nothing.

    Checks the sizes and the ranges; the format of each id is the caller's (the rule of task ids).
    """
    out: list[tuple[str, str]] = []
    chars = 0
    for task_id in task_ids:
        chars += len(task_id)
    if chars > MAX_TASK_IDS_CHARS:
        out.append((f"{prefix}.task_ids", f"the ids together have {chars} characters; at most {MAX_TASK_IDS_CHARS:,}"))
    if len(task_id_ranges) > MAX_TASK_ID_RANGES:
        out.append((f"{prefix}.task_id_ranges", f"{len(task_id_ranges)} ranges; at most {MAX_TASK_ID_RANGES:,}"))
    for i, (start, end) in enumerate(task_id_ranges):
        if start < 0:
            out.append((f"{prefix}.task_id_ranges[{i}].start", "must not be negative (task ids are unsigned integers)"))
        if end < start:
            out.append((f"{prefix}.task_id_ranges[{i}].end", f"must not be less than start ({start})"))
        elif end > MAX_RANGE_END:
            out.append((f"{prefix}.task_id_ranges[{i}].end", f"must be at most {MAX_RANGE_END}"))
    return out


def _range_problem(start: int, end: int) -> bool:
    return start < 0 or end < start or end > MAX_RANGE_END


class DependencyView(NamedTuple):
    """Where a dependent stands (shoal.v1.DependencyState)."""

    #: WAITING, BLOCKED or READY.
    status: int
    #: WAITING: one parent it waits for; BLOCKED: one parent that blocks it (the id as named, or the
    #: integer of a range in decimal); READY: "".
    task_id: str
    #: BLOCKED: REASON_TASK_FAILED or REASON_TASK_DELETED; WAITING: REASON_NOT_ADDED when that
    #: parent does not exist yet, else ""; READY: "".
    reason: str
    #: Slots not satisfied yet.
    unsatisfied: int


class DependentCounts(NamedTuple):
    """How many tracked dependents are in each status."""

    waiting: int
    blocked: int
    ready: int


class _Dep:
    """One tracked dependent: what it named, and counters over its slots."""

    __slots__ = ("alive", "blocked", "ids", "key", "ranges", "sat", "slots")

    def __init__(self, key: str, ids: tuple[str, ...], ranges: tuple[tuple[int, int], ...]) -> None:
        self.key = key
        #: As named (keys are their lower case).
        self.ids = ids
        self.ranges = ranges
        self.slots = 0
        self.sat = 0
        self.blocked = 0
        #: False once removed: lists still holding it skip it (lazy removal).
        self.alive = True

    def status(self) -> int:
        if self.sat == self.slots:
            return READY
        if self.blocked:
            return BLOCKED
        return WAITING


class _Bucket:
    """The dependents registered under one parent key or one dyadic block, with repeats."""

    __slots__ = ("dead", "deps")

    def __init__(self) -> None:
        self.deps: list[_Dep] = []
        #: Entries of removed dependents not dropped yet (may over-count: it only triggers compaction).
        self.dead = 0

    def bury(self) -> bool:
        """Count one entry as dead; compact when half are. True when the bucket is empty."""
        self.dead += 1
        if self.dead * 2 >= len(self.deps):
            self.deps = [d for d in self.deps if d.alive]
            self.dead = 0
        return not self.deps


def _blocks(start: int, end: int) -> list[tuple[int, int]]:
    """The canonical dyadic blocks (level j, prefix p), covering [p << j, (p + 1) << j), of [start, end]."""
    out: list[tuple[int, int]] = []
    s = start
    while s <= end:
        level = (end - s + 1).bit_length() - 1
        if s:
            aligned = (s & -s).bit_length() - 1
            if aligned < level:
                level = aligned
        out.append((level, s >> level))
        s += 1 << level
    return out


class _RangeIndex:
    """Which dependents' ranges hold an integer: dyadic blocks, one dict per level."""

    __slots__ = ("in_use", "levels", "used")

    def __init__(self) -> None:
        self.levels: list[dict[int, _Bucket]] = [{} for _ in range(_LEVELS)]
        #: Buckets per level.
        self.in_use: list[int] = [0] * _LEVELS
        #: The levels with buckets, ascending.
        self.used: list[int] = []

    def add(self, dep: _Dep, start: int, end: int) -> None:
        for level, prefix in _blocks(start, end):
            buckets = self.levels[level]
            bucket = buckets.get(prefix)
            if bucket is None:
                bucket = _Bucket()
                buckets[prefix] = bucket
                self.in_use[level] += 1
                if self.in_use[level] == 1:
                    self.used = sorted([*self.used, level])
            bucket.deps.append(dep)

    def remove(self, start: int, end: int) -> None:
        """Drop (lazily) one registration of a dead dependent over [start, end]."""
        for level, prefix in _blocks(start, end):
            buckets = self.levels[level]
            bucket = buckets.get(prefix)
            if bucket is not None and bucket.bury():
                del buckets[prefix]
                self.in_use[level] -= 1
                if self.in_use[level] == 0:
                    self.used = [u for u in self.used if u != level]

    def at(self, value: int) -> list[_Bucket]:
        """The buckets whose blocks hold `value`."""
        out: list[_Bucket] = []
        if value < 0 or value > MAX_RANGE_END:
            return out
        for level in self.used:
            bucket = self.levels[level].get(value >> level)
            if bucket is not None:
                out.append(bucket)
        return out


class _SortedInts:
    """A sorted set of ints with range counts and first-gap search."""

    __slots__ = ("items",)

    def __init__(self, values: list[int]) -> None:
        self.items = SortedList(values)

    def add(self, value: int) -> None:
        self.items.add(value)

    def remove(self, value: int) -> None:
        self.items.remove(value)

    def count(self, start: int, end: int) -> int:
        """How many members are in [start, end]."""
        n: int = self.items.bisect_right(end) - self.items.bisect_left(start)
        return n

    def first(self, start: int, end: int) -> int | None:
        """The least member in [start, end], or None."""
        i: int = self.items.bisect_left(start)
        if i < len(self.items):
            value: int = self.items[i]
            if value <= end:
                return value
        return None

    def first_gap(self, start: int, end: int) -> int | None:
        """The least integer in [start, end] that is not a member, or None."""
        items = self.items
        i: int = items.bisect_left(start)
        n = len(items)
        if i == n or items[i] != start:
            return start
        # Members are distinct, so items[k] - k never decreases: find the first k past the run of
        # consecutive members start, start + 1, ... (items[k] - k == start - i along the run).
        lo = i
        hi = n
        while lo < hi:
            mid = (lo + hi) // 2
            value: int = items[mid]
            if value - mid == start - i:
                lo = mid + 1
            else:
                hi = mid
        gap = start + (lo - i)
        return gap if gap <= end else None


def _key_slot(state: int) -> int:
    if state == _SATISFIED:
        return _SAT
    if state in (_FAILED, _DELETED):
        return _BLOCK
    return _WAIT


def _bump(counts: dict[int, int], value: int, by: int) -> None:
    n = counts.get(value, 0) + by
    if n:
        counts[value] = n
    else:
        del counts[value]


class DependencyIndex:
    """One job's dependency index. Keys are task ids in lower case; ids in `add_dependent` as named.

    Every method is deterministic; the lists returned are in registration order. A task may be
    both a dependent (`add_dependent` / `remove_dependent`) and a parent (`task_added`,
    `satisfied`, `blocked`, `unblocked`, `deleted`): the two roles are independent.
    """

    def __init__(self) -> None:
        self._deps: dict[str, _Dep] = {}
        self._keys: dict[str, int] = {}
        #: Unsatisfied parent key -> its dependents (dropped when the key satisfies).
        self._by_key: dict[str, _Bucket] = {}
        self._ranges = _RangeIndex()
        # Per integer value, how many tasks of that value are unfinished / failed / deleted; and
        # the satisfied values.
        self._int_pending: dict[int, int] = {}
        self._int_failed: dict[int, int] = {}
        self._int_deleted: dict[int, int] = {}
        self._int_sat: set[int] = set()
        # Built when the first dependent with ranges arrives: the integers that are satisfied or
        # blocked, and those blocked.
        self._done: _SortedInts | None = None
        self._blocked_ints: _SortedInts | None = None
        self._n_blocked = 0
        self._n_ready = 0
        #: How many tasks the last `cycle_among` explored (a diagnostic for tests and benches).
        self.cycle_check_visits = 0

    # -- reads ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._deps)

    def __contains__(self, d_key: str) -> bool:
        return d_key in self._deps

    def remembers_deletion(self, key: str) -> bool:
        """Whether task `key` is known as deleted before it satisfied (it blocks whoever names it). O(1)."""
        return self._keys.get(key, _UNKNOWN) == _DELETED

    def has_satisfied(self, key: str) -> bool:
        """Whether task `key` has satisfied its dependents (final, even once it is deleted). O(1)."""
        return self._keys.get(key, _UNKNOWN) == _SATISFIED

    def status(self, d_key: str) -> int:
        """WAITING, BLOCKED or READY; UNTRACKED when `d_key` is not a dependent here. O(1)."""
        d = self._deps.get(d_key)
        return UNTRACKED if d is None else d.status()

    def counts(self) -> DependentCounts:
        """Tracked dependents per status (for the job's task counts). O(1)."""
        n = len(self._deps)
        return DependentCounts(n - self._n_blocked - self._n_ready, self._n_blocked, self._n_ready)

    def state(self, d_key: str) -> DependencyView | None:
        """Where dependent `d_key` stands, with one parent it waits for or is blocked by; None if untracked.

        O(its ids + its ranges * log) (ranges are never enumerated).
        """
        d = self._deps.get(d_key)
        if d is None:
            return None
        status = d.status()
        unsatisfied = d.slots - d.sat
        if status == READY:
            return DependencyView(READY, "", "", 0)
        if status == BLOCKED:
            for task_id in d.ids:
                state = self._keys.get(task_id.lower(), _UNKNOWN)
                if state == _FAILED:
                    return DependencyView(BLOCKED, task_id, REASON_TASK_FAILED, unsatisfied)
                if state == _DELETED:
                    return DependencyView(BLOCKED, task_id, REASON_TASK_DELETED, unsatisfied)
            blocked_ints = self._blocked_ints
            if blocked_ints is not None:
                for start, end in d.ranges:
                    value = blocked_ints.first(start, end)
                    if value is not None:
                        reason = REASON_TASK_FAILED if value in self._int_failed else REASON_TASK_DELETED
                        return DependencyView(BLOCKED, str(value), reason, unsatisfied)
            raise AssertionError(f"dependent {d_key!r} counts a blocked slot it cannot find")
        for task_id in d.ids:
            state = self._keys.get(task_id.lower(), _UNKNOWN)
            if state == _UNKNOWN:
                return DependencyView(WAITING, task_id, REASON_NOT_ADDED, unsatisfied)
            if state == _PENDING:
                return DependencyView(WAITING, task_id, "", unsatisfied)
        done = self._done
        if done is not None:
            for start, end in d.ranges:
                value = done.first_gap(start, end)
                if value is not None:
                    reason = "" if value in self._int_pending else REASON_NOT_ADDED
                    return DependencyView(WAITING, str(value), reason, unsatisfied)
        raise AssertionError(f"dependent {d_key!r} counts a waiting slot it cannot find")

    # -- dependents ----------------------------------------------------------------------------

    def add_dependent(self, d_key: str, ids: Sequence[str], ranges: Sequence[tuple[int, int]]) -> int:
        """Track task `d_key`, which depends on `ids` and `ranges`; its status (READY at once when
        every parent has already satisfied it).

        O(ids + ranges * log). Raises ValueError if `d_key` is tracked already or a range is invalid
        (see `dependencies_problems`).
        """
        if d_key in self._deps:
            raise ValueError(f"task {d_key!r} is already a dependent")
        for start, end in ranges:
            if _range_problem(start, end):
                raise ValueError(f"invalid task id range {start}..{end}")
        d = _Dep(d_key, tuple(ids), tuple(ranges))
        slots = len(d.ids)
        for task_id in d.ids:
            key = task_id.lower()
            slot = _key_slot(self._keys.get(key, _UNKNOWN))
            if slot == _SAT:
                d.sat += 1
                continue  # final: nothing to hear from that key any more
            if slot == _BLOCK:
                d.blocked += 1
            bucket = self._by_key.get(key)
            if bucket is None:
                bucket = _Bucket()
                self._by_key[key] = bucket
            bucket.deps.append(d)
        if d.ranges:
            done, blocked_ints = self._sorted_ints()
            for start, end in d.ranges:
                slots += end - start + 1
                finished = done.count(start, end)
                blocked = blocked_ints.count(start, end)
                d.sat += finished - blocked
                d.blocked += blocked
                self._ranges.add(d, start, end)
        d.slots = slots
        self._deps[d_key] = d
        status = d.status()
        if status == READY:
            self._n_ready += 1
        elif status == BLOCKED:
            self._n_blocked += 1
        return status

    def remove_dependent(self, d_key: str) -> None:
        """Stop tracking `d_key` (it completed, or was deleted, or is being failed); no-op if untracked.

        O(its ids + its ranges * log), amortized.
        """
        d = self._deps.pop(d_key, None)
        if d is None:
            return
        d.alive = False
        status = d.status()
        if status == READY:
            self._n_ready -= 1
        elif status == BLOCKED:
            self._n_blocked -= 1
        for task_id in d.ids:
            key = task_id.lower()
            if self._keys.get(key, _UNKNOWN) == _SATISFIED:
                continue  # never registered, or its bucket went when the key satisfied
            bucket = self._by_key.get(key)
            if bucket is not None and bucket.bury():
                del self._by_key[key]
        for start, end in d.ranges:
            self._ranges.remove(start, end)

    # -- parent events -------------------------------------------------------------------------

    def task_added(self, key: str) -> list[str]:
        """Task `key` was added (or added again after a deletion); the dependents no longer blocked."""
        old = self._keys.get(key, _UNKNOWN)
        if old != _UNKNOWN and old != _DELETED:
            return []
        return self._move(key, _PENDING, _UNBLOCKED)

    def satisfied(self, key: str) -> list[str]:
        """Task `key` completed with dependency action SATISFY; the dependents it made READY."""
        return self._move(key, _SATISFIED, READY)

    def blocked(self, key: str) -> list[str]:
        """Task `key` completed with dependency action BLOCK; the dependents it made BLOCKED.

        No effect on a key that has satisfied (satisfaction is final).
        """
        if self._keys.get(key, _UNKNOWN) == _FAILED:
            return []
        return self._move(key, _FAILED, BLOCKED)

    def unblocked(self, key: str) -> list[str]:
        """Task `key`, which had blocked, was reactivated; the dependents no longer BLOCKED."""
        if self._keys.get(key, _UNKNOWN) != _FAILED:
            return []
        return self._move(key, _PENDING, _UNBLOCKED)

    def deleted(self, key: str) -> list[str]:
        """Task `key` was deleted; the dependents it made BLOCKED (none if it had satisfied)."""
        return self._move(key, _DELETED, BLOCKED)

    def fail_closure(self, dependents: Sequence[str]) -> list[str]:
        """Fail `dependents` (just reported BLOCKED) and, transitively, their own dependents.

        For a job whose on_dependency_failure is FAIL: each dependent in the closure is removed and
        its own key marked blocked, as though it completed with dependency action BLOCK (as the
        caller then completes it, failed with DependencyFailed), which may block further
        dependents, failed in turn. Returns every task to complete that way, `dependents` first,
        then breadth first; untracked keys are skipped. O(the closure's registrations). (Reactivating
        one of them later: `unblocked(key)` for its role as a parent, `add_dependent` again.)
        """
        out: list[str] = []
        queue = list(dependents)
        i = 0
        while i < len(queue):
            d_key = queue[i]
            i += 1
            if d_key not in self._deps:
                continue
            self.remove_dependent(d_key)
            out.append(d_key)
            queue.extend(self.blocked(d_key))
        return out

    # -- cycles --------------------------------------------------------------------------------

    def cycle_among(self, new: Mapping[str, tuple[Sequence[str], Sequence[tuple[int, int]]]]) -> list[str] | None:
        """A dependency cycle that adding `new` (key -> (ids, ranges)) would make, or None.

        The cycle is a list of keys, each depending on the next, the first repeated at the end
        (["a", "b", "a"]; ["a", "a"] for a task that depends on itself). A dependent depends on
        every task, existing or in `new`, that one of its ids names or whose integer value is in one
        of its ranges, through a slot not satisfied yet (a satisfied slot can never wait again).
        Only cycles through `new` are possible (the tracked dependents were checked when added): the
        search walks backwards from the tasks of `new`, to the dependents waiting for them, so its
        cost is that of the dependents (transitively) waiting for `new`, not the job's size. The
        ranges of `new` must be valid.
        """
        visits = 0
        fresh: dict[str, _Dep] = {}
        named: dict[str, list[str]] = {}
        fresh_ranges: _RangeIndex | None = None
        for key, (ids, ranges) in new.items():
            if not ids and not ranges:
                continue  # waits for nothing: on no cycle
            d = _Dep(key, tuple(ids), tuple(ranges))
            fresh[key] = d
            for task_id in d.ids:
                parent = task_id.lower()
                waiting = named.get(parent)
                if waiting is None:
                    named[parent] = [key]
                else:
                    waiting.append(key)
            if d.ranges:
                if fresh_ranges is None:
                    fresh_ranges = _RangeIndex()
                for start, end in d.ranges:
                    fresh_ranges.add(d, start, end)
        colour: dict[str, int] = {}
        path: list[str] = []
        waiters: list[list[str]] = []
        positions: list[int] = []
        for start_key in fresh:
            if start_key in colour:
                continue
            colour[start_key] = _GREY
            path.append(start_key)
            waiters.append(self._waiting_for(start_key, new, named, fresh_ranges))
            positions.append(0)
            visits += 1
            while path:
                top = len(path) - 1
                i = positions[top]
                if i == len(waiters[top]):
                    colour[path[top]] = _BLACK
                    path.pop()
                    waiters.pop()
                    positions.pop()
                    continue
                positions[top] = i + 1
                nxt = waiters[top][i]
                c = colour.get(nxt, 0)
                if c == _GREY:
                    self.cycle_check_visits = visits
                    # path[k + 1] waits for path[k], and nxt waits for path[top].
                    k = path.index(nxt)
                    cycle = [nxt]
                    j = top
                    while j > k:
                        cycle.append(path[j])
                        j -= 1
                    cycle.append(nxt)
                    return cycle
                if c == 0:
                    colour[nxt] = _GREY
                    path.append(nxt)
                    waiters.append(self._waiting_for(nxt, new, named, fresh_ranges))
                    positions.append(0)
                    visits += 1
        self.cycle_check_visits = visits
        return None

    def _waiting_for(
        self,
        key: str,
        new: Mapping[str, tuple[Sequence[str], Sequence[tuple[int, int]]]],
        named: dict[str, list[str]],
        fresh_ranges: _RangeIndex | None,
    ) -> list[str]:
        """The dependents, tracked (unless redefined in `new`) or new, with an unsatisfied slot on task `key`."""
        out: list[str] = []
        if self._keys.get(key, _UNKNOWN) != _SATISFIED:
            bucket = self._by_key.get(key)
            if bucket is not None:
                for d in bucket.deps:
                    if d.alive and d.key not in new:
                        out.append(d.key)
            fresh = named.get(key)
            if fresh is not None:
                out.extend(fresh)
        value = task_int_value(key)
        if value is not None and value not in self._int_sat:
            for bucket in self._ranges.at(value):
                for d in bucket.deps:
                    if d.alive and d.key not in new:
                        out.append(d.key)
            if fresh_ranges is not None:
                for bucket in fresh_ranges.at(value):
                    for d in bucket.deps:
                        out.append(d.key)
        return out

    # -- internals -----------------------------------------------------------------------------

    def _sorted_ints(self) -> tuple[_SortedInts, _SortedInts]:
        """The sorted sets of finished (satisfied or blocked) and blocked integers, built on first use."""
        done = self._done
        blocked_ints = self._blocked_ints
        if done is None or blocked_ints is None:
            blocked: list[int] = []
            for value in self._int_failed:
                if self._int_slot(value) == _BLOCK:
                    blocked.append(value)
            for value in self._int_deleted:
                if value not in self._int_failed and self._int_slot(value) == _BLOCK:
                    blocked.append(value)
            done = _SortedInts([*self._int_sat, *blocked])
            blocked_ints = _SortedInts(blocked)
            self._done = done
            self._blocked_ints = blocked_ints
        return done, blocked_ints

    def _int_slot(self, value: int) -> int:
        if value in self._int_sat:
            return _SAT
        if value in self._int_pending:
            return _WAIT
        if value in self._int_failed or value in self._int_deleted:
            return _BLOCK
        return _WAIT

    def _move(self, key: str, new_state: int, report: int) -> list[str]:
        """Set key `key` to `new_state`; the dependents whose status changed as `report` says."""
        old_state = self._keys.get(key, _UNKNOWN)
        out: list[str] = []
        if old_state in (new_state, _SATISFIED):
            return out
        self._keys[key] = new_state
        old_slot = _key_slot(old_state)
        new_slot = _key_slot(new_state)
        if old_slot != new_slot:
            bucket = self._by_key.pop(key, None) if new_slot == _SAT else self._by_key.get(key)
            if bucket is not None:
                for d in bucket.deps:
                    if d.alive:
                        self._shift(d, old_slot, new_slot, report, out)
        value = task_int_value(key)
        if value is not None:
            self._move_int(value, old_state, new_state, report, out)
        return out

    def _move_int(self, value: int, old_state: int, new_state: int, report: int, out: list[str]) -> None:
        """Count one task of integer `value` moving from `old_state` to `new_state`; shift its range dependents."""
        old_slot = self._int_slot(value)
        if old_state == _PENDING:
            _bump(self._int_pending, value, -1)
        elif old_state == _FAILED:
            _bump(self._int_failed, value, -1)
        elif old_state == _DELETED:
            _bump(self._int_deleted, value, -1)
        if new_state == _SATISFIED:
            self._int_sat.add(value)
        elif new_state == _PENDING:
            _bump(self._int_pending, value, 1)
        elif new_state == _FAILED:
            _bump(self._int_failed, value, 1)
        elif new_state == _DELETED:
            _bump(self._int_deleted, value, 1)
        new_slot = self._int_slot(value)
        if old_slot == new_slot:
            return
        done = self._done
        blocked_ints = self._blocked_ints
        if done is not None and blocked_ints is not None:
            if old_slot == _WAIT:
                done.add(value)
            elif new_slot == _WAIT:
                done.remove(value)
            if old_slot == _BLOCK:
                blocked_ints.remove(value)
            elif new_slot == _BLOCK:
                blocked_ints.add(value)
        for bucket in self._ranges.at(value):
            for d in bucket.deps:
                if d.alive:
                    self._shift(d, old_slot, new_slot, report, out)

    def _shift(self, d: _Dep, old_slot: int, new_slot: int, report: int, out: list[str]) -> None:
        """Move one of `d`'s slots; append `d` to `out` if its status changed the way `report` says."""
        before = d.status()
        if new_slot == _SAT:
            d.sat += 1
        if old_slot == _BLOCK:
            d.blocked -= 1
        elif new_slot == _BLOCK:
            d.blocked += 1
        after = d.status()
        if after == before:
            return
        if before == BLOCKED:
            self._n_blocked -= 1
        elif after == BLOCKED:
            self._n_blocked += 1
        if after == READY:
            self._n_ready += 1
        if after == report or (report == _UNBLOCKED and before == BLOCKED):
            out.append(d.key)


__all__ = [
    "BLOCKED",
    "MAX_RANGE_END",
    "MAX_TASK_IDS_CHARS",
    "MAX_TASK_ID_RANGES",
    "READY",
    "REASON_NOT_ADDED",
    "REASON_TASK_DELETED",
    "REASON_TASK_FAILED",
    "UNTRACKED",
    "WAITING",
    "DependencyIndex",
    "DependencyView",
    "DependentCounts",
    "dependencies_problems",
    "task_int_value",
]
