"""Node operation types of the Shoal client: scheduling state, disable options and node counts.

:class:`SchedulingState` is a node's ``scheduling_state`` (``client.pools.node``);
:class:`DisableNodeSchedulingOption` says what ``pools.disable_node_scheduling``
does with the node's running tasks; :class:`NodeCounts` and
:class:`PoolNodeCounts` are what ``pools.node_counts`` answers. Enum values are
Batch's spellings, lower case without separators, as the other client enums.
:class:`UploadedNodeLogs` is what ``pools.upload_node_logs`` answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from shoal.v1 import pool_pb2

from .common_types import _choice

__all__ = [
    "DisableNodeSchedulingOption",
    "NodeChanges",
    "NodeCounts",
    "NodeError",
    "PoolNodeCounts",
    "ResizeError",
    "SchedulingState",
    "UploadedNodeLogs",
    "disable_node_scheduling_option_to_proto",
    "scheduling_state_from_proto",
]


class SchedulingState(enum.StrEnum):
    """Whether a node takes new tasks (Batch's ``schedulingState``)."""

    ENABLED = "enabled"
    """It takes tasks."""
    DISABLED = "disabled"
    """It takes no new task; it is ``offline`` once the tasks it had are dealt with."""


class DisableNodeSchedulingOption(enum.StrEnum):
    """What ``pools.disable_node_scheduling`` does with the tasks running on the node."""

    REQUEUE = "requeue"
    """Stop them and queue them again: they run elsewhere (no retry counted)."""
    TERMINATE = "terminate"
    """Stop them: they complete as failed and do not run again."""
    TASK_COMPLETION = "taskcompletion"
    """Let them finish; the node stays ``running`` (scheduling disabled) until they have."""


_SCHEDULING_STATES = {
    # The proto's zero value means enabled: a server that predates the field sends it.
    pool_pb2.SCHEDULING_STATE_UNSPECIFIED: SchedulingState.ENABLED,
    pool_pb2.SCHEDULING_STATE_ENABLED: SchedulingState.ENABLED,
    pool_pb2.SCHEDULING_STATE_DISABLED: SchedulingState.DISABLED,
}

_DISABLE_OPTIONS = {
    DisableNodeSchedulingOption.REQUEUE: pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE,
    DisableNodeSchedulingOption.TERMINATE: pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE,
    DisableNodeSchedulingOption.TASK_COMPLETION: pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION,
}


def scheduling_state_from_proto(value: int) -> SchedulingState:
    """The client enum of a ``shoal.v1.SchedulingState`` value (unknown values read as enabled)."""
    return _SCHEDULING_STATES.get(value, SchedulingState.ENABLED)  # type: ignore[call-overload]


def disable_node_scheduling_option_to_proto(value: DisableNodeSchedulingOption | str) -> int:
    """The ``shoal.v1.DisableNodeSchedulingOption`` of ``value``: a member or its string in any case,
    with or without ``_``/``-`` (``"taskcompletion"``, ``"task_completion"``, ``"TASK_COMPLETION"``).

    Raises :class:`InvalidArgument` ``INVALID_OPTION`` for anything else.
    """
    member = _choice(DisableNodeSchedulingOption, value, field="option", reason="INVALID_OPTION")
    return int(_DISABLE_OPTIONS[member])


# Batch's order of node states; the names are the client's NodeState values.
_COUNT_FIELDS = (
    ("creating", "creating"),
    ("starting", "starting"),
    ("waitingforstarttask", "waiting_for_start_task"),
    ("starttaskfailed", "start_task_failed"),
    ("idle", "idle"),
    ("running", "running"),
    ("unknown", "unknown"),
    ("leavingpool", "leaving_pool"),
    ("offline", "offline"),
    ("rebooting", "rebooting"),
    ("reimaging", "reimaging"),
    ("unusable", "unusable"),
    ("preempted", "preempted"),
)


@dataclass(frozen=True, kw_only=True)
class NodeCounts:
    """How many of a pool's nodes are in each state (Batch's ``NodeCounts``)."""

    creating: int = 0
    starting: int = 0
    waiting_for_start_task: int = 0
    start_task_failed: int = 0
    idle: int = 0
    running: int = 0
    unknown: int = 0
    leaving_pool: int = 0
    offline: int = 0
    rebooting: int = 0
    reimaging: int = 0
    unusable: int = 0
    preempted: int = 0
    total: int = 0
    """All the pool's nodes of this kind, as the server counted them."""

    def by_state(self) -> dict[str, int]:
        """The non-zero counts by state, in Batch's order, keyed by the :class:`NodeState` values
        (``"idle"``, ``"waitingforstarttask"``, ...)."""
        counts = {state: getattr(self, attr) for state, attr in _COUNT_FIELDS}
        return {state: n for state, n in counts.items() if n}

    @classmethod
    def from_proto(cls, msg: pool_pb2.NodeCounts) -> NodeCounts:
        """Build from a ``shoal.v1.NodeCounts``."""
        return cls(**{attr: getattr(msg, attr) for _, attr in _COUNT_FIELDS}, total=msg.total)


@dataclass(frozen=True, kw_only=True)
class PoolNodeCounts:
    """One pool's node counts: dedicated nodes and low-priority nodes (all zero until pools have them)."""

    pool_id: str
    """The pool."""
    dedicated: NodeCounts
    """Its dedicated nodes (every node today)."""
    low_priority: NodeCounts
    """Its low-priority nodes: all zero, Shoal has none yet."""
    proto: pool_pb2.PoolNodeCounts = field(repr=False, compare=False)
    """The raw ``shoal.v1.PoolNodeCounts`` message."""

    @classmethod
    def from_proto(cls, msg: pool_pb2.PoolNodeCounts) -> PoolNodeCounts:
        """Build from a ``shoal.v1.PoolNodeCounts``."""
        return cls(
            pool_id=msg.pool_id,
            dedicated=NodeCounts.from_proto(msg.dedicated),
            low_priority=NodeCounts.from_proto(msg.low_priority),
            proto=msg,
        )


@dataclass(frozen=True)
class ResizeError:
    """Why a pool's last resize did not reach its target (Batch's ``ResizeError``).

    ``code`` is Batch's: ``ResizeStopped`` (``pools.stop_resize``) or ``AllocationTimedout`` (nodes that
    did not come up within the pool's ``resize_timeout``)."""

    code: str
    message: str
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, msg: pool_pb2.ResizeError) -> ResizeError:
        """Build from a ``shoal.v1.ResizeError``."""
        return cls(code=msg.code, message=msg.message, values={v.name: v.value for v in msg.values})


