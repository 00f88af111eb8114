"""The scheduler loop: snapshot, pure plan, re-check, one group commit, then dispatch."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from shoal.server.controlplane import SCHEDULABLE_NODE_STATES, ControlPlane
from shoal.server.domain.records import JobRec, NodeRec, PoolRec, TaskKey, TaskRec
from shoal.server.scheduling.plan import (
    NodeView,
    PendingTask,
    Placement,
    Snapshot,
    Waiting,
    describe,
    fair_merge,
    plan,
)
from shoal.v1 import job_pb2, pool_pb2, task_pb2

log = logging.getLogger("shoal.scheduler")

_new_tuple = tuple.__new__
#: Index 0 for every task of a pool's only job (`_merged`).
_ZEROS = itertools.repeat(0)
#: Stamps of the applier's runs, for `JobRec.served`: they only need to grow.
_turns = itertools.count(1)


def queued_jobs(cp: ControlPlane) -> list[JobRec]:
    """Active jobs with tasks waiting, higher priority first, then older jobs (the order `fair_merge` takes).

    O(jobs with queued tasks), not O(jobs): a pass runs for every report, and finished jobs pile up.
    """
    jobs = []
    waiting = cp.waiting_jobs
    for key, j in list(waiting.items()):
        if not j.has_queued() or cp.jobs.get(key) is not j:
            del waiting[key]
        elif j.proto.state == job_pb2.JOB_STATE_ACTIVE:
            jobs.append(j)
    jobs.sort(key=lambda j: (-j.proto.priority, j.seq))
    return jobs


def _running(j: JobRec) -> int:
    """Tasks of `j` placed and not ended: its share of the pool, for `fair_merge`."""
    return j.counts[task_pb2.TASK_STATE_PREPARING] + j.counts[task_pb2.TASK_STATE_RUNNING]


def _merged(jobs: Sequence[JobRec]) -> Iterable[tuple[int, str]]:
    """The queue of one pool's `jobs` (in `queued_jobs` order): (index in `jobs`, task key), see `fair_merge`.

    A pool with one job waiting (the usual case) has that job's queue as it is, without the merge: a
    pass runs for every report, and with a stream per node that is a pass for about every task.
    """
    if len(jobs) == 1:
        return zip(_ZEROS, jobs[0].queued(), strict=False)
    return fair_merge([(j.proto.priority, _running(j), j.served, j.queued()) for j in jobs])


def _parallel_room(j: JobRec) -> int:
    """How many more of capped job `j`'s tasks may run at once (`max_parallel_tasks`)."""
    return max(0, j.proto.max_parallel_tasks - _running(j))


def _takes_work(n: NodeRec) -> bool:
    return n.connected and n.state in SCHEDULABLE_NODE_STATES and not n.scheduling_disabled


def _packs(pool: PoolRec) -> bool:
    """Whether `pool` fills one node before the next (fill type PACK; read for each pass, so that UpdatePool
    changes the next placements)."""
    return pool.proto.task_scheduling_policy.node_fill_type == pool_pb2.NODE_FILL_TYPE_PACK


def _dedicated_only(job: JobRec) -> bool:
    """Whether every task of `job` needs dedicated nodes (`Job.dedicated_nodes_only`)."""
    return job.proto.dedicated_nodes_only


def _members(cp: ControlPlane, only: Sequence[NodeRec] | None) -> dict[str, Iterable[NodeRec]]:
    """The nodes to look at, by pool: every pool's, or just those of `only`."""
    if only is None:
        return {key: pool.nodes.values() for key, pool in cp.pools.items()}
    by_pool: dict[str, dict[str, NodeRec]] = {}
    for n in only:
        if n.pool_key in cp.pools:
            by_pool.setdefault(n.pool_key, {})[n.key] = n
    return {key: nodes.values() for key, nodes in by_pool.items()}


