"""A pool's resizes as pure decisions: which nodes a removal names, when a resize has timed out, the errors.

No I/O, no clock: `server.lifecycle.allocation` applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from shoal.v1 import common_pb2
from shoal.v1 import pool_pb2 as P

#: Batch's default resize timeout, and the least Shoal takes (Batch asks 5 minutes).
DEFAULT_RESIZE_TIMEOUT_SECONDS = 15 * 60
MIN_RESIZE_TIMEOUT_SECONDS = 5
#: The most nodes one RemoveNodes names (as Batch).
MAX_REMOVE_NODES = 100
#: Nodes that have not come up: what a timed-out resize gives up.
NOT_UP = frozenset({P.NODE_STATE_CREATING})


def removal_problems(node_ids: Sequence[str], members: Mapping[str, int]) -> list[tuple[str, str]]:
    """Field violations of a RemoveNodes request; `members`: the pool's node ids (lowercase) → state."""
    if not 1 <= len(node_ids) <= MAX_REMOVE_NODES:
        return [("node_ids", f"must name 1 to {MAX_REMOVE_NODES} nodes")]
    violations = []
    seen: set[str] = set()
    for i, node_id in enumerate(node_ids):
        k = node_id.lower()
        if k in seen:
            violations.append((f"node_ids[{i}]", "names a node already named"))
        seen.add(k)
        state = members.get(k)
        if state is None:
            violations.append((f"node_ids[{i}]", "is not a node of the pool"))
        elif state == P.NODE_STATE_LEAVING_POOL:
            violations.append((f"node_ids[{i}]", "is leaving the pool already"))
    return violations


def timeout_seconds(pool: P.Pool) -> float:
    """The pool's resize timeout."""
    d = pool.resize_timeout
    return d.seconds + d.nanos / 1e9 if pool.HasField("resize_timeout") else DEFAULT_RESIZE_TIMEOUT_SECONDS


def timed_out(allocation_state: int, since: datetime | None, now: datetime, timeout: float) -> bool:
    """Whether a resize under way since `since` has run past `timeout` seconds."""
    if allocation_state != P.ALLOCATION_STATE_RESIZING or since is None:
        return False
    return (now - since).total_seconds() > timeout


def resize_error(code: str, message: str, **values: str) -> P.ResizeError:
    """A ResizeError (Batch's codes: ResizeStopped, AllocationTimedout)."""
    return P.ResizeError(
        code=code,
        message=message,
        values=[common_pb2.MetadataItem(name=k, value=v) for k, v in values.items()],
    )
