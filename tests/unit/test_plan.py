"""The pure scheduler: examples and hypothesis properties."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.scheduling.plan import NodeView, PendingTask, Snapshot, plan


def node(i: int, free: int, total: int = 4, pool: str = "p", ok: bool = True) -> NodeView:
    return NodeView(f"n{i}", pool, ok, total, free)


def task(i: int, *, pool: str = "p", slots: int = 1, instances: int = 1, prio: int = 0, job: str = "j") -> PendingTask:
    return PendingTask((job, f"t{i}"), pool, 0, slots, instances, prio)


def test_places_in_queue_order_and_spreads() -> None:
    out = plan(Snapshot([node(1, 2), node(2, 2)], [task(i) for i in range(5)]))
    assert [p.key[1] for p in out] == ["t0", "t1", "t2", "t3"]
    assert Counter(p.nodes[0] for p in out) == {"n1": 2, "n2": 2}
    assert all(p.attempt == 1 for p in out)


def test_skips_nodes_that_are_not_schedulable_or_in_other_pools() -> None:
    out = plan(Snapshot([node(1, 4, ok=False), node(2, 4, pool="q")], [task(0)]))
    assert out == []


def test_gang_is_whole_or_nothing() -> None:
    out = plan(Snapshot([node(1, 1), node(2, 1)], [task(0, instances=3), task(1, instances=2)]))
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
    return Snapshot(nodes, queue, draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_properties(snap: Snapshot) -> None:
    out = plan(snap)
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
    out = plan(snap)
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
    out = plan(Snapshot(nodes, [task(0, instances=3), task(1)]))
    assert out == []
    # Without the gang, the ordinary task runs.
    assert len(plan(Snapshot(nodes, [task(1)]))) == 1
    # Once n1 frees up, the gang is placed whole.
    nodes[0] = node(1, 1, total=1)
    out = plan(Snapshot(nodes, [task(0, instances=3), task(1)]))
    assert [(p.key[1], sorted(p.nodes)) for p in out] == [("t0", ["n1", "n2", "n3"])]


def test_gang_reservation_leaves_other_nodes_usable() -> None:
    # A gang of 3 whole 2-slot nodes fits nowhere yet; it holds the three nodes closest
    # to free (n3, then n1 and n2 by id), and n4 stays usable by ordinary work.
    nodes = [node(1, 1, total=2), node(2, 1, total=2), node(3, 2, total=2), node(4, 1, total=2)]
    out = plan(Snapshot(nodes, [task(0, instances=3, slots=2), task(1), task(2)]))
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
        fitting.sort(key=(lambda n: (-free[n], n)) if snap.spread else (lambda n: (free[n], n)))
        free[fitting[0]] -= t.required_slots
        out.append((t.key, (fitting[0],)))
    return out


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_single_node_tasks_match_the_reference_planner(snap: Snapshot) -> None:
    single = Snapshot(snap.nodes, [t for t in snap.queue if t.instances == 1], snap.spread)
    assert [(p.key, p.nodes) for p in plan(single)] == reference_plan(single)


def test_gang_behind_a_blocked_whole_node_task_still_reserves() -> None:
    nodes = [node(1, 3, total=4), node(2, 3, total=4)]
    queue = [task(0, slots=4), task(1, slots=4, instances=2)] + [task(i) for i in range(2, 6)]
    # The 4-slot task and the gang wait; the gang holds both nodes, so the small tasks may not take them.
    assert plan(Snapshot(nodes, queue)) == []


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
    out = plan(Snapshot(nodes, [gang, long, unbounded, short], now=0.0))
    # Only the task that is sure to be done by t=100 may use the held node.
    assert [(p.key[1], p.nodes) for p in out] == [("short", ("n2",))]
    # When the busy node's end is unknown, nothing backfills.
    nodes[0] = NodeView("n1", "p", True, 1, 0, busy_until=None)
    assert plan(Snapshot(nodes, [gang, short], now=0.0)) == []
