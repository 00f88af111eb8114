"""The scheduler: a pure function from a snapshot to placements.

No gRPC, no database, no clock, no randomness: the applier in
``shoal.server.controllers.scheduler`` builds the snapshot, calls :func:`plan`,
re-checks every placement against the live state and commits the survivors.
Placements name a tuple of nodes so that a multi-instance task (a gang) is
placed whole or not at all. Each pool has its fill type (`Snapshot.packed`: spread tasks over its
nodes, or fill one node before the next), and a task may need dedicated nodes
(`PendingTask.dedicated_only`: never a low-priority one). :func:`fair_merge` makes the queue: jobs of equal
priority share a pool by taking turns, so that no job's stream of tasks starves
another's.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

TaskKey = tuple[str, str]  # (job key, task key)

_new_tuple = tuple.__new__


# Named tuples rather than frozen dataclasses: every pass builds one per node and per candidate,
# and a frozen dataclass's __init__ costs several times as much.
class NodeView(NamedTuple):
    """A node as the scheduler sees it."""

    node_id: str
    pool_id: str
    #: True when the node may take work (IDLE or RUNNING, connected, not leaving).
    schedulable: bool
    total_slots: int
    free_slots: int
    #: When everything running on it will have ended, going by wall-clock
    #: limits (`Snapshot.now` when idle); None when something runs without one.
    busy_until: float | None = None
    #: False for a low-priority (preemptible) node: a task that needs dedicated nodes never goes there.
    dedicated: bool = True


class PendingTask(NamedTuple):
    """A task waiting for a node, in queue order (see `Snapshot.queue`)."""

    key: TaskKey
    pool_id: str
    #: The attempt the task is on now; the placement runs attempt + 1.
    attempt: int
    required_slots: int = 1
    #: Nodes needed at once (multi-instance tasks); each gets `required_slots`.
    instances: int = 1
    job_priority: int = 0
    #: Its wall-clock limit in seconds, if it has one (makes it a backfill candidate).
    max_runtime: float | None = None
    #: The task's creation sequence number: tells the applier that the task placed is still the one
    #: planned for (not another added since under the same id).
    seq: int = 0
    #: Nodes it must not use (its job's preparation task failed there), if any.
    avoid: frozenset[str] | None = None
    #: It runs on dedicated nodes only (`NodeView.dedicated`), every instance of a gang too: its task's or
    #: its job's `dedicated_nodes_only`, or a job manager task that may not run on a low-priority node.
    dedicated_only: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What :func:`plan` decides from."""

    #: The nodes of the pools in `queue` (all of a pool's nodes when a gang is in `queue`).
    nodes: Sequence[NodeView]
    #: Already ordered: higher job priority first; jobs of equal priority take turns (`fair_merge`);
    #: a job's tasks oldest first.
    queue: Sequence[PendingTask]
    #: The pools whose fill type is PACK: a task goes to the node with the fewest free slots that still fits
    #: it, so that nodes fill one at a time. Every other pool spreads (SPREAD, the default): the node with
    #: the most free slots. Ties go by node id either way.
    packed: frozenset[str] = frozenset()
    #: The time `busy_until` is measured against (seconds; the caller's clock).
    now: float = 0.0


class Placement(NamedTuple):
    """Run `attempt` of task `key` on `nodes` (one node, or a gang)."""

    key: TaskKey
    attempt: int
    nodes: tuple[str, ...]
    slots_per_node: int
    #: `PendingTask.seq` of the task planned for.
    seq: int = 0


#: Why a multi-instance task waits (`Waiting.reason`), in the words of `describe`.
#: Fewer nodes of its pool can take an instance now than it needs: it holds no node (it stays
#: ACTIVE, since the pool may grow again or its nodes come back).
POOL_TOO_SMALL: Final = "PoolTooSmall"
#: It is the first gang of its pool that does not fit yet: nodes are held for it as they free up.
NODES_HELD: Final = "NodesHeld"
#: Another gang ahead of it in the queue holds the pool's nodes first.
BEHIND_GANG: Final = "WaitingForNodes"
#: It runs on dedicated nodes only, and fewer dedicated nodes of its pool can take an instance now than it
#: needs (the pool's low-priority nodes do not count for it): it holds no node, as with POOL_TOO_SMALL.
TOO_FEW_DEDICATED: Final = "TooFewDedicatedNodes"


