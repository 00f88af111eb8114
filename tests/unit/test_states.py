"""Transition tables and the retry decision."""

from __future__ import annotations

import pytest

from shoal.server.domain import states
from shoal.server.scheduling.retry import AttemptOutcome, should_retry
from shoal.v1 import job_pb2, pool_pb2, task_pb2


def test_every_state_is_in_each_table() -> None:
    assert set(states.TASK_TRANSITIONS) == set(task_pb2.TaskState.values()) - {0}
    assert set(states.NODE_TRANSITIONS) == set(pool_pb2.NodeState.values()) - {0}
    assert set(states.JOB_TRANSITIONS) == set(job_pb2.JobState.values()) - {0}


def test_illegal_move_raises() -> None:
    with pytest.raises(states.IllegalTransition):
        states.check_transition(
            states.TASK_TRANSITIONS, task_pb2.TASK_STATE_COMPLETED, task_pb2.TASK_STATE_RUNNING, "t"
        )
    states.check_transition(states.TASK_TRANSITIONS, task_pb2.TASK_STATE_RUNNING, task_pb2.TASK_STATE_ACTIVE, "t")


def test_terminal_states_are_derived() -> None:
    assert {task_pb2.TASK_STATE_COMPLETED} == states.TASK_TERMINAL
    assert pool_pb2.NODE_STATE_LEAVING_POOL in states.terminal_states(states.NODE_TRANSITIONS)


@pytest.mark.parametrize(
    ("outcome", "retries", "limit", "expected"),
    [
        (AttemptOutcome(1, "FailureExitCode", False), 0, 2, True),
        (AttemptOutcome(1, "FailureExitCode", False), 2, 2, False),
        (AttemptOutcome(1, "FailureExitCode", False), 50, -1, True),
        (AttemptOutcome(None, "CommandProgramNotFound", False), 0, 5, False),
        (AttemptOutcome(None, "BlobNotFound", False), 0, 5, False),
        (AttemptOutcome(137, "TaskEnded", False), 0, 5, False),
        (AttemptOutcome(0, "", True), 0, 5, False),
    ],
)
def test_retry_decision(outcome: AttemptOutcome, retries: int, limit: int, expected: bool) -> None:
    assert should_retry(outcome, retries, limit) is expected
