"""Staging resource files into a working directory before a task runs."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import grpc

from shoal.nodeagent.storage import StorageClient
from shoal.paths import UnsafePathError, check_relative_path, safe_join
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


def blob_relative_name(blob_name: str, prefix: str) -> str:
    """The part of `blob_name` below `prefix` (the blob's own name when it equals the prefix)."""
    rel = blob_name[len(prefix) :] if prefix and blob_name.startswith(prefix) else blob_name
    rel = rel.lstrip("/")
    if not rel:
        rel = PurePosixPath(blob_name).name
    return rel


def _temp_name(dest: Path) -> Path:
    """A hidden temporary name beside `dest`: files appear whole (instances may stage the same file)."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")


def _commit(tmp: Path, dest: Path, mode: int) -> None:
    os.chmod(tmp, mode)
    os.replace(tmp, dest)


def _target(wd: Path, *parts: str) -> Path:
    joined = "/".join(p.strip("/") for p in parts if p.strip("/"))
    try:
        target = safe_join(wd, joined)
    except UnsafePathError as e:
        raise StagingError("BlobNotFound", f"resource file path escapes the working directory: {e}") from e
    if target == wd.resolve():
        raise StagingError("ResourceFileCreateFailed", "resource file path names the working directory")
    return target


async def _stage_container(rf: common_pb2.ResourceFile, wd: Path, storage: StorageClient | None, mode: int) -> None:
    container, prefix = rf.storage_container_name, rf.blob_prefix
    # Check the directory part before talking to the server.
    if rf.file_path:
        try:
            check_relative_path(rf.file_path, allow_empty=True)
        except UnsafePathError as e:
            raise StagingError("BlobNotFound", f"resource file path escapes the working directory: {e}") from e
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
        dest = _target(wd, rf.file_path, blob_relative_name(blob.name, prefix))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(dest)
        try:
            await storage.download_blob(container, blob.name, tmp)
            _commit(tmp, dest, mode)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise StagingError("BlobNotFound", f"blob {container}/{blob.name}: {e.details()}") from e
            raise StagingError("BlobDownloadMiscError", f"blob {container}/{blob.name}: {e.details()}") from e
        except OSError as e:
            raise StagingError("ResourceFileWriteFailed", f"writing {dest}: {e}") from e
        finally:
            tmp.unlink(missing_ok=True)


def _http_download(url: str, dest: Path) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "shoal-agent"})
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp, open(dest, "wb") as f:
        while True:
            chunk = resp.read(HTTP_CHUNK)
            if not chunk:
                return
            f.write(chunk)


async def _stage_http(rf: common_pb2.ResourceFile, wd: Path, mode: int) -> None:
    url = rf.http_url
    if not url.lower().startswith(("http://", "https://")):
        raise StagingError("BlobDownloadMiscError", f"unsupported URL {url!r}")
    name = rf.file_path or PurePosixPath(urllib.parse.urlparse(url).path).name
    if not name:
        raise StagingError("ResourceFileCreateFailed", f"no file path for {url!r}")
    dest = _target(wd, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest)
    try:
        await asyncio.to_thread(_http_download, url, tmp)
        _commit(tmp, dest, mode)
    except urllib.error.HTTPError as e:
        code = "BlobNotFound" if e.code == 404 else "BlobDownloadMiscError"
        raise StagingError(code, f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise StagingError("BlobDownloadMiscError", f"{url}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


async def stage_resource_files(
    files: Iterable[common_pb2.ResourceFile], wd: Path, storage: StorageClient | None
) -> None:
    """Download every resource file into `wd`, in order. Raises StagingError on the first failure."""
    for rf in files:
        mode = parse_file_mode(rf.file_mode)
        if rf.http_url:
            await _stage_http(rf, wd, mode)
        elif rf.storage_container_name:
            await _stage_container(rf, wd, storage, mode)
        else:
            raise StagingError("ResourceFileCreateFailed", "resource file names no source")
