"""NodeService: lets the control plane list and read files on this node (and Exec, delegated)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.nodeagent.layout import NodeLayout
from shoal.paths import UnsafePathError, safe_join
from shoal.v1 import common_pb2

READ_CHUNK = 64 * 1024
ExecHandler = Callable[
    [AsyncIterator[agent_pb2.ExecRequest], grpc.aio.ServicerContext], AsyncIterator[agent_pb2.ExecResponse]
]
FOLLOW_POLL_SECONDS = 0.1


def _node_file(path: Path, rel: str, st: os.stat_result) -> common_pb2.NodeFile:
    f = common_pb2.NodeFile(
        path=rel,
        is_directory=stat.S_ISDIR(st.st_mode),
        size=0 if stat.S_ISDIR(st.st_mode) else st.st_size,
        file_mode=f"{stat.S_IMODE(st.st_mode):04o}",
    )
    f.modify_time.FromDatetime(datetime.fromtimestamp(st.st_mtime, UTC))
    return f


def list_files(base: Path, target: Path, recursive: bool) -> list[common_pb2.NodeFile]:
    """Entries under `target` (or `target` itself when it is a file), paths relative to `base`.

    Symlinks are listed but never followed out of `base`.
    """
    base = base.resolve()

    def rel(p: Path) -> str:
        return p.relative_to(base).as_posix()

    st = target.stat()
    if not stat.S_ISDIR(st.st_mode):
        return [_node_file(target, rel(target), st)]
    out: list[common_pb2.NodeFile] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(target):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                p = Path(dirpath) / name
                try:
                    out.append(_node_file(p, rel(p), p.lstat()))
                except OSError:
                    continue
    else:
        for p in sorted(target.iterdir()):
            try:
                out.append(_node_file(p, rel(p), p.lstat()))
            except OSError:
                continue
    return out


class NodeFileService(agent_pb2_grpc.NodeServiceServicer):
    """ListFiles and ReadFile under the node root or a task directory."""

    def __init__(
        self,
        layout: NodeLayout,
        task_done: Callable[[str, str], asyncio.Event | None],
        exec_handler: ExecHandler | None = None,
    ) -> None:
        self._layout = layout
        self._task_done = task_done
        self._exec = exec_handler

    async def Exec(
        self, request_iterator: AsyncIterator[agent_pb2.ExecRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ExecResponse]:
        """Run a command inside a running multi-instance instance (see shoal.nodeagent.execservice)."""
        if self._exec is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Exec is not available")
            return
        async for response in self._exec(request_iterator, context):
            yield response

    async def _resolve(
        self,
        scope: int,
        job_id: str,
        task_id: str,
        path: str,
        context: grpc.aio.ServicerContext,
        appears_by: asyncio.Event | None = None,
    ) -> tuple[Path, Path]:
        """The base directory of `scope` and `path` within it, which must exist (NOT_FOUND otherwise),
        or come to exist before `appears_by` is set."""
        try:
            if scope == agent_pb2.FILE_SCOPE_NODE:
                base = self._layout.root
            elif scope == agent_pb2.FILE_SCOPE_TASK:
                base = self._layout.task_dir(job_id, task_id)
            else:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scope must be FILE_SCOPE_NODE or _TASK")
            target = safe_join(base, path, allow_empty=True)
        except UnsafePathError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        while appears_by is not None and not appears_by.is_set() and not target.exists():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appears_by.wait(), FOLLOW_POLL_SECONDS)
        if not target.exists():
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{path or '.'} not found")
        return base, target

    async def ListFiles(
        self, request: agent_pb2.ListFilesRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListFilesResponse:
        """List a directory (or one file), optionally recursively."""
        base, target = await self._resolve(request.scope, request.job_id, request.task_id, request.path, context)
        try:
            files = await asyncio.to_thread(list_files, base, target, request.recursive)
        except FileNotFoundError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.path} not found")
        return agent_pb2.ListFilesResponse(files=files)

    async def ReadFile(
        self, request: agent_pb2.ReadFileRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.FileChunk]:
        """Stream a file from `offset`; with `follow`, keep streaming while the task's attempt runs.

        Following a task's file that is not there yet waits for it while the attempt runs: RUNNING is
        reported when the attempt starts, before its resource files are staged and its command makes
        stdout.txt and stderr.txt.
        """
        done: asyncio.Event | None = None
        if request.follow and request.scope == agent_pb2.FILE_SCOPE_TASK:
            done = self._task_done(request.job_id, request.task_id)
        _base, target = await self._resolve(
            request.scope, request.job_id, request.task_id, request.path, context, appears_by=done
        )
        if target.is_dir():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{request.path} is a directory")
        if not target.is_file():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{request.path} is not a regular file")
        if request.offset < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "offset must not be negative")
        offset = request.offset
        f = await asyncio.to_thread(open, target, "rb")
        try:
            while True:
                # Note whether the attempt had ended before reading, so that the final read drains it.
                finished = done is None or done.is_set()
                while True:
                    data = await asyncio.to_thread(_read_at, f, offset)
                    if not data:
                        break
                    yield common_pb2.FileChunk(offset=offset, data=data)
                    offset += len(data)
                if finished:
                    return
                assert done is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), FOLLOW_POLL_SECONDS)
        finally:
            f.close()


def _read_at(f: object, offset: int) -> bytes:
    fileno = f.fileno()  # type: ignore[attr-defined]
    return os.pread(fileno, READ_CHUNK, offset)
