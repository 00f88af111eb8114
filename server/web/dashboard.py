"""The web dashboard's routes: the page, its static files, JSON reads and live streams (server-sent events).

Reads go through the `Gateway` with the signed-in account's key; live views follow the API's watch streams
(``WatchNodes``, ``WatchTasks``) and a task's output follows ``ReadTaskFile`` with ``follow``, so nothing
polls the server every second. The metrics' last hour comes from `history`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry

from shoal.v1 import (
    job_pb2,
    job_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)

from .gateway import Gateway, GatewayError, as_json
from .history import MetricHistory, sample_forever
from .server import SESSION_KEY

STATIC = Path(__file__).parent / "static"
#: The most items a list gathers across pages (a page says when it shows only these).
LIST_CAP = 5000
PAGE_SIZE = 1000
#: The most bytes a page reads of a node's file at once.
FILE_CAP = 1 << 20
#: A comment line this often keeps a stream open through proxies, and finds pages that left.
KEEPALIVE_SECONDS = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Dashboard:
    """The dashboard of one server: its routes on the HTTP port's application."""

    def __init__(self, gateway: Gateway, registry: CollectorRegistry, history: MetricHistory | None = None) -> None:
        self.gateway = gateway
        self.registry = registry
        self.history = history or MetricHistory()

    @property
    def pools(self) -> pool_pb2_grpc.PoolServiceStub:
        return pool_pb2_grpc.PoolServiceStub(self.gateway.channel)

    @property
    def jobs(self) -> job_pb2_grpc.JobServiceStub:
        return job_pb2_grpc.JobServiceStub(self.gateway.channel)

    @property
    def tasks(self) -> task_pb2_grpc.TaskServiceStub:
        return task_pb2_grpc.TaskServiceStub(self.gateway.channel)

    @property
    def schedules(self) -> schedule_pb2_grpc.JobScheduleServiceStub:
        return schedule_pb2_grpc.JobScheduleServiceStub(self.gateway.channel)

    def install_on(self, extensions: list[Callable[[web.Application], None]]) -> None:
        """Have the HTTP port's application (made later) carry the dashboard."""
        extensions.append(self.install)

    def install(self, app: web.Application) -> None:
        """Add the routes, and the metrics sampler for the application's life."""
        r = app.router
        r.add_get("/", self._index)
        r.add_static("/static/", STATIC)
        r.add_get("/api/whoami", self._json(self._whoami))
        r.add_get("/api/pools", self._json(self._list_pools))
        r.add_get("/api/pools/{pool}", self._json(self._get_pool))
        r.add_get("/api/pools/{pool}/nodes", self._json(self._list_nodes))
        r.add_get("/api/pools/{pool}/nodes/{node}", self._json(self._get_node))
        r.add_get("/api/pools/{pool}/nodes/{node}/files", self._json(self._list_node_files))
        r.add_get("/api/pools/{pool}/nodes/{node}/file", self._node_file)
        r.add_get("/api/jobs", self._json(self._list_jobs))
        r.add_get("/api/jobs/{job}", self._json(self._get_job))
        r.add_get("/api/jobs/{job}/tasks", self._json(self._list_tasks))
        r.add_get("/api/jobs/{job}/tasks/{task}", self._json(self._get_task))
        r.add_get("/api/jobs/{job}/tasks/{task}/files", self._json(self._list_task_files))
        r.add_get("/api/schedules", self._json(self._list_schedules))
        r.add_get("/api/schedules/{schedule}", self._json(self._get_schedule))
        r.add_get("/api/metrics/history", self._json(self._metric_history))
        r.add_get("/api/watch/pools/{pool}/nodes", self._watch_nodes)
        r.add_get("/api/watch/jobs/{job}/tasks", self._watch_tasks)
        r.add_get("/api/follow/jobs/{job}/tasks/{task}", self._follow_task_file)
        app.cleanup_ctx.append(self._sampler)
        app.on_cleanup.append(self._close)

    async def _sampler(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sample_forever(self.registry, self.history, time.time), name="metric history")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _close(self, app: web.Application) -> None:
        await self.gateway.close()

    # -- plumbing -----------------------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def _json(self, read: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                body = await read(request)
            except GatewayError as e:
                return web.json_response(e.body(), status=e.status)
            return web.json_response(body, headers={"Cache-Control": "no-store"})

        return handler

    async def _call(self, request: web.Request, method: Callable[..., Any], message: Message) -> dict[str, Any]:
        return as_json(await self.gateway.unary(method, message, request[SESSION_KEY]))

    async def _gather(
        self, request: web.Request, method: Callable[..., Any], make: Callable[[str], Message], field: str
    ) -> dict[str, Any]:
        """Every page of a list, up to `LIST_CAP` items: ``{field: [...], "truncated": bool}``."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = await self.gateway.unary(method, make(token), request[SESSION_KEY])
            items.extend(as_json(m) for m in getattr(page, field))
            token = page.next_page_token  # type: ignore[attr-defined]
            if not token or len(items) >= LIST_CAP:
                return {field: items[:LIST_CAP], "truncated": bool(token) or len(items) > LIST_CAP}

    # -- reads ----------------------------------------------------------------------------------------------
    async def _whoami(self, request: web.Request) -> dict[str, Any]:
        session = request[SESSION_KEY]
        return {"account": session.account if session is not None else "default"}

    async def _list_pools(self, request: web.Request) -> dict[str, Any]:
        pools = await self._gather(
            request,
            self.pools.ListPools,
            lambda token: pool_pb2.ListPoolsRequest(page_size=PAGE_SIZE, page_token=token),
            "pools",
        )
        counts = await self._call(request, self.pools.ListPoolNodeCounts, pool_pb2.ListPoolNodeCountsRequest())
        return {**pools, "node_counts": counts.get("pools", [])}

    async def _get_pool(self, request: web.Request) -> dict[str, Any]:
        name = f"pools/{request.match_info['pool']}"
        return await self._call(request, self.pools.GetPool, pool_pb2.GetPoolRequest(name=name))

    async def _list_nodes(self, request: web.Request) -> dict[str, Any]:
        parent = f"pools/{request.match_info['pool']}"
        return await self._gather(
            request,
            self.pools.ListNodes,
            lambda token: pool_pb2.ListNodesRequest(parent=parent, page_size=PAGE_SIZE, page_token=token),
            "nodes",
        )

    def _node_name(self, request: web.Request) -> str:
        return f"pools/{request.match_info['pool']}/nodes/{request.match_info['node']}"

    async def _get_node(self, request: web.Request) -> dict[str, Any]:
        return await self._call(request, self.pools.GetNode, pool_pb2.GetNodeRequest(name=self._node_name(request)))

    async def _list_node_files(self, request: web.Request) -> dict[str, Any]:
        message = pool_pb2.ListNodeFilesRequest(
            name=self._node_name(request), path=request.query.get("path", ""), recursive=False
        )
        return await self._call(request, self.pools.ListNodeFiles, message)

    async def _node_file(self, request: web.Request) -> web.StreamResponse:
        """A node's file as text, its first `FILE_CAP` bytes."""
        message = pool_pb2.ReadNodeFileRequest(name=self._node_name(request), path=request.query.get("path", ""))
        data = bytearray()
        try:
            async for chunk in self.gateway.stream(self.pools.ReadNodeFile, message, request[SESSION_KEY]):
                data += chunk.data  # type: ignore[attr-defined]
                if len(data) >= FILE_CAP:
                    break
        except GatewayError as e:
            return web.json_response(e.body(), status=e.status)
        return web.Response(
            text=bytes(data[:FILE_CAP]).decode("utf-8", errors="replace"),
            headers={"Cache-Control": "no-store", "X-Shoal-Truncated": str(len(data) >= FILE_CAP).lower()},
        )

    async def _list_jobs(self, request: web.Request) -> dict[str, Any]:
        found = await self._gather(
            request,
            self.jobs.ListJobs,
            lambda token: job_pb2.ListJobsRequest(page_size=PAGE_SIZE, page_token=token),
            "jobs",
        )

        # Each active job's task counts, for its progress bar (concurrently; a job gone meanwhile has none).
        async def counts(job: dict[str, Any]) -> None:
            with contextlib.suppress(GatewayError):
                job["task_counts"] = await self._call(
                    request, self.jobs.GetJobTaskCounts, job_pb2.GetJobTaskCountsRequest(name=f"jobs/{job['id']}")
                )

        await asyncio.gather(*(counts(job) for job in found["jobs"][:200]))
        return found

    async def _get_job(self, request: web.Request) -> dict[str, Any]:
        name = f"jobs/{request.match_info['job']}"
        job = await self._call(request, self.jobs.GetJob, job_pb2.GetJobRequest(name=name))
        job["task_counts"] = await self._call(
            request, self.jobs.GetJobTaskCounts, job_pb2.GetJobTaskCountsRequest(name=name)
        )
        return job

    async def _list_tasks(self, request: web.Request) -> dict[str, Any]:
        parent = f"jobs/{request.match_info['job']}"
        state = request.query.get("state", "")
        state_value = f"TASK_STATE_{state.upper()}" if state else None
        if state_value is not None and state_value not in task_pb2.TaskState.DESCRIPTOR.values_by_name:
            raise GatewayError(400, "INVALID_ARGUMENT", f"no task state {state!r}")
        return await self._gather(
            request,
            self.tasks.ListTasks,
            lambda token: task_pb2.ListTasksRequest(
                parent=parent, page_size=PAGE_SIZE, page_token=token, state=state_value
            ),
            "tasks",
        )

    def _task_name(self, request: web.Request) -> str:
        return f"jobs/{request.match_info['job']}/tasks/{request.match_info['task']}"

    async def _get_task(self, request: web.Request) -> dict[str, Any]:
        return await self._call(request, self.tasks.GetTask, task_pb2.GetTaskRequest(name=self._task_name(request)))

    async def _list_task_files(self, request: web.Request) -> dict[str, Any]:
        message = task_pb2.ListTaskFilesRequest(
            name=self._task_name(request), path=request.query.get("path", ""), recursive=True
        )
        return await self._call(request, self.tasks.ListTaskFiles, message)

    async def _list_schedules(self, request: web.Request) -> dict[str, Any]:
        return await self._gather(
            request,
            self.schedules.ListJobSchedules,
            lambda token: schedule_pb2.ListJobSchedulesRequest(page_size=PAGE_SIZE, page_token=token),
            "job_schedules",
        )

    async def _get_schedule(self, request: web.Request) -> dict[str, Any]:
        name = f"jobschedules/{request.match_info['schedule']}"
        schedule = await self._call(
            request, self.schedules.GetJobSchedule, schedule_pb2.GetJobScheduleRequest(name=name)
        )
        jobs = await self._call(
            request, self.schedules.ListJobsFromSchedule, schedule_pb2.ListJobsFromScheduleRequest(name=name)
        )
        schedule["jobs"] = jobs.get("jobs", [])
        return schedule

    async def _metric_history(self, request: web.Request) -> dict[str, Any]:
        return self.history.as_json()

    # -- live -----------------------------------------------------------------------------------------------
    async def _events(self, request: web.Request, events: AsyncIterator[tuple[str, Any]]) -> web.StreamResponse:
        """Server-sent events: each ``(event, data)`` as one event with JSON data, until the page leaves."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(maxsize=256)

        async def pump() -> None:
            try:
                async for item in events:
                    await queue.put(item)
            except GatewayError as e:
                await queue.put(("error", e.body()))
            finally:
                await queue.put(None)

        pumping = asyncio.create_task(pump())
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if item is None:
                    await response.write(b"event: end\ndata: {}\n\n")
                    break
                event, data = item
                await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping
        return response

    async def _watch_nodes(self, request: web.Request) -> web.StreamResponse:
        message = pool_pb2.WatchNodesRequest(parent=f"pools/{request.match_info['pool']}")

        async def events() -> AsyncIterator[tuple[str, Any]]:
            async for m in self.gateway.stream(self.pools.WatchNodes, message, request[SESSION_KEY]):
                yield "nodes", as_json(m)

        return await self._events(request, events())

    async def _watch_tasks(self, request: web.Request) -> web.StreamResponse:
        message = task_pb2.WatchTasksRequest(
            parent=f"jobs/{request.match_info['job']}", task_ids=request.query.getall("task", [])
        )

        async def events() -> AsyncIterator[tuple[str, Any]]:
            async for m in self.gateway.stream(self.tasks.WatchTasks, message, request[SESSION_KEY]):
                yield "tasks", as_json(m)

        return await self._events(request, events())

    async def _follow_task_file(self, request: web.Request) -> web.StreamResponse:
        """A task's file (``?path=stdout.txt``) as text events, following it until the task completes."""
        message = task_pb2.ReadTaskFileRequest(
            name=self._task_name(request), path=request.query.get("path", "stdout.txt"), follow=True
        )

        async def events() -> AsyncIterator[tuple[str, Any]]:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            async for chunk in self.gateway.stream(self.tasks.ReadTaskFile, message, request[SESSION_KEY]):
                text = decoder.decode(chunk.data)  # type: ignore[attr-defined]
                if text:
                    yield "text", {"offset": chunk.offset, "text": text}  # type: ignore[attr-defined]
            tail = decoder.decode(b"", final=True)
            if tail:
                yield "text", {"text": tail}

        return await self._events(request, events())
