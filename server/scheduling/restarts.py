"""Node restarts as pure decisions: what RebootNode and ReimageNode do to a node and its running tasks.

No I/O, no clock: `server.lifecycle.restarts` applies what these decide through the kernel. A restart
is written on the node (`NodeRec.internal["restart"]`, as `PendingRestart.as_dict`) before the agent is
told, so that a server killed in between tells the agent again when it reconnects; the agent's next
Register names the restart it has done (`Register.restart_id`), which ends it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from shoal.server.domain.errors import FailedPrecondition
from shoal.server.scheduling.nodeops import Eviction
from shoal.v1 import pool_pb2 as P

#: Where a restart may start. Batch documents IDLE and RUNNING; Shoal also restarts the nodes an operator
#: most wants to: OFFLINE (scheduling disabled), START_TASK_FAILED and UNUSABLE.
RESTARTABLE = frozenset(
    {
        P.NODE_STATE_IDLE,
        P.NODE_STATE_RUNNING,
        P.NODE_STATE_OFFLINE,
        P.NODE_STATE_START_TASK_FAILED,
        P.NODE_STATE_UNUSABLE,
    }
)
RESTARTING = frozenset({P.NODE_STATE_REBOOTING, P.NODE_STATE_REIMAGING})


class PendingRestart(NamedTuple):
    """A restart decided for a node and not yet done."""

    restart_id: str
    reimage: bool
    #: Running tasks are left to finish first (TASK_COMPLETION, RETAINED_DATA).
    wait_for_tasks: bool
    #: The agent waits for its task directories' retention to pass before it restarts (RETAINED_DATA).
    wait_for_retention: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """As kept in the node's stored record."""
        return self._asdict()

    @classmethod
    def from_dict(cls, d: object) -> PendingRestart | None:
        """The restart kept in a node's record, or None (none, or a record this version cannot read)."""
        if not isinstance(d, dict):
            return None
        try:
            return cls(
                str(d["restart_id"]),
                bool(d["reimage"]),
                bool(d["wait_for_tasks"]),
                bool(d["wait_for_retention"]),
                str(d.get("reason", "")),
            )
        except KeyError:
            return None


class RestartDecision(NamedTuple):
    """What a restart does now: the node's new state and its running tasks' fate."""

    state: int
    eviction: Eviction
    wait_for_tasks: bool
    wait_for_retention: bool


def decide(state: int, running: bool, option: int, *, reimage: bool) -> RestartDecision:
    """RebootNode (or, with `reimage`, ReimageNode) on a node in `state` with tasks `running` there, with
    deallocation `option`; FailedPrecondition when the node cannot restart now."""
    if state not in RESTARTABLE:
        raise _refusal(state, "reimage" if reimage else "reboot")
    waits = option in (P.NODE_DEALLOCATION_OPTION_TASK_COMPLETION, P.NODE_DEALLOCATION_OPTION_RETAINED_DATA)
    eviction = Eviction.NONE
    if running and not waits:
        terminate = option == P.NODE_DEALLOCATION_OPTION_TERMINATE
        eviction = Eviction.TERMINATE if terminate else Eviction.REQUEUE
    return RestartDecision(
        state=P.NODE_STATE_REIMAGING if reimage else P.NODE_STATE_REBOOTING,
        eviction=eviction,
        wait_for_tasks=waits and running,
        wait_for_retention=option == P.NODE_DEALLOCATION_OPTION_RETAINED_DATA,
    )


def _refusal(state: int, verb: str) -> FailedPrecondition:
    """Why a node in `state` (outside RESTARTABLE) cannot restart (Batch's error codes, as reasons)."""
    if state == P.NODE_STATE_REBOOTING:
        return FailedPrecondition("NODE_BEING_REBOOTED", f"cannot {verb}: the node is rebooting")
    if state == P.NODE_STATE_REIMAGING:
        return FailedPrecondition("NODE_BEING_REIMAGED", f"cannot {verb}: the node is being reimaged")
    if state == P.NODE_STATE_CREATING:
        return FailedPrecondition("NODE_BEING_CREATED", f"cannot {verb}: the node is being created")
    if state in (P.NODE_STATE_STARTING, P.NODE_STATE_WAITING_FOR_START_TASK):
        return FailedPrecondition("NODE_BEING_STARTED", f"cannot {verb}: the node is starting")
    if state == P.NODE_STATE_UNKNOWN:
        return FailedPrecondition("NODE_UNREACHABLE", f"cannot {verb}: the node's agent cannot be reached")
    if state == P.NODE_STATE_LEAVING_POOL:
        return FailedPrecondition("NODE_LEAVING_POOL", f"cannot {verb}: the node is leaving its pool")
    return FailedPrecondition("NODE_NOT_IDLE_OR_RUNNING", f"cannot {verb}: the node is not idle or running")


def done_by(pending: PendingRestart | None, restart_id: str) -> bool:
    """Whether an agent that registers having done restart `restart_id` (empty: none) ends `pending`."""
    return pending is not None and bool(restart_id) and restart_id == pending.restart_id


def keep_preparations(jobs: list[tuple[str, bool, bool]], *, reimage: bool) -> list[str]:
    """Of `(job id, has a preparation task, rerun_on_node_reboot_after_success)` for every live job, the jobs
    whose preparation does not run again after the restart: none after a reimage (everything runs again),
    after a reboot those that say so."""
    if reimage:
        return []
    return sorted(job_id for job_id, has_prep, rerun in jobs if has_prep and not rerun)
