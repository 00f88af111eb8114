"""The synchronous Shoal client: :class:`Client` and its sub-APIs."""

from __future__ import annotations

import builtins
import collections
import concurrent.futures
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc

from shoal.v1 import (
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

from .errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
    from_rpc_error,
)
from .types import (
    AddTaskResult,
    AllocationState,
    Blob,
    Container,
    Job,
    JobState,
    Node,
    NodeFile,
    NodeState,
    Pool,
    StartTaskSpec,
    Subtask,
    Task,
    TaskCounts,
    TaskSpec,
    TaskState,
    _env_to_proto,
    duration_to_proto,
    job_state_to_proto,
    node_state_to_proto,
    on_all_tasks_complete_to_proto,
    task_state_to_proto,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "Client",
    "JobsAPI",
    "PoolsAPI",
    "StorageAPI",
    "TaskWatch",
    "TasksAPI",
    "resolve_address",
    "shoal_home",
]

DEFAULT_ADDRESS = "127.0.0.1:7420"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_UPLOAD_CHUNK = 1024 * 1024
# Keep an AddTasks request well under the message size limit.
_MAX_ADD_REQUEST_BYTES = 64 * 1024 * 1024
_PAGE_SIZE = 1000

T = TypeVar("T")


def shoal_home() -> Path:
    """``$SHOAL_HOME``, or ``~/.shoal``."""
    home = os.environ.get("SHOAL_HOME")
    return Path(home).expanduser() if home else Path.home() / ".shoal"


def _server_json() -> dict[str, Any]:
    path = shoal_home() / "server.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_address(address: str | None = None) -> str:
    """Where the server is.

    ``address``, else ``$SHOAL_ADDRESS``, else ``$SHOAL_HOME/server.json``, else the default.
    """
    if address:
        return address
    env = os.environ.get("SHOAL_ADDRESS")
    if env:
        return env
    from_file = _server_json().get("address")
    if isinstance(from_file, str) and from_file:
        return from_file
    return DEFAULT_ADDRESS


def _resolve_key(key: str | None) -> str | None:
    if key:
        return key
    env = os.environ.get("SHOAL_KEY")
    if env:
        return env
    data = _server_json()
    for field_name in ("key", "account_key"):
        value = data.get(field_name)
        if isinstance(value, str) and value:
            return value
    key_file = data.get("key_file")
    if isinstance(key_file, str) and key_file:
        try:
            return Path(key_file).read_text().strip() or None
        except OSError:
            return None
    return None


