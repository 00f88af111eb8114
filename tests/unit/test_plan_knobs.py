"""The pure scheduler's per-pool knobs: fill type (SPREAD or PACK) and dedicated-only placement.

Examples and hypothesis properties over `plan`, with low-priority nodes made directly in the snapshot
(`NodeView.dedicated=False`).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.scheduling.plan import (
    NODES_HELD,
    POOL_TOO_SMALL,
    TOO_FEW_DEDICATED,
    NodeView,
    PendingTask,
    Placement,
    Snapshot,
    Waiting,
    describe,
    plan,
)

POOLS = ["a", "b"]


def node(i: int, free: int, total: int = 4, pool: str = "p", *, dedicated: bool = True, ok: bool = True) -> NodeView:
    return NodeView(f"n{i}", pool, ok, total, free, None, dedicated)


def task(
    i: int, *, pool: str = "p", slots: int = 1, instances: int = 1, dedicated: bool = False, job: str = "j"
) -> PendingTask:
    return PendingTask((job, f"t{i}"), pool, 0, slots, instances, dedicated_only=dedicated)


def placed_on(snap: Snapshot) -> list[tuple[str, tuple[str, ...]]]:
    return [(p.key[1], p.nodes) for p in plan(snap).placements]


# ---------------------------------------------------------------- fill type: examples


def test_spread_takes_the_node_with_most_free_slots_and_pack_the_fullest_that_fits() -> None:
    nodes = [node(1, 4), node(2, 2), node(3, 1)]
    assert placed_on(Snapshot(nodes, [task(0)])) == [("t0", ("n1",))]
    assert placed_on(Snapshot(nodes, [task(0)], packed=frozenset({"p"}))) == [("t0", ("n3",))]
    # A 2-slot task packs onto the fullest node it still fits.
    assert placed_on(Snapshot(nodes, [task(0, slots=2)], packed=frozenset({"p"}))) == [("t0", ("n2",))]


def test_pack_fills_one_node_before_the_next() -> None:
    nodes = [node(i, 4) for i in range(3)]
    out = plan(Snapshot(nodes, [task(i) for i in range(6)], packed=frozenset({"p"}))).placements
    assert [p.nodes[0] for p in out] == ["n0"] * 4 + ["n1"] * 2
    spread = plan(Snapshot(nodes, [task(i) for i in range(6)])).placements
    assert Counter(p.nodes[0] for p in spread) == {"n0": 2, "n1": 2, "n2": 2}


def test_pack_places_a_gang_on_the_nodes_in_use_first() -> None:
    nodes = [node(1, 4), node(2, 2), node(3, 3), node(4, 4)]
    gang = task(0, instances=2, slots=2)
    assert placed_on(Snapshot(nodes, [gang], packed=frozenset({"p"}))) == [("t0", ("n2", "n3"))]
    assert placed_on(Snapshot(nodes, [gang])) == [("t0", ("n1", "n4"))]


def test_backfill_follows_the_fill_type() -> None:
    # A 3-node gang waits on n1 (busy until t=100); n2 and n3 are held for it; a short task may backfill.
    nodes = [
        NodeView("n1", "p", True, 2, 0, busy_until=100.0),
        NodeView("n2", "p", True, 2, 2, busy_until=0.0),
        NodeView("n3", "p", True, 2, 1, busy_until=50.0),
    ]
    gang = task(0, instances=3, slots=2)
    short = PendingTask(("j", "short"), "p", 0, max_runtime=10.0)
    assert placed_on(Snapshot(nodes, [gang, short], now=0.0)) == [("short", ("n2",))]
    assert placed_on(Snapshot(nodes, [gang, short], packed=frozenset({"p"}), now=0.0)) == [("short", ("n3",))]


def test_fill_type_is_per_pool() -> None:
    nodes = [node(1, 4, pool="a"), node(2, 1, pool="a"), node(3, 4, pool="b"), node(4, 1, pool="b")]
    queue = [task(0, pool="a"), task(1, pool="b")]
    assert placed_on(Snapshot(nodes, queue, packed=frozenset({"a"}))) == [("t0", ("n2",)), ("t1", ("n3",))]


# ---------------------------------------------------------------- dedicated only: examples


def test_dedicated_only_task_never_lands_on_a_low_priority_node() -> None:
    nodes = [node(1, 4, dedicated=False), node(2, 1)]
    queue = [task(0, dedicated=True), task(1, dedicated=True), task(2)]
    # t0 takes the dedicated node's one slot; t1 waits (only the low-priority node has room); t2 goes anywhere.
    assert placed_on(Snapshot(nodes, queue)) == [("t0", ("n2",)), ("t2", ("n1",))]


def test_a_dedicated_only_task_waits_while_only_low_priority_nodes_have_room() -> None:
    nodes = [node(1, 4, dedicated=False), node(2, 0)]
    out = plan(Snapshot(nodes, [task(0, dedicated=True)]))
    assert out.placements == [] and out.waiting == {}
    # Once the dedicated node frees a slot, it goes there.
    nodes[1] = node(2, 1)
    assert placed_on(Snapshot(nodes, [task(0, dedicated=True)])) == [("t0", ("n2",))]


def test_a_failed_dedicated_only_task_does_not_block_ordinary_ones_behind_it() -> None:
    nodes = [node(1, 4, dedicated=False), node(2, 0)]
    queue = [task(0, dedicated=True), task(1), task(2, dedicated=True), task(3)]
    assert placed_on(Snapshot(nodes, queue)) == [("t1", ("n1",)), ("t3", ("n1",))]


def test_dedicated_only_gang_uses_dedicated_nodes_only() -> None:
    nodes = [node(1, 4, dedicated=False), node(2, 4, dedicated=False), node(3, 4), node(4, 4)]
    gang = task(0, instances=2, dedicated=True)
    assert placed_on(Snapshot(nodes, [gang])) == [("t0", ("n3", "n4"))]
    # Three instances: only two dedicated nodes, so it cannot fit, holds nothing and says why.
    big = task(1, instances=3, dedicated=True)
    out = plan(Snapshot(nodes, [big, task(2)]))
    assert [(p.key[1], p.nodes) for p in out.placements] == [("t2", ("n1",))]
    assert out.waiting[big.key] == Waiting(TOO_FEW_DEDICATED, 3, 2)
    assert describe(out.waiting[big.key], "spot").startswith(
        "TooFewDedicatedNodes: needs 3 nodes at once on dedicated nodes and pool spot has 2 dedicated nodes"
    )
    # The same gang without the flag fits the pool (on its least busy nodes, low-priority ones included).
    out = plan(Snapshot(nodes, [task(1, instances=3)]))
    assert [len(p.nodes) for p in out.placements] == [3]


def test_a_dedicated_only_gang_holds_dedicated_nodes_only() -> None:
    # Two dedicated nodes, one busy; the gang holds both dedicated nodes, and the low-priority one stays free
    # for ordinary work.
    nodes = [node(1, 4, dedicated=False), node(2, 0), node(3, 4)]
    gang = task(0, instances=2, dedicated=True)
    out = plan(Snapshot(nodes, [gang, task(1), task(2)], packed=frozenset({"p"})))
    assert out.waiting[gang.key].reason == NODES_HELD
    assert [(p.key[1], p.nodes) for p in out.placements] == [("t1", ("n1",)), ("t2", ("n1",))]


def test_in_a_pool_without_low_priority_nodes_the_flag_changes_nothing() -> None:
    nodes = [node(1, 1), node(2, 0)]
    out = plan(Snapshot(nodes, [task(0, instances=3, dedicated=True)]))
    assert out.waiting[("j", "t0")].reason == POOL_TOO_SMALL


# ---------------------------------------------------------------- properties


@st.composite
def snapshots(draw: st.DrawFn, *, gangs: bool = True, uniform: bool = False) -> Snapshot:
    """Two pools of up to 8 nodes, some of them low-priority; tasks some of which need dedicated nodes.
    `uniform`: every node of a pool has the same number of slots (as every Shoal pool's nodes do)."""
    totals = {p: draw(st.integers(1, 4)) for p in POOLS}
    nodes = []
    for i in range(draw(st.integers(0, 8))):
        pool = draw(st.sampled_from(POOLS))
        total = totals[pool] if uniform else draw(st.integers(1, 4))
        nodes.append(
            NodeView(
                f"n{i}",
                pool,
                draw(st.booleans()),
                total,
                draw(st.integers(0, total)),
                None,
                draw(st.booleans()),
            )
        )
    queue = [
        PendingTask(
            ("j", f"t{i}"),
            draw(st.sampled_from(POOLS)),
            draw(st.integers(0, 3)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 3)) if gangs else 1,
            draw(st.integers(-5, 5)),
            dedicated_only=draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 30)))
    ]
    queue.sort(key=lambda t: -t.job_priority)
    return Snapshot(nodes, queue, frozenset(draw(st.sets(st.sampled_from(POOLS)))))


