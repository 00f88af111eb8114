"""Staging resource files into a working directory before a task runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import grpc

from shoal.nodeagent import safeopen
from shoal.nodeagent.storage import StorageClient
from shoal.paths import UnsafePathError, check_relative_path
from shoal.v1 import common_pb2

log = logging.getLogger(__name__)

DEFAULT_FILE_MODE = 0o770
HTTP_TIMEOUT = 300.0
HTTP_CHUNK = 1024 * 1024


class StagingError(Exception):
    """A resource file could not be staged; `code` is the Batch failure code (category USER_ERROR)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_file_mode(text: str) -> int:
    """An octal mode string ("0770", "755"); empty means 0770."""
    if not text:
        return DEFAULT_FILE_MODE
    try:
        mode = int(text, 8)
    except ValueError as e:
        raise StagingError("ResourceFileCreateFailed", f"invalid file mode {text!r}") from e
    if not 0 <= mode <= 0o7777:
        raise StagingError("ResourceFileCreateFailed", f"invalid file mode {text!r}")
    return mode


def container_file_path(file_path: str, blob_name: str) -> str:
    """Where a blob of a container resource file is staged, relative to the working directory.

    As in Batch, `file_path` is a directory and the blob keeps its full name under it: the prefix
    only selects blobs (blob `mpi/heat.py` with prefix `mpi/h` and file path `.` is `mpi/heat.py`).
    Raises StagingError when the result leaves the working directory or names it.
    """
    return _dest("/".join(p.strip("/") for p in (file_path, blob_name) if p.strip("/")))


def _below_wd(path: str) -> str:
    """`path` checked to stay in the working directory ('' for the directory itself)."""
    try:
        return check_relative_path(path, allow_empty=True)
    except UnsafePathError as e:
        raise StagingError("BlobNotFound", f"resource file path escapes the working directory: {e}") from e


def _dest(file_path: str) -> str:
    """A checked destination (a file path below the working directory)."""
    rel = _below_wd(file_path)
    if not rel:
        raise StagingError("ResourceFileCreateFailed", "resource file path names the working directory")
    return rel


def _wd_below(root: Path, wd: Path) -> str:
    """`wd` relative to the node root `root` it must be in."""
    try:
        return check_relative_path(wd.relative_to(root).as_posix(), allow_empty=True)
    except (ValueError, UnsafePathError) as e:
        raise StagingError("ResourceFileWriteFailed", f"the working directory {wd} is not below {root}") from e