@dataclass(frozen=True)
class NodeError:
    """Something wrong with a node (Batch's ``ComputeNodeError``): ``code`` such as ``DiskFull``,
    ``NodeRootUnusable`` or ``StartTaskResourceFilesUnavailable``; ``details`` name what it concerns."""

    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, msg: pool_pb2.NodeError) -> NodeError:
        """Build from a ``shoal.v1.NodeError``."""
        return cls(code=msg.code, message=msg.message, details={v.name: v.value for v in msg.error_details})


@dataclass(frozen=True)
class NodeChanges:
    """One message of ``pools.watch_nodes``: nodes as they are now, and ids of nodes that left the pool."""

    nodes: tuple[Any, ...]
    """The :class:`~shoal.client.Node` of each node that changed (or, with ``initial``, of the snapshot)."""
    removed_node_ids: tuple[str, ...] = ()
    initial: bool = False
    """Part of the snapshot of the pool's nodes as they were when the watch began."""
    initial_complete: bool = False
    """The last message of that snapshot (later messages are changes)."""


@dataclass(frozen=True)
class UploadedNodeLogs:
    """Where ``pools.upload_node_logs`` put a node's logs (Batch's ``UploadBatchServiceLogsResult``)."""

    container: str
    """The storage container of the account they went to."""
    virtual_directory_name: str
    """The blobs' prefix: ``<pool>/<node>/<UTC time>-<hex>``, new for every upload (each file is the
    blob ``<virtual_directory_name>/<file name>``, e.g. ``.../agent.log``)."""
    number_of_files_uploaded: int
    """How many log files went up."""