class Waiting(NamedTuple):
    """Why a multi-instance task was not placed (see `describe`)."""

    #: POOL_TOO_SMALL, TOO_FEW_DEDICATED, NODES_HELD or BEHIND_GANG.
    reason: str
    #: Nodes it needs at once.
    instances: int
    #: Nodes of its pool that could take an instance now (schedulable, with the slots it needs; dedicated,
    #: when it needs them).
    usable: int


class Plan(NamedTuple):
    """What :func:`plan` decided."""

    #: In queue order.
    placements: list[Placement]
    #: The multi-instance tasks it considered and left waiting, with the reason. (Only gangs: they
    #: are few, and "why does my MPI job not start" deserves an answer; an ordinary task that waits
    #: waits for a slot.)
    waiting: dict[TaskKey, Waiting]


def describe(waiting: Waiting, pool_id: str) -> str:
    """`waiting` as told to users: its reason, a colon, and what it means for this task."""
    need = f"needs {waiting.instances} nodes at once"
    if waiting.reason == POOL_TOO_SMALL:
        return (
            f"{POOL_TOO_SMALL}: {need} and pool {pool_id} has {waiting.usable} that can take it now;"
            " it holds no nodes and waits in case the pool grows"
        )
    if waiting.reason == TOO_FEW_DEDICATED:
        return (
            f"{TOO_FEW_DEDICATED}: {need} on dedicated nodes and pool {pool_id} has {waiting.usable} dedicated"
            " nodes that can take it now (its low-priority nodes do not count); it holds no nodes and waits in"
            " case the pool grows"
        )
    if waiting.reason == NODES_HELD:
        return f"{NODES_HELD}: {need}; nodes of pool {pool_id} are held for it as they free up"
    return f"{waiting.reason}: {need}; nodes of pool {pool_id} are held for a multi-instance task ahead of it"


def fair_merge(jobs: Sequence[tuple[int, int, int, Iterator[str]]]) -> Iterator[tuple[int, str]]:
    """One pool's queue made from its jobs' queues: (index in `jobs`, task) in the order to offer them.

    `jobs` holds (priority, tasks running now, when last served, queue) per job, ordered by priority
    (highest first), then age (oldest first); "when last served" is any number that grows with time
    (the scheduler's pass that last placed a task of the job). Every task of a higher priority comes
    before any of a lower one. Among jobs of equal priority, the next task is the next of the job with
    the fewest tasks running plus offered so far in this merge; on a tie, the job served longest ago
    (in this merge: the one whose turn is furthest back), then the older. So a job that has the pool
    to itself makes room for one that comes in, a job whose tasks keep coming cannot starve a newer
    one (or its gang), and backlogged jobs take turns and end up running as many tasks each: max-min
    fair shares by tasks (a gang counts as one), the way a fair-share scheduler gives them.

    Lazy: a caller takes only its window, at O(log jobs) per task among jobs of equal priority.
    """
    i, n = 0, len(jobs)
    while i < n:
        priority = jobs[i][0]
        j = i + 1
        while j < n and jobs[j][0] == priority:
            j += 1
        if j == i + 1:
            # A job alone at its priority: its queue as it is.
            for task in jobs[i][3]:
                yield i, task
        else:
            turns = [(jobs[k][1], jobs[k][2], k) for k in range(i, j)]
            # A turn taken in this merge is later than any pass before it.
            tick = max(t[1] for t in turns)
            heapq.heapify(turns)
            while turns:
                count, _, k = turns[0]
                following = next(jobs[k][3], None)
                if following is None:
                    heapq.heappop(turns)
                    continue
                tick += 1
                heapq.heapreplace(turns, (count + 1, tick, k))
                yield k, following
        i = j


