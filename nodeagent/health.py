"""The node's own health as its agent finds it: what makes the node UNUSABLE (Batch's node errors).

Checked when the agent starts and then every `AgentConfig.health_interval_seconds`: the node root must be
usable (its fixed directories there, or made again, and a file can be written and removed in
`workitems/`), and its disk must have more free space than `AgentConfig.reserved_disk_bytes` (Batch's
reserved ephemeral disk space). Each check gives a `NodeError`; the agent sends the list when it
changes (NodeHealth) and in every Register, and the server keeps tasks off the node while any is there.
A cause that goes away (space freed, a directory that can be made again) clears its error at the next
check: the node recovers by itself.
"""

from __future__ import annotations

import os
import shutil

from shoal.nodeagent.layout import NodeLayout
from shoal.v1 import common_pb2, pool_pb2

ROOT_UNUSABLE = "NodeRootUnusable"
DISK_FULL = "DiskFull"
#: Written and removed in `workitems/` by each check.
PROBE = ".shoal-health-probe"


def _error(code: str, message: str, **details: object) -> pool_pb2.NodeError:
    return pool_pb2.NodeError(
        code=code,
        message=message,
        error_details=[common_pb2.MetadataItem(name=k, value=str(v)) for k, v in details.items()],
    )


def root_problem(layout: NodeLayout) -> str:
    """Why the node root cannot be used (empty: it can): its directories cannot be made, or a file cannot
    be written in `workitems/` (a read-only or broken filesystem). No link is followed."""
    try:
        layout.create()
        fd = os.open(layout.workitems / PROBE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
        os.unlink(layout.workitems / PROBE)
    except OSError as e:
        return f"{e.strerror or e}: {e.filename or layout.root}"
    return ""


def node_errors(layout: NodeLayout, reserved_disk_bytes: int) -> list[pool_pb2.NodeError]:
    """What is wrong with the node now (empty: nothing)."""
    problem = root_problem(layout)
    if problem:
        return [_error(ROOT_UNUSABLE, f"the node root cannot be used: {problem}", path=layout.root)]
    try:
        free = shutil.disk_usage(layout.root).free
    except OSError as e:
        return [_error(ROOT_UNUSABLE, f"the node root's disk cannot be read: {e}", path=layout.root)]
    if free < reserved_disk_bytes:
        return [
            _error(
                DISK_FULL,
                f"the node root's disk has less free space than the {reserved_disk_bytes} bytes reserved",
                path=layout.root,
                free_bytes=free,
                reserved_bytes=reserved_disk_bytes,
            )
        ]
    return []