class _Rpc:
    """Calls stubs and turns gRPC errors into :class:`ShoalError`."""

    def __init__(self, channel: grpc.Channel, *, metadata: Sequence[tuple[str, str]], timeout: float | None):
        self.channel = channel
        self.metadata = tuple(metadata)
        self.timeout = timeout
        self.pools = pool_pb2_grpc.PoolServiceStub(channel)
        self.jobs = job_pb2_grpc.JobServiceStub(channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(channel)

    def unary(self, method: Callable[..., T], request: Any, *, timeout: float | None = None) -> T:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def pages(self, method: Callable[..., Any], make_request: Callable[[str], Any], field: str) -> Iterator[Any]:
        token = ""
        while True:
            response = self.unary(method, make_request(token))
            yield from getattr(response, field)
            token = response.next_page_token
            if not token:
                return


def _wait_or_cancel(cancel: threading.Event | None, seconds: float) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled("wait cancelled", reason="CANCELLED")


class PoolsAPI:
    """Pools and their nodes: ``client.pools``."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    def create(
        self,
        *,
        id: str,
        target_nodes: int = 0,
        task_slots_per_node: int = 1,
        start_task: StartTaskSpec | None = None,
        enable_inter_node_communication: bool = False,
        display_name: str = "",
        provider: str = "",
        request_id: str | None = None,
    ) -> Pool:
        """Create a pool; its nodes come up asynchronously (see :meth:`wait_nodes_idle`)."""
        pool = pool_pb2.Pool(
            id=id,
            display_name=display_name,
            target_nodes=target_nodes,
            task_slots_per_node=task_slots_per_node,
            enable_inter_node_communication=enable_inter_node_communication,
            provider=provider,
        )
        if start_task is not None:
            pool.start_task.CopyFrom(start_task.to_proto())
        request = pool_pb2.CreatePoolRequest(pool=pool, request_id=request_id or uuid.uuid4().hex)
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.CreatePool, request))

    def get(self, pool_id: str) -> Pool:
        """The pool ``pool_id``."""
        return Pool.from_proto(
            self._rpc.unary(self._rpc.pools.GetPool, pool_pb2.GetPoolRequest(name=f"pools/{pool_id}"))
        )

    def list(self) -> Iterator[Pool]:
        """Every pool (all pages)."""
        for msg in self._rpc.pages(
            self._rpc.pools.ListPools,
            lambda token: pool_pb2.ListPoolsRequest(page_size=_PAGE_SIZE, page_token=token),
            "pools",
        ):
            yield Pool.from_proto(msg)

    def resize(
        self, pool_id: str, target_nodes: int, *, node_deallocation_option: str = "requeue", etag: str | None = None
    ) -> Pool:
        """Change the pool's target size; ``node_deallocation_option`` is requeue|terminate|taskcompletion.

        Only a pool whose allocation is steady may be resized (:class:`FailedPrecondition`
        ``POOL_RESIZING`` otherwise; see :meth:`wait_steady`). With ``etag`` (a :attr:`Pool.etag`
        read before), raises :class:`Aborted` ``ETAG_MISMATCH`` if the pool changed since.
        """
        options = {
            "requeue": pool_pb2.NODE_DEALLOCATION_OPTION_REQUEUE,
            "terminate": pool_pb2.NODE_DEALLOCATION_OPTION_TERMINATE,
            "taskcompletion": pool_pb2.NODE_DEALLOCATION_OPTION_TASK_COMPLETION,
        }
        key = node_deallocation_option.lower().replace("_", "").replace("-", "")
        if key not in options:
            raise InvalidArgument(
                f"node_deallocation_option must be one of {sorted(options)}",
                reason="INVALID_RESIZE",
                field_violations=[("node_deallocation_option", f"one of {sorted(options)}")],
            )
        request = pool_pb2.ResizePoolRequest(
            name=f"pools/{pool_id}",
            target_nodes=target_nodes,
            node_deallocation_option=options[key],  # type: ignore[arg-type]
            etag=etag or "",
        )
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.ResizePool, request))

    def delete(self, pool_id: str, *, etag: str | None = None) -> Pool:
        """Start deleting the pool: it goes to ``deleting``, its nodes leave, then it is gone.

        With ``etag``, raises :class:`Aborted` ``ETAG_MISMATCH`` if the pool changed since it was read.
        """
        request = pool_pb2.DeletePoolRequest(name=f"pools/{pool_id}", etag=etag or "")
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.DeletePool, request))

    def nodes(self, pool_id: str, state: NodeState | str | None = None) -> Iterator[Node]:
        """The pool's nodes (all pages), only those in ``state`` when given."""
        state_value = node_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.pools.ListNodes,
            lambda token: pool_pb2.ListNodesRequest(
                parent=f"pools/{pool_id}",
                page_size=_PAGE_SIZE,
                page_token=token,
                state=state_value,  # type: ignore[arg-type]
            ),
            "nodes",
        ):
            yield Node.from_proto(msg)

    def node(self, pool_id: str, node_id: str) -> Node:
        """One node."""
        request = pool_pb2.GetNodeRequest(name=f"pools/{pool_id}/nodes/{node_id}")
        return Node.from_proto(self._rpc.unary(self._rpc.pools.GetNode, request))

    def node_files(
        self, pool_id: str, node_id: str, path: str = "", recursive: bool = False
    ) -> builtins.list[NodeFile]:
        """Files under ``path`` in the node's root directory."""
        request = pool_pb2.ListNodeFilesRequest(name=f"pools/{pool_id}/nodes/{node_id}", path=path, recursive=recursive)
        response = self._rpc.unary(self._rpc.pools.ListNodeFiles, request)
        return [NodeFile.from_proto(f) for f in response.files]

    def wait_steady(
        self,
        pool_id: str,
        *,
        count: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        cancel: threading.Event | None = None,
    ) -> Pool:
        """Wait until the pool's allocation is steady with ``count`` (default: target) nodes.

        Raises :class:`DeadlineExceeded` after ``timeout`` seconds and
        :class:`Cancelled` when ``cancel`` is set.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pool = self.get(pool_id)
            want = pool.target_nodes if count is None else count
            if pool.allocation_state == AllocationState.STEADY and pool.current_nodes >= want:
                return pool
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"pool {pool_id} not steady with {want} nodes after {timeout}s "
                    f"({pool.allocation_state}, {pool.current_nodes} nodes)",
                    reason="WAIT_TIMEOUT",
                )
            _wait_or_cancel(cancel, poll_interval)

    def wait_nodes_idle(
        self,
        pool_id: str,
        *,
        count: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        cancel: threading.Event | None = None,
    ) -> builtins.list[Node]:
        """Wait until ``count`` (default: the pool's target) nodes are ready to run tasks (idle or running).

        Returns the ready nodes. Raises :class:`FailedPrecondition` (reason
        ``START_TASK_FAILED``) when too many nodes failed their start task for
        ``count`` to be reached, :class:`DeadlineExceeded` after ``timeout``
        seconds and :class:`Cancelled` when ``cancel`` is set.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            want = self.get(pool_id).target_nodes if count is None else count
            nodes = list(self.nodes(pool_id))
            ready = [n for n in nodes if n.state in (NodeState.IDLE, NodeState.RUNNING)]
            if len(ready) >= want:
                return ready
            failed = [n for n in nodes if n.state == NodeState.START_TASK_FAILED]
            if failed and len(nodes) - len(failed) < want and len(nodes) >= want:
                raise FailedPrecondition(
                    f"{len(failed)} node(s) of pool {pool_id} failed their start task "
                    f"({', '.join(n.id for n in failed)})",
                    reason="START_TASK_FAILED",
                )
            if deadline is not None and time.monotonic() >= deadline:
                states = collections.Counter(str(n.state) for n in nodes)
                raise DeadlineExceeded(
                    f"only {len(ready)} of {want} nodes of pool {pool_id} ready after {timeout}s ({dict(states)})",
                    reason="WAIT_TIMEOUT",
                )
            _wait_or_cancel(cancel, poll_interval)


class JobsAPI:
    """Jobs: ``client.jobs``."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    def create(
        self,
        *,
        id: str,
        pool_id: str,
        priority: int = 0,
        max_task_retry_count: int = 0,
        common_environment: Mapping[str, str] | None = None,
        on_all_tasks_complete: str = "noaction",
        max_wall_clock_time: timedelta | None = None,
        display_name: str = "",
        request_id: str | None = None,
    ) -> Job:
        """Create a job on pool ``pool_id``."""
        job = job_pb2.Job(
            id=id,
            display_name=display_name,
            pool_id=pool_id,
            priority=priority,
            common_environment_settings=_env_to_proto(common_environment or {}),
            on_all_tasks_complete=on_all_tasks_complete_to_proto(on_all_tasks_complete),  # type: ignore[arg-type]
        )
        job.constraints.max_task_retry_count = max_task_retry_count
        if max_wall_clock_time is not None:
            job.constraints.max_wall_clock_time.CopyFrom(duration_to_proto(max_wall_clock_time))
        request = job_pb2.CreateJobRequest(job=job, request_id=request_id or uuid.uuid4().hex)
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.CreateJob, request))

    def get(self, job_id: str) -> Job:
        """The job ``job_id``."""
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.GetJob, job_pb2.GetJobRequest(name=f"jobs/{job_id}")))

    def list(self, state: JobState | str | None = None) -> Iterator[Job]:
        """Every job (all pages), only those in ``state`` when given."""
        state_value = job_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.jobs.ListJobs,
            lambda token: job_pb2.ListJobsRequest(
                page_size=_PAGE_SIZE,
                page_token=token,
                state=state_value,  # type: ignore[arg-type]
            ),
            "jobs",
        ):
            yield Job.from_proto(msg)

    def update(
        self,
        job_id: str,
        *,
        priority: int | None = None,
        on_all_tasks_complete: str | None = None,
        etag: str | None = None,
    ) -> Job:
        """Change a job's priority and/or what happens when all its tasks complete.

        With ``etag`` (a :attr:`Job.etag` read before), raises :class:`Aborted` ``ETAG_MISMATCH`` if the
        job changed since.
        """
        job = job_pb2.Job(name=f"jobs/{job_id}", id=job_id, etag=etag or "")
        mask = []
        if priority is not None:
            job.priority = priority
            mask.append("priority")
        if on_all_tasks_complete is not None:
            job.on_all_tasks_complete = on_all_tasks_complete_to_proto(on_all_tasks_complete)  # type: ignore[assignment]
            mask.append("on_all_tasks_complete")
        if not mask:
            raise InvalidArgument(
                "nothing to update", reason="EMPTY_UPDATE", field_violations=[("update_mask", "empty")]
            )
        request = job_pb2.UpdateJobRequest(job=job, update_mask=mask)
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.UpdateJob, request))

    def terminate(self, job_id: str, *, reason: str = "", etag: str | None = None) -> Job:
        """End the job's running tasks; the job becomes completed (conditional on ``etag`` when given)."""
        request = job_pb2.TerminateJobRequest(name=f"jobs/{job_id}", terminate_reason=reason, etag=etag or "")
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.TerminateJob, request))

    def delete(self, job_id: str, *, etag: str | None = None) -> Job:
        """Delete the job, its tasks and their directories on the nodes (conditional on ``etag`` when given)."""
        request = job_pb2.DeleteJobRequest(name=f"jobs/{job_id}", etag=etag or "")
        return Job.from_proto(self._rpc.unary(self._rpc.jobs.DeleteJob, request))

    def task_counts(self, job_id: str) -> TaskCounts:
        """How many of the job's tasks are in each state."""
        request = job_pb2.GetJobTaskCountsRequest(name=f"jobs/{job_id}")
        return TaskCounts.from_proto(self._rpc.unary(self._rpc.jobs.GetJobTaskCounts, request))