def plan(snapshot: Snapshot) -> Plan:
    """Place as much of the queue as fits, in queue order.

    Guarantees: no node gets more slots than it has free; only schedulable nodes
    of the task's pool are used; a gang is placed whole or not at all; a task is
    never passed over for a later one that needs no more than it does, so a
    higher-priority job's task is never skipped in favour of a lower one that
    fits the same node.

    Gangs do not starve: the first gang in a pool's queue that does not fit
    reserves the nodes closest to fitting it, and no later task is placed on
    them, so they drain until the gang fits. Backfill: a single-node task may
    still use a held node when its wall-clock limit says it ends before the
    gang could start anyway (every held node's `busy_until` known). A gang that
    cannot fit the pool as it is now (more instances than the pool has nodes
    that can take one) holds nothing and stops nothing behind it; it waits,
    and `Plan.waiting` says why. Gangs need every node of their pool in the
    snapshot (the scheduler's full pass).

    Each pool places by its own fill type (`Snapshot.packed`), single-node
    tasks, gangs and backfill alike. A task with `dedicated_only` is placed on
    dedicated nodes only; it waits while only low-priority nodes have room.
    Only pools with a low-priority node look at that flag at all.
    """
    free: dict[str, int] = {}
    pools: dict[str, _PoolIndex] = {}
    schedulable: dict[str, list[NodeView]] = {}
    packed = snapshot.packed
    #: Pools with a schedulable low-priority node: only there does a dedicated-only task see fewer nodes.
    mixed: set[str] = set()
    for n in snapshot.nodes:
        if n.schedulable:
            schedulable.setdefault(n.pool_id, []).append(n)
            if not n.dedicated:
                mixed.add(n.pool_id)
            if n.free_slots > 0:
                free[n.node_id] = n.free_slots
                index = pools.get(n.pool_id)
                if index is None:
                    index = pools[n.pool_id] = _PoolIndex(free, n.pool_id not in packed)
                index.add(n.node_id, n.dedicated)
    # (Checked once per plan: without low-priority nodes, no task's flag is read.)
    any_mixed = bool(mixed)
    reserved_pools: set[str] = set()
    #: Per pool with a reservation: when the waiting gang could start at the earliest (None: unknown).
    gang_start: dict[str, float | None] = {}
    busy = {n.node_id: n.busy_until for n in snapshot.nodes}
    placements: list[Placement] = []
    waiting: dict[TaskKey, Waiting] = {}
    #: Per (pool, slots per instance, dedicated only): the nodes that could take an instance of a gang now.
    usable: dict[tuple[str, int, bool], int] = {}
    # Smallest request that failed per pool: anything needing as much or more
    # cannot fit either, so it is skipped without a scan (keeps plan O(queue)).
    blocked: dict[str, tuple[int, int]] = {}
    # The same for dedicated-only tasks in pools with low-priority nodes (they see fewer nodes).
    blocked_dedicated: dict[str, tuple[int, int]] = {}
    for task in snapshot.queue:
        dedicated = any_mixed and task.dedicated_only and task.pool_id in mixed
        can = 0
        if task.instances > 1:
            shape = (task.pool_id, task.required_slots, dedicated)
            known = usable.get(shape)
            if known is None:
                known = usable[shape] = sum(
                    1
                    for v in schedulable.get(task.pool_id, ())
                    if v.total_slots >= task.required_slots and (v.dedicated or not dedicated)
                )
            can = known
            if can < task.instances:
                # It cannot fit the pool as it is now (the pool shrank, nodes are down): holding nodes
                # for it would only idle them and keep a gang that fits from holding them.
                waiting[task.key] = Waiting(TOO_FEW_DEDICATED if dedicated else POOL_TOO_SMALL, task.instances, can)
                continue
        index = pools.get(task.pool_id)
        if index is None:
            if task.instances > 1:
                # No node of the pool is free: nothing to hold yet, but it is first in line.
                waiting[task.key] = Waiting(
                    BEHIND_GANG if task.pool_id in reserved_pools else NODES_HELD, task.instances, can
                )
                reserved_pools.add(task.pool_id)
            continue
        need = (task.instances, task.required_slots)
        fails = blocked_dedicated if dedicated else blocked
        b = fails.get(task.pool_id)
        # A gang still gets to reserve nodes behind a blocked task, and a task
        # with a wall-clock limit may still backfill onto held nodes.
        backfill = task.instances == 1 and task.pool_id in reserved_pools and task.max_runtime is not None
        if (
            b is not None
            and need[0] >= b[0]
            and need[1] >= b[1]
            and (task.instances == 1 or task.pool_id in reserved_pools)
            and not backfill
        ):
            if task.instances > 1:
                waiting[task.key] = Waiting(BEHIND_GANG, task.instances, can)
            continue
        chosen: tuple[str, ...] | None
        avoid = task.avoid
        if avoid:
            # (Rare: a scan of the pool's free nodes without those it avoids.)
            nodes = [n for n in index.candidates(dedicated) if n not in avoid]
            chosen = _choose(nodes, free, task, index.spread)
            if chosen is not None:
                for node_id in chosen:
                    index.take(node_id, task.required_slots)
                placements.append(
                    _new_tuple(Placement, (task.key, task.attempt + 1, chosen, task.required_slots, task.seq))
                )
            continue
        if task.instances == 1:
            one = (index.on_dedicated() if dedicated else index).pick(task.required_slots)
            if one is None and backfill:
                one = _backfill(index, task, snapshot, gang_start.get(task.pool_id), busy, dedicated)
            chosen = (one,) if one is not None else None
        else:
            chosen = _choose(index.candidates(dedicated), free, task, index.spread)
        if chosen is None:
            if (b is None or (need[0] <= b[0] and need[1] <= b[1])) and not backfill:
                fails[task.pool_id] = need
            if task.instances > 1:
                if task.pool_id in reserved_pools:
                    waiting[task.key] = Waiting(BEHIND_GANG, task.instances, can)
                else:
                    reserved_pools.add(task.pool_id)
                    held = _reserve(schedulable.get(task.pool_id, []), free, task, dedicated)
                    # (In place: the index of the pool's dedicated nodes shares the set.)
                    index.reserved.update(held)
                    ends = [busy.get(n) for n in held]
                    gang_start[task.pool_id] = (
                        None if not held or any(e is None for e in ends) else max(e for e in ends if e is not None)
                    )
                    waiting[task.key] = Waiting(NODES_HELD, task.instances, can)
            continue
        for node_id in chosen:
            index.take(node_id, task.required_slots)
        # (Placement(...) without the Python-level __new__ of a named tuple: one per task placed.)
        placements.append(_new_tuple(Placement, (task.key, task.attempt + 1, chosen, task.required_slots, task.seq)))
    return _new_tuple(Plan, (placements, waiting))  # (without the Python-level __new__: a plan per pass)