def build_snapshot(
    cp: ControlPlane, only: Sequence[NodeRec] | None = None, waiting: list[JobRec] | None = None
) -> Snapshot:
    """What the scheduler needs to know, read from the live state without changing it.

    With `only`, just those nodes (and their pools' queues): the cheap pass made
    when some nodes reported and freed slots, which costs O(queue window +
    len(only)), not O(nodes). `waiting` is `queued_jobs(cp)` when the caller has it.
    """
    nodes: list[NodeView] = []
    free_by_pool: dict[str, int] = {}
    if only is not None:
        only = [n for n in only if n.task_slots > n.used_slots and _takes_work(n)]
        if not only:
            # No reporting node has room (RUNNING reports, say): nothing to look at.
            return Snapshot(nodes=[], queue=[])
    now = cp.clock.now().timestamp()
    if waiting is None:
        waiting = queued_jobs(cp)
    # Only pools with queued work need their nodes looked at.
    queued = {j.pool_key for j in waiting}
    #: The pools whose queues this pass looks at: with room (a pass over some nodes), or every active
    #: pool with queued work (the full pass, which also tells a waiting gang why it waits).
    looked: set[str] = set()
    records: list[NodeRec] = []
    packed: set[str] = set()
    #: Pools with a low-priority node that takes work in this snapshot: only there does a task's
    #: need for dedicated nodes matter (and is read).
    mixed: set[str] = set()
    for pool_key, members in _members(cp, only).items():
        pool = cp.pools[pool_key]
        if pool.proto.state != pool_pb2.POOL_STATE_ACTIVE or pool.key not in queued:
            continue
        if _packs(pool):
            packed.add(pool.key)
        for n in members:
            ok = _takes_work(n)
            free = max(0, n.task_slots - n.used_slots)
            if ok and not n.proto.is_dedicated:
                nodes.append(NodeView(n.key, pool.key, ok, n.task_slots, free, None, False))
                mixed.add(pool.key)
            else:
                nodes.append(NodeView(n.key, pool.key, ok, n.task_slots, free))
            records.append(n)
            if ok:
                free_by_pool[pool.key] = free_by_pool.get(pool.key, 0) + free
        if only is None or free_by_pool.get(pool.key, 0) > 0:
            looked.add(pool.key)
    by_pool: dict[str, list[JobRec]] = {}
    for j in waiting:
        if j.pool_key in looked and (not j.capped() or _parallel_room(j) > 0):
            by_pool.setdefault(j.pool_key, []).append(j)
    queue: list[PendingTask] = []
    # Each task takes at least one slot, so a pool never needs more candidates
    # than it has free slots (plus some slack for tasks that do not fit; when
    # one node's pass runs short of candidates, the caller runs the full pass).
    slack = 4 if only is not None else 64
    for pk, jobs in by_pool.items():
        left = free_by_pool.get(pk, 0) + slack
        pool = cp.pools[pk]
        slots_per_node = pool.proto.task_slots_per_node
        # A pass over some nodes leaves gangs to the full pass, except those with more instances than the
        # pool has nodes at all: they cannot fit, hold nothing there, and would only send every pass there.
        too_many = len(pool.nodes) if only is not None else -1
        # A full pool (a full pass looks at it to tell a waiting gang why it waits) offers its gangs
        # only: no ordinary task can be placed there, and `plan` need not go through them.
        gangs_only = free_by_pool.get(pk, 0) == 0
        candidates = _merged(jobs)
        managed = [j for j in jobs if j.jm_waiting()]
        if managed:
            # A job whose job manager task waits for a node offers that task alone, before the others.
            rest = [j for j in jobs if not j.jm_waiting()]
            jobs = managed + rest
            candidates = itertools.chain(
                ((i, j.jm_key or "") for i, j in enumerate(managed)),
                ((k + len(managed), tk) for k, tk in _merged(rest)),
            )
        # What `max_parallel_tasks` leaves each capped job (-1: no cap): it is offered no more.
        room = [_parallel_room(j) if j.capped() else -1 for j in jobs]
        # Nodes where a job's preparation task failed for good: its tasks avoid them.
        avoid = [frozenset(j.prep_failed) if j.prep_failed else None for j in jobs]
        # Whether each job's tasks all need dedicated nodes: read only where the pool has low-priority nodes.
        mixed_pool = pk in mixed
        dedicated = [mixed_pool and _dedicated_only(j) for j in jobs]
        for k, tk in candidates:
            if left <= 0:
                break
            j = jobs[k]
            r = room[k]
            if r >= 0:
                if r == 0:
                    left -= 1  # (a capped job's later tasks are passed over at the cost of a candidate each)
                    continue
                room[k] = r - 1
            rec = j.tasks[tk]
            shape = rec.shape()
            if too_many >= 0 and shape.instances > too_many:
                continue
            if gangs_only and not shape.multi_instance:
                left -= 1
                continue
            queue.append(
                PendingTask(
                    key=(j.key, tk),
                    pool_id=pk,
                    attempt=rec.attempt,
                    # An instance of a multi-instance task has its node to itself.
                    required_slots=slots_per_node if shape.multi_instance else shape.required_slots,
                    instances=shape.instances,
                    job_priority=j.proto.priority,
                    max_runtime=shape.max_runtime,
                    seq=rec.seq,
                    avoid=avoid[k],
                    dedicated_only=mixed_pool and (dedicated[k] or shape.dedicated_only),
                )
            )
            left -= 1
    if any(t.instances > 1 and free_by_pool.get(t.pool_id, 0) > 0 for t in queue):
        # When the nodes will be free matters only to the reservations gangs make (for backfill), and a
        # gang holds nodes only in a pool with a free one (`plan`): a full pool's gang is only told why.
        nodes = [v._replace(busy_until=_busy_until(cp, n, now)) for v, n in zip(nodes, records, strict=True)]
    return Snapshot(nodes=nodes, queue=queue, packed=frozenset(packed), now=now)