class TaskWatch(Iterator[Task]):
    """Iterator over tasks as they complete, fed by the ``WatchTasks`` stream.

    First the tasks already completed in the initial snapshot are yielded, then
    each task as it reaches ``completed`` (a task reactivated while watched is
    yielded again when it completes again). Iteration stops when every watched
    task is completed. :meth:`cancel` (from any thread) ends the iteration
    quietly; ``timeout`` raises :class:`DeadlineExceeded`. If the stream breaks
    (server restart), the watch resumes without yielding a task twice.
    """

    def __init__(
        self,
        rpc: _Rpc,
        job_id: str,
        *,
        task_ids: Iterable[str] | None,
        timeout: float | None,
    ):
        self._rpc = rpc
        self._job_id = job_id
        self._task_ids = None if task_ids is None else list(dict.fromkeys(task_ids))
        self._task_id_set = frozenset(self._task_ids or ())
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._call: Any = None
        self._pending: set[str] = set()
        self._done: set[str] = set()
        self._initial_done = False
        self._finished = False
        self._reconnects = 0
        self._gen: Generator[Task, None, None] = self._run()

    @property
    def total(self) -> int | None:
        """How many tasks are watched; None until the initial snapshot arrived."""
        if not self._initial_done:
            return None
        return len(self._pending) + len(self._done)

    @property
    def completed(self) -> int:
        """How many watched tasks have completed so far."""
        return len(self._done)

    def cancel(self) -> None:
        """Stop watching; the iteration ends without an error."""
        with self._lock:
            self._cancelled.set()
            call = self._call
        if call is not None:
            call.cancel()

    def close(self) -> None:
        """Stop watching (same as :meth:`cancel`)."""
        self.cancel()
        self._gen.close()

    def __enter__(self) -> TaskWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> TaskWatch:
        return self

    def __next__(self) -> Task:
        return next(self._gen)

    def _open(self) -> Any:
        request = task_pb2.WatchTasksRequest(parent=f"jobs/{self._job_id}", task_ids=self._task_ids or [])
        remaining = None
        if self._deadline is not None:
            remaining = max(0.001, self._deadline - time.monotonic())
        return self._rpc.tasks.WatchTasks(request, timeout=remaining, metadata=self._rpc.metadata)

    def _observe(self, msg: task_pb2.Task) -> Task | None:
        """Track one snapshot; the converted task when it just completed (conversion only then: it is the cost)."""
        tid = msg.spec.id or msg.name.rsplit("/", 1)[-1]
        if (
            self._task_ids is not None
            and tid not in self._pending
            and tid not in self._done
            and tid not in self._task_id_set
        ):
            return None  # not one of ours (a server that ignores the filter)
        if msg.state == task_pb2.TASK_STATE_COMPLETED:
            if tid in self._done:
                return None
            self._pending.discard(tid)
            self._done.add(tid)
            return Task.from_proto(msg)
        # Not completed (again): reactivated, or still running.
        self._done.discard(tid)
        self._pending.add(tid)
        return None

    def _run(self) -> Generator[Task, None, None]:
        if self._task_ids is not None:
            self._pending.update(self._task_ids)
            if not self._task_ids:
                self._initial_done = True
                return
        while True:
            with self._lock:
                if self._cancelled.is_set():
                    return
                self._call = call = self._open()
            seen_initial: set[str] = set()
            try:
                for response in self._call:
                    for msg in response.tasks:
                        if response.initial:
                            seen_initial.add(msg.spec.id or msg.name.rsplit("/", 1)[-1])
                        out = self._observe(msg)
                        if out is not None:
                            yield out
                    if response.initial_complete and not self._initial_done:
                        self._initial_done = True
                        if self._task_ids is not None:
                            missing = [t for t in self._task_ids if t not in seen_initial and t not in self._done]
                            if missing:
                                raise NotFound(
                                    f"task(s) not found in job {self._job_id}: {', '.join(missing[:10])}",
                                    reason="TASK_NOT_FOUND",
                                )
                    if self._initial_done and not self._pending:
                        self._finished = True
                        return
            except grpc.RpcError as e:
                if self._cancelled.is_set() or self._finished:
                    return
                err = from_rpc_error(e)
                if isinstance(err, DeadlineExceeded):
                    raise DeadlineExceeded(
                        f"{len(self._pending)} task(s) of job {self._job_id} not completed after {self._timeout}s",
                        reason="WAIT_TIMEOUT",
                    ) from None
                if isinstance(err, Unavailable) and self._reconnects < 30:
                    self._reconnects += 1
                    if self._cancelled.wait(min(2.0, 0.1 * self._reconnects)):
                        return
                    continue
                raise err from None
            finally:
                # Ends the stream when the consumer stops early or an error leaves the loop.
                call.cancel()
                with self._lock:
                    self._call = None
            # The server ended the stream without error before everything completed: watch again.
            if self._cancelled.is_set():
                return
            if self._initial_done and not self._pending:
                return
            self._reconnects += 1
            if self._reconnects > 30:
                raise ShoalError(
                    f"watch of job {self._job_id} ended early {self._reconnects} times", reason="WATCH_ENDED"
                )
            if self._cancelled.wait(min(2.0, 0.1 * self._reconnects)):
                return


