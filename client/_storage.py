"""Containers and blobs: ``client.storage``.

Uploads and downloads take ``on_progress``, called with each chunk's size in bytes as it is sent or
written (from worker threads for directories and prefixes): the CLI draws its progress bar with it. (An
upload that finds its container missing, makes it and starts again counts its first chunks twice.)
"""

from __future__ import annotations

import builtins
import concurrent.futures
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import grpc

from shoal.v1 import storage_pb2

from ._rpc import PAGE_SIZE, Rpc
from .errors import InvalidArgument, NotFound, from_rpc_error
from .types import Blob, Container

__all__ = ["Progress", "StorageAPI"]

_UPLOAD_CHUNK = 1024 * 1024

#: Told the size in bytes of each chunk moved.
Progress = Callable[[int], None]


def _counted(chunks: Iterable[bytes], on_progress: Progress | None) -> Iterator[bytes]:
    for data in chunks:
        yield data
        if on_progress is not None:
            on_progress(len(data))


class StorageAPI:
    """Containers and blobs: ``client.storage``."""

    def __init__(self, rpc: Rpc):
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
        self,
        container: str,
        blob_name: str,
        chunks: Callable[[], Iterable[bytes]],
        *,
        create_container: bool,
        on_progress: Progress | None = None,
    ) -> Blob:
        def requests() -> Iterator[storage_pb2.UploadBlobRequest]:
            # The names ride on the first message; `finish` on a last, empty one, so a
            # generator that fails part-way never commits a cut blob.
            first = True
            for data in _counted(chunks(), on_progress):
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
        # (Chunks the refused try read are read and counted again: give an existing container for an exact
        # count.)
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
        on_progress: Progress | None = None,
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

        return self._upload(
            container, blob_name or path.name, chunks, create_container=create_container, on_progress=on_progress
        )

    def upload_directory(
        self,
        container: str,
        local_dir: str | os.PathLike[str],
        prefix: str = "",
        *,
        create_container: bool = True,
        max_workers: int = 4,
        on_progress: Progress | None = None,
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
                    on_progress=on_progress,
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

    def download_blob(
        self,
        container: str,
        name: str,
        local_path: str | os.PathLike[str],
        *,
        on_progress: Progress | None = None,
    ) -> Path:
        """Write one blob to ``local_path`` (atomically: a temporary file, then a rename); its directory
        is made if missing."""
        path = Path(local_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with tmp.open("wb") as f:
                for data in _counted(self._download_chunks(container, name), on_progress):
                    f.write(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def download_prefix(
        self,
        container: str,
        prefix: str,
        local_dir: str | os.PathLike[str],
        *,
        max_workers: int = 4,
        blobs: Iterable[Blob] | None = None,
        on_progress: Progress | None = None,
    ) -> list[Path]:
        """Download every blob whose name starts with ``prefix`` to ``local_dir``/<blob name> (made, with its
        parents, if missing). ``blobs``: those blobs as listed already (to list them once)."""
        from shoal.paths import safe_join

        root = Path(local_dir)
        root.mkdir(parents=True, exist_ok=True)
        listed = list(self.list_blobs(container, prefix=prefix) if blobs is None else blobs)
        targets = []
        for blob in listed:
            try:
                targets.append((blob.name, safe_join(root, blob.name)))
            except ValueError as e:
                raise InvalidArgument(str(e), reason="UNSAFE_BLOB_NAME", field_violations=[("name", str(e))]) from None
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            futures = [
                pool.submit(self.download_blob, container, name, target, on_progress=on_progress)
                for name, target in targets
            ]
            return [f.result() for f in futures]

    def list_blobs(self, container: str, prefix: str = "") -> Iterator[Blob]:
        """Blobs in ``container`` whose names start with ``prefix`` (all pages)."""
        for msg in self._rpc.pages(
            self._rpc.storage.ListBlobs,
            lambda token: storage_pb2.ListBlobsRequest(
                container=container, prefix=prefix, page_size=PAGE_SIZE, page_token=token
            ),
            "blobs",
        ):
            yield Blob.from_proto(msg)

    def delete_blob(self, container: str, name: str) -> None:
        """Delete one blob."""
        self._rpc.unary(
            self._rpc.storage.DeleteBlob, storage_pb2.DeleteBlobRequest(container=container, blob_name=name)
        )