def build_ahead_snapshot(
    cp: ControlPlane,
    only: Sequence[NodeRec] | None = None,
    waiting: list[JobRec] | None = None,
    depths: dict[str, int] | None = None,
) -> Snapshot:
    """Work to send ahead to busy nodes, to start there the moment a slot frees (no round trip).

    Only for jobs whose tasks are short (a round trip is a large part of their
    life, and the wait behind a running task is short), and only while the
    queue, in order, holds nothing else: a gang, a task of a job not known to be
    short or of a job whose attempts are longer than those of the pool's first
    waiting job, or a task that needs more slots than a node has ends the pool's
    queue here, so no later task goes ahead of one that waits. The nodes offered
    are those with every slot taken, each with the room that the depth of the
    pool's first waiting job allows (`ControlPlane.ahead_depth`), recorded in
    `depths` by pool; `plan` decides as usual.
    """
    if cp.dispatch_ahead <= 0:
        return Snapshot(nodes=[], queue=[])
    nodes: list[NodeView] = []
    queue: list[PendingTask] = []
    packed: set[str] = set()
    if waiting is None:
        waiting = queued_jobs(cp)
    for pool_key, members in _members(cp, only).items():
        pool = cp.pools[pool_key]
        if pool.proto.state != pool_pb2.POOL_STATE_ACTIVE:
            continue
        # (The regular pass may just have emptied a queue: `waiting` was listed before it.) A job capped by
        # `max_parallel_tasks` has nothing sent ahead: work held on a node counts as running.
        jobs = [
            j
            for j in waiting
            if j.pool_key == pool.key and j.has_queued() and not j.capped() and not j.jm_waiting() and not j.prep_failed
        ]
        if not jobs:
            continue
        # Jobs take turns (`_merged`): the depth is that of the job whose task comes first.
        order = iter(_merged(jobs))
        head = next(order, None)
        if head is None:
            continue
        first = jobs[head[0]]
        depth = cp.ahead_depth(first)
        if not depth:
            continue
        if depths is not None:
            depths[pool.key] = depth
        room = 0
        # (As in `build_snapshot`: a task's need for dedicated nodes is read only where a low-priority node is offered.)
        mixed = False
        for n in members:
            slots = n.task_slots
            free = slots * (1 + depth) - n.used_slots
            if n.used_slots >= slots and free > 0 and _takes_work(n) and n.key not in cp.exclusive_nodes:
                if n.proto.is_dedicated:
                    nodes.append(NodeView(n.key, pool.key, True, slots, free))
                else:
                    nodes.append(NodeView(n.key, pool.key, True, slots, free, None, False))
                    mixed = True
                room += free
        if not room:
            continue
        if _packs(pool):
            packed.add(pool.key)
        slots_per_node = pool.proto.task_slots_per_node
        # A gang with more instances than the pool has nodes cannot fit: it holds nothing (see `plan`).
        pool_size = len(pool.nodes)
        append = queue.append
        current: JobRec | None = None
        # (A pool's only job comes as its queue with index 0, `_merged`: no merge's cost per task.)
        for k, tk in itertools.chain((head,), order):
            if room <= 0:
                break
            j = jobs[k]
            if j is not current:
                current = j
                if cp.ahead_depth(j) < depth:
                    # A job of longer (or unknown) attempts ends the pool's queue here: its work would
                    # wait on the nodes longer than the depth, taken from the job in front, allows.
                    break
                jk, tasks, priority = j.key, j.tasks, j.proto.priority
                job_dedicated = mixed and _dedicated_only(j)
            rec = tasks[tk]
            shape = rec.shape()
            need = shape.required_slots
            if shape.multi_instance and shape.instances > pool_size:
                continue
            if need > slots_per_node or shape.multi_instance:
                break
            # (PendingTask(key, pool_id, attempt, required_slots, instances, job_priority, max_runtime,
            # seq, avoid, dedicated_only), made without the Python-level __new__ of a named tuple: one per
            # task sent ahead.)
            append(
                _new_tuple(
                    PendingTask,
                    (
                        (jk, tk),
                        pool_key,
                        rec.attempt,
                        need,
                        1,
                        priority,
                        None,
                        rec.seq,
                        None,
                        mixed and (job_dedicated or shape.dedicated_only),
                    ),
                )
            )
            room -= need
    return Snapshot(nodes=nodes, queue=queue, packed=frozenset(packed))


