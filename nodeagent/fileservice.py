"""NodeService: lets the control plane list, read, stat and delete files on this node (and ExecNode, delegated)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from shoal import agenterrors as reasons
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.certs.authority import ROLE_SERVER, CertificateError, identity_of
from shoal.nodeagent import safeopen
from shoal.nodeagent.fileops import FileIsDirectory, FileProtected, delete_file
from shoal.nodeagent.layout import NodeLayout
from shoal.nodeagent.logupload import LogUploadError, upload_logs
from shoal.nodeagent.storage import StorageClient
from shoal.paths import UnsafePathError, check_relative_path
from shoal.tlsconfig import peer_certificate
from shoal.v1 import common_pb2, pool_pb2

READ_CHUNK = 64 * 1024
#: The body of ExecNode (`shoal.nodeagent.nodeexec.NodeExec.serve`).
ExecNodeHandler = Callable[
    [AsyncIterator[pool_pb2.ExecNodeRequest], grpc.aio.ServicerContext], AsyncIterator[pool_pb2.ExecNodeResponse]
]
FOLLOW_POLL_SECONDS = 0.1
#: How often a followed node file (no task's end to wait on: it is followed until the caller cancels) is
#: read again for new bytes.
NODE_FOLLOW_POLL_SECONDS = 0.2


def _node_file(rel: str, st: os.stat_result) -> common_pb2.NodeFile:
    f = common_pb2.NodeFile(
        path=rel,
        is_directory=stat.S_ISDIR(st.st_mode),
        size=0 if stat.S_ISDIR(st.st_mode) else st.st_size,
        file_mode=f"{stat.S_IMODE(st.st_mode):04o}",
    )
    f.modify_time.FromDatetime(datetime.fromtimestamp(st.st_mtime, UTC))
    return f


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


@dataclass(frozen=True)
class ListingLimits:
    """The bounds of one ListFiles answer (past any of them: FAILED_PRECONDITION TOO_MANY_FILES)."""

    #: The most entries.
    entries: int = reasons.LISTING_MAX_ENTRIES
    #: The most bytes of entries (the answer must fit the control plane's message limit).
    size: int = reasons.LISTING_MAX_BYTES
    #: How deep below the directory listed a recursive listing goes.
    depth: int = reasons.LISTING_MAX_DEPTH
    #: How long listing may take.
    seconds: float = reasons.LISTING_MAX_SECONDS


class ListingTooLarge(Exception):
    """A listing went past one of its `ListingLimits`."""


#: What one entry costs in a ListFilesResponse beyond its own bytes: its tag and length (at most 5 bytes).
_ENTRY_FRAMING = 6


def list_files(
    root: Path, scope_rel: str, path: str, recursive: bool, limits: ListingLimits = ListingLimits()
) -> list[common_pb2.NodeFile]:
    """Entries under `path` (or `path` itself when it is not a directory), relative to `scope_rel`.

    `scope_rel` (the task directory, or '' for the node root) and `path` are below `root`; no
    symlink is followed on the way or while walking (symlinks are listed as what they are).
    Raises UnsafePathError, OSError (ELOOP for a symlink on the way), and ListingTooLarge past
    `limits`.
    """
    rel = check_relative_path(path, allow_empty=True)
    full = _join(scope_rel, rel)
    st = safeopen.lstat_beneath(root, full)
    if not stat.S_ISDIR(st.st_mode):
        return [_node_file(rel, st)]
    fd = safeopen.open_dir(root, full)
    files: list[common_pb2.NodeFile] = []
    size = 0
    try:
        prefix = rel + "/" if rel else ""
        entries = safeopen.walk(
            fd,
            descend=lambda _rel: recursive,
            max_entries=limits.entries,
            max_depth=limits.depth,
            deadline=time.monotonic() + limits.seconds,
        )
        for e in entries:
            f = _node_file(prefix + e.rel, e.st)
            size += f.ByteSize() + _ENTRY_FRAMING
            if size > limits.size:
                raise ListingTooLarge(f"its entries take more than {limits.size // (1024 * 1024)} MiB")
            files.append(f)
    except safeopen.WalkLimitError as e:
        raise ListingTooLarge(str(e)) from e
    finally:
        os.close(fd)
    return files


def stat_file(root: Path, scope_rel: str, path: str) -> common_pb2.NodeFile:
    """The properties of `path` below `scope_rel` (a symlink as the link itself, never its target), its
    path relative to `scope_rel`. Raises UnsafePathError, OSError (ELOOP for a symlink on the way)."""
    rel = check_relative_path(path, allow_empty=True)
    return _node_file(rel, safeopen.lstat_beneath(root, _join(scope_rel, rel)))


class NodeFileService(agent_pb2_grpc.NodeServiceServicer):
    """ListFiles, ReadFile, StatFile and DeleteFile under the node root or a task directory; ExecNode
    through `exec_node` (see shoal.nodeagent.nodeexec)."""

    def __init__(
        self,
        layout: NodeLayout,
        task_done: Callable[[str, str], asyncio.Event | None],
        exec_node: ExecNodeHandler | None = None,
        listing_limits: ListingLimits = ListingLimits(),
        storage: Callable[[], StorageClient | None] | None = None,
    ) -> None:
        self._layout = layout
        self._task_done = task_done
        self._exec_node = exec_node
        self._limits = listing_limits
        #: The agent's client of the control plane's storage (None until it has a channel): UploadLogs.
        self._storage = storage or (lambda: None)

    async def ExecNode(
        self, request_iterator: AsyncIterator[pool_pb2.ExecNodeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pool_pb2.ExecNodeResponse]:
        """A command or shell on the node, for the control plane (see shoal.nodeagent.nodeexec)."""
        if self._exec_node is None:
            await require_server(context)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ExecNode is not available on this node")
            return
        async for response in self._exec_node(request_iterator, context):
            yield response

    def _scope(self, scope: int, job_id: str, task_id: str) -> str:
        """The scope's directory relative to the node root ('' for the root itself).

        Raises UnsafePathError for ids that are not plain names, ValueError for an unknown scope.
        """
        if scope == agent_pb2.FILE_SCOPE_NODE:
            return ""
        if scope == agent_pb2.FILE_SCOPE_TASK:
            return self._layout.task_dir(job_id, task_id).relative_to(self._layout.root).as_posix()
        raise ValueError("scope must be FILE_SCOPE_NODE or FILE_SCOPE_TASK")

    async def _fail(self, context: grpc.aio.ServicerContext, e: Exception, path: str, scope_rel: str) -> NoReturn:
        """End the call with the status and reason that `e` means (never returns)."""
        if isinstance(e, (UnsafePathError, ValueError)):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, reasons.INVALID_PATH, str(e))
        if isinstance(e, FileIsDirectory):
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, reasons.FILE_IS_DIRECTORY, str(e))
        if isinstance(e, FileProtected):
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, reasons.FILE_PROTECTED, str(e))
        if isinstance(e, safeopen.NotARegularFile):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, reasons.NOT_A_REGULAR_FILE, f"{path or '.'} is {e}")
        assert isinstance(e, OSError)
        message = safeopen.describe_error(e, path)
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            reason = reasons.FILE_NOT_FOUND
            if scope_rel and not await asyncio.to_thread(_exists, self._layout.root, scope_rel):
                reason = reasons.TASK_DIRECTORY_NOT_FOUND
                message = f"{path or '.'} not found: the task has no directory on this node"
            await abort(context, grpc.StatusCode.NOT_FOUND, reason, message)
        if e.errno == errno.ELOOP:
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, reasons.SYMLINK_NOT_FOLLOWED, message)
        if e.errno in (errno.EACCES, errno.EPERM):
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, reasons.FILE_ACCESS_DENIED, message)
        await abort(context, grpc.StatusCode.FAILED_PRECONDITION, reasons.FILE_UNREADABLE, message)

    async def ListFiles(
        self, request: agent_pb2.ListFilesRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListFilesResponse:
        """List a directory (or one file), optionally recursively."""
        await require_server(context)
        scope_rel = ""
        try:
            scope_rel = self._scope(request.scope, request.job_id, request.task_id)
            files = await asyncio.to_thread(
                list_files, self._layout.root, scope_rel, request.path, request.recursive, self._limits
            )
        except ListingTooLarge as e:
            shown = request.path or "."
            message = f"{shown} has too many files to list at once ({e}): list a subdirectory, or not recursively"
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, reasons.TOO_MANY_FILES, message)
        except (UnsafePathError, ValueError, OSError) as e:
            await self._fail(context, e, request.path, scope_rel)
        return agent_pb2.ListFilesResponse(files=files)

    async def ReadFile(
        self, request: agent_pb2.ReadFileRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.FileChunk]:
        """Stream a file from `offset`; with `follow`, keep streaming while the task's attempt runs (a
        task's file), or until the caller cancels (a node file, e.g. `agent.log`).

        Following a task's file that is not there yet waits for it while the attempt runs: RUNNING is
        reported when the attempt starts, before its resource files are staged and its command makes
        stdout.txt and stderr.txt. A node file must be there (nothing would end that wait). The file is
        opened without following any symlink (see `shoal.nodeagent.safeopen`): a task cannot point a read
        at a file outside its directory.
        """
        await require_server(context)
        if request.offset < 0:
            message = "offset must not be negative"
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, reasons.INVALID_OFFSET, message)
        done: asyncio.Event | None = None
        if request.follow and request.scope == agent_pb2.FILE_SCOPE_TASK:
            done = self._task_done(request.job_id, request.task_id)
        follow_forever = request.follow and request.scope == agent_pb2.FILE_SCOPE_NODE
        scope_rel = ""
        fd = -1
        try:
            scope_rel = self._scope(request.scope, request.job_id, request.task_id)
            full = _join(scope_rel, check_relative_path(request.path, allow_empty=True))
            while True:
                try:
                    fd = await asyncio.to_thread(safeopen.open_regular, self._layout.root, full)
                    break
                except FileNotFoundError:
                    if done is None or done.is_set():
                        raise
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), FOLLOW_POLL_SECONDS)
        except (UnsafePathError, ValueError, safeopen.NotARegularFile, OSError) as e:
            await self._fail(context, e, request.path, scope_rel)
        offset = request.offset
        try:
            while True:
                # Note whether the attempt had ended before reading, so that the final read drains it.
                finished = done.is_set() if done is not None else not follow_forever
                while True:
                    try:
                        data = await asyncio.to_thread(os.pread, fd, READ_CHUNK, offset)
                    except OSError as e:
                        await self._fail(context, e, request.path, scope_rel)
                    if not data:
                        break
                    yield common_pb2.FileChunk(offset=offset, data=data)
                    offset += len(data)
                if finished:
                    return
                if done is None:
                    # Cancelling the call ends this sleep (and the stream) at once.
                    await asyncio.sleep(NODE_FOLLOW_POLL_SECONDS)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), FOLLOW_POLL_SECONDS)
        finally:
            os.close(fd)

    async def StatFile(
        self, request: agent_pb2.StatFileRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.NodeFile:
        """A file's or directory's properties; a symlink's are the link's own (its target is never looked at)."""
        await require_server(context)
        scope_rel = ""
        try:
            scope_rel = self._scope(request.scope, request.job_id, request.task_id)
            return await asyncio.to_thread(stat_file, self._layout.root, scope_rel, request.path)
        except (UnsafePathError, ValueError, OSError) as e:
            await self._fail(context, e, request.path, scope_rel)

    async def DeleteFile(
        self, request: agent_pb2.DeleteFileRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeleteFileResponse:
        """Delete a file or link (a link as itself), or with `recursive` a directory tree (see
        `shoal.nodeagent.fileops`): a running task's files too, never the task's directory itself."""
        await require_server(context)
        scope_rel = ""
        try:
            scope_rel = self._scope(request.scope, request.job_id, request.task_id)
            await asyncio.to_thread(delete_file, self._layout.root, scope_rel, request.path, request.recursive)
        except (UnsafePathError, ValueError, FileIsDirectory, FileProtected, OSError) as e:
            await self._fail(context, e, request.path, scope_rel)
        return agent_pb2.DeleteFileResponse()

    async def UploadLogs(
        self, request: agent_pb2.UploadLogsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.UploadLogsResponse:
        """Upload the agent's log files of the window to a container of the node's account (see
        `shoal.nodeagent.logupload`)."""
        await require_server(context)
        storage = self._storage()
        if storage is None:
            message = "the agent has no storage client yet (it has not reached the control plane)"
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, reasons.LOG_UPLOAD_FAILED, message)
        start = request.start_time.ToDatetime(UTC)
        end = request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None
        try:
            count = await upload_logs(
                self._layout.root, storage, request.container, request.virtual_directory, start, end
            )
        except LogUploadError as e:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, reasons.LOG_UPLOAD_FAILED, str(e))
        return agent_pb2.UploadLogsResponse(number_of_files_uploaded=count)


async def require_server(context: grpc.aio.ServicerContext) -> None:
    """Files (and commands on the node) are the server's: the caller must have shown the server's client
    certificate (the mutual TLS port verified it is the cluster CA's; the exec port asks for none)."""
    cert = peer_certificate(context)
    try:
        role = identity_of(cert).role if cert is not None else ""
    except CertificateError:
        role = ""
    if role != ROLE_SERVER:
        message = "only the control plane may read this node's files"
        await abort(context, grpc.StatusCode.PERMISSION_DENIED, reasons.CALLER_NOT_SERVER, message)


def _exists(root: Path, rel: str) -> bool:
    try:
        safeopen.lstat_beneath(root, rel)
    except (OSError, UnsafePathError):
        return False
    return True


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str, message: str) -> NoReturn:
    """End the call with `code`, `message` and an ErrorInfo `reason` (domain shoal.agent.v1) that the
    control plane passes on to its client (see `shoal.server.api.nodefiles`)."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=reasons.ERROR_DOMAIN)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]
    raise AssertionError("abort_with_status returned")  # it raises to end the call
