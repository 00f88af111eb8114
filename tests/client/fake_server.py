"""A small in-memory Shoal API on a real in-process grpc.aio server, for client and CLI tests.

It speaks the public protos and fails the way the real server does: a
`google.rpc.Status` with an ErrorInfo reason in the `shoal.v1` domain and
BadRequest field violations. Tests drive task state changes through
:meth:`FakeShoal.complete` and friends (run on the server's loop).

It is a test double for the client and the CLI only: it records the requests
it gets and answers in the API's shapes, but decides nothing the server
decides (dependencies, disabling, preparation tasks); tests set such state
through it (:meth:`FakeShoal.set_dependency_state`, ``prep_statuses``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from shoal.v1 import (
    certificate_pb2,
    certificate_pb2_grpc,
    common_pb2,
    job_pb2,
    job_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def rich_status(
    code: grpc.StatusCode, reason: str, message: str, violations: list[tuple[str, str]] | None = None
) -> grpc.Status:
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="shoal.v1", metadata={"k": "v"}))
    details.append(info)
    if violations:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
                ]
            )
        )
        details.append(bad)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))


class Abort(Exception):
    def __init__(self, status: grpc.Status):
        super().__init__(status)
        self.status = status


def not_found(reason: str, msg: str) -> Abort:
    return Abort(rich_status(grpc.StatusCode.NOT_FOUND, reason, msg))


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools
    import inspect

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def gen_wrapper(self: Any, request: Any, context: Any) -> Any:
            try:
                async for item in fn(self, request, context):
                    yield item
            except Abort as e:
                await context.abort_with_status(e.status)

        return gen_wrapper

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return await fn(self, request, context)
        except Abort as e:
            await context.abort_with_status(e.status)

    return wrapper


def _page(items: list[Any], page_size: int, token: str) -> tuple[list[Any], str]:
    start = int(token or 0)
    size = page_size or 1000
    chunk = items[start : start + size]
    nxt = str(start + size) if start + size < len(items) else ""
    return chunk, nxt


def _is_dir(tree: dict[str, bytes], path: str) -> bool:
    return not path or any(p.startswith(path + "/") for p in tree)


def _properties(tree: dict[str, bytes], path: str) -> common_pb2.NodeFile:
    """A file's properties in a tree of paths (as the agent answers: FILE_NOT_FOUND when it is not there)."""
    if path in tree:
        return common_pb2.NodeFile(path=path, size=len(tree[path]), file_mode="0644")
    if _is_dir(tree, path):
        return common_pb2.NodeFile(path=path, is_directory=True, file_mode="0755")
    raise not_found("FILE_NOT_FOUND", f"{path} not found")


def _listing(tree: dict[str, bytes], path: str, recursive: bool) -> list[common_pb2.NodeFile]:
    prefix = path + "/" if path else ""
    names = sorted(p for p in tree if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]))
    return [common_pb2.NodeFile(path=p, size=len(tree[p]), file_mode="0644") for p in names]


def _delete(files: dict[tuple[str, str, str], bytes], owner: tuple[str, str], path: str, recursive: bool) -> None:
    """Delete `path` of `owner`'s tree in `files`, refused as the agent refuses."""
    tree = {p: d for (a, b, p), d in files.items() if (a, b) == owner}
    if not path:
        raise Abort(rich_status(grpc.StatusCode.PERMISSION_DENIED, "FILE_PROTECTED", ". may not be deleted"))
    if path in tree:
        del files[(*owner, path)]
        return
    if not _is_dir(tree, path):
        raise not_found("FILE_NOT_FOUND", f"{path} not found")
    if not recursive:
        raise Abort(rich_status(grpc.StatusCode.FAILED_PRECONDITION, "FILE_IS_DIRECTORY", f"{path} is a directory"))
    for p in [p for p in tree if p.startswith(path + "/")]:
        del files[(*owner, p)]


