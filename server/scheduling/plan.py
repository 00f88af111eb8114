"""The scheduler: a pure function from a snapshot to placements.

No gRPC, no database, no clock, no randomness: the applier in
``shoal.server.controllers.scheduler`` builds the snapshot, calls :func:`plan`,
re-checks every placement against the live state and commits the survivors.
Placements name a tuple of nodes so that a multi-instance task (a gang) is
placed whole or not at all.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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


class PendingTask(NamedTuple):
    """A task waiting for a node, in queue order (job priority, then job age, then task age)."""

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


@dataclass(frozen=True)
class Snapshot:
    """What :func:`plan` decides from."""

    nodes: Sequence[NodeView]
    #: Already ordered: higher job priority first, then older jobs, then older tasks.
    queue: Sequence[PendingTask]
    #: Spread tasks over nodes (True) or fill one node before the next (False).
    spread: bool = True
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


def plan(snapshot: Snapshot) -> list[Placement]:
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
    gang could start anyway (every held node's `busy_until` known).
    """
    free: dict[str, int] = {}
    pools: dict[str, _PoolIndex] = {}
    schedulable: dict[str, list[NodeView]] = {}
    for n in snapshot.nodes:
        if n.schedulable:
            schedulable.setdefault(n.pool_id, []).append(n)
        if n.schedulable and n.free_slots > 0:
            free[n.node_id] = n.free_slots
            pools.setdefault(n.pool_id, _PoolIndex(free)).add(n.node_id)
    reserved_pools: set[str] = set()
    #: Per pool with a reservation: when the waiting gang could start at the earliest (None: unknown).
    gang_start: dict[str, float | None] = {}
    busy = {n.node_id: n.busy_until for n in snapshot.nodes}
    placements: list[Placement] = []
    # Smallest request that failed per pool: anything needing as much or more
    # cannot fit either, so it is skipped without a scan (keeps plan O(queue)).
    blocked: dict[str, tuple[int, int]] = {}
    for task in snapshot.queue:
        index = pools.get(task.pool_id)
        if index is None:
            continue
        need = (task.instances, task.required_slots)
        b = blocked.get(task.pool_id)
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
            continue
        chosen: tuple[str, ...] | None
        if task.instances == 1:
            one = index.pick(task.required_slots, snapshot.spread)
            if one is None and backfill:
                one = _backfill(index, task, snapshot, gang_start.get(task.pool_id), busy)
            chosen = (one,) if one is not None else None
        else:
            chosen = _choose(index.candidates(), free, task, snapshot.spread)
        if chosen is None:
            if (b is None or (need[0] <= b[0] and need[1] <= b[1])) and not backfill:
                blocked[task.pool_id] = need
            if task.instances > 1 and task.pool_id not in reserved_pools:
                reserved_pools.add(task.pool_id)
                held = _reserve(schedulable.get(task.pool_id, []), free, task)
                index.reserved |= held
                ends = [busy.get(n) for n in held]
                gang_start[task.pool_id] = (
                    None if not held or any(e is None for e in ends) else max(e for e in ends if e is not None)
                )
            continue
        for node_id in chosen:
            index.take(node_id, task.required_slots)
        # (Placement(...) without the Python-level __new__ of a named tuple: one per task placed.)
        placements.append(_new_tuple(Placement, (task.key, task.attempt + 1, chosen, task.required_slots, task.seq)))
    return placements


class _PoolIndex:
    """The free nodes of one pool, bucketed by free slots, so a single-node pick is O(slot levels), not O(nodes)."""

    def __init__(self, free: dict[str, int]) -> None:
        self.free = free
        self.nodes: list[str] = []
        self.levels: dict[int, list[str]] = {}
        #: `levels`' keys in the order `pick` tries them, made again when a level comes or goes (rarely:
        #: sorting them for every task placed cost more than the rest of the pick).
        self._order: list[int] | None = None
        self.reserved: set[str] = set()

    def add(self, node_id: str) -> None:
        self.nodes.append(node_id)
        self._push(self.free[node_id], node_id)

    def _push(self, level: int, node_id: str) -> None:
        heap = self.levels.get(level)
        if heap is None:
            heap = self.levels[level] = []
            self._order = None
        heapq.heappush(heap, node_id)

    def pick(self, need: int, spread: bool) -> str | None:
        """The node with the most (spread) or fewest (pack) free slots ≥ `need`; ties by node id."""
        levels = self._order
        if levels is None:
            # (`spread` is the snapshot's: the same for every pick of one plan.)
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

    def candidates(self) -> list[str]:
        """Free, unreserved nodes (for gangs, which are rare enough to scan)."""
        return [n for n in self.nodes if self.free[n] > 0 and n not in self.reserved]


def _backfill(
    index: _PoolIndex, task: PendingTask, snapshot: Snapshot, start: float | None, busy: dict[str, float | None]
) -> str | None:
    """A held node `task` can use without delaying the gang: it ends (by its wall clock) before the gang can start."""
    if start is None or task.max_runtime is None or snapshot.now + task.max_runtime > start:
        return None
    fits = [n for n in index.reserved if index.free.get(n, 0) >= task.required_slots]
    if not fits:
        return None
    fits.sort(key=(lambda n: (-index.free[n], n)) if snapshot.spread else (lambda n: (index.free[n], n)))
    return fits[0]


def _reserve(nodes: list[NodeView], free: dict[str, int], task: PendingTask) -> set[str]:
    """The nodes a waiting gang holds: those that can ever take an instance, closest to free first."""
    able = [n for n in nodes if n.total_slots >= task.required_slots]
    if len(able) < task.instances:
        return set()  # it cannot fit even on an empty pool: holding nodes would only idle them
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
        fitting.sort(key=lambda n: (free[n], n))
    return tuple(fitting[: task.instances])
