"""Tasks of jobs: ``client.tasks`` (add, read, update, end) and :class:`TaskWatch`, which streams completions."""

from __future__ import annotations

import builtins
import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

import grpc

from shoal.v1 import task_pb2

from ._filestream import delete_timeout
from ._rpc import PAGE_SIZE, Rpc
from .common_types import TaskConstraints
from .errors import DeadlineExceeded, InvalidArgument, NotFound, ShoalError, Unavailable, from_rpc_error
from .types import (
    AddTaskResult,
    NodeFile,
    Subtask,
    Task,
    TaskChanges,
    TaskSpec,
    TaskState,
    task_state_to_proto,
)

__all__ = ["TaskWatch", "TasksAPI"]

# Keep an AddTasks request well under the message size limit.
_MAX_ADD_REQUEST_BYTES = 64 * 1024 * 1024


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
        rpc: Rpc,
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

    def __init__(self, rpc: Rpc):
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
                page_size=PAGE_SIZE,
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

    def update(self, job_id: str, task_id: str, *, constraints: TaskConstraints, etag: str | None = None) -> Task:
        """Replace a task's constraints (the only part of a task that may change, as in Batch).

        ``constraints`` replaces them whole: fields left None take the defaults
        again (start from ``task.spec.constraints`` to change one of them). With
        ``etag`` (a :attr:`Task.etag` read before), raises :class:`Aborted`
        ``ETAG_MISMATCH`` if the task changed since.
        """
        task = task_pb2.Task(name=f"jobs/{job_id}/tasks/{task_id}", etag=etag or "")
        task.spec.constraints.SetInParent()
        task.spec.constraints.CopyFrom(constraints.to_proto())
        request = task_pb2.UpdateTaskRequest(task=task, update_mask=["constraints"])
        return Task.from_proto(self._rpc.unary(self._rpc.tasks.UpdateTask, request))

    def wait(self, job_id: str, task_ids: Iterable[str] | None = None, timeout: float | None = None) -> TaskWatch:
        """Iterate over the job's tasks (or ``task_ids``) as each one completes.

        Uses the ``WatchTasks`` server stream (no polling): first the initial
        snapshot, then changes. Stops when every watched task is completed.
        Call ``.cancel()`` on the returned :class:`TaskWatch` to stop early;
        ``timeout`` (seconds) raises :class:`DeadlineExceeded`.
        """
        return TaskWatch(self._rpc, job_id, task_ids=task_ids, timeout=timeout)

    def watch(
        self, job_id: str, *, task_ids: Iterable[str] | None = None, timeout: float | None = None
    ) -> Iterator[TaskChanges]:
        """The job's tasks (or ``task_ids``) as they are, then every change as the server commits it (no
        polling): one :class:`TaskChanges` per message, the first ones (the snapshot) with ``initial``.
        Ends when the server ends the stream; :class:`DeadlineExceeded` after ``timeout`` seconds. Closing
        the iterator ends the stream. (:meth:`wait` follows completions only, and resumes after a break.)"""
        request = task_pb2.WatchTasksRequest(parent=f"jobs/{job_id}", task_ids=builtins.list(task_ids or ()))
        call = self._rpc.tasks.WatchTasks(request, timeout=timeout, metadata=self._rpc.metadata)
        try:
            for msg in call:
                yield TaskChanges(
                    tasks=tuple(Task.from_proto(t) for t in msg.tasks),
                    initial=msg.initial,
                    initial_complete=msg.initial_complete,
                )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    def files(self, job_id: str, task_id: str, path: str = "", recursive: bool = False) -> builtins.list[NodeFile]:
        """Files under ``path`` in the task directory (``stdout.txt``, ``stderr.txt``, ``wd/...``)."""
        request = task_pb2.ListTaskFilesRequest(name=f"jobs/{job_id}/tasks/{task_id}", path=path, recursive=recursive)
        response = self._rpc.unary(self._rpc.tasks.ListTaskFiles, request)
        return [NodeFile.from_proto(f) for f in response.files]

    def file_properties(self, job_id: str, task_id: str, path: str) -> NodeFile:
        """Size, modification time, mode and kind of ``path`` in the task directory (a link as the link)."""
        request = task_pb2.GetTaskFilePropertiesRequest(name=f"jobs/{job_id}/tasks/{task_id}", path=path)
        return NodeFile.from_proto(self._rpc.unary(self._rpc.tasks.GetTaskFileProperties, request))

    def delete_file(self, job_id: str, task_id: str, path: str, *, recursive: bool = False) -> None:
        """Delete ``path`` in the task directory (also while the task runs), or with ``recursive`` a directory.

        A link is deleted as a link. A directory without ``recursive`` raises :class:`FailedPrecondition`
        ``FILE_IS_DIRECTORY``; the task directory itself (``""``) raises :class:`PermissionDenied`
        ``FILE_PROTECTED`` (it goes with the task's retention).
        """
        request = task_pb2.DeleteTaskFileRequest(name=f"jobs/{job_id}/tasks/{task_id}", path=path, recursive=recursive)
        self._rpc.unary(self._rpc.tasks.DeleteTaskFile, request, timeout=delete_timeout(self._rpc.timeout))

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
