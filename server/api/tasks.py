"""TaskService: adding, listing, watching and controlling tasks, and reading their files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from shoal import agenterrors
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.server.api.errors import ApiError, failed_precondition, invalid, not_found, rpc_errors
from shoal.server.api.etags import etag_of, tagged, task_message
from shoal.server.api.identity_checks import PoolAccounts, pool_accounts
from shoal.server.api.nodefiles import DELETE_SECONDS, NodeChannels, translate
from shoal.server.api.paging import page
from shoal.server.api.validation import (
    MAX_TASKS_PER_REQUEST,
    check_enum,
    check_file_path,
    check_task,
    check_task_constraints,
)
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import key as idkey
from shoal.server.domain.ids import parse_name
from shoal.server.domain.records import NodeRec, TaskRec
from shoal.v1 import common_pb2, job_pb2, task_pb2, task_pb2_grpc

Ctx = grpc.aio.ServicerContext
WATCH_BATCH = 1000


class TaskServicer(task_pb2_grpc.TaskServiceServicer):
    """Serves TaskService from the control plane."""

    def __init__(self, cp: ControlPlane, channels: NodeChannels) -> None:
        self.cp = cp
        self.channels = channels

    @rpc_errors
    async def AddTask(self, request: task_pb2.AddTaskRequest, context: Ctx) -> task_pb2.Task:
        (jid,) = parse_name(request.parent, "jobs", field="parent")
        v = check_task(
            request.task, "task", job_action_allowed=self._performs_job_actions(jid), accounts=self._accounts(jid)
        )
        if v:
            raise invalid("INVALID_TASK", v)
        self.cp.job(jid)
        (result,) = await self.cp.add_tasks(jid, [request.task])
        if result.status != task_pb2.ADD_TASK_STATUS_SUCCESS:
            from shoal.server.api.errors import already_exists

            raise already_exists(result.error_reason, result.error_message)
        return self._message(self.cp.task(jid, request.task.id))

    @rpc_errors
    async def AddTasks(self, request: task_pb2.AddTasksRequest, context: Ctx) -> task_pb2.AddTasksResponse:
        (jid,) = parse_name(request.parent, "jobs", field="parent")
        if len(request.tasks) > MAX_TASKS_PER_REQUEST:
            raise invalid(
                "TOO_MANY_TASKS",
                [("tasks", f"at most {MAX_TASKS_PER_REQUEST} tasks per request; split the request")],
            )
        if not request.tasks:
            raise invalid("NO_TASKS", [("tasks", "must not be empty")])
        violations: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        job_actions = self._performs_job_actions(jid)
        accounts = self._accounts(jid)
        for i, spec in enumerate(request.tasks):
            violations += check_task(spec, f"tasks[{i}]", job_action_allowed=job_actions, accounts=accounts)
            k = idkey(spec.id)
            if k in seen:
                violations.append((f"tasks[{i}].id", f"duplicates tasks[{seen[k]}].id {spec.id!r}"))
            else:
                seen[k] = i
            if len(violations) > 100:
                break
        if violations:
            reason = "DUPLICATE_TASK_ID" if all("duplicates" in d for _, d in violations) else "INVALID_TASK"
            raise invalid(reason, violations[:100])
        self.cp.job(jid)
        results = await self.cp.add_tasks(jid, list(request.tasks))
        return task_pb2.AddTasksResponse(results=results)

    def _performs_job_actions(self, job_id: str) -> bool:
        """Whether the job performs its tasks' exit options' job actions (a task asking for one of a job
        that does not is refused, as in Batch). An unknown job says yes: NOT_FOUND follows."""
        job = self.cp.jobs.get(idkey(job_id))
        return job is None or job.proto.on_task_failure == job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION

    def _accounts(self, job_id: str) -> PoolAccounts | None:
        """The user accounts of the job's pool, when both exist (a task naming a user that is not one is
        refused; a job may name a pool made later, and then nothing is known to check against)."""
        job = self.cp.jobs.get(idkey(job_id))
        pool = self.cp.pools.get(job.pool_key) if job is not None else None
        return pool_accounts(pool.proto) if pool is not None else None

    @rpc_errors
    async def GetTask(self, request: task_pb2.GetTaskRequest, context: Ctx) -> task_pb2.Task:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        t = self.cp.task(jid, tid)
        return self._message(t, self._waiting(t.job_key).get(t.tkey, ""))

    def _message(self, t: TaskRec, waiting_reason: str = "") -> task_pb2.Task:
        """The task as answered: its etag, why it waits for nodes, where it stands on its dependencies."""
        msg = task_message(t, waiting_reason)
        if t.state == task_pb2.TASK_STATE_ACTIVE:
            state = self.cp.dependency_state(t)
            if state is not None:
                msg.dependency_state.CopyFrom(state)
        return msg

    def _waiting(self, job_key: str) -> dict[tuple[str, str], str]:
        """Why the job's ACTIVE gangs wait, by task (`PoolRec.waiting`: the tasks' `waiting_reason`)."""
        job = self.cp.jobs.get(job_key)
        pool = self.cp.pools.get(job.pool_key) if job is not None else None
        return pool.waiting if pool is not None else {}

    @rpc_errors
    async def ListTasks(self, request: task_pb2.ListTasksRequest, context: Ctx) -> task_pb2.ListTasksResponse:
        (jid,) = parse_name(request.parent, "jobs", field="parent")
        v = check_enum(request.state, task_pb2.TaskState, "state")
        if v:
            raise invalid("INVALID_FILTER", v)
        job = self.cp.job(jid)
        recs = (t for t in job.tasks.values() if not request.state or t.state == request.state)
        # Page over the records: only the page's tasks are read (a stored task is kept serialized).
        items, token = page(recs, request.page_size, request.page_token, f"jobs/{job.key}/tasks?state={request.state}")
        why = self._waiting(job.key)
        tasks = [self._message(t, why.get(t.tkey, "")) for t in items]
        return task_pb2.ListTasksResponse(tasks=tasks, next_page_token=token)

    @rpc_errors
    async def TerminateTask(self, request: task_pb2.TerminateTaskRequest, context: Ctx) -> task_pb2.Task:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        return tagged(await self.cp.terminate_task(jid, tid, etag=request.etag))

    @rpc_errors
    async def DeleteTask(self, request: task_pb2.DeleteTaskRequest, context: Ctx) -> task_pb2.Task:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        return tagged(await self.cp.delete_task(jid, tid, etag=request.etag))

    @rpc_errors
    async def UpdateTask(self, request: task_pb2.UpdateTaskRequest, context: Ctx) -> task_pb2.Task:
        jid, tid = parse_name(request.task.name, "jobs", "tasks", field="task.name")
        unknown = set(request.update_mask) - {"constraints"}
        if unknown:
            raise invalid(
                "INVALID_UPDATE_MASK", [("update_mask", f"cannot update {sorted(unknown)}; only 'constraints'")]
            )
        v = check_task_constraints(request.task.spec.constraints, "task.spec.constraints")
        if v:
            raise invalid("INVALID_TASK", v)
        t = await self.cp.update_task(jid, tid, request.task.spec.constraints, etag=request.task.etag)
        return tagged(t)

    @rpc_errors
    async def ReactivateTask(self, request: task_pb2.ReactivateTaskRequest, context: Ctx) -> task_pb2.Task:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        return tagged(await self.cp.reactivate_task(jid, tid, etag=request.etag))

    @rpc_errors
    async def WatchTasks(
        self, request: task_pb2.WatchTasksRequest, context: Ctx
    ) -> AsyncIterator[task_pb2.WatchTasksResponse]:
        (jid,) = parse_name(request.parent, "jobs", field="parent")
        job = self.cp.job(jid)
        wanted = {idkey(t) for t in request.task_ids}
        queue: asyncio.Queue[list[task_pb2.Task] | None] = asyncio.Queue()
        # Subscribe before the snapshot so that no change falls between them.
        job.watchers.add(queue)
        try:
            why = self._waiting(job.key)
            current = [
                self._message(t, why.get(t.tkey, "")) for t in job.tasks.values() if not wanted or t.key in wanted
            ]
            if not current:
                yield task_pb2.WatchTasksResponse(initial=True, initial_complete=True)
            for i in range(0, len(current), WATCH_BATCH):
                chunk = current[i : i + WATCH_BATCH]
                last = i + WATCH_BATCH >= len(current)
                yield task_pb2.WatchTasksResponse(tasks=chunk, initial=True, initial_complete=last)
            while True:
                batch = await queue.get()
                if batch is None:
                    return
                while not queue.empty() and len(batch) < WATCH_BATCH * 10:
                    more = queue.get_nowait()
                    if more is None:
                        break
                    batch = batch + more
                if wanted:
                    batch = [t for t in batch if idkey(t.spec.id) in wanted]
                for t in batch:
                    # (Messages of their own, shared by the job's watchers: the first one to send them tags them.)
                    if not t.etag:
                        t.etag = etag_of(t)
                        if job.deps is not None and t.state == task_pb2.TASK_STATE_ACTIVE:
                            rec = job.tasks.get(idkey(t.spec.id))
                            state = self.cp.dependency_state(rec) if rec is not None else None
                            if state is not None:
                                t.dependency_state.CopyFrom(state)
                if batch:
                    yield task_pb2.WatchTasksResponse(tasks=batch)
        finally:
            job.watchers.discard(queue)

    @rpc_errors
    async def ListSubtasks(self, request: task_pb2.ListSubtasksRequest, context: Ctx) -> task_pb2.ListSubtasksResponse:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        return task_pb2.ListSubtasksResponse(subtasks=self.cp.task(jid, tid).read().subtasks)

    def _task_node(self, t: TaskRec) -> NodeRec:
        task = t.read()
        node_id = task.node_info.node_id
        node = self.cp.nodes.get(idkey(node_id)) if node_id else None
        if node is None and node_id and task.state == task_pb2.TASK_STATE_COMPLETED:
            # As in Batch, the files of a node that left its pool are deleted with it.
            raise not_found(
                "TASK_FILES_CLEANED_UP",
                f"the files of task {task.spec.id!r} were deleted with node {node_id!r}, which left its pool",
            )
        if node is None:
            raise failed_precondition(
                "TASK_FILES_UNAVAILABLE",
                "the task has not run on a node yet" if not node_id else f"node {node_id!r} is no longer in its pool",
            )
        if not node.connected or not node.node_service_port:
            raise failed_precondition("TASK_FILES_UNAVAILABLE", f"node {node_id!r} is not connected")
        return node

    def _file_error(self, t: TaskRec, e: ApiError) -> ApiError:
        """An agent's file error as this task's client should see it.

        The task's directory gone from its node after the task completed means its files were
        cleaned up (retention ran out, or they were deleted): Batch's TaskFilesCleanedup. While
        it runs (the directory not made yet), FILE_NOT_FOUND: following it waits for it.
        """
        if e.reason != agenterrors.TASK_DIRECTORY_NOT_FOUND:
            return e
        task = t.read()
        if task.state == task_pb2.TASK_STATE_COMPLETED:
            return not_found(
                "TASK_FILES_CLEANED_UP",
                f"the files of task {task.spec.id!r} were deleted from node {task.node_info.node_id!r} "
                "(its retention time ran out, or they were deleted)",
            )
        return not_found("FILE_NOT_FOUND", e.message)

    @rpc_errors
    async def ListTaskFiles(
        self, request: task_pb2.ListTaskFilesRequest, context: Ctx
    ) -> task_pb2.ListTaskFilesResponse:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        v = check_file_path(request.path, "path")
        if v:
            raise invalid("INVALID_PATH", v)
        t = self.cp.task(jid, tid)
        node = self._task_node(t)
        stub = agent_pb2_grpc.NodeServiceStub(self.channels.get(node))
        try:
            resp = await self.channels.call(
                stub.ListFiles(
                    agent_pb2.ListFilesRequest(
                        scope=agent_pb2.FILE_SCOPE_TASK,
                        job_id=self.cp.jobs[t.job_key].proto.id,
                        task_id=t.read().spec.id,
                        path=request.path,
                        recursive=request.recursive,
                    ),
                    timeout=30,
                )
            )
        except ApiError as e:
            raise self._file_error(t, e) from None
        return task_pb2.ListTaskFilesResponse(files=resp.files)

    @rpc_errors
    async def ReadTaskFile(
        self, request: task_pb2.ReadTaskFileRequest, context: Ctx
    ) -> AsyncIterator[common_pb2.FileChunk]:
        jid, tid = parse_name(request.name, "jobs", "tasks")
        if request.offset < 0:
            raise invalid("INVALID_OFFSET", [("offset", "must not be negative")])
        v = check_file_path(request.path, "path")
        if v:
            raise invalid("INVALID_PATH", v)
        t = self.cp.task(jid, tid)
        node = self._task_node(t)
        stub = agent_pb2_grpc.NodeServiceStub(self.channels.get(node))
        call = stub.ReadFile(
            agent_pb2.ReadFileRequest(
                scope=agent_pb2.FILE_SCOPE_TASK,
                job_id=self.cp.jobs[t.job_key].proto.id,
                task_id=t.read().spec.id,
                path=request.path,
                offset=request.offset,
                follow=request.follow,
            )
        )
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise self._file_error(t, translate(e)) from None
        finally:
            call.cancel()

    @rpc_errors
    async def GetTaskFileProperties(
        self, request: task_pb2.GetTaskFilePropertiesRequest, context: Ctx
    ) -> common_pb2.NodeFile:
        t, stub, ids = self._task_files(request.name, request.path)
        try:
            return await self.channels.call(
                stub.StatFile(agent_pb2.StatFileRequest(path=request.path, **ids), timeout=30)
            )
        except ApiError as e:
            raise self._file_error(t, e) from None

    @rpc_errors
    async def DeleteTaskFile(
        self, request: task_pb2.DeleteTaskFileRequest, context: Ctx
    ) -> task_pb2.DeleteTaskFileResponse:
        t, stub, ids = self._task_files(request.name, request.path)
        delete = agent_pb2.DeleteFileRequest(path=request.path, recursive=request.recursive, **ids)
        try:
            await self.channels.call(stub.DeleteFile(delete, timeout=DELETE_SECONDS))
        except ApiError as e:
            raise self._file_error(t, e) from None
        return task_pb2.DeleteTaskFileResponse()

    def _task_files(self, name: str, path: str) -> tuple[TaskRec, agent_pb2_grpc.NodeServiceStub, dict[str, Any]]:
        """The task `name` (`jobs/{job}/tasks/{task}`), the NodeService of the node that has its directory,
        and the fields that name the directory there, once `path` is checked."""
        jid, tid = parse_name(name, "jobs", "tasks")
        v = check_file_path(path, "path")
        if v:
            raise invalid("INVALID_PATH", v)
        t = self.cp.task(jid, tid)
        node = self._task_node(t)
        ids = {
            "scope": agent_pb2.FILE_SCOPE_TASK,
            "job_id": self.cp.jobs[t.job_key].proto.id,
            "task_id": t.read().spec.id,
        }
        return t, agent_pb2_grpc.NodeServiceStub(self.channels.get(node)), ids
