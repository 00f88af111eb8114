"""The pure scheduler: examples and hypothesis properties."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.scheduling.plan import (
    BEHIND_GANG,
    NODES_HELD,
    POOL_TOO_SMALL,
    NodeView,
    PendingTask,
    Placement,
    Snapshot,
    Waiting,
    describe,
    fair_merge,
    plan,
)


def placements(snap: Snapshot) -> list[Placement]:
    return plan(snap).placements


def node(i: int, free: int, total: int = 4, pool: str = "p", ok: bool = True) -> NodeView:
    return NodeView(f"n{i}", pool, ok, total, free)


def task(i: int, *, pool: str = "p", slots: int = 1, instances: int = 1, prio: int = 0, job: str = "j") -> PendingTask:
    return PendingTask((job, f"t{i}"), pool, 0, slots, instances, prio)


def test_places_in_queue_order_and_spreads() -> None:
    out = placements(Snapshot([node(1, 2), node(2, 2)], [task(i) for i in range(5)]))
    assert [p.key[1] for p in out] == ["t0", "t1", "t2", "t3"]
    assert Counter(p.nodes[0] for p in out) == {"n1": 2, "n2": 2}
    assert all(p.attempt == 1 for p in out)


def test_skips_nodes_that_are_not_schedulable_or_in_other_pools() -> None:
    out = placements(Snapshot([node(1, 4, ok=False), node(2, 4, pool="q")], [task(0)]))
    assert out == []


def test_gang_is_whole_or_nothing() -> None:
    out = placements(Snapshot([node(1, 1), node(2, 1)], [task(0, instances=3), task(1, instances=2)]))
    assert [(p.key[1], len(p.nodes)) for p in out] == [("t1", 2)]


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    n_nodes = draw(st.integers(0, 8))
    nodes = []
    for i in range(n_nodes):
        total = draw(st.integers(1, 4))
        nodes.append(
            NodeView(
                f"n{i}", draw(st.sampled_from(["a", "b"])), draw(st.booleans()), total, draw(st.integers(0, total))
            )
        )
    queue = [
        PendingTask(
            ("j", f"t{i}"),
            draw(st.sampled_from(["a", "b"])),
            draw(st.integers(0, 3)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 3)),
            draw(st.integers(-5, 5)),
        )
        for i in range(draw(st.integers(0, 30)))
    ]
    queue.sort(key=lambda t: -t.job_priority)
    return Snapshot(nodes, queue, frozenset(draw(st.sets(st.sampled_from(["a", "b"])))))


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_properties(snap: Snapshot) -> None:
    out = placements(snap)
    by_id = {n.node_id: n for n in snap.nodes}
    pending = {t.key: t for t in snap.queue}
    used: Counter[str] = Counter()
    for p in out:
        t = pending[p.key]
        # A gang is placed whole, on distinct nodes, each schedulable and in the task's pool.
        assert len(p.nodes) == t.instances == len(set(p.nodes))
        assert p.attempt == t.attempt + 1
        for nid in p.nodes:
            n = by_id[nid]
            assert n.schedulable and n.pool_id == t.pool_id
            used[nid] += t.required_slots
    # Never more slots on a node than it has free.
    for nid, slots in used.items():
        assert slots <= by_id[nid].free_slots
    # A task left out could not have fitted where a later task (needing no more) was placed:
    placed = {p.key for p in out}
    order = [t.key for t in snap.queue]
    for i, t in enumerate(snap.queue):
        if t.key in placed:
            continue
        for later in snap.queue[i + 1 :]:
            if later.key in placed and later.pool_id == t.pool_id:
                assert not (later.instances >= t.instances and later.required_slots >= t.required_slots), (
                    f"{t.key} passed over for {later.key} in {order}"
                )


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_higher_priority_first_when_both_fit_the_same_node(snap: Snapshot) -> None:
    out = placements(snap)
    placed = {p.key for p in out}
    for i, hi in enumerate(snap.queue):
        if hi.key in placed:
            continue
        for lo in snap.queue[i + 1 :]:
            if lo.key in placed and lo.job_priority < hi.job_priority and lo.pool_id == hi.pool_id:
                assert not (lo.instances >= hi.instances and lo.required_slots >= hi.required_slots)


def test_waiting_gang_reserves_nodes_so_later_tasks_cannot_starve_it() -> None:
    # n1 busy, n2 and n3 free; a 3-node gang cannot fit yet. The ordinary task
    # after it must not take n2 or n3: they are held for the gang.
    nodes = [node(1, 0, total=1), node(2, 1, total=1), node(3, 1, total=1)]
    out = placements(Snapshot(nodes, [task(0, instances=3), task(1)]))
    assert out == []
    # Without the gang, the ordinary task runs.
    assert len(placements(Snapshot(nodes, [task(1)]))) == 1
    # Once n1 frees up, the gang is placed whole.
    nodes[0] = node(1, 1, total=1)
    out = placements(Snapshot(nodes, [task(0, instances=3), task(1)]))
    assert [(p.key[1], sorted(p.nodes)) for p in out] == [("t0", ["n1", "n2", "n3"])]


def test_gang_reservation_leaves_other_nodes_usable() -> None:
    # A gang of 3 whole 2-slot nodes fits nowhere yet; it holds the three nodes closest
    # to free (n3, then n1 and n2 by id), and n4 stays usable by ordinary work.
    nodes = [node(1, 1, total=2), node(2, 1, total=2), node(3, 2, total=2), node(4, 1, total=2)]
    out = placements(Snapshot(nodes, [task(0, instances=3, slots=2), task(1), task(2)]))
    assert [(p.key[1], p.nodes) for p in out] == [("t1", ("n4",))]


def reference_plan(snap: Snapshot) -> list[tuple[tuple[str, str], tuple[str, ...]]]:
    """The obvious O(queue x nodes log nodes) planner, for single-node tasks without reservations."""
    free = {n.node_id: n.free_slots for n in snap.nodes if n.schedulable and n.free_slots > 0}
    pool_of = {n.node_id: n.pool_id for n in snap.nodes}
    out = []
    for t in snap.queue:
        fitting = [n for n in free if pool_of[n] == t.pool_id and free[n] >= t.required_slots]
        if not fitting:
            continue
        spread = t.pool_id not in snap.packed
        fitting.sort(key=(lambda n: (-free[n], n)) if spread else (lambda n: (free[n], n)))
        free[fitting[0]] -= t.required_slots
        out.append((t.key, (fitting[0],)))
    return out


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_single_node_tasks_match_the_reference_planner(snap: Snapshot) -> None:
    single = Snapshot(snap.nodes, [t for t in snap.queue if t.instances == 1], snap.packed)
    assert [(p.key, p.nodes) for p in placements(single)] == reference_plan(single)


def test_gang_behind_a_blocked_whole_node_task_still_reserves() -> None:
    nodes = [node(1, 3, total=4), node(2, 3, total=4)]
    queue = [task(0, slots=4), task(1, slots=4, instances=2)] + [task(i) for i in range(2, 6)]
    # The 4-slot task and the gang wait; the gang holds both nodes, so the small tasks may not take them.
    assert placements(Snapshot(nodes, queue)) == []


def test_backfill_only_with_work_that_ends_before_the_gang_can_start() -> None:
    # A 2-node gang waits: n1 is busy until t=100 (wall-clock limits say so), n2 is idle and held.
    nodes = [
        NodeView("n1", "p", True, 1, 0, busy_until=100.0),
        NodeView("n2", "p", True, 1, 1, busy_until=0.0),
    ]
    gang = task(0, instances=2)
    short = PendingTask(("j", "short"), "p", 0, max_runtime=60.0)
    long = PendingTask(("j", "long"), "p", 0, max_runtime=500.0)
    unbounded = PendingTask(("j", "unbounded"), "p", 0)
    out = placements(Snapshot(nodes, [gang, long, unbounded, short], now=0.0))
    # Only the task that is sure to be done by t=100 may use the held node.
    assert [(p.key[1], p.nodes) for p in out] == [("short", ("n2",))]
    # When the busy node's end is unknown, nothing backfills.
    nodes[0] = NodeView("n1", "p", True, 1, 0, busy_until=None)
    assert placements(Snapshot(nodes, [gang, short], now=0.0)) == []


# ---------------------------------------------------------------- jobs of equal priority take turns


def merged(jobs: list[tuple[str, int, int, list[str]]], served: list[int] | None = None) -> list[str]:
    """`fair_merge` over (job, priority, running, tasks) (served: never, or `served`), as "job/task" strings."""
    stamps = served or [0] * len(jobs)
    out = fair_merge([(p, running, s, iter(ts)) for (_, p, running, ts), s in zip(jobs, stamps, strict=True)])
    return [f"{jobs[k][0]}/{t}" for k, t in out]


def test_equal_priority_jobs_alternate_from_equal_shares() -> None:
    assert merged([("a", 0, 0, ["1", "2", "3"]), ("b", 0, 0, ["1", "2"])]) == ["a/1", "b/1", "a/2", "b/2", "a/3"]


def test_a_job_that_has_the_pool_makes_room_for_one_that_comes_in() -> None:
    # "a" runs 3 tasks already, "b" none: b's first three come first, then they alternate (ties: the older).
    order = merged([("a", 0, 3, ["1", "2", "3"]), ("b", 0, 0, ["1", "2", "3", "4", "5"])])
    assert order == ["b/1", "b/2", "b/3", "a/1", "b/4", "a/2", "b/5", "a/3"]


def test_on_equal_shares_the_job_served_longest_ago_goes_first() -> None:
    # One slot, two jobs of one-at-a-time tasks: both run nothing whenever the slot frees. The job that
    # was served last waits its turn (by age alone, the older job would take the slot every time).
    assert merged([("a", 0, 0, ["1"]), ("b", 0, 0, ["1"])], served=[7, 3]) == ["b/1", "a/1"]
    assert merged([("a", 0, 0, ["1"]), ("b", 0, 0, ["1"])], served=[3, 7]) == ["a/1", "b/1"]


def test_higher_priority_jobs_come_first_whatever_they_run() -> None:
    order = merged([("hi", 5, 100, ["1", "2"]), ("lo", 0, 0, ["1"]), ("lo2", 0, 0, ["1"])])
    assert order == ["hi/1", "hi/2", "lo/1", "lo2/1"]


def test_merge_is_lazy() -> None:
    # A caller takes only its window: an endless queue is fine.
    endless = (str(i) for i in itertools.count())
    out = fair_merge([(0, 0, 0, endless), (0, 0, 0, iter(["x"]))])
    assert [t for _, t in itertools.islice(out, 4)] == ["0", "x", "1", "2"]


@st.composite
def job_queues(draw: st.DrawFn) -> list[tuple[str, int, int, list[str]]]:
    jobs = []
    for j in range(draw(st.integers(0, 5))):
        n = draw(st.integers(0, 8))
        jobs.append((f"j{j}", draw(st.integers(-1, 1)), draw(st.integers(0, 6)), [f"t{i}" for i in range(n)]))
    jobs.sort(key=lambda j: -j[1])  # (stable: the jobs' age order within a priority)
    return jobs


@settings(max_examples=300, deadline=None)
@given(job_queues(), st.lists(st.integers(0, 3), min_size=5, max_size=5))
def test_merge_properties(jobs: list[tuple[str, int, int, list[str]]], stamps: list[int]) -> None:
    served = stamps[: len(jobs)]
    order = merged(jobs, served)
    # Every task once, each job's own order kept.
    assert sorted(order) == sorted(f"{j}/{t}" for j, _, _, ts in jobs for t in ts)
    for j, _, _, ts in jobs:
        assert [o.split("/")[1] for o in order if o.split("/")[0] == j] == ts
    prio = {j: p for j, p, _, _ in jobs}
    rank = {j: i for i, (j, _, _, _) in enumerate(jobs)}
    # Higher priority first.
    assert [prio[o.split("/")[0]] for o in order] == sorted((prio[o.split("/")[0]] for o in order), reverse=True)
    # Each task comes from the job with the fewest running + offered among the equal-priority jobs that still
    # have tasks; ties: the one served (or offered) longest ago, then the oldest.
    share = {j: running for j, _, running, _ in jobs}
    last = {j: served[rank[j]] for j in share}
    left = {j: len(ts) for j, _, _, ts in jobs}
    tick = max(served, default=0)
    for o in order:
        j = o.split("/")[0]
        rivals = [r for r in left if left[r] and prio[r] == prio[j]]
        alone = len([r for r in share if prio[r] == prio[j]]) == 1
        assert alone or min(rivals, key=lambda r: (share[r], last[r], rank[r])) == j
        share[j] += 1
        left[j] -= 1
        tick += 1
        last[j] = tick


# ---------------------------------------------------------------- a gang that cannot fit holds nothing


def test_gang_too_big_for_the_pool_holds_nothing_and_says_why() -> None:
    # The pool shrank to 3 nodes under a 4-node gang. A 2-node gang behind it holds nodes as they free up;
    # ordinary work may not take them (it did: the impossible gang marked the pool reserved, holding nothing).
    nodes = [node(1, 1, total=1), node(2, 0, total=1), node(3, 0, total=1)]
    out = plan(Snapshot(nodes, [task(0, instances=4), task(1, instances=2), task(2)]))
    assert out.placements == []
    assert out.waiting[("j", "t0")] == Waiting(POOL_TOO_SMALL, 4, 3)
    assert out.waiting[("j", "t1")] == Waiting(NODES_HELD, 2, 3)
    assert describe(out.waiting[("j", "t0")], "mpi").startswith("PoolTooSmall: needs 4 nodes at once")
    # Alone, the impossible gang leaves ordinary work alone.
    out = plan(Snapshot(nodes, [task(0, instances=4), task(2)]))
    assert [p.key[1] for p in out.placements] == ["t2"]
    # A node that is down does not count: 4 nodes, one of them not schedulable.
    nodes = [node(1, 1, total=1), node(2, 1, total=1), node(3, 1, total=1), node(4, 1, total=1, ok=False)]
    out = plan(Snapshot(nodes, [task(0, instances=4), task(2)]))
    assert [p.key[1] for p in out.placements] == ["t2"] and out.waiting[("j", "t0")].usable == 3


def test_reasons_of_gangs_that_wait_behind_another() -> None:
    nodes = [node(1, 1, total=1), node(2, 0, total=1), node(3, 0, total=1)]
    out = plan(Snapshot(nodes, [task(0, instances=3), task(1, instances=2), task(2, instances=3)]))
    assert out.placements == []
    assert {k[1]: w.reason for k, w in out.waiting.items()} == {"t0": NODES_HELD, "t1": BEHIND_GANG, "t2": BEHIND_GANG}
    # With no node free at all, the first gang is still the one nodes will be held for.
    busy = [node(1, 0, total=1), node(2, 0, total=1)]
    out = plan(Snapshot(busy, [task(0, instances=2), task(1, instances=2)]))
    assert {k[1]: w.reason for k, w in out.waiting.items()} == {"t0": NODES_HELD, "t1": BEHIND_GANG}


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.integers(0, 30), st.integers(1, 3))
def test_a_gang_that_cannot_fit_the_pool_holds_no_node(snap: Snapshot, at: int, slots: int) -> None:
    usable = sum(1 for n in snap.nodes if n.schedulable and n.pool_id == "a" and n.total_slots >= slots)
    gang = PendingTask(("big", "g"), "a", 0, slots, max(2, usable + 1))
    queue = list(snap.queue)
    queue.insert(min(at, len(queue)), gang)
    with_gang = plan(Snapshot(snap.nodes, queue, snap.packed))
    # Exactly what happens without it: it holds nothing, blocks nothing.
    assert with_gang.placements == plan(snap).placements
    assert with_gang.waiting[gang.key] == Waiting(POOL_TOO_SMALL, gang.instances, usable)


# ---------------------------------------------------------------- rounds: no job starves another


def simulate(
    n_nodes: int, jobs: list[list[tuple[int, int]]], rounds: int, *, slots: int = 1, busy_for: int = 0
) -> list[list[tuple[int, int]]]:
    """Rounds of the scheduler's full pass over one pool, its queue made as `build_snapshot` makes it.

    `jobs`: per job (oldest first, all of equal priority), its tasks in queue order as (instances, rounds
    it runs); an ordinary task takes one slot, each instance of a gang a whole node. With `busy_for`,
    every slot starts busy with a task of job 0 that ends in that round. Returns, per round, the
    (job, task index) placed in it.
    """
    free = {f"n{i}": slots for i in range(n_nodes)}
    ends: list[tuple[int, int, tuple[str, ...], int]] = []  # (round, job, nodes, slots on each)
    usage = [0] * len(jobs)
    served = [0] * len(jobs)
    if busy_for:
        for nid in free:
            ends += [(busy_for, 0, (nid,), 1)] * slots
            free[nid] = 0
        usage[0] = n_nodes * slots
        served[0] = 1  # (placed before round 0, whose placements are stamped 2)
    queued = [list(range(len(ts))) for ts in jobs]
    log: list[list[tuple[int, int]]] = []
    for r in range(rounds):
        for end in [e for e in ends if e[0] <= r]:
            ends.remove(end)
            usage[end[1]] -= 1
            for nid in end[2]:
                free[nid] += end[3]
        queue = []
        merge = fair_merge([(0, usage[j], served[j], (str(i) for i in queued[j])) for j in range(len(jobs))])
        for k, t in itertools.islice(merge, sum(free.values()) + 64):
            instances = jobs[k][int(t)][0]
            queue.append(PendingTask((str(k), t), "p", 0, slots if instances > 1 else 1, instances))
        out = plan(Snapshot([NodeView(n, "p", True, slots, f) for n, f in free.items()], queue)).placements
        placed = []
        for p in out:
            k, i = int(p.key[0]), int(p.key[1])
            for nid in p.nodes:
                free[nid] -= p.slots_per_node
            ends.append((r + jobs[k][i][1], k, p.nodes, p.slots_per_node))
            usage[k] += 1
            served[k] = r + 2
            queued[k].remove(i)
            placed.append((k, i))
        log.append(placed)
    return log


def first_round(log: list[list[tuple[int, int]]], task: tuple[int, int]) -> int:
    """The round in which `task` (job, index) was placed (a large number: never)."""
    return next((r for r, placed in enumerate(log) if task in placed), 10**9)


def test_a_stream_in_an_older_job_does_not_starve_a_newer_gang_or_a_third_job() -> None:
    # The case: 4 nodes busy with an older job's stream of 1-round tasks, a newer job's 4-node
    # gang, and a third job's ordinary task. Before: the gang and the third job waited for the stream to end.
    stream = [(1, 1)] * 200
    log = simulate(4, [stream, [(4, 3)], [(1, 1)]], rounds=12, busy_for=1)
    gang_round, third_round = first_round(log, (1, 0)), first_round(log, (2, 0))
    assert gang_round <= 2 and third_round <= gang_round + 4, log
    # Nothing of the stream took a node the gang was waiting for.
    assert sum(1 for placed in log[: gang_round + 1] for k, _ in placed if k == 0) == 0


def test_a_stream_in_a_newer_job_does_not_starve_an_older_gang_or_a_third_job() -> None:
    stream = [(1, 1)] * 200
    # Job 0 (the gang's, oldest) starts with the nodes busy for 1 round; the stream is job 1, a third job 2.
    log = simulate(4, [[(4, 3)], stream, [(1, 1)]], rounds=12, busy_for=1)
    gang_round, third_round = first_round(log, (0, 0)), first_round(log, (2, 0))
    assert gang_round <= 2 and third_round <= gang_round + 4, log


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 5),
    st.lists(st.tuples(st.integers(1, 5), st.integers(1, 4)), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(1, 5), st.integers(1, 4)), min_size=1, max_size=3),
    st.integers(1, 2),
)
def test_two_backlogged_jobs_of_equal_priority_each_get_placements(
    n_nodes: int, a: list[tuple[int, int]], b: list[tuple[int, int]], slots: int
) -> None:
    # Each job repeats its pattern of tasks (gangs of up to the pool's size, ordinary tasks), far more than
    # the rounds: both stay backlogged. Whatever the shapes, each gets a placement within every window of
    # 2 * (longest duration) + 2 rounds.
    longest = max(d for _, d in a + b)
    window = 2 * longest + 2
    rounds = 6 * window
    # (More tasks than all slots could run in all rounds.)
    a = [(min(i, n_nodes), d) for i, d in a] * (rounds * n_nodes * slots)
    b = [(min(i, n_nodes), d) for i, d in b] * (rounds * n_nodes * slots)
    log = simulate(n_nodes, [a, b], rounds=rounds, slots=slots)
    for job in (0, 1):
        got = [r for r, placed in enumerate(log) if any(k == job for k, _ in placed)]
        assert got, f"job {job} never placed"
        gaps = [y - x for x, y in zip([-1, *got], got, strict=False)] + [len(log) - got[-1]]
        assert max(gaps) <= window, (job, got)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-2, 2), st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 2), st.integers(1, 3)), min_size=1, max_size=25),
    st.lists(st.integers(0, 2), min_size=1, max_size=6),
)
def test_fairness_never_puts_a_lower_priority_before_a_higher_one(
    jobs: list[tuple[int, int, int]], tasks: list[tuple[int, int, int]], free: list[int]
) -> None:
    # Jobs (priority, running, served) take turns within a priority; a task of a higher-priority job is still
    # never passed over for one of a lower priority that fits the same node.
    order = sorted(range(len(jobs)), key=lambda j: -jobs[j][0])
    queues: dict[int, list[PendingTask]] = {j: [] for j in order}
    for i, (j, slots, instances) in enumerate(tasks):
        job = order[j % len(order)]
        queues[job].append(PendingTask((f"j{job}", f"t{i}"), "p", 0, slots, instances, jobs[job][0]))
    by_key = {t.key[1]: t for ts in queues.values() for t in ts}
    merge = fair_merge([(jobs[j][0], jobs[j][1], jobs[j][2], (t.key[1] for t in queues[j])) for j in order])
    queue = [by_key[t] for _, t in merge]
    snap = Snapshot([node(i, f, total=2) for i, f in enumerate(free)], queue)
    placed = {p.key for p in placements(snap)}
    for i, hi in enumerate(queue):
        if hi.key in placed:
            continue
        for lo in queue[i + 1 :]:
            if lo.key in placed and lo.job_priority < hi.job_priority:
                assert not (lo.instances >= hi.instances and lo.required_slots >= hi.required_slots)
    assert [t.job_priority for t in queue] == sorted((t.job_priority for t in queue), reverse=True)