class TasksAPI:
    """Tasks of jobs: ``client.tasks``."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    def add(self, job_id: str, spec: TaskSpec) -> Task:
        """Add one task to job ``job_id``."""
        request = task_pb2.AddTaskRequest(parent=f"jobs/{job_id}", task=spec.to_proto())
        return Task.from_proto(self._rpc.unary(self._rpc.tasks.AddTask, request))

    def _chunks(self, specs: Iterable[TaskSpec], chunk_size: int) -> Iterator[list[task_pb2.TaskSpec]]:
        chunk: list[task_pb2.TaskSpec] = []
        size = 0
        for spec in specs:
            msg = spec.to_proto()
            msg_size = msg.ByteSize() + 8
            if chunk and (len(chunk) >= chunk_size or size + msg_size > _MAX_ADD_REQUEST_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(msg)
            size += msg_size
        if chunk:
            yield chunk

    def _send_chunk(self, job_id: str, chunk: list[task_pb2.TaskSpec]) -> list[AddTaskResult]:
        request = task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=chunk)
        response = self._rpc.unary(self._rpc.tasks.AddTasks, request, timeout=max(self._rpc.timeout or 0, 300.0))
        results = [AddTaskResult.from_proto(r) for r in response.results]
        # Retry what failed on the server's side, a few times, as Batch clients do.
        for attempt in range(3):
            retry_ids = {r.task_id for r in results if r.status == "servererror"}
            if not retry_ids:
                break
            time.sleep(0.2 * (attempt + 1))
            retry = [m for m in chunk if m.id in retry_ids]
            response = self._rpc.unary(
                self._rpc.tasks.AddTasks, task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=retry)
            )
            again = {r.task_id: AddTaskResult.from_proto(r) for r in response.results}
            results = [again.get(r.task_id, r) if r.task_id in retry_ids else r for r in results]
        return results

    def add_many(
        self,
        job_id: str,
        specs: Iterable[TaskSpec],
        chunk_size: int = 10_000,
        *,
        on_chunk: Callable[[Sequence[AddTaskResult]], None] | None = None,
    ) -> list[AddTaskResult]:
        """Add any number of tasks, streamed to the server in chunks of ``chunk_size``.

        Returns one :class:`AddTaskResult` per task in submission order; per-task
        failures such as ``TASK_EXISTS`` are reported there, not raised. Invalid
        input (a bad id, a duplicate id within a chunk) raises
        :class:`InvalidArgument` for the chunk it is in. ``on_chunk`` is called
        with the results of each chunk as it is acknowledged (for progress).
        Chunks reach the server one after another, in order; the next one is
        built while the server commits the previous one.
        """
        if chunk_size < 1:
            raise InvalidArgument(
                "chunk_size must be positive",
                reason="INVALID_CHUNK_SIZE",
                field_violations=[("chunk_size", "< 1")],
            )
        results: list[AddTaskResult] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-add") as pool:
            in_flight: collections.deque[concurrent.futures.Future[list[AddTaskResult]]] = collections.deque()

            def drain_one() -> None:
                chunk_results = in_flight.popleft().result()
                results.extend(chunk_results)
                if on_chunk is not None:
                    on_chunk(chunk_results)

            try:
                for chunk in self._chunks(specs, chunk_size):
                    if len(in_flight) >= 2:
                        drain_one()
                    in_flight.append(pool.submit(self._send_chunk, job_id, chunk))
                while in_flight:
                    drain_one()
            finally:
                for f in in_flight:
                    f.cancel()
        return results

    def get(self, job_id: str, task_id: str) -> Task:
        """One task."""
        request = task_pb2.GetTaskRequest(name=f"jobs/{job_id}/tasks/{task_id}")
        return Task.from_proto(self._rpc.unary(self._rpc.tasks.GetTask, request))

    def list(self, job_id: str, state: TaskState | str | None = None) -> Iterator[Task]:
        """The job's tasks (all pages), only those in ``state`` when given."""
        state_value = task_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.tasks.ListTasks,
            lambda token: task_pb2.ListTasksRequest(
                parent=f"jobs/{job_id}",
                page_size=_PAGE_SIZE,
                page_token=token,
                state=state_value,  # type: ignore[arg-type]
            ),
            "tasks",
        ):
            yield Task.from_proto(msg)

    def subtasks(self, job_id: str, task_id: str) -> builtins.list[Subtask]:
        """Every instance of a multi-instance task: node, state, times, exit code."""
        request = task_pb2.ListSubtasksRequest(name=f"jobs/{job_id}/tasks/{task_id}")
        response = self._rpc.unary(self._rpc.tasks.ListSubtasks, request)
        return [Subtask.from_proto(st) for st in response.subtasks]

    def terminate(self, job_id: str, task_id: str, *, etag: str | None = None) -> Task:
        """End a task: it completes with failure ``TaskEnded`` (exit code -1073741510 if it was on a node).

        With ``etag`` (a :attr:`Task.etag` read before), raises :class:`Aborted` ``ETAG_MISMATCH`` if the
        task changed since.
        """
        request = task_pb2.TerminateTaskRequest(name=f"jobs/{job_id}/tasks/{task_id}", etag=etag or "")
        return Task.from_proto(self._rpc.unary(self._rpc.tasks.TerminateTask, request))

    def delete(self, job_id: str, task_id: str, *, etag: str | None = None) -> Task:
        """Delete a task and its directory on the node (conditional on ``etag`` when given)."""
        request = task_pb2.DeleteTaskRequest(name=f"jobs/{job_id}/tasks/{task_id}", etag=etag or "")
        return Task.from_proto(self._rpc.unary(self._rpc.tasks.DeleteTask, request))

    def reactivate(self, job_id: str, task_id: str, *, etag: str | None = None) -> Task:
        """Put a failed, completed task back to ``active`` with its retry count reset (conditional on
        ``etag`` when given)."""
        request = task_pb2.ReactivateTaskRequest(name=f"jobs/{job_id}/tasks/{task_id}", etag=etag or "")
        return Task.from_proto(self._rpc.unary(self._rpc.tasks.ReactivateTask, request))

    def wait(self, job_id: str, task_ids: Iterable[str] | None = None, timeout: float | None = None) -> TaskWatch:
        """Iterate over the job's tasks (or ``task_ids``) as each one completes.

        Uses the ``WatchTasks`` server stream (no polling): first the initial
        snapshot, then changes. Stops when every watched task is completed.
        Call ``.cancel()`` on the returned :class:`TaskWatch` to stop early;
        ``timeout`` (seconds) raises :class:`DeadlineExceeded`.
        """
        return TaskWatch(self._rpc, job_id, task_ids=task_ids, timeout=timeout)

    def files(self, job_id: str, task_id: str, path: str = "", recursive: bool = False) -> builtins.list[NodeFile]:
        """Files under ``path`` in the task directory (``stdout.txt``, ``stderr.txt``, ``wd/...``)."""
        request = task_pb2.ListTaskFilesRequest(name=f"jobs/{job_id}/tasks/{task_id}", path=path, recursive=recursive)
        response = self._rpc.unary(self._rpc.tasks.ListTaskFiles, request)
        return [NodeFile.from_proto(f) for f in response.files]

    def read_file(self, job_id: str, task_id: str, path: str, *, offset: int = 0) -> bytes:
        """The content of a file in the task directory, e.g. ``stdout.txt``."""
        return b"".join(self._stream_file(job_id, task_id, path, offset=offset, follow=False))

    def follow_file(
        self, job_id: str, task_id: str, path: str, *, offset: int = 0, timeout: float | None = None
    ) -> Iterator[bytes]:
        """Chunks of a task file as they are written, until the task completes.

        Closing the iterator (or breaking out of the loop) cancels the stream.
        """
        return self._stream_file(job_id, task_id, path, offset=offset, follow=True, timeout=timeout)

    def _stream_file(
        self, job_id: str, task_id: str, path: str, *, offset: int, follow: bool, timeout: float | None = None
    ) -> Iterator[bytes]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            request = task_pb2.ReadTaskFileRequest(
                name=f"jobs/{job_id}/tasks/{task_id}", path=path, offset=offset, follow=follow
            )
            remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
            call = self._rpc.tasks.ReadTaskFile(
                request,
                timeout=remaining if follow else (remaining or self._rpc.timeout),
                metadata=self._rpc.metadata,
            )
            try:
                for chunk in call:
                    if chunk.data:
                        offset += len(chunk.data)
                        yield chunk.data
                return
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                    return
                err = from_rpc_error(e)
                # Following a task that has not started (or not written the file) yet: wait for it.
                if not (follow and err.reason in _NOT_YET_REASONS):
                    raise err from None
                if self.get(job_id, task_id).state == TaskState.COMPLETED:
                    raise err from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise DeadlineExceeded(
                        f"{path} of task {job_id}/{task_id} did not appear within {timeout}s", reason="WAIT_TIMEOUT"
                    ) from None
                time.sleep(0.2)
            finally:
                call.cancel()


