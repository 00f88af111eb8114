"""The agent's client for the control plane's StorageService (resource files and output files)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import grpc

from shoal.nodeagent.layout import NodeAccess
from shoal.v1 import storage_pb2, storage_pb2_grpc

UPLOAD_CHUNK = 1024 * 1024
LIST_PAGE_SIZE = 1000


@dataclass
class TransferCounts:
    """Blobs moved between the node and the server's storage, and their bytes (the agent's metrics)."""

    downloads: int = 0
    download_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    #: Downloads and uploads that raised.
    failures: int = 0


class StorageClient:
    """Thin async wrapper over StorageService on an existing channel."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout: float = 300.0,
        access: NodeAccess | None = None,
    ) -> None:
        self._stub = storage_pb2_grpc.StorageServiceStub(channel)
        self._timeout = timeout
        #: The node's credential, as the server gave it in Welcome (the agent acts for its pool's account).
        self._access = access or NodeAccess()
        self.counts = TransferCounts()

    async def create_container(self, container: str) -> storage_pb2.Container:
        """Create `container` of the node's account, or quietly find it there."""
        result: storage_pb2.Container = await self._stub.CreateContainer(
            storage_pb2.CreateContainerRequest(id=container, exist_ok=True),
            timeout=self._timeout,
            metadata=self._access.metadata(),
        )
        return result

    async def list_blobs(self, container: str, prefix: str) -> list[storage_pb2.Blob]:
        """Every blob in `container` whose name starts with `prefix` (all pages)."""
        blobs: list[storage_pb2.Blob] = []
        token = ""
        while True:
            resp = await self._stub.ListBlobs(
                storage_pb2.ListBlobsRequest(
                    container=container, prefix=prefix, page_size=LIST_PAGE_SIZE, page_token=token
                ),
                timeout=self._timeout,
                metadata=self._access.metadata(),
            )
            blobs.extend(resp.blobs)
            token = resp.next_page_token
            if not token:
                return blobs

    async def download_blob(self, container: str, blob_name: str, dest: Path | BinaryIO) -> int:
        """Write one blob to `dest` (a path, or a file open for writing that the caller closes); returns its size."""
        call = self._stub.DownloadBlob(
            storage_pb2.DownloadBlobRequest(container=container, blob_name=blob_name),
            timeout=self._timeout,
            metadata=self._access.metadata(),
        )
        size = 0
        try:
            f = await asyncio.to_thread(open, dest, "wb") if isinstance(dest, Path) else dest
            try:
                async for chunk in call:
                    if chunk.data:
                        await asyncio.to_thread(f.write, chunk.data)
                        size += len(chunk.data)
                await asyncio.to_thread(f.flush)
            finally:
                if f is not dest:
                    await asyncio.to_thread(f.close)
        except BaseException:
            self.counts.failures += 1
            self.counts.download_bytes += size
            raise
        self.counts.downloads += 1
        self.counts.download_bytes += size
        return size

    async def upload_blob(self, container: str, blob_name: str, source: Path | BinaryIO) -> storage_pb2.Blob:
        """Upload one file (a path, or a file open for reading that the caller closes) as a blob
        (first message names it, chunks of at most 1 MiB)."""

        async def requests() -> AsyncIterator[storage_pb2.UploadBlobRequest]:
            f = await asyncio.to_thread(open, source, "rb") if isinstance(source, Path) else source
            try:
                first = True
                while True:
                    data = await asyncio.to_thread(f.read, UPLOAD_CHUNK)
                    # A short read is the end of the file: that message carries finish.
                    last = len(data) < UPLOAD_CHUNK
                    if first:
                        yield storage_pb2.UploadBlobRequest(
                            container=container, blob_name=blob_name, data=data, finish=last
                        )
                        first = False
                    else:
                        yield storage_pb2.UploadBlobRequest(data=data, finish=last)
                    if last:
                        return
            finally:
                if f is not source:
                    await asyncio.to_thread(f.close)

        try:
            result: storage_pb2.Blob = await self._stub.UploadBlob(
                requests(), timeout=self._timeout, metadata=self._access.metadata()
            )
        except BaseException:
            self.counts.failures += 1
            raise
        self.counts.uploads += 1
        self.counts.upload_bytes += result.size
        return result
