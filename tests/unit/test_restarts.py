"""The pure decisions of node restarts (RebootNode, ReimageNode): where a node may restart from, what
becomes of its running tasks under each option, the kept record of a pending restart, and which job
preparations do not run again after a reboot."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain import states
from shoal.server.domain.errors import FailedPrecondition
from shoal.server.scheduling import restarts
from shoal.server.scheduling.nodeops import Eviction
from shoal.server.scheduling.restarts import PendingRestart
from shoal.v1 import pool_pb2 as P

NODE_STATES = [v.number for v in P.NodeState.DESCRIPTOR.values if v.number]
OPTIONS = [v.number for v in P.NodeDeallocationOption.DESCRIPTOR.values]


def test_each_option_on_a_running_node() -> None:
    running = P.NODE_STATE_RUNNING
    assert restarts.decide(running, True, 0, reimage=False) == (P.NODE_STATE_REBOOTING, Eviction.REQUEUE, False, False)
    assert restarts.decide(running, True, P.NODE_DEALLOCATION_OPTION_TERMINATE, reimage=True) == (
        P.NODE_STATE_REIMAGING,
        Eviction.TERMINATE,
        False,
        False,
    )
    assert restarts.decide(running, True, P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION, reimage=False) == (
        P.NODE_STATE_REBOOTING,
        Eviction.NONE,
        True,
        False,
    )
    assert restarts.decide(running, True, P.NODE_DEALLOCATION_OPTION_RETAINED_DATA, reimage=False) == (
        P.NODE_STATE_REBOOTING,
        Eviction.NONE,
        True,
        True,
    )
    # Nothing runs: nothing to evict or wait for (RETAINED_DATA still waits for retention, on the node).
    assert restarts.decide(P.NODE_STATE_IDLE, False, P.NODE_DEALLOCATION_OPTION_RETAINED_DATA, reimage=False) == (
        P.NODE_STATE_REBOOTING,
        Eviction.NONE,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (P.NODE_STATE_REBOOTING, "NODE_BEING_REBOOTED"),
        (P.NODE_STATE_REIMAGING, "NODE_BEING_REIMAGED"),
        (P.NODE_STATE_CREATING, "NODE_BEING_CREATED"),
        (P.NODE_STATE_STARTING, "NODE_BEING_STARTED"),
        (P.NODE_STATE_WAITING_FOR_START_TASK, "NODE_BEING_STARTED"),
        (P.NODE_STATE_UNKNOWN, "NODE_UNREACHABLE"),
        (P.NODE_STATE_LEAVING_POOL, "NODE_LEAVING_POOL"),
    ],
)
def test_refusals(state: int, reason: str) -> None:
    with pytest.raises(FailedPrecondition) as e:
        restarts.decide(state, False, 0, reimage=False)
    assert e.value.reason == reason


@given(st.sampled_from(NODE_STATES), st.booleans(), st.sampled_from(OPTIONS), st.booleans())
def test_a_decided_restart_is_a_transition_of_the_table(state: int, running: bool, option: int, reimage: bool) -> None:
    try:
        d = restarts.decide(state, running, option, reimage=reimage)
    except FailedPrecondition:
        assert state not in restarts.RESTARTABLE
        return
    assert states.can_transition(states.NODE_TRANSITIONS, state, d.state)
    # Back from the restart, the node can settle (or start its start task again).
    for after in (P.NODE_STATE_IDLE, P.NODE_STATE_STARTING, P.NODE_STATE_OFFLINE, P.NODE_STATE_UNKNOWN):
        assert states.can_transition(states.NODE_TRANSITIONS, d.state, after)
    # Tasks are either evicted now or waited for, never both, and only when some run.
    assert not (d.wait_for_tasks and d.eviction is not Eviction.NONE)
    assert running or (not d.wait_for_tasks and d.eviction is Eviction.NONE)


@given(
    st.text(min_size=1, max_size=16),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.text(max_size=30),
)
def test_a_pending_restart_survives_its_stored_form(
    rid: str, reimage: bool, tasks: bool, retention: bool, why: str
) -> None:
    p = PendingRestart(rid, reimage, tasks, retention, why)
    assert PendingRestart.from_dict(p.as_dict()) == p
    assert restarts.done_by(p, rid)
    assert not restarts.done_by(p, "") and not restarts.done_by(p, rid + "x")


def test_a_record_that_cannot_be_read_is_none() -> None:
    assert PendingRestart.from_dict(None) is None
    assert PendingRestart.from_dict({"restart_id": "x"}) is None
    assert not restarts.done_by(None, "x")


def test_preparations_kept_after_a_reboot_are_those_that_ask() -> None:
    jobs = [("a", True, True), ("b", True, False), ("c", False, False), ("d", True, False)]
    assert restarts.keep_preparations(jobs, reimage=False) == ["b", "d"]
    assert restarts.keep_preparations(jobs, reimage=True) == []
