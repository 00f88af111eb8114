"""UploadNodeLogs (Batch's "upload Batch service logs"): a node's agent uploads its own logs of a time window
to a storage container of the node's account.

The control plane checks the request, names the upload's virtual directory (`<pool>/<node>/<UTC time>-<hex>`,
new for every request, as Batch's is) and asks the node's agent (NodeService.UploadLogs over the
control plane's mutual TLS channel); the agent creates the container if it is missing and uploads each of
its log files whose time span meets the window as the blob `<virtual directory>/<file name>`
(see `shoal.nodeagent.logupload`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.server.api.errors import failed_precondition, invalid
from shoal.server.api.nodefiles import NodeChannels
from shoal.server.api.validation import CONTAINER_RE, Violations
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import parse_name
from shoal.v1 import pool_pb2

#: How long the control plane waits for the agent's uploads (its log files are not large, but a busy
#: storage service takes a while).
UPLOAD_SECONDS = 300.0
#: The Timestamp range protobuf defines (0001-01-01 to 9999-12-31, UTC).
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


def _timestamp_problem(ts: timestamp_pb2.Timestamp) -> str:
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        return f"is not a valid Timestamp (seconds={ts.seconds}, nanos={ts.nanos})"
    return ""


def request_problems(request: pool_pb2.UploadNodeLogsRequest) -> Violations:
    """Field violations of an UploadNodeLogs request (the name is checked when it is parsed)."""
    out: Violations = []
    if not CONTAINER_RE.match(request.container):
        out.append(("container", "must be a storage container name: 3-63 lowercase letters, digits or '-'"))
    if not request.HasField("start_time"):
        out.append(("start_time", "is required"))
    else:
        problem = _timestamp_problem(request.start_time)
        if problem:
            out.append(("start_time", problem))
    if request.HasField("end_time"):
        problem = _timestamp_problem(request.end_time)
        if problem:
            out.append(("end_time", problem))
        elif request.HasField("start_time") and request.end_time.ToNanoseconds() < request.start_time.ToNanoseconds():
            out.append(("end_time", "must not be before start_time"))
    return out


def virtual_directory(pool_id: str, node_id: str, now: datetime, unique: str) -> str:
    """The blob prefix of one upload: `<pool>/<node>/<UTC time, to the microsecond>-<unique>`
    (sortable by time, and new for every request even when two come at once)."""
    return f"{pool_id}/{node_id}/{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{unique}"


async def upload_node_logs(
    cp: ControlPlane, channels: NodeChannels, request: pool_pb2.UploadNodeLogsRequest
) -> pool_pb2.UploadNodeLogsResponse:
    """Check `request`, then have the node's agent upload its logs; the answer names where they went.

    INVALID_ARGUMENT `INVALID_UPLOAD_NODE_LOGS` names a bad field; a node whose agent is not connected
    is FAILED_PRECONDITION `NODE_NOT_CONNECTED`; an upload the agent could not make is FAILED_PRECONDITION
    `LOG_UPLOAD_FAILED`; an agent that does not answer is UNAVAILABLE `NODE_UNAVAILABLE`.
    """
    pid, nid = parse_name(request.name, "pools", "nodes")
    v = request_problems(request)
    if v:
        raise invalid("INVALID_UPLOAD_NODE_LOGS", v)
    node = cp.node(pid, nid)
    if not node.connected or not node.node_service_port:
        raise failed_precondition("NODE_NOT_CONNECTED", f"node {nid!r} is not connected")
    directory = virtual_directory(node.proto.pool_id, node.proto.id, cp.clock.now(), secrets.token_hex(4))
    call = agent_pb2.UploadLogsRequest(
        container=request.container, virtual_directory=directory, start_time=request.start_time
    )
    if request.HasField("end_time"):
        call.end_time.CopyFrom(request.end_time)
    stub = agent_pb2_grpc.NodeServiceStub(channels.get(node))
    answer = await channels.call(stub.UploadLogs(call, timeout=UPLOAD_SECONDS))
    return pool_pb2.UploadNodeLogsResponse(
        virtual_directory_name=directory, number_of_files_uploaded=answer.number_of_files_uploaded
    )