def _busy_until(cp: ControlPlane, n: NodeRec, now: float) -> float | None:
    """When every attempt on `n` will have ended by its wall-clock limit (None: one has no limit)."""
    until = now
    for jk, tk in n.running:
        job = cp.jobs.get(jk)
        t = job.tasks.get(tk) if job else None
        if t is None:
            continue
        limit = t.shape().max_runtime
        if limit is None:
            return None
        if t.placed_as_bytes():
            start = now  # (no start recorded yet)
        else:
            info = t.read().execution_info
            start = info.start_time.ToNanoseconds() / 1e9 if info.HasField("start_time") else now
        until = max(until, start + limit)
    return until


def place(cp: ControlPlane, only: Sequence[NodeRec] | None = None) -> int:
    """One scheduling pass: plan, re-check each placement against the live state, record the survivors.

    Nothing is sent here: the StartTasks messages leave when the caller's next
    flush has committed the placements (persist, then act). Returns how many
    tasks were placed. With `only`, the pass looks at those nodes; it places
    nothing and returns -1 when a gang is waiting in the queue (gangs and their
    reservations need the whole pool: the full pass handles them).
    """
    observe = cp.pass_observer
    if observe is None:
        with cp.one_time():
            return _place(cp, only)
    start = time.perf_counter()
    with cp.one_time():
        placed = _place(cp, only)
    observe(time.perf_counter() - start, only is None)
    return placed


def _place(cp: ControlPlane, only: Sequence[NodeRec] | None) -> int:
    count = 0
    # (The wait of the first task of the regular plan is sampled: work sent ahead waits on its node.)
    sample = cp.wait_sampler
    for placements, ahead in _plans(cp, only):
        if placements is None:
            return -1
        count += _apply(cp, placements, ahead=ahead, sample=sample)
        sample = None
    return count


def _plans(cp: ControlPlane, only: Sequence[NodeRec] | None) -> Iterator[tuple[list[Placement] | None, dict[str, int]]]:
    """A pass's plans, each made when asked for, once the one before it has been applied: the regular
    one, then the work sent ahead (with, by pool, the depth it allows). With `only`, a gang waiting in
    the queue ends the pass (a None plan): gangs need the whole pool."""
    # One list for both: placing only empties queues, and both look past empty ones.
    waiting = queued_jobs(cp)
    snapshot = build_snapshot(cp, only, waiting)
    if only is not None and any(t.instances > 1 for t in snapshot.queue):
        yield None, {}
        return
    decided = plan(snapshot)
    if only is None:
        tell_waiting(cp, decided.waiting)
    yield decided.placements, {}
    if cp.dispatch_ahead > 0:
        depths: dict[str, int] = {}
        yield plan(build_ahead_snapshot(cp, only, waiting, depths)).placements, depths


def tell_waiting(cp: ControlPlane, waiting: Mapping[TaskKey, Waiting]) -> None:
    """Record why the gangs a full pass left waiting wait (`PoolRec.waiting`, shown as the task's
    `waiting_reason`), and give the watchers of their jobs each task whose reason changed.

    A full pass looks at every active pool with queued work, so a pool's reasons are replaced as a
    whole (those of tasks placed, deleted or no longer considered go). Gangs are few: this is
    O(pools + gangs waiting), and nothing is stored (the next pass after a restart tells again).
    """
    by_pool: dict[str, dict[TaskKey, str]] = {}
    for key, why in waiting.items():
        job = cp.jobs.get(key[0])
        if job is not None:
            by_pool.setdefault(job.pool_key, {})[key] = describe(why, job.proto.pool_id)
    for pk, pool in cp.pools.items():
        new = by_pool.get(pk)
        old = pool.waiting
        if not old and not new:
            continue
        new = new or {}
        pool.waiting = new
        for key in new.keys() | old.keys():
            reason = new.get(key, "")
            if reason == old.get(key, ""):
                continue
            job = cp.jobs.get(key[0])
            t = job.tasks.get(key[1]) if job is not None else None
            if job is not None and t is not None and job.watchers and t.state == task_pb2.TASK_STATE_ACTIVE:
                shown = task_pb2.Task()
                shown.CopyFrom(t.read())
                shown.waiting_reason = reason
                for q in job.watchers:
                    q.put_nowait([shown])


