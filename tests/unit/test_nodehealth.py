"""The pure decisions about node errors: a failed start task as a node error, and where a node goes when
its agent reports errors or none."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain import states
from shoal.server.scheduling import nodehealth
from shoal.v1 import common_pb2
from shoal.v1 import pool_pb2 as P

NODE_STATES = [v.number for v in P.NodeState.DESCRIPTOR.values if v.number]
READY = [P.NODE_STATE_IDLE, P.NODE_STATE_OFFLINE]


def test_a_failed_start_task_is_a_node_error_with_its_exit_code() -> None:
    info = common_pb2.StartTaskInfo(
        state=common_pb2.START_TASK_STATE_COMPLETED,
        result=common_pb2.TASK_EXECUTION_RESULT_FAILURE,
        exit_code=3,
        failure_info=common_pb2.FailureInfo(code="FailureExitCode", message="exit 3"),
    )
    err = nodehealth.start_task_error(info)
    assert err is not None and (err.code, err.message) == ("FailureExitCode", "exit 3")
    assert {d.name: d.value for d in err.error_details} == {"exit_code": "3"}
    disk = P.NodeError(code="DiskFull")
    assert [e.code for e in nodehealth.node_errors([disk], info)] == ["DiskFull", "FailureExitCode"]
    ok = common_pb2.StartTaskInfo(
        state=common_pb2.START_TASK_STATE_COMPLETED, result=common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    )
    assert nodehealth.start_task_error(ok) is None
    assert nodehealth.start_task_error(common_pb2.StartTaskInfo()) is None


def test_back_from_unusable() -> None:
    def back(wait: bool, ok: bool, failed: bool) -> int | None:
        return nodehealth.health_state(
            P.NODE_STATE_UNUSABLE,
            False,
            wait_for_start_task=wait,
            start_task_ok=ok,
            start_task_failed=failed,
            ready_state=P.NODE_STATE_IDLE,
        )

    assert back(False, False, False) == P.NODE_STATE_IDLE
    assert back(True, True, False) == P.NODE_STATE_IDLE
    assert back(True, False, False) == P.NODE_STATE_STARTING
    assert back(True, False, True) == P.NODE_STATE_START_TASK_FAILED


@given(st.sampled_from(NODE_STATES), st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.sampled_from(READY))
def test_every_health_change_is_a_transition_of_the_table(
    state: int, unusable: bool, wait: bool, ok: bool, failed: bool, ready: int
) -> None:
    new = nodehealth.health_state(
        state, unusable, wait_for_start_task=wait, start_task_ok=ok, start_task_failed=failed, ready_state=ready
    )
    if new is None or new == state:
        return
    assert states.can_transition(states.NODE_TRANSITIONS, state, new), (state, new)
    # Errors never move a restarting or leaving node; only errors make a node UNUSABLE.
    assert state not in (P.NODE_STATE_REBOOTING, P.NODE_STATE_REIMAGING, P.NODE_STATE_LEAVING_POOL)
    assert (new == P.NODE_STATE_UNUSABLE) == unusable