class _Destination:
    """A file being staged at `rel` below a working directory, written without following symlinks.

    The working directory (`wd_rel` below the node root `root`, which the agent trusts) and the
    file's parent directories are made (or opened) one by one without following a symlink: a
    link that the task, a previous attempt, the start task or an instance sharing the directory
    left in any of those places (the working directory itself too) is not written through. The
    data goes to a hidden temporary file beside the destination, which then replaces the
    destination (a link there is replaced, not followed), so files appear whole.
    """

    def __init__(self, root: Path, wd_rel: str, rel: str, owner: tuple[int, int] | None = None) -> None:
        self.rel = rel
        #: The task's user (uid, gid), whose the file and the directories made for it become.
        self.owner = owner
        parent, self.name = safeopen.split_parent(rel)
        self.tmp_name = f".{self.name}.{secrets.token_hex(4)}.part"
        self.dir_fd = -1
        self.fd = -1
        try:
            # Made where missing: another instance's shared directory may not be made yet.
            wd_fd = safeopen.makedirs_beneath(root, wd_rel)
        except OSError as e:
            raise StagingError(
                "ResourceFileWriteFailed",
                f"writing {rel}: the working directory {safeopen.describe_error(e, wd_rel)}",
            ) from e
        try:
            self.dir_fd = safeopen.makedirs_beneath(wd_fd, parent, owner=owner)
            self.fd = os.open(
                self.tmp_name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self.dir_fd,
            )
        except OSError as e:
            self.close()
            raise _write_failed(rel, e) from e
        finally:
            os.close(wd_fd)

    def commit(self, mode: int) -> None:
        """Set the mode and move the file into place."""
        try:
            if self.owner is not None:
                os.fchown(self.fd, *self.owner)
            os.fchmod(self.fd, mode)
            os.replace(self.tmp_name, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as e:
            raise _write_failed(self.rel, e) from e

    def close(self) -> None:
        """Close, and remove the temporary file if it is still there."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_name, dir_fd=self.dir_fd)
            os.close(self.dir_fd)
            self.dir_fd = -1


def _write_failed(rel: str, e: OSError) -> StagingError:
    return StagingError("ResourceFileWriteFailed", f"writing {rel}: {safeopen.describe_error(e, rel)}")


async def _stage_container(
    rf: common_pb2.ResourceFile,
    root: Path,
    wd_rel: str,
    storage: StorageClient | None,
    mode: int,
    owner: tuple[int, int] | None = None,
) -> None:
    container, prefix = rf.storage_container_name, rf.blob_prefix
    # Check the directory part before talking to the server.
    _below_wd(rf.file_path)
    if storage is None:
        raise StagingError("BlobDownloadMiscError", "no storage service available")
    try:
        blobs = await storage.list_blobs(container, prefix)
    except grpc.aio.AioRpcError as e:
        if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise StagingError("BlobNotFound", f"container {container!r}: {e.details()}") from e
        raise StagingError("BlobDownloadMiscError", f"listing {container!r}: {e.details()}") from e
    if not blobs and prefix:
        raise StagingError("BlobNotFound", f"no blob in container {container!r} starts with {prefix!r}")
    for blob in blobs:
        dest = await asyncio.to_thread(_Destination, root, wd_rel, container_file_path(rf.file_path, blob.name), owner)
        try:
            with os.fdopen(os.dup(dest.fd), "wb") as f:
                await storage.download_blob(container, blob.name, f)
            await asyncio.to_thread(dest.commit, mode)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise StagingError("BlobNotFound", f"blob {container}/{blob.name}: {e.details()}") from e
            raise StagingError("BlobDownloadMiscError", f"blob {container}/{blob.name}: {e.details()}") from e
        except OSError as e:
            raise _write_failed(dest.rel, e) from e
        finally:
            dest.close()


def _http_download(url: str, fd: int) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "shoal-agent"})
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp, os.fdopen(os.dup(fd), "wb") as f:
        while True:
            chunk = resp.read(HTTP_CHUNK)
            if not chunk:
                return
            f.write(chunk)


async def _stage_http(
    rf: common_pb2.ResourceFile, root: Path, wd_rel: str, mode: int, owner: tuple[int, int] | None = None
) -> None:
    url = rf.http_url
    if not url.lower().startswith(("http://", "https://")):
        raise StagingError("BlobDownloadMiscError", f"unsupported URL {url!r}")
    name = rf.file_path or PurePosixPath(urllib.parse.urlparse(url).path).name
    if not name:
        raise StagingError("ResourceFileCreateFailed", f"no file path for {url!r}")
    dest = await asyncio.to_thread(_Destination, root, wd_rel, _dest(name), owner)
    try:
        await asyncio.to_thread(_http_download, url, dest.fd)
        await asyncio.to_thread(dest.commit, mode)
    except urllib.error.HTTPError as e:
        code = "BlobNotFound" if e.code == 404 else "BlobDownloadMiscError"
        raise StagingError(code, f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise StagingError("BlobDownloadMiscError", f"{url}: {e}") from e
    finally:
        dest.close()


async def stage_resource_files(
    files: Iterable[common_pb2.ResourceFile],
    wd: Path,
    storage: StorageClient | None,
    *,
    root: Path,
    owner: tuple[int, int] | None = None,
) -> None:
    """Download every resource file into `wd`, in order. Raises StagingError on the first failure.

    `wd` is below `root`, a node root: every directory from `root` down is opened (made where
    missing) without following a symlink, `wd` itself too (see `_Destination`). With `owner` (the task's
    uid and gid), the files and the directories made for them are the task user's.
    """
    wd_rel = _wd_below(root, wd)
    for rf in files:
        mode = parse_file_mode(rf.file_mode)
        if rf.http_url:
            await _stage_http(rf, root, wd_rel, mode, owner)
        elif rf.storage_container_name:
            await _stage_container(rf, root, wd_rel, storage, mode, owner)
        else:
            raise StagingError("ResourceFileCreateFailed", "resource file names no source")