class _PoolIndex:
    """The free nodes of one pool, bucketed by free slots, so a single-node pick is O(slot levels), not O(nodes)."""

    def __init__(self, free: dict[str, int], spread: bool) -> None:
        self.free = free
        #: The pool's fill type: SPREAD (True) or PACK (False).
        self.spread = spread
        self.nodes: list[str] = []
        self.levels: dict[int, list[str]] = {}
        #: `levels`' keys in the order `pick` tries them, made again when a level comes or goes (rarely:
        #: sorting them for every task placed cost more than the rest of the pick).
        self._order: list[int] | None = None
        self.reserved: set[str] = set()
        #: Its low-priority nodes (in most pools none).
        self.low: set[str] = set()
        #: The same index over its dedicated nodes only (sharing `free` and `reserved`), made for the first
        #: dedicated-only task that asks (`on_dedicated`) and kept up to date by `take` from then on.
        self._dedicated: _PoolIndex | None = None

    def add(self, node_id: str, dedicated: bool = True) -> None:
        self.nodes.append(node_id)
        if not dedicated:
            self.low.add(node_id)
        self._push(self.free[node_id], node_id)

    def _push(self, level: int, node_id: str) -> None:
        heap = self.levels.get(level)
        if heap is None:
            heap = self.levels[level] = []
            self._order = None
        heapq.heappush(heap, node_id)

    def on_dedicated(self) -> _PoolIndex:
        """This index without its low-priority nodes (what a dedicated-only task picks from)."""
        sub = self._dedicated
        if sub is None:
            sub = self._dedicated = _PoolIndex(self.free, self.spread)
            sub.reserved = self.reserved
            for node_id in self.nodes:
                if node_id not in self.low and self.free[node_id] > 0:
                    sub.add(node_id)
        return sub

    def pick(self, need: int) -> str | None:
        """The node with the most (spread) or fewest (pack) free slots ≥ `need`; ties by node id."""
        spread = self.spread
        levels = self._order
        if levels is None:
            levels = self._order = sorted(self.levels, reverse=spread)
        for lvl in levels:
            if lvl < need:
                if spread:
                    break
                continue
            heap = self.levels[lvl]
            # Entries are dropped lazily: a node whose free count moved on, or that is held for a gang.
            while heap and (self.free[heap[0]] != lvl or heap[0] in self.reserved):
                heapq.heappop(heap)
            if heap:
                return heap[0]
            del self.levels[lvl]
            self._order = None
        return None

    def take(self, node_id: str, slots: int) -> None:
        self.free[node_id] -= slots
        left = self.free[node_id]
        if left > 0:
            self._push(left, node_id)
            sub = self._dedicated
            if sub is not None and node_id not in self.low:
                sub._push(left, node_id)

    def candidates(self, dedicated: bool = False) -> list[str]:
        """Free, unreserved nodes (for gangs, which are rare enough to scan); only dedicated ones if asked."""
        if dedicated:
            return [n for n in self.nodes if self.free[n] > 0 and n not in self.reserved and n not in self.low]
        return [n for n in self.nodes if self.free[n] > 0 and n not in self.reserved]


