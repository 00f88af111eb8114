"""Node operations as pure decisions: what disabling or enabling a node's scheduling does, and node counts.

No I/O, no clock: `server.lifecycle.nodeops` applies what these decide through the kernel.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

from shoal.server.domain.errors import FailedPrecondition
from shoal.v1 import pool_pb2 as P

#: Nodes whose scheduling state may change (a leaving node is on its way out).
_NOT_CHANGEABLE = frozenset({P.NODE_STATE_LEAVING_POOL})
ALREADY = "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE"


class Eviction(Enum):
    """What becomes of the tasks running on a node whose scheduling is disabled."""

    NONE = "none"  # nothing runs, or TASK_COMPLETION: they finish
    REQUEUE = "requeue"
    TERMINATE = "terminate"


class SchedulingChange(NamedTuple):
    """A decided change: the node's new scheduling state, its running tasks' fate, its new state (or None)."""

    disabled: bool
    eviction: Eviction
    #: The node's state once the change is applied (OFFLINE or IDLE), or None: it stays as it is.
    state: int | None


def disable(state: int, disabled: bool, running: bool, option: int) -> SchedulingChange:
    """DisableNodeScheduling on a node in `state` (`running`: tasks run there); FailedPrecondition when refused."""
    if disabled:
        raise FailedPrecondition(ALREADY, "the node's scheduling is disabled already")
    if state in _NOT_CHANGEABLE:
        raise FailedPrecondition("NODE_LEAVING_POOL", "the node is leaving its pool")
    eviction = Eviction.NONE
    if running:
        if option == P.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE:
            eviction = Eviction.TERMINATE
        elif option != P.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION:
            eviction = Eviction.REQUEUE
    # IDLE or RUNNING: OFFLINE now, or (tasks left to finish) when the last one ends. A node not yet up
    # (or UNKNOWN) goes OFFLINE instead of IDLE when it comes up.
    settles_now = state == P.NODE_STATE_IDLE or (state == P.NODE_STATE_RUNNING and eviction is not Eviction.NONE)
    return SchedulingChange(True, eviction, P.NODE_STATE_OFFLINE if settles_now else None)


def enable(state: int, disabled: bool) -> SchedulingChange:
    """EnableNodeScheduling on a node in `state`; FailedPrecondition when refused."""
    if not disabled:
        raise FailedPrecondition(ALREADY, "the node's scheduling is enabled already")
    if state in _NOT_CHANGEABLE:
        raise FailedPrecondition("NODE_LEAVING_POOL", "the node is leaving its pool")
    return SchedulingChange(False, Eviction.NONE, P.NODE_STATE_IDLE if state == P.NODE_STATE_OFFLINE else None)


#: NodeCounts' field for each node state.
COUNT_FIELDS: dict[int, str] = {
    P.NODE_STATE_CREATING: "creating",
    P.NODE_STATE_STARTING: "starting",
    P.NODE_STATE_WAITING_FOR_START_TASK: "waiting_for_start_task",
    P.NODE_STATE_START_TASK_FAILED: "start_task_failed",
    P.NODE_STATE_IDLE: "idle",
    P.NODE_STATE_RUNNING: "running",
    P.NODE_STATE_UNKNOWN: "unknown",
    P.NODE_STATE_LEAVING_POOL: "leaving_pool",
    P.NODE_STATE_OFFLINE: "offline",
    P.NODE_STATE_REBOOTING: "rebooting",
    P.NODE_STATE_REIMAGING: "reimaging",
    P.NODE_STATE_UNUSABLE: "unusable",
    P.NODE_STATE_PREEMPTED: "preempted",
}


def node_counts(states: Iterable[int]) -> P.NodeCounts:
    """How many nodes are in each state, and in all."""
    counts = P.NodeCounts()
    for state in states:
        name = COUNT_FIELDS.get(state)
        if name is not None:
            setattr(counts, name, getattr(counts, name) + 1)
        counts.total += 1
    return counts
