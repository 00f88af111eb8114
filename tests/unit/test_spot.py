"""Low-priority nodes' pure decisions: who may be preempted, random preemptions at a rate, recoveries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain.errors import FailedPrecondition
from shoal.server.scheduling import spot
from shoal.v1 import pool_pb2 as P

pytestmark = pytest.mark.timeout(30)

STATES = [s for s in P.NodeState.values() if s]


def node(key: str, state: int = P.NODE_STATE_IDLE, dedicated: bool = False, at: float | None = None) -> spot.SpotNode:
    return spot.SpotNode(key, state, dedicated, at)


def refusal(n: spot.SpotNode, provider: str) -> str | None:
    try:
        spot.check_preemptible(n, provider)
    except FailedPrecondition as e:
        return e.reason
    return None


def test_only_a_live_low_priority_node_of_a_local_pool_is_preemptible() -> None:
    assert refusal(node("a"), "local") is None
    assert refusal(node("a", P.NODE_STATE_RUNNING), "local") is None
    assert refusal(node("a", dedicated=True), "local") == "NODE_IS_DEDICATED"
    assert refusal(node("a"), "join") == "PREEMPTION_NOT_SUPPORTED"
    for state in (P.NODE_STATE_PREEMPTED, P.NODE_STATE_LEAVING_POOL):
        assert refusal(node("a", state), "local") == "NODE_NOT_PREEMPTIBLE"


def test_the_probability_follows_a_poisson_process() -> None:
    assert spot.preemption_probability(0.0, 100) == 0.0
    assert spot.preemption_probability(10.0, 0) == 0.0
    one_hour = spot.preemption_probability(1.0, 3600)
    assert one_hour == pytest.approx(1 - 2.718281828459045**-1)
    # Two half-hour passes are one hour.
    half = spot.preemption_probability(1.0, 1800)
    assert 1 - (1 - half) ** 2 == pytest.approx(one_hour)


def test_recoveries_wait_for_the_capacity() -> None:
    nodes = [node("a", P.NODE_STATE_PREEMPTED, at=100.0), node("b", P.NODE_STATE_PREEMPTED, at=105.0), node("c")]
    assert spot.recoveries(nodes, 104.0, 5.0) == []
    assert spot.recoveries(nodes, 105.0, 5.0) == ["a"]
    assert spot.recoveries(nodes, 200.0, 5.0) == ["a", "b"]


@given(
    st.lists(st.tuples(st.sampled_from(STATES), st.booleans()), max_size=30),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e5),
    st.integers(),
)
def test_random_preemptions_take_only_preemptible_low_priority_nodes(
    kinds: list[tuple[int, bool]], rate: float, elapsed: float, seed: int
) -> None:
    nodes = [node(f"n{i}", state, dedicated) for i, (state, dedicated) in enumerate(kinds)]
    taken = spot.random_preemptions(nodes, rate, elapsed, random.Random(seed))
    by_key = {n.key: n for n in nodes}
    assert len(set(taken)) == len(taken)
    for key in taken:
        assert refusal(by_key[key], "local") is None
    # The same seed takes the same nodes.
    assert taken == spot.random_preemptions(nodes, rate, elapsed, random.Random(seed))


def test_a_high_rate_takes_every_preemptible_node() -> None:
    nodes = [node("a"), node("b", dedicated=True), node("c", P.NODE_STATE_PREEMPTED)]
    assert spot.random_preemptions(nodes, 1e9, 60, random.Random(1)) == ["a"]