def _backfill(
    index: _PoolIndex,
    task: PendingTask,
    snapshot: Snapshot,
    start: float | None,
    busy: dict[str, float | None],
    dedicated: bool,
) -> str | None:
    """A held node `task` can use without delaying the gang: it ends (by its wall clock) before the gang can start."""
    if start is None or task.max_runtime is None or snapshot.now + task.max_runtime > start:
        return None
    fits = [
        n for n in index.reserved if index.free.get(n, 0) >= task.required_slots and not (dedicated and n in index.low)
    ]
    if not fits:
        return None
    fits.sort(key=(lambda n: (-index.free[n], n)) if index.spread else (lambda n: (index.free[n], n)))
    return fits[0]


def _reserve(nodes: list[NodeView], free: dict[str, int], task: PendingTask, dedicated: bool) -> set[str]:
    """The nodes a waiting gang holds: those that can ever take an instance (dedicated ones only, when it
    needs them), closest to free first.

    (`plan` asks only for a gang that the pool's schedulable nodes can take.)"""
    able = [n for n in nodes if n.total_slots >= task.required_slots and (n.dedicated or not dedicated)]
    able.sort(key=lambda n: (-free.get(n.node_id, 0), n.node_id))
    return {n.node_id for n in able[: task.instances]}


def _choose(nodes: list[str], free: dict[str, int], task: PendingTask, spread: bool) -> tuple[str, ...] | None:
    fitting = [n for n in nodes if free[n] >= task.required_slots]
    if len(fitting) < task.instances:
        return None
    if spread:
        # Most free slots first; ties by node id so the result is deterministic.
        fitting.sort(key=lambda n: (-free[n], n))
    else:
        # Fewest free slots that fit first: the gang fills nodes already in use before opening others.
        fitting.sort(key=lambda n: (free[n], n))
    return tuple(fitting[: task.instances])