class FakeShoal(
    pool_pb2_grpc.PoolServiceServicer,
    job_pb2_grpc.JobServiceServicer,
    task_pb2_grpc.TaskServiceServicer,
    storage_pb2_grpc.StorageServiceServicer,
    certificate_pb2_grpc.CertificateServiceServicer,
):
    """The state and the servicers."""

    def __init__(self) -> None:
        self.pools: dict[str, pool_pb2.Pool] = {}
        self.nodes: dict[str, list[pool_pb2.Node]] = {}
        self.jobs: dict[str, job_pb2.Job] = {}
        self.tasks: dict[str, dict[str, task_pb2.Task]] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        #: (pool, node, path) → content of the nodes' files (directories are the prefixes of their paths).
        self.node_files: dict[tuple[str, str, str], bytes] = {}
        #: Whether a ReadNodeFile that follows is still streaming (tests see it end when cancelled).
        self.node_follows = 0
        self.ended_follows: set[tuple[str, str, str]] = set()
        self.delete_file_requests: list[Any] = []
        self.containers: dict[str, dict[str, bytes]] = {}
        self.watchers: list[tuple[str, asyncio.Queue[task_pb2.Task]]] = []
        self.add_tasks_requests: list[int] = []
        self.page_size_seen: list[int] = []
        self.metadata_seen: list[dict[str, str]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        #: End the next WatchTasks stream right after its initial snapshot (like a server restart).
        self.end_next_watch_after_initial = False
        self.watch_calls = 0
        self.update_job_requests: list[job_pb2.UpdateJobRequest] = []
        self.update_task_requests: list[task_pb2.UpdateTaskRequest] = []
        self.disable_requests: list[job_pb2.DisableJobRequest] = []
        self.disable_node_requests: list[pool_pb2.DisableNodeSchedulingRequest] = []
        self.update_pool_requests: list[pool_pb2.UpdatePoolRequest] = []
        self.upload_logs_requests: list[pool_pb2.UploadNodeLogsRequest] = []
        #: What ListPreparationAndReleaseTaskStatus answers, per job.
        self.prep_statuses: dict[str, list[job_pb2.PreparationAndReleaseTaskStatus]] = {}
        self.certificates: dict[str, certificate_pb2.Certificate] = {}
        self.add_certificate_requests: list[certificate_pb2.AddCertificateRequest] = []
        #: Thumbprints whose deletion fails, with the pools that "use" them (tests set this).
        self.certificates_in_use: dict[str, list[str]] = {}

    # ---------------------------------------------------------------- pools
    @handled
    async def CreatePool(self, request: pool_pb2.CreatePoolRequest, context: Any) -> pool_pb2.Pool:
        self.metadata_seen.append(dict(context.invocation_metadata()))
        p = request.pool
        violations = []
        if not ID_RE.match(p.id):
            violations.append(("pool.id", "1..64 letters, digits, '-' and '_'"))
        if p.task_slots_per_node < 0 or p.task_slots_per_node > 256:
            violations.append(("pool.task_slots_per_node", "0..256"))
        if violations:
            raise Abort(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_POOL", "bad pool", violations))
        if p.id.lower() in {k.lower() for k in self.pools}:
            raise Abort(rich_status(grpc.StatusCode.ALREADY_EXISTS, "POOL_EXISTS", f"pool {p.id} exists"))
        pool = pool_pb2.Pool()
        pool.CopyFrom(p)
        pool.name = f"pools/{p.id}"
        pool.state = pool_pb2.POOL_STATE_ACTIVE
        pool.allocation_state = pool_pb2.ALLOCATION_STATE_STEADY
        pool.current_nodes = p.target_nodes
        pool.creation_time.GetCurrentTime()
        pool.provider = p.provider or "local"
        self.pools[p.id] = pool
        self.nodes[p.id] = [
            pool_pb2.Node(
                name=f"pools/{p.id}/nodes/node-{i}",
                id=f"node-{i}",
                pool_id=p.id,
                state=pool_pb2.NODE_STATE_IDLE,
                ip_address=f"127.0.1.{i}",
                task_slots=p.task_slots_per_node or 1,
            )
            for i in range(1, p.target_nodes + 1)
        ]
        return pool

    def _pool(self, name: str) -> pool_pb2.Pool:
        pid = name.removeprefix("pools/")
        if pid not in self.pools:
            raise not_found("POOL_NOT_FOUND", f"pool {pid} not found")
        return self.pools[pid]

    @handled
    async def GetPool(self, request: pool_pb2.GetPoolRequest, context: Any) -> pool_pb2.Pool:
        return self._pool(request.name)

    @handled
    async def ListPools(self, request: pool_pb2.ListPoolsRequest, context: Any) -> pool_pb2.ListPoolsResponse:
        self.page_size_seen.append(request.page_size)
        # Pages of 2 regardless, so that the client has to follow tokens.
        items, nxt = _page(list(self.pools.values()), 2, request.page_token)
        return pool_pb2.ListPoolsResponse(pools=items, next_page_token=nxt)

    @handled
    async def DeletePool(self, request: pool_pb2.DeletePoolRequest, context: Any) -> pool_pb2.Pool:
        pool = self._pool(request.name)
        del self.pools[pool.id]
        pool.state = pool_pb2.POOL_STATE_DELETING
        return pool

    @handled
    async def ResizePool(self, request: pool_pb2.ResizePoolRequest, context: Any) -> pool_pb2.Pool:
        pool = self._pool(request.name)
        if request.target_nodes < 0:
            raise Abort(
                rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESIZE", "bad size", [("target_nodes", ">= 0")])
            )
        pool.target_nodes = request.target_nodes
        pool.allocation_state = pool_pb2.ALLOCATION_STATE_RESIZING
        return pool

    @handled
    async def ListNodes(self, request: pool_pb2.ListNodesRequest, context: Any) -> pool_pb2.ListNodesResponse:
        self._pool(request.parent)
        nodes = [
            n
            for n in self.nodes[request.parent.removeprefix("pools/")]
            if not request.state or n.state == request.state
        ]
        items, nxt = _page(nodes, 1, request.page_token)
        return pool_pb2.ListNodesResponse(nodes=items, next_page_token=nxt)

    @handled
    async def GetNode(self, request: pool_pb2.GetNodeRequest, context: Any) -> pool_pb2.Node:
        _, pid, _, nid = request.name.split("/")
        self._pool(f"pools/{pid}")
        for n in self.nodes[pid]:
            if n.id == nid:
                return n
        raise not_found("NODE_NOT_FOUND", f"node {nid} not found")

    def _node(self, name: str) -> pool_pb2.Node:
        _, pid, _, nid = name.split("/")
        self._pool(f"pools/{pid}")
        for n in self.nodes[pid]:
            if n.id == nid:
                return n
        raise not_found("NODE_NOT_FOUND", f"node {nid} not found")

    def _scheduling(self, request: Any, target: int) -> pool_pb2.Node:
        """The node of ``request`` with scheduling ``target``; refused as the server does from the same
        state. It does not touch tasks or the node's state beyond OFFLINE <-> IDLE of an unused node."""
        node = self._node(request.name)
        current = node.scheduling_state or pool_pb2.SCHEDULING_STATE_ENABLED
        if current == target:
            raise Abort(
                rich_status(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE",
                    f"node {node.id} is already {pool_pb2.SchedulingState.Name(target)}",
                )
            )
        node.scheduling_state = target  # type: ignore[assignment]
        if target == pool_pb2.SCHEDULING_STATE_DISABLED and node.state == pool_pb2.NODE_STATE_IDLE:
            node.state = pool_pb2.NODE_STATE_OFFLINE
        elif target == pool_pb2.SCHEDULING_STATE_ENABLED and node.state == pool_pb2.NODE_STATE_OFFLINE:
            node.state = pool_pb2.NODE_STATE_IDLE
        return node

    @handled
    async def DisableNodeScheduling(
        self, request: pool_pb2.DisableNodeSchedulingRequest, context: Any
    ) -> pool_pb2.Node:
        self.disable_node_requests.append(request)
        return self._scheduling(request, pool_pb2.SCHEDULING_STATE_DISABLED)

    @handled
    async def EnableNodeScheduling(self, request: pool_pb2.EnableNodeSchedulingRequest, context: Any) -> pool_pb2.Node:
        return self._scheduling(request, pool_pb2.SCHEDULING_STATE_ENABLED)

    @handled
    async def ListPoolNodeCounts(
        self, request: pool_pb2.ListPoolNodeCountsRequest, context: Any
    ) -> pool_pb2.ListPoolNodeCountsResponse:
        fields = {
            pool_pb2.NODE_STATE_IDLE: "idle",
            pool_pb2.NODE_STATE_RUNNING: "running",
            pool_pb2.NODE_STATE_OFFLINE: "offline",
            pool_pb2.NODE_STATE_STARTING: "starting",
            pool_pb2.NODE_STATE_START_TASK_FAILED: "start_task_failed",
        }
        counts = []
        for pid in self.pools:
            dedicated = pool_pb2.NodeCounts(total=len(self.nodes[pid]))
            for n in self.nodes[pid]:
                attr = fields[n.state]
                setattr(dedicated, attr, getattr(dedicated, attr) + 1)
            counts.append(pool_pb2.PoolNodeCounts(pool_id=pid, dedicated=dedicated, low_priority=pool_pb2.NodeCounts()))
        # Pages of 1, so that the client has to follow tokens.
        items, nxt = _page(counts, 1, request.page_token)
        return pool_pb2.ListPoolNodeCountsResponse(pools=items, next_page_token=nxt)

    # ---------------------------------------------------------------- node files
    def _node_tree(self, name: str) -> tuple[str, str]:
        node = self._node(name)
        return node.pool_id or name.split("/")[1], node.id

    @handled
    async def ListNodeFiles(
        self, request: pool_pb2.ListNodeFilesRequest, context: Any
    ) -> pool_pb2.ListNodeFilesResponse:
        pid, nid = self._node_tree(request.name)
        tree = {p: d for (pi, ni, p), d in self.node_files.items() if (pi, ni) == (pid, nid)}
        return pool_pb2.ListNodeFilesResponse(files=_listing(tree, request.path, request.recursive))

    @handled
    async def ReadNodeFile(self, request: pool_pb2.ReadNodeFileRequest, context: Any) -> Any:
        pid, nid = self._node_tree(request.name)
        key = (pid, nid, request.path)
        if key not in self.node_files:
            raise not_found("FILE_NOT_FOUND", f"{request.path} not found")
        offset = request.offset
        self.node_follows += request.follow
        try:
            while True:
                data = self.node_files.get(key, b"")
                if len(data) > offset:
                    yield common_pb2.FileChunk(offset=offset, data=data[offset:])
                    offset = len(data)
                    continue
                # (A follow also ends, once drained, when a test puts its file in `ended_follows`.)
                if not request.follow or key in self.ended_follows:
                    return
                await asyncio.sleep(0.01)
        finally:
            self.node_follows -= request.follow

    @handled
    async def GetNodeFileProperties(
        self, request: pool_pb2.GetNodeFilePropertiesRequest, context: Any
    ) -> common_pb2.NodeFile:
        pid, nid = self._node_tree(request.name)
        tree = {p: d for (pi, ni, p), d in self.node_files.items() if (pi, ni) == (pid, nid)}
        return _properties(tree, request.path)

    @handled
    async def DeleteNodeFile(
        self, request: pool_pb2.DeleteNodeFileRequest, context: Any
    ) -> pool_pb2.DeleteNodeFileResponse:
        self.delete_file_requests.append(request)
        pid, nid = self._node_tree(request.name)
        _delete(self.node_files, (pid, nid), request.path, request.recursive)
        return pool_pb2.DeleteNodeFileResponse()

    @handled
    async def UpdatePool(self, request: pool_pb2.UpdatePoolRequest, context: Any) -> pool_pb2.Pool:
        self.update_pool_requests.append(request)
        pool = self._pool(request.pool.name)
        for path in request.update_mask.paths:
            pool.ClearField(path)
            value = getattr(request.pool, path)
            if isinstance(value, (str, int)):
                setattr(pool, path, value)
            elif hasattr(value, "extend"):
                getattr(pool, path).extend(value)
            elif request.pool.HasField(path):
                getattr(pool, path).CopyFrom(value)
        return pool

    @handled
    async def UploadNodeLogs(
        self, request: pool_pb2.UploadNodeLogsRequest, context: Any
    ) -> pool_pb2.UploadNodeLogsResponse:
        self.upload_logs_requests.append(request)
        pid, nid = self._node_tree(request.name)
        directory = f"{pid}/{nid}/20260301T120000000000Z-0123abcd"
        blobs = self.containers.setdefault(request.container, {})
        blobs[f"{directory}/agent.log"] = b"the agent's log\n"
        return pool_pb2.UploadNodeLogsResponse(virtual_directory_name=directory, number_of_files_uploaded=1)

    # ---------------------------------------------------------------- jobs
    def _job(self, name: str) -> job_pb2.Job:
        jid = name.removeprefix("jobs/")
        if jid not in self.jobs:
            raise not_found("JOB_NOT_FOUND", f"job {jid} not found")
        return self.jobs[jid]

    @handled
    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: Any) -> job_pb2.Job:
        j = request.job
        if not ID_RE.match(j.id):
            raise Abort(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_JOB", "bad job", [("job.id", "bad id")]))
        if j.pool_id not in self.pools:
            raise Abort(rich_status(grpc.StatusCode.FAILED_PRECONDITION, "POOL_NOT_FOUND", "no such pool"))
        if j.id in self.jobs:
            raise Abort(rich_status(grpc.StatusCode.ALREADY_EXISTS, "JOB_EXISTS", f"job {j.id} exists"))
        job = job_pb2.Job()
        job.CopyFrom(j)
        job.name = f"jobs/{j.id}"
        job.state = job_pb2.JOB_STATE_ACTIVE
        job.creation_time.GetCurrentTime()
        job.etag = "1"
        self.jobs[j.id] = job
        self.tasks[j.id] = {}
        return job

    @handled
    async def GetJob(self, request: job_pb2.GetJobRequest, context: Any) -> job_pb2.Job:
        return self._job(request.name)

    @handled
    async def ListJobs(self, request: job_pb2.ListJobsRequest, context: Any) -> job_pb2.ListJobsResponse:
        jobs = [j for j in self.jobs.values() if not request.state or j.state == request.state]
        items, nxt = _page(jobs, 1, request.page_token)
        return job_pb2.ListJobsResponse(jobs=items, next_page_token=nxt)

    def _check_etag(self, current: str, given: str) -> None:
        if given and given != current:
            raise Abort(rich_status(grpc.StatusCode.ABORTED, "ETAG_MISMATCH", "changed since it was read"))

    @handled
    async def UpdateJob(self, request: job_pb2.UpdateJobRequest, context: Any) -> job_pb2.Job:
        self.update_job_requests.append(request)
        job = self._job(request.job.name)
        self._check_etag(job.etag, request.job.etag)
        for name in request.update_mask or ("priority", "on_all_tasks_complete"):
            if name in ("priority", "on_all_tasks_complete", "on_task_failure", "max_parallel_tasks"):
                setattr(job, name, getattr(request.job, name))
            elif name in ("constraints", "metadata"):
                job.ClearField(name)  # type: ignore[arg-type]
                getattr(job, name).MergeFrom(getattr(request.job, name))
            else:
                raise Abort(
                    rich_status(
                        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPDATE_MASK", "bad mask", [("update_mask", name)]
                    )
                )
        job.etag = str(int(job.etag or "0") + 1)
        return job

    @handled
    async def DisableJob(self, request: job_pb2.DisableJobRequest, context: Any) -> job_pb2.Job:
        self.disable_requests.append(request)
        job = self._job(request.name)
        self._check_etag(job.etag, request.etag)
        if job.state != job_pb2.JOB_STATE_ACTIVE:
            raise Abort(rich_status(grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_ACTIVE", "only an active job"))
        # The fake moves at once (the server passes through DISABLING).
        job.previous_state, job.state = job.state, job_pb2.JOB_STATE_DISABLED
        return job

    @handled
    async def EnableJob(self, request: job_pb2.EnableJobRequest, context: Any) -> job_pb2.Job:
        job = self._job(request.name)
        self._check_etag(job.etag, request.etag)
        if job.state != job_pb2.JOB_STATE_DISABLED:
            raise Abort(rich_status(grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_DISABLED", "only a disabled job"))
        job.previous_state, job.state = job.state, job_pb2.JOB_STATE_ACTIVE
        return job

    @handled
    async def ListPreparationAndReleaseTaskStatus(
        self, request: job_pb2.ListPreparationAndReleaseTaskStatusRequest, context: Any
    ) -> job_pb2.ListPreparationAndReleaseTaskStatusResponse:
        job = self._job(request.name)
        if not job.HasField("job_preparation_task"):
            raise Abort(
                rich_status(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "JOB_PREPARATION_TASK_NOT_SPECIFIED",
                    f"job {job.id} has no job preparation task",
                )
            )
        # Pages of 1 regardless, so that the client has to follow tokens.
        items, nxt = _page(self.prep_statuses.get(job.id, []), 1, request.page_token)
        return job_pb2.ListPreparationAndReleaseTaskStatusResponse(statuses=items, next_page_token=nxt)

    @handled
    async def TerminateJob(self, request: job_pb2.TerminateJobRequest, context: Any) -> job_pb2.Job:
        job = self._job(request.name)
        if job.state == job_pb2.JOB_STATE_COMPLETED:
            raise Abort(rich_status(grpc.StatusCode.FAILED_PRECONDITION, "JOB_COMPLETED", "job already completed"))
        job.state = job_pb2.JOB_STATE_COMPLETED
        job.execution_info.terminate_reason = request.terminate_reason or "UserTerminate"
        return job

    @handled
    async def DeleteJob(self, request: job_pb2.DeleteJobRequest, context: Any) -> job_pb2.Job:
        job = self._job(request.name)
        del self.jobs[job.id]
        job.state = job_pb2.JOB_STATE_DELETING
        return job

    @handled
    async def GetJobTaskCounts(self, request: job_pb2.GetJobTaskCountsRequest, context: Any) -> job_pb2.TaskCounts:
        job = self._job(request.name)
        c = job_pb2.TaskCounts()
        for t in self.tasks[job.id].values():
            if t.state == task_pb2.TASK_STATE_ACTIVE:
                c.active += 1
            elif t.state == task_pb2.TASK_STATE_COMPLETED:
                c.completed += 1
                if t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS:
                    c.succeeded += 1
                else:
                    c.failed += 1
            else:
                c.running += 1
            if t.dependency_state.status == task_pb2.DEPENDENCY_STATUS_WAITING:
                c.waiting_on_dependencies += 1
            elif t.dependency_state.status == task_pb2.DEPENDENCY_STATUS_BLOCKED:
                c.blocked += 1
        return c

    # ---------------------------------------------------------------- tasks
    def _new_task(self, job_id: str, spec: task_pb2.TaskSpec) -> task_pb2.Task:
        t = task_pb2.Task(name=f"jobs/{job_id}/tasks/{spec.id}", spec=spec, state=task_pb2.TASK_STATE_ACTIVE, etag="1")
        t.creation_time.GetCurrentTime()
        self.tasks[job_id][spec.id] = t
        self._publish(job_id, t)
        return t

    def _publish(self, job_id: str, task: task_pb2.Task) -> None:
        for jid, q in self.watchers:
            if jid == job_id:
                copy = task_pb2.Task()
                copy.CopyFrom(task)
                q.put_nowait(copy)

    def _task(self, name: str) -> tuple[str, task_pb2.Task]:
        parts = name.split("/")
        if len(parts) != 4:
            raise Abort(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME", "bad name", [("name", "bad")]))
        job = self._job(f"jobs/{parts[1]}")
        t = self.tasks[job.id].get(parts[3])
        if t is None:
            raise not_found("TASK_NOT_FOUND", f"task {parts[3]} not found")
        return job.id, t

    @handled
    async def AddTask(self, request: task_pb2.AddTaskRequest, context: Any) -> task_pb2.Task:
        job = self._job(request.parent)
        if not ID_RE.match(request.task.id):
            raise Abort(
                rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TASK", "bad task", [("task.id", "bad id")])
            )
        if request.task.id in self.tasks[job.id]:
            raise Abort(rich_status(grpc.StatusCode.ALREADY_EXISTS, "TASK_EXISTS", "task exists"))
        return self._new_task(job.id, request.task)

    @handled
    async def AddTasks(self, request: task_pb2.AddTasksRequest, context: Any) -> task_pb2.AddTasksResponse:
        job = self._job(request.parent)
        self.add_tasks_requests.append(len(request.tasks))
        violations = [(f"tasks[{i}].id", "bad id") for i, t in enumerate(request.tasks) if not ID_RE.match(t.id)]
        if violations:
            raise Abort(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TASK", "bad tasks", violations))
        results = []
        for spec in request.tasks:
            if spec.id in self.tasks[job.id]:
                results.append(
                    task_pb2.AddTaskResult(
                        task_id=spec.id,
                        status=task_pb2.ADD_TASK_STATUS_CLIENT_ERROR,
                        error_reason="TASK_EXISTS",
                        error_message="exists",
                    )
                )
            else:
                self._new_task(job.id, spec)
                results.append(task_pb2.AddTaskResult(task_id=spec.id, status=task_pb2.ADD_TASK_STATUS_SUCCESS))
        return task_pb2.AddTasksResponse(results=results)

    @handled
    async def GetTask(self, request: task_pb2.GetTaskRequest, context: Any) -> task_pb2.Task:
        return self._task(request.name)[1]

    @handled
    async def ListTasks(self, request: task_pb2.ListTasksRequest, context: Any) -> task_pb2.ListTasksResponse:
        job = self._job(request.parent)
        tasks = [t for t in self.tasks[job.id].values() if not request.state or t.state == request.state]
        items, nxt = _page(tasks, 3, request.page_token)
        return task_pb2.ListTasksResponse(tasks=items, next_page_token=nxt)

    @handled
    async def TerminateTask(self, request: task_pb2.TerminateTaskRequest, context: Any) -> task_pb2.Task:
        job_id, t = self._task(request.name)
        self._finish(job_id, t, exit_code=None, code="TaskEnded")
        return t

    @handled
    async def DeleteTask(self, request: task_pb2.DeleteTaskRequest, context: Any) -> task_pb2.Task:
        job_id, t = self._task(request.name)
        del self.tasks[job_id][t.spec.id]
        return t

    @handled
    async def ReactivateTask(self, request: task_pb2.ReactivateTaskRequest, context: Any) -> task_pb2.Task:
        job_id, t = self._task(request.name)
        if (
            t.state != task_pb2.TASK_STATE_COMPLETED
            or t.execution_info.result != common_pb2.TASK_EXECUTION_RESULT_FAILURE
        ):
            raise Abort(
                rich_status(grpc.StatusCode.FAILED_PRECONDITION, "TASK_NOT_FAILED", "only failed tasks reactivate")
            )
        t.state = task_pb2.TASK_STATE_ACTIVE
        t.execution_info.Clear()
        self._publish(job_id, t)
        return t

    @handled
    async def UpdateTask(self, request: task_pb2.UpdateTaskRequest, context: Any) -> task_pb2.Task:
        self.update_task_requests.append(request)
        _, t = self._task(request.task.name)
        self._check_etag(t.etag, request.task.etag)
        t.spec.constraints.CopyFrom(request.task.spec.constraints)
        t.etag = str(int(t.etag or "0") + 1)
        return t

    @handled
    async def ListSubtasks(self, request: task_pb2.ListSubtasksRequest, context: Any) -> task_pb2.ListSubtasksResponse:
        _, t = self._task(request.name)
        return task_pb2.ListSubtasksResponse(subtasks=t.subtasks)

    async def WatchTasks(self, request: task_pb2.WatchTasksRequest, context: Any) -> Any:
        try:
            job = self._job(request.parent)
        except Abort as e:
            await context.abort_with_status(e.status)
            return
        wanted = set(request.task_ids)
        q: asyncio.Queue[task_pb2.Task] = asyncio.Queue()
        entry = (job.id, q)
        self.watchers.append(entry)
        try:
            self.watch_calls += 1
            snapshot = [t for t in self.tasks[job.id].values() if not wanted or t.spec.id in wanted]
            # Initial snapshot in batches of 2.
            if not snapshot:
                yield task_pb2.WatchTasksResponse(initial=True, initial_complete=True)
            for i in range(0, len(snapshot), 2):
                last = i + 2 >= len(snapshot)
                yield task_pb2.WatchTasksResponse(tasks=snapshot[i : i + 2], initial=True, initial_complete=last)
            if self.end_next_watch_after_initial:
                self.end_next_watch_after_initial = False
                return
            while True:
                t = await q.get()
                if wanted and t.spec.id not in wanted:
                    continue
                yield task_pb2.WatchTasksResponse(tasks=[t])
        finally:
            self.watchers.remove(entry)

    @handled
    async def ListTaskFiles(
        self, request: task_pb2.ListTaskFilesRequest, context: Any
    ) -> task_pb2.ListTaskFilesResponse:
        job_id, t = self._task(request.name)
        files = [
            common_pb2.NodeFile(path=path, size=len(data), file_mode="0644")
            for (jid, tid, path), data in sorted(self.files.items())
            if jid == job_id and tid == t.spec.id and path.startswith(request.path)
        ]
        return task_pb2.ListTaskFilesResponse(files=files)

    @handled
    async def ReadTaskFile(self, request: task_pb2.ReadTaskFileRequest, context: Any) -> Any:
        job_id, t = self._task(request.name)
        if t.state == task_pb2.TASK_STATE_ACTIVE:
            raise Abort(
                rich_status(
                    grpc.StatusCode.FAILED_PRECONDITION, "TASK_FILES_UNAVAILABLE", "the task has not run on a node yet"
                )
            )
        key = (job_id, t.spec.id, request.path)
        if key not in self.files:
            raise not_found("FILE_NOT_FOUND", f"{request.path} not found")
        offset = request.offset
        while True:
            data = self.files[key]
            if len(data) > offset:
                chunk = data[offset : offset + 4]
                yield common_pb2.FileChunk(offset=offset, data=chunk)
                offset += len(chunk)
                continue
            current = self.tasks[job_id].get(t.spec.id)
            if not request.follow or current is None or current.state == task_pb2.TASK_STATE_COMPLETED:
                return
            await asyncio.sleep(0.01)

    @handled
    async def GetTaskFileProperties(
        self, request: task_pb2.GetTaskFilePropertiesRequest, context: Any
    ) -> common_pb2.NodeFile:
        job_id, t = self._task(request.name)
        tree = {p: d for (j, ti, p), d in self.files.items() if (j, ti) == (job_id, t.spec.id)}
        return _properties(tree, request.path)

    @handled
    async def DeleteTaskFile(
        self, request: task_pb2.DeleteTaskFileRequest, context: Any
    ) -> task_pb2.DeleteTaskFileResponse:
        self.delete_file_requests.append(request)
        job_id, t = self._task(request.name)
        _delete(self.files, (job_id, t.spec.id), request.path, request.recursive)
        return task_pb2.DeleteTaskFileResponse()

    # ---------------------------------------------------------------- state changes (call on the loop)
    def _finish(self, job_id: str, t: task_pb2.Task, *, exit_code: int | None, code: str = "") -> None:
        t.previous_state = t.state
        t.state = task_pb2.TASK_STATE_COMPLETED
        ex = t.execution_info
        ex.start_time.GetCurrentTime()
        ex.end_time.GetCurrentTime()
        if exit_code is not None:
            ex.exit_code = exit_code
        if exit_code == 0:
            ex.result = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
        else:
            ex.result = common_pb2.TASK_EXECUTION_RESULT_FAILURE
            ex.failure_info.category = (
                common_pb2.ERROR_CATEGORY_USER_ERROR
                if exit_code is not None
                else common_pb2.ERROR_CATEGORY_SERVER_ERROR
            )
            ex.failure_info.code = code or "FailureExitCode"
            ex.failure_info.message = f"exit code {exit_code}"
        t.node_info.pool_id = self.jobs[job_id].pool_id
        t.node_info.node_id = "node-1"
        self._publish(job_id, t)

    def complete(self, job_id: str, task_id: str, exit_code: int = 0) -> None:
        self._finish(job_id, self.tasks[job_id][task_id], exit_code=exit_code)

    def set_dependency_state(
        self, job_id: str, task_id: str, status: int, *, on: str = "", reason: str = "", unsatisfied: int = 0
    ) -> None:
        """What the server would say of the task's dependencies (the fake works none of it out)."""
        t = self.tasks[job_id][task_id]
        t.dependency_state.CopyFrom(
            task_pb2.DependencyState(status=status, task_id=on, reason=reason, unsatisfied=unsatisfied)  # type: ignore[arg-type]
        )
        self._publish(job_id, t)

    def set_running(self, job_id: str, task_id: str) -> None:
        t = self.tasks[job_id][task_id]
        t.previous_state = t.state
        t.state = task_pb2.TASK_STATE_RUNNING
        self._publish(job_id, t)

    # ---------------------------------------------------------------- storage
    @handled
    async def CreateContainer(self, request: storage_pb2.CreateContainerRequest, context: Any) -> storage_pb2.Container:
        if not re.match(r"^[a-z0-9-]{3,63}$", request.id):
            raise Abort(
                rich_status(
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONTAINER", "bad container", [("id", "3..63 a-z0-9-")]
                )
            )
        if request.id in self.containers and not request.exist_ok:
            raise Abort(rich_status(grpc.StatusCode.ALREADY_EXISTS, "CONTAINER_EXISTS", "exists"))
        self.containers.setdefault(request.id, {})
        return storage_pb2.Container(name=f"containers/{request.id}", id=request.id)

    @handled
    async def ListContainers(self, request: Any, context: Any) -> storage_pb2.ListContainersResponse:
        return storage_pb2.ListContainersResponse(
            containers=[storage_pb2.Container(name=f"containers/{c}", id=c) for c in sorted(self.containers)]
        )

    def _container(self, cid: str) -> dict[str, bytes]:
        if cid not in self.containers:
            raise not_found("CONTAINER_NOT_FOUND", f"container {cid} not found")
        return self.containers[cid]

    @handled
    async def DeleteContainer(self, request: Any, context: Any) -> storage_pb2.DeleteContainerResponse:
        self._container(request.id)
        del self.containers[request.id]
        return storage_pb2.DeleteContainerResponse()

    async def UploadBlob(self, request_iterator: Any, context: Any) -> storage_pb2.Blob:
        container = name = ""
        data = bytearray()
        finished = False
        async for req in request_iterator:
            if req.container:
                container, name = req.container, req.blob_name
            data.extend(req.data)
            finished = req.finish
        if not finished:
            # As the real server: only a last message with finish set commits.
            await context.abort_with_status(
                rich_status(grpc.StatusCode.INVALID_ARGUMENT, "UPLOAD_NOT_FINISHED", "no message with finish set")
            )
        if container not in self.containers:
            await context.abort_with_status(
                rich_status(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", f"container {container} not found")
            )
        self.containers[container][name] = bytes(data)
        import hashlib

        return storage_pb2.Blob(container=container, name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    @handled
    async def DownloadBlob(self, request: storage_pb2.DownloadBlobRequest, context: Any) -> Any:
        blobs = self._container(request.container)
        if request.blob_name not in blobs:
            raise not_found("BLOB_NOT_FOUND", f"blob {request.blob_name} not found")
        data = blobs[request.blob_name]
        for i in range(0, max(len(data), 1), 5):
            yield storage_pb2.BlobChunk(data=data[i : i + 5])

    @handled
    async def ListBlobs(self, request: storage_pb2.ListBlobsRequest, context: Any) -> storage_pb2.ListBlobsResponse:
        blobs = self._container(request.container)
        items = [
            storage_pb2.Blob(container=request.container, name=n, size=len(d))
            for n, d in sorted(blobs.items())
            if n.startswith(request.prefix)
        ]
        page, nxt = _page(items, 2, request.page_token)
        return storage_pb2.ListBlobsResponse(blobs=page, next_page_token=nxt)

    @handled
    async def DeleteBlob(self, request: storage_pb2.DeleteBlobRequest, context: Any) -> storage_pb2.DeleteBlobResponse:
        blobs = self._container(request.container)
        if request.blob_name not in blobs:
            raise not_found("BLOB_NOT_FOUND", "no blob")
        del blobs[request.blob_name]
        return storage_pb2.DeleteBlobResponse()

    # ---------------------------------------------------------------- certificates
    @handled
    async def AddCertificate(
        self, request: certificate_pb2.AddCertificateRequest, context: Any
    ) -> certificate_pb2.Certificate:
        # Reads the file as the API says it is encoded, so that a test sees what the client sent.
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        self.add_certificate_requests.append(request)
        try:
            if request.format == certificate_pb2.CERTIFICATE_FORMAT_PFX:
                key, cert, _ = pkcs12.load_key_and_certificates(request.data, request.password.encode() or None)
            elif request.data.lstrip().startswith(b"-----BEGIN"):
                key, cert = None, x509.load_pem_x509_certificate(request.data)
            else:
                key, cert = None, x509.load_der_x509_certificate(request.data)
        except ValueError as e:
            raise Abort(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CERTIFICATE", str(e))) from None
        assert cert is not None
        der = cert.public_bytes(serialization.Encoding.DER)
        thumb = hashlib.sha1(der).hexdigest()
        if request.thumbprint and request.thumbprint.lower() != thumb:
            raise Abort(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "THUMBPRINT_MISMATCH", "not its thumbprint"))
        if thumb in self.certificates:
            raise Abort(rich_status(grpc.StatusCode.ALREADY_EXISTS, "CERTIFICATE_EXISTS", f"sha1-{thumb} exists"))
        c = certificate_pb2.Certificate(
            name=f"certificates/sha1-{thumb}",
            thumbprint=thumb,
            thumbprint_algorithm="sha1",
            state=certificate_pb2.CERTIFICATE_STATE_ACTIVE,
            public_data=der,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            has_private_key=key is not None,
            account="default",
        )
        c.state_transition_time.GetCurrentTime()
        c.not_after.FromDatetime(cert.not_valid_after_utc)
        self.certificates[thumb] = c
        return c

    def _certificate(self, name: str) -> certificate_pb2.Certificate:
        thumb = name.removeprefix("certificates/sha1-")
        if thumb not in self.certificates:
            raise not_found("CERTIFICATE_NOT_FOUND", f"{name} not found")
        return self.certificates[thumb]

    @handled
    async def GetCertificate(
        self, request: certificate_pb2.GetCertificateRequest, context: Any
    ) -> certificate_pb2.Certificate:
        return self._certificate(request.name)

    @handled
    async def ListCertificates(
        self, request: certificate_pb2.ListCertificatesRequest, context: Any
    ) -> certificate_pb2.ListCertificatesResponse:
        self.page_size_seen.append(request.page_size)
        items = [c for _, c in sorted(self.certificates.items()) if request.state in (0, c.state)]
        page, nxt = _page(items, 2, request.page_token)
        return certificate_pb2.ListCertificatesResponse(certificates=page, next_page_token=nxt)

    @handled
    async def DeleteCertificate(
        self, request: certificate_pb2.DeleteCertificateRequest, context: Any
    ) -> certificate_pb2.Certificate:
        c = self._certificate(request.name)
        pools = self.certificates_in_use.get(c.thumbprint)
        if pools:
            c.previous_state = c.state
            c.state = certificate_pb2.CERTIFICATE_STATE_DELETE_FAILED
            c.delete_certificate_error.CopyFrom(
                certificate_pb2.DeleteCertificateError(
                    code="CertificateInUse",
                    message="in use",
                    values=[certificate_pb2.CertificateErrorValue(name="pool", value=p) for p in pools],
                )
            )
            return c
        del self.certificates[c.thumbprint]
        gone = certificate_pb2.Certificate()
        gone.CopyFrom(c)
        gone.state = certificate_pb2.CERTIFICATE_STATE_DELETING
        return gone

    @handled
    async def CancelCertificateDeletion(
        self, request: certificate_pb2.CancelCertificateDeletionRequest, context: Any
    ) -> certificate_pb2.Certificate:
        c = self._certificate(request.name)
        if c.state != certificate_pb2.CERTIFICATE_STATE_DELETE_FAILED:
            raise Abort(rich_status(grpc.StatusCode.FAILED_PRECONDITION, "CERTIFICATE_NOT_DELETE_FAILED", "no"))
        c.previous_state = c.state
        c.state = certificate_pb2.CERTIFICATE_STATE_ACTIVE
        c.ClearField("delete_certificate_error")
        return c


class FakeServer:
    """Runs :class:`FakeShoal` on a grpc.aio server in a background thread with its own loop."""

    def __init__(self) -> None:
        self.state = FakeShoal()
        self.address = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> FakeServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self.state.loop = asyncio.get_running_loop()
        server = grpc.aio.server()
        pool_pb2_grpc.add_PoolServiceServicer_to_server(self.state, server)
        job_pb2_grpc.add_JobServiceServicer_to_server(self.state, server)
        task_pb2_grpc.add_TaskServiceServicer_to_server(self.state, server)
        storage_pb2_grpc.add_StorageServiceServicer_to_server(self.state, server)
        certificate_pb2_grpc.add_CertificateServiceServicer_to_server(self.state, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        self.address = f"127.0.0.1:{port}"

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the server loop (where the state lives) and return its result."""

        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
