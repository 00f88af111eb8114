"""Lifecycles as transition tables.

Each table maps a state to the states it may move to, with the reason for every
edge. A move not in the table is a bug in the server or a FAILED_PRECONDITION
for the caller; :func:`check_transition` says which by raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from shoal.v1 import job_pb2, pool_pb2, task_pb2

T = task_pb2
N = pool_pb2
J = job_pb2

TASK_TRANSITIONS: Mapping[int, frozenset[int]] = {
    T.TASK_STATE_ACTIVE: frozenset(
        {
            T.TASK_STATE_PREPARING,  # placed on a node by the scheduler
            T.TASK_STATE_COMPLETED,  # terminated while waiting
        }
    ),
    T.TASK_STATE_PREPARING: frozenset(
        {
            T.TASK_STATE_RUNNING,  # the agent began the attempt
            T.TASK_STATE_ACTIVE,  # requeued: node lost or left before it began
            T.TASK_STATE_COMPLETED,  # terminated, or failed before it could begin
        }
    ),
    T.TASK_STATE_RUNNING: frozenset(
        {
            T.TASK_STATE_COMPLETED,  # finished, failed for good, or terminated
            T.TASK_STATE_ACTIVE,  # retried after a non-zero exit, or requeued
        }
    ),
    T.TASK_STATE_COMPLETED: frozenset(
        {
            T.TASK_STATE_ACTIVE,  # reactivated after a failure
        }
    ),
}

NODE_TRANSITIONS: Mapping[int, frozenset[int]] = {
    N.NODE_STATE_CREATING: frozenset(
        {
            N.NODE_STATE_STARTING,  # the agent registered
            N.NODE_STATE_IDLE,  # registered with no start task to wait for
            N.NODE_STATE_OFFLINE,  # the same, with scheduling disabled
            N.NODE_STATE_UNKNOWN,  # never registered in time
            N.NODE_STATE_LEAVING_POOL,  # pool shrank before the node came up
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_STARTING: frozenset(
        {
            N.NODE_STATE_WAITING_FOR_START_TASK,  # start task began (wait_for_success)
            N.NODE_STATE_IDLE,  # start task not awaited, or succeeded
            N.NODE_STATE_OFFLINE,  # the same, with scheduling disabled
            N.NODE_STATE_START_TASK_FAILED,  # start task failed after its retries
            N.NODE_STATE_UNKNOWN,  # went silent
            N.NODE_STATE_LEAVING_POOL,  # pool shrank
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_WAITING_FOR_START_TASK: frozenset(
        {
            N.NODE_STATE_IDLE,  # start task succeeded
            N.NODE_STATE_OFFLINE,  # the same, with scheduling disabled
            N.NODE_STATE_START_TASK_FAILED,  # start task failed after its retries
            N.NODE_STATE_STARTING,  # agent restarted; start task runs again
            N.NODE_STATE_UNKNOWN,
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_START_TASK_FAILED: frozenset(
        {
            N.NODE_STATE_STARTING,  # agent restarted; start task runs again
            N.NODE_STATE_UNKNOWN,
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_REBOOTING,  # RebootNode
            N.NODE_STATE_REIMAGING,  # ReimageNode
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_IDLE: frozenset(
        {
            N.NODE_STATE_RUNNING,  # a task was placed
            N.NODE_STATE_STARTING,  # agent restarted; start task runs again
            N.NODE_STATE_UNKNOWN,  # heartbeat timeout
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_OFFLINE,  # scheduling disabled
            N.NODE_STATE_REBOOTING,  # RebootNode
            N.NODE_STATE_REIMAGING,  # ReimageNode
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_RUNNING: frozenset(
        {
            N.NODE_STATE_IDLE,  # its last task ended
            N.NODE_STATE_STARTING,
            N.NODE_STATE_UNKNOWN,
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_OFFLINE,
            N.NODE_STATE_REBOOTING,  # RebootNode
            N.NODE_STATE_REIMAGING,  # ReimageNode
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_UNKNOWN: frozenset(
        {
            N.NODE_STATE_STARTING,  # the agent came back
            N.NODE_STATE_IDLE,
            N.NODE_STATE_OFFLINE,  # the agent came back to a node whose scheduling is disabled
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_OFFLINE: frozenset(
        {
            N.NODE_STATE_IDLE,  # scheduling enabled again
            N.NODE_STATE_STARTING,  # agent restarted; start task runs again
            N.NODE_STATE_UNKNOWN,
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_REBOOTING,  # RebootNode
            N.NODE_STATE_REIMAGING,  # ReimageNode
            N.NODE_STATE_UNUSABLE,  # the agent reports node errors
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_REBOOTING: frozenset(
        {
            N.NODE_STATE_STARTING,  # the agent restarted; its start task runs
            N.NODE_STATE_IDLE,  # the agent restarted, no start task to wait for
            N.NODE_STATE_OFFLINE,  # the same, with scheduling disabled
            N.NODE_STATE_UNUSABLE,  # the agent restarted and reports node errors
            N.NODE_STATE_UNKNOWN,  # the agent did not come back in time
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_REIMAGING: frozenset(
        {
            N.NODE_STATE_STARTING,
            N.NODE_STATE_IDLE,
            N.NODE_STATE_OFFLINE,
            N.NODE_STATE_UNUSABLE,
            N.NODE_STATE_UNKNOWN,
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_UNUSABLE: frozenset(
        {
            N.NODE_STATE_IDLE,  # its errors went away
            N.NODE_STATE_OFFLINE,  # the same, with scheduling disabled
            N.NODE_STATE_STARTING,  # the agent restarted; its start task runs
            N.NODE_STATE_START_TASK_FAILED,  # errors gone, but its start task had failed
            N.NODE_STATE_REBOOTING,
            N.NODE_STATE_REIMAGING,
            N.NODE_STATE_UNKNOWN,
            N.NODE_STATE_LEAVING_POOL,
            N.NODE_STATE_PREEMPTED,  # its provider took it back (a low-priority node)
        }
    ),
    N.NODE_STATE_PREEMPTED: frozenset(
        {
            N.NODE_STATE_CREATING,  # the provider has capacity again: the node starts as new
            N.NODE_STATE_LEAVING_POOL,  # the pool shrank, or is deleted
        }
    ),
    N.NODE_STATE_LEAVING_POOL: frozenset(),  # the record is removed when the agent is gone
}

JOB_TRANSITIONS: Mapping[int, frozenset[int]] = {
    J.JOB_STATE_ACTIVE: frozenset(
        {
            J.JOB_STATE_TERMINATING,  # user terminate, wall clock, all tasks complete, a task's job action
            J.JOB_STATE_COMPLETED,  # nothing running: completes at once
            J.JOB_STATE_DELETING,
            J.JOB_STATE_DISABLING,  # DisableJob, or a task's job action DISABLE
        }
    ),
    J.JOB_STATE_DISABLING: frozenset(
        {
            J.JOB_STATE_DISABLED,  # its running tasks requeued, terminated, or (WAIT) finished
            J.JOB_STATE_ENABLING,  # EnableJob before its running tasks (WAIT) finished: they go on
            J.JOB_STATE_TERMINATING,  # terminated meanwhile
            J.JOB_STATE_COMPLETED,
            J.JOB_STATE_DELETING,
        }
    ),
    J.JOB_STATE_DISABLED: frozenset(
        {
            J.JOB_STATE_ENABLING,  # EnableJob
            J.JOB_STATE_TERMINATING,
            J.JOB_STATE_COMPLETED,
            J.JOB_STATE_DELETING,
        }
    ),
    J.JOB_STATE_ENABLING: frozenset({J.JOB_STATE_ACTIVE, J.JOB_STATE_TERMINATING, J.JOB_STATE_DELETING}),
    J.JOB_STATE_TERMINATING: frozenset({J.JOB_STATE_COMPLETED, J.JOB_STATE_DELETING}),
    J.JOB_STATE_COMPLETED: frozenset({J.JOB_STATE_DELETING}),
    J.JOB_STATE_DELETING: frozenset(),
}

POOL_TRANSITIONS: Mapping[int, frozenset[int]] = {
    N.POOL_STATE_ACTIVE: frozenset({N.POOL_STATE_DELETING}),
    N.POOL_STATE_DELETING: frozenset(),
}

S = TypeVar("S", bound=int)


def terminal_states(table: Mapping[int, frozenset[int]]) -> frozenset[int]:
    """States with no way out (or only the way back to the start, as with a reactivated task)."""
    return frozenset(s for s, nxt in table.items() if not nxt or nxt <= {min(table)})


TASK_TERMINAL = frozenset({T.TASK_STATE_COMPLETED})
assert terminal_states(TASK_TRANSITIONS) == TASK_TERMINAL


class IllegalTransition(RuntimeError):
    """A move not in the table."""


def can_transition(table: Mapping[int, frozenset[int]], current: int, new: int) -> bool:
    """True when `current -> new` is an edge of `table` (staying put is always allowed)."""
    return current == new or new in table.get(current, frozenset())


def check_transition(table: Mapping[int, frozenset[int]], current: int, new: int, what: str) -> None:
    """Raise IllegalTransition when `current -> new` is not an edge of `table`."""
    if not can_transition(table, current, new):
        raise IllegalTransition(f"{what}: illegal transition {current} -> {new}")