_NOT_YET_REASONS = frozenset({"TASK_FILES_UNAVAILABLE", "FILE_NOT_FOUND"})


class StorageAPI:
    """Containers and blobs: ``client.storage``."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    def create_container(self, id: str, exist_ok: bool = True) -> Container:
        """Create container ``id``; quietly succeed if it exists and ``exist_ok``."""
        request = storage_pb2.CreateContainerRequest(id=id, exist_ok=exist_ok)
        return Container.from_proto(self._rpc.unary(self._rpc.storage.CreateContainer, request))

    def list_containers(self) -> list[Container]:
        """Every container."""
        response = self._rpc.unary(self._rpc.storage.ListContainers, storage_pb2.ListContainersRequest())
        return [Container.from_proto(c) for c in response.containers]

    def delete_container(self, id: str) -> None:
        """Delete a container and its blobs."""
        self._rpc.unary(self._rpc.storage.DeleteContainer, storage_pb2.DeleteContainerRequest(id=id))

    def _upload(
        self, container: str, blob_name: str, chunks: Callable[[], Iterable[bytes]], *, create_container: bool
    ) -> Blob:
        def requests() -> Iterator[storage_pb2.UploadBlobRequest]:
            # The names ride on the first message; `finish` on a last, empty one, so a
            # generator that fails part-way never commits a cut blob.
            first = True
            for data in chunks():
                if first:
                    yield storage_pb2.UploadBlobRequest(container=container, blob_name=blob_name, data=data)
                    first = False
                else:
                    yield storage_pb2.UploadBlobRequest(data=data)
            if first:
                yield storage_pb2.UploadBlobRequest(container=container, blob_name=blob_name, finish=True)
            else:
                yield storage_pb2.UploadBlobRequest(finish=True)

        try:
            return Blob.from_proto(self._rpc.unary(self._rpc.storage.UploadBlob, requests(), timeout=3600.0))
        except NotFound as e:
            if not (create_container and e.reason == "CONTAINER_NOT_FOUND"):
                raise
        self.create_container(container, exist_ok=True)
        return Blob.from_proto(self._rpc.unary(self._rpc.storage.UploadBlob, requests(), timeout=3600.0))

    def upload_bytes(self, container: str, blob_name: str, data: bytes, *, create_container: bool = True) -> Blob:
        """Write ``data`` as blob ``blob_name`` (creating the container unless ``create_container`` is false)."""
        return self._upload(
            container,
            blob_name,
            lambda: (data[i : i + _UPLOAD_CHUNK] for i in range(0, len(data), _UPLOAD_CHUNK)),
            create_container=create_container,
        )

    def upload_file(
        self,
        container: str,
        local_path: str | os.PathLike[str],
        blob_name: str | None = None,
        *,
        create_container: bool = True,
    ) -> Blob:
        """Upload a local file; the blob name defaults to the file's name.

        A missing container is created unless ``create_container`` is false.
        """
        path = Path(local_path)
        if not path.is_file():
            raise InvalidArgument(
                f"{path} is not a file",
                reason="LOCAL_FILE_NOT_FOUND",
                field_violations=[("local_path", "not a file")],
            )

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while data := f.read(_UPLOAD_CHUNK):
                    yield data

        return self._upload(container, blob_name or path.name, chunks, create_container=create_container)

    def upload_directory(
        self,
        container: str,
        local_dir: str | os.PathLike[str],
        prefix: str = "",
        *,
        create_container: bool = True,
        max_workers: int = 4,
    ) -> builtins.list[Blob]:
        """Upload every file under ``local_dir``, named ``prefix`` + its '/'-separated relative path.

        A missing container is created unless ``create_container`` is false.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidArgument(
                f"{root} is not a directory",
                reason="LOCAL_DIRECTORY_NOT_FOUND",
                field_violations=[("local_dir", "not a directory")],
            )
        files = sorted(p for p in root.rglob("*") if p.is_file())
        if create_container and files:
            self.create_container(container, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            futures = [
                pool.submit(
                    self.upload_file,
                    container,
                    p,
                    prefix + p.relative_to(root).as_posix(),
                    create_container=False,
                )
                for p in files
            ]
            return [f.result() for f in futures]

    def _download_chunks(self, container: str, name: str) -> Iterator[bytes]:
        request = storage_pb2.DownloadBlobRequest(container=container, blob_name=name)
        call = self._rpc.storage.DownloadBlob(request, timeout=3600.0, metadata=self._rpc.metadata)
        try:
            for chunk in call:
                yield chunk.data
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    def download_bytes(self, container: str, name: str) -> bytes:
        """The content of one blob."""
        return b"".join(self._download_chunks(container, name))

    def download_blob(self, container: str, name: str, local_path: str | os.PathLike[str]) -> Path:
        """Write one blob to ``local_path`` (atomically: a temporary file, then a rename)."""
        path = Path(local_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with tmp.open("wb") as f:
                for data in self._download_chunks(container, name):
                    f.write(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def download_prefix(
        self, container: str, prefix: str, local_dir: str | os.PathLike[str], *, max_workers: int = 4
    ) -> list[Path]:
        """Download every blob whose name starts with ``prefix`` to ``local_dir``/<blob name>."""
        from shoal.paths import safe_join

        root = Path(local_dir)
        root.mkdir(parents=True, exist_ok=True)
        blobs = list(self.list_blobs(container, prefix=prefix))
        targets = []
        for blob in blobs:
            try:
                targets.append((blob.name, safe_join(root, blob.name)))
            except ValueError as e:
                raise InvalidArgument(str(e), reason="UNSAFE_BLOB_NAME", field_violations=[("name", str(e))]) from None
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            futures = [pool.submit(self.download_blob, container, name, target) for name, target in targets]
            return [f.result() for f in futures]

    def list_blobs(self, container: str, prefix: str = "") -> Iterator[Blob]:
        """Blobs in ``container`` whose names start with ``prefix`` (all pages)."""
        for msg in self._rpc.pages(
            self._rpc.storage.ListBlobs,
            lambda token: storage_pb2.ListBlobsRequest(
                container=container, prefix=prefix, page_size=_PAGE_SIZE, page_token=token
            ),
            "blobs",
        ):
            yield Blob.from_proto(msg)

    def delete_blob(self, container: str, name: str) -> None:
        """Delete one blob."""
        self._rpc.unary(
            self._rpc.storage.DeleteBlob, storage_pb2.DeleteBlobRequest(container=container, blob_name=name)
        )


class Client:
    """A connection to a Shoal server.

    ::

        client = shoal.Client.connect()
        pool = client.pools.create(id="render", target_nodes=4, task_slots_per_node=2)
        job = client.jobs.create(id="frames", pool_id=pool.id)
        client.tasks.add_many(job.id, (TaskSpec(id=f"f{i}", command_line=f"render {i}") for i in range(1000)))
        for task in client.tasks.wait(job.id):
            print(task.id, task.exit_code)
    """

    pools: PoolsAPI
    """Pools and nodes."""
    jobs: JobsAPI
    """Jobs."""
    tasks: TasksAPI
    """Tasks of jobs."""
    storage: StorageAPI
    """Containers and blobs."""
    address: str
    """The server address in use."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        address: str = "",
        key: str | None = None,
        timeout: float | None = 60.0,
    ):
        """Wrap an existing channel; most callers want :meth:`connect`."""
        metadata: list[tuple[str, str]] = []
        if key:
            metadata.append(("authorization", f"Bearer {key}"))
        self._channel = channel
        self.address = address
        self._rpc = _Rpc(channel, metadata=metadata, timeout=timeout)
        self.pools = PoolsAPI(self._rpc)
        self.jobs = JobsAPI(self._rpc)
        self.tasks = TasksAPI(self._rpc)
        self.storage = StorageAPI(self._rpc)

    @classmethod
    def connect(
        cls,
        address: str | None = None,
        *,
        key: str | None = None,
        timeout: float | None = 60.0,
    ) -> Client:
        """Connect to the server at ``address``.

        Without an address: ``$SHOAL_ADDRESS``, else the ``address`` field of
        ``$SHOAL_HOME/server.json`` (written by the server on start), else
        ``127.0.0.1:7420``. ``timeout`` bounds each unary call, in seconds.
        The connection is made lazily on the first call.
        """
        resolved = resolve_address(address)
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        channel = grpc.insecure_channel(resolved, options=options)
        return cls(channel, address=resolved, key=_resolve_key(key), timeout=timeout)

    def wait_ready(self, *, timeout: float = 30.0) -> None:
        """Block until the server answers, or raise :class:`Unavailable` after ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"no Shoal server at {self.address} after {timeout}s", reason="UNAVAILABLE") from None

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(address={self.address!r})"


# Keep the linter aware these are part of the typed surface.
_ = (common_pb2, Sequence)
