"""Node errors and the UNUSABLE state as pure decisions.

A node's `errors` are what its agent reports (NodeRootUnusable, DiskFull, ...: the node cannot run tasks,
so it is UNUSABLE until they go) and, as Batch shows them, its start task's failure (the node is then
START_TASK_FAILED where the pool waits for the start task, not UNUSABLE). No I/O, no clock:
`server.lifecycle.nodes` applies what these decide.
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.v1 import common_pb2
from shoal.v1 import pool_pb2 as P

#: Where an agent's errors make a node UNUSABLE (its running tasks are requeued).
UNUSABLE_FROM = frozenset(
    {
        P.NODE_STATE_CREATING,
        P.NODE_STATE_STARTING,
        P.NODE_STATE_WAITING_FOR_START_TASK,
        P.NODE_STATE_START_TASK_FAILED,
        P.NODE_STATE_IDLE,
        P.NODE_STATE_RUNNING,
        P.NODE_STATE_OFFLINE,
    }
)


def start_task_error(info: common_pb2.StartTaskInfo) -> P.NodeError | None:
    """The node error a failed start task shows (its failure's code, as Batch's `FailureExitCode`), or None."""
    if info.state != common_pb2.START_TASK_STATE_COMPLETED or info.result != common_pb2.TASK_EXECUTION_RESULT_FAILURE:
        return None
    failure = info.failure_info
    err = P.NodeError(
        code=failure.code or "StartTaskFailed",
        message=failure.message or "the start task failed",
    )
    if info.HasField("exit_code"):
        err.error_details.add(name="exit_code", value=str(info.exit_code))
    return err


def node_errors(agent_errors: Sequence[P.NodeError], start_task: common_pb2.StartTaskInfo) -> list[P.NodeError]:
    """Everything a node shows in `errors`: its agent's, then its start task's failure."""
    errors = list(agent_errors)
    failed = start_task_error(start_task)
    if failed is not None:
        errors.append(failed)
    return errors


def health_state(
    state: int,
    unusable: bool,
    *,
    wait_for_start_task: bool,
    start_task_ok: bool,
    start_task_failed: bool,
    ready_state: int,
) -> int | None:
    """The state a node in `state` takes now that its agent reports errors (`unusable`) or none; None: it
    stays. Back from UNUSABLE, a node whose pool waits for a start task it has not run with success (as
    it was told when it last joined: `start_task_ok`) goes to START_TASK_FAILED if it failed, else to
    STARTING (it runs); any other node to `ready_state`."""
    if unusable:
        return P.NODE_STATE_UNUSABLE if state in UNUSABLE_FROM else None
    if state != P.NODE_STATE_UNUSABLE:
        return None
    if wait_for_start_task and not start_task_ok:
        return P.NODE_STATE_START_TASK_FAILED if start_task_failed else P.NODE_STATE_STARTING
    return ready_state
