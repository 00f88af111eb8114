"""The pure decisions of node operations: disabling and enabling scheduling, node counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain import states
from shoal.server.domain.errors import FailedPrecondition
from shoal.server.scheduling import nodeops
from shoal.server.scheduling.nodeops import Eviction
from shoal.v1 import pool_pb2 as P

NODE_STATES = [v.number for v in P.NodeState.DESCRIPTOR.values if v.number]
OPTIONS = [v.number for v in P.DisableNodeSchedulingOption.DESCRIPTOR.values]


def test_each_option_on_a_running_node() -> None:
    running = P.NODE_STATE_RUNNING
    assert nodeops.disable(running, False, True, 0) == (True, Eviction.REQUEUE, P.NODE_STATE_OFFLINE)
    assert nodeops.disable(running, False, True, P.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE) == (
        True,
        Eviction.TERMINATE,
        P.NODE_STATE_OFFLINE,
    )
    # Left to finish: RUNNING until the last one ends.
    assert nodeops.disable(running, False, True, P.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION) == (
        True,
        Eviction.NONE,
        None,
    )
    assert nodeops.disable(P.NODE_STATE_IDLE, False, False, 0) == (True, Eviction.NONE, P.NODE_STATE_OFFLINE)
    # A node not up yet stays as it is (it comes up OFFLINE).
    assert nodeops.disable(P.NODE_STATE_STARTING, False, False, 0) == (True, Eviction.NONE, None)


def test_refusals() -> None:
    with pytest.raises(FailedPrecondition) as e:
        nodeops.disable(P.NODE_STATE_OFFLINE, True, False, 0)
    assert e.value.reason == nodeops.ALREADY
    with pytest.raises(FailedPrecondition) as e:
        nodeops.enable(P.NODE_STATE_IDLE, False)
    assert e.value.reason == nodeops.ALREADY
    with pytest.raises(FailedPrecondition) as e:
        nodeops.disable(P.NODE_STATE_LEAVING_POOL, False, False, 0)
    assert e.value.reason == "NODE_LEAVING_POOL"
    assert nodeops.enable(P.NODE_STATE_OFFLINE, True) == (False, Eviction.NONE, P.NODE_STATE_IDLE)


@given(st.sampled_from(NODE_STATES), st.booleans(), st.sampled_from(OPTIONS))
def test_every_decided_state_change_is_in_the_node_table(state: int, running: bool, option: int) -> None:
    """Whatever the node's state, what disabling then enabling decides is a move the state table allows."""
    try:
        change = nodeops.disable(state, False, running, option)
    except FailedPrecondition:
        assert state == P.NODE_STATE_LEAVING_POOL
        return
    assert change.disabled
    after = state
    if change.state is not None:
        assert states.can_transition(states.NODE_TRANSITIONS, state, change.state)
        after = change.state
    back = nodeops.enable(after, True)
    assert not back.disabled
    if back.state is not None:
        assert states.can_transition(states.NODE_TRANSITIONS, after, back.state)


@given(st.lists(st.sampled_from(NODE_STATES), max_size=50))
def test_node_counts_add_up(node_states: list[int]) -> None:
    counts = nodeops.node_counts(node_states)
    assert counts.total == len(node_states)
    assert sum(getattr(counts, f) for f in nodeops.COUNT_FIELDS.values()) == len(node_states)
    assert counts.offline == node_states.count(P.NODE_STATE_OFFLINE)