def _apply(
    cp: ControlPlane,
    placements: list[Placement],
    *,
    ahead: Mapping[str, int],
    sample: Callable[[TaskRec], None] | None = None,
) -> int:
    """Re-check each placement against the live state and record the survivors; how many were recorded.

    `ahead`: by pool, the assignments per slot a busy node may hold beyond its slots in this pass.
    `sample`: called with the first survivor before its placement is recorded (see `Kernel.wait_sampler`).
    """
    count = 0
    jobs, nodes, assign = cp.jobs, cp.nodes, cp.assign
    active_job, active_task = job_pb2.JOB_STATE_ACTIVE, task_pb2.TASK_STATE_ACTIVE
    # Placements come in runs of one job's: whether the job is active is read when the job changes
    # (nothing in this loop changes a job's state), and so is its turn recorded (`JobRec.served`, for
    # `fair_merge`; a placement dropped below still counts as a turn: rare, and harmless).
    last_job: JobRec | None = None
    job_active = False
    stamp = next(_turns)
    for p in placements:
        jk, tk = p.key
        job = jobs.get(jk)
        if job is not last_job:
            last_job, job_active = job, job is not None and job.proto.state == active_job
            if job_active and job is not None:
                job.served = stamp
        if not job_active or job is None:
            continue
        t = job.tasks.get(tk)
        if t is None:
            continue
        # (The same task as planned, not one added since under its id, still waiting on the same attempt.)
        if t.seq != p.seq or t.state != active_task or t.attempt + 1 != p.attempt:
            continue
        targets = []
        for nk in p.nodes:
            n = nodes.get(nk)
            if (
                n is None
                or n.state not in SCHEDULABLE_NODE_STATES
                or n.scheduling_disabled
                or not n.connected
                or n.task_slots * (1 + ahead.get(n.pool_key, 0)) - n.running.total < p.slots_per_node
            ):
                break
            targets.append(n)
        else:
            if sample is not None:
                sample(t)
                sample = None
            assign(t, targets, p.attempt, p.slots_per_node)
            count += 1
    return count


#: Placements recorded between two commits in a full pass (see `place_all`).
APPLY_CHUNK = 2048


async def place_all(cp: ControlPlane) -> int:
    """The full pass (every node), its placements recorded and committed `APPLY_CHUNK` at a time.

    One pass can place a great deal (work sent ahead to 10,000 busy nodes: 90,000 tasks, two seconds
    of recording and half a second of commit). Recorded in one go, no StartTasks would leave before
    all of it is committed, and nothing else would run meanwhile. In chunks, each chunk's commit runs
    on the store's thread while the next chunk is recorded, its StartTasks leave as soon as it is
    committed, and reports are taken in between. The applier re-checks every placement against the
    live state, so what changed in between (a report, a deletion, a pass over the reporting nodes)
    is seen; a placement no longer possible is dropped and the next pass takes the task up.
    """
    count = 0
    unflushed = 0
    committing: asyncio.Future[None] | None = None
    # (As in `_place`: the first task of the regular plan.)
    sample = cp.wait_sampler
    try:
        phases = _plans(cp, None)
        while True:
            with cp.one_time():
                placements, depths = next(phases, (None, {}))
            if placements is None:
                break
            for first in range(0, len(placements), APPLY_CHUNK):
                with cp.one_time():
                    placed = _apply(cp, placements[first : first + APPLY_CHUNK], ahead=depths, sample=sample)
                sample = None
                count += placed
                unflushed += placed
                if unflushed < APPLY_CHUNK:
                    continue
                # This chunk is collected for its commit now, in the step that recorded it (so that
                # nothing else, a kill say, joins its messages); the previous chunk's commit, under
                # way meanwhile, is waited for: at most two in flight, its StartTasks out before going on.
                unflushed = 0
                started = cp.start_flush()
                if committing is not None:
                    await committing
                else:
                    await asyncio.sleep(0)
                committing = started
    finally:
        if committing is not None:
            await committing
    if unflushed:
        await cp.flush()
    return count


async def run_scheduler(cp: ControlPlane) -> None:
    """Forever: wait for a reason to schedule, then place what fits and commit it."""
    cp.place_hook = lambda nodes=None: place(cp, nodes)
    while True:
        await cp.wait_for_kick()
        try:
            while True:
                start = time.perf_counter()
                placed = await place_all(cp)
                observe = cp.pass_observer
                if observe is not None:
                    observe(time.perf_counter() - start, True)
                if placed <= 0:
                    break
        except Exception:
            log.exception("scheduling pass failed")