def replay(snap: Snapshot) -> list[tuple[Placement, dict[str, int]]]:
    """Each placement with the free slots of every node just before it (placements come in queue order)."""
    free = {n.node_id: n.free_slots for n in snap.nodes}
    out = []
    for p in plan(snap).placements:
        out.append((p, dict(free)))
        for nid in p.nodes:
            free[nid] -= p.slots_per_node
    return out


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_a_dedicated_only_task_is_never_placed_on_a_low_priority_node(snap: Snapshot) -> None:
    by_id = {n.node_id: n for n in snap.nodes}
    pending = {t.key: t for t in snap.queue}
    used: Counter[str] = Counter()
    for p in plan(snap).placements:
        t = pending[p.key]
        assert len(p.nodes) == t.instances == len(set(p.nodes))
        for nid in p.nodes:
            n = by_id[nid]
            assert n.schedulable and n.pool_id == t.pool_id
            assert n.dedicated or not t.dedicated_only, f"{t.key} needs dedicated nodes, placed on {nid}"
            used[nid] += t.required_slots
    for nid, slots in used.items():
        assert slots <= by_id[nid].free_slots


@settings(max_examples=300, deadline=None)
@given(snapshots(gangs=False, uniform=True))
def test_pack_never_opens_a_new_node_while_a_used_node_still_fits_the_task(snap: Snapshot) -> None:
    pending = {t.key: t for t in snap.queue}
    for p, free in replay(snap):
        t = pending[p.key]
        if t.pool_id not in snap.packed:
            continue
        chosen = next(n for n in snap.nodes if n.node_id == p.nodes[0])
        if free[chosen.node_id] < chosen.total_slots:
            continue  # (it went to a node in use)
        fitting_used = [
            n.node_id
            for n in snap.nodes
            if n.pool_id == t.pool_id
            and n.schedulable
            and (n.dedicated or not t.dedicated_only)
            and 0 < free[n.node_id] < n.total_slots
            and free[n.node_id] >= t.required_slots
        ]
        assert not fitting_used, f"{t.key} opened {chosen.node_id} while {fitting_used} were in use and fit it"


@settings(max_examples=300, deadline=None)
@given(snapshots(gangs=False))
def test_spread_picks_a_node_with_the_most_free_slots(snap: Snapshot) -> None:
    pending = {t.key: t for t in snap.queue}
    for p, free in replay(snap):
        t = pending[p.key]
        if t.pool_id in snap.packed:
            continue
        most = max(
            free[n.node_id]
            for n in snap.nodes
            if n.pool_id == t.pool_id and n.schedulable and (n.dedicated or not t.dedicated_only)
        )
        assert free[p.nodes[0]] == most


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.sampled_from(POOLS))
def test_fill_type_of_one_pool_never_affects_another_pools_placements(snap: Snapshot, flipped: str) -> None:
    other = Snapshot(snap.nodes, snap.queue, snap.packed ^ {flipped})
    before = [p for p in plan(snap).placements if _pool(snap, p) != flipped]
    after = [p for p in plan(other).placements if _pool(snap, p) != flipped]
    assert before == after
    waits = {k: w for k, w in plan(snap).waiting.items() if _pool_of(snap, k) != flipped}
    assert waits == {k: w for k, w in plan(other).waiting.items() if _pool_of(snap, k) != flipped}


def _pool_of(snap: Snapshot, key: tuple[str, str]) -> str:
    return next(t.pool_id for t in snap.queue if t.key == key)


def _pool(snap: Snapshot, p: Placement) -> str:
    return _pool_of(snap, p.key)


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_without_low_priority_nodes_the_dedicated_flag_changes_nothing(snap: Snapshot) -> None:
    dedicated = [n._replace(dedicated=True) for n in snap.nodes]
    flagged = plan(Snapshot(dedicated, snap.queue, snap.packed))
    plain = plan(Snapshot(dedicated, [t._replace(dedicated_only=False) for t in snap.queue], snap.packed))
    assert flagged == plain


def reference_plan(snap: Snapshot) -> list[tuple[tuple[str, str], tuple[str, ...]]]:
    """The obvious O(queue x nodes log nodes) planner for single-node tasks without reservations: per pool
    fill type, dedicated nodes only for a task that needs them."""
    free = {n.node_id: n.free_slots for n in snap.nodes if n.schedulable and n.free_slots > 0}
    by_id = {n.node_id: n for n in snap.nodes}
    out = []
    for t in snap.queue:
        fitting = [
            n
            for n in free
            if by_id[n].pool_id == t.pool_id
            and free[n] >= t.required_slots
            and (by_id[n].dedicated or not t.dedicated_only)
        ]
        if not fitting:
            continue
        spread = t.pool_id not in snap.packed
        fitting.sort(key=(lambda n: (-free[n], n)) if spread else (lambda n: (free[n], n)))
        free[fitting[0]] -= t.required_slots
        out.append((t.key, (fitting[0],)))
    return out


@settings(max_examples=300, deadline=None)
@given(snapshots(gangs=False))
def test_single_node_tasks_match_the_reference_planner(snap: Snapshot) -> None:
    assert [(p.key, p.nodes) for p in plan(snap).placements] == reference_plan(snap)
