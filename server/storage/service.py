"""`shoal.v1.StorageService` on grpc.aio, over a :class:`~shoal.server.storage.blobstore.BlobStore`.

Disk I/O runs in worker threads (:func:`asyncio.to_thread`); the event loop only moves messages.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from shoal.clock import Clock
from shoal.grpcguard import guarded
from shoal.server.api.auth import caller
from shoal.server.api.errors import ApiError, abort, invalid, rpc_errors
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.storage.blobstore import (
    INVALID_BLOB_NAME,
    INVALID_CONTAINER_ID,
    READ_CHUNK_SIZE,
    BlobInfo,
    BlobStore,
    BlobWriter,
    ContainerInfo,
    validate_blob_name,
    validate_container_id,
)
from shoal.v1 import storage_pb2, storage_pb2_grpc

DOWNLOAD_CHUNK_SIZE = READ_CHUNK_SIZE
"""Bytes per `BlobChunk` sent by DownloadBlob (1 MiB)."""

UPLOAD_NOT_FINISHED = "UPLOAD_NOT_FINISHED"
"""ErrorInfo reason: an upload stream ended before a message with `finish` set; nothing was kept."""
UPLOAD_AFTER_FINISH = "UPLOAD_AFTER_FINISH"
"""ErrorInfo reason: an upload stream went on after its message with `finish` set; nothing was kept."""

SIZE_METADATA_KEY = "x-shoal-blob-size"
SHA256_METADATA_KEY = "x-shoal-blob-sha256"

Context = Any  # grpc.aio.ServicerContext, untyped in the stubs we have


def _timestamp(info_time: Any) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(info_time)
    return ts


def container_to_proto(info: ContainerInfo) -> storage_pb2.Container:
    """The API form of a container."""
    return storage_pb2.Container(name=f"containers/{info.id}", id=info.id, creation_time=_timestamp(info.creation_time))


def blob_to_proto(info: BlobInfo) -> storage_pb2.Blob:
    """The API form of a blob."""
    return storage_pb2.Blob(
        container=info.container,
        name=info.name,
        size=info.size,
        sha256=info.sha256,
        modify_time=_timestamp(info.modify_time),
    )


def _invalid_names(violations: list[tuple[str, str]]) -> ApiError:
    """INVALID_ARGUMENT for bad upload names; the reason follows the first bad field."""
    reason = INVALID_CONTAINER_ID if violations[0][0] == "container" else INVALID_BLOB_NAME
    return invalid(reason, violations)


async def _discard(writer: BlobWriter | None) -> None:
    """Abort an uncommitted upload, removing its temporary file, even while being cancelled.

    The abort waits for a write still running in its thread, so it runs in a thread too.
    """
    if writer is not None and not writer.committed:
        await asyncio.shield(asyncio.to_thread(writer.abort))


class AccountStores:
    """One blob store per account, made on first use.

    The default account's is `default_root` (where every container was before accounts existed); each
    other account's is `<accounts_root>/<account id>`.
    """

    def __init__(self, default_root: Path, accounts_root: Path | None = None, *, clock: Clock | None = None) -> None:
        self.default_root = default_root
        self.accounts_root = accounts_root
        self.clock = clock
        self._stores: dict[str, BlobStore] = {}
        self._lock = threading.Lock()

    def root_of(self, account: str) -> Path:
        """Where `account`'s containers are."""
        if account == DEFAULT_ACCOUNT or self.accounts_root is None:
            return self.default_root
        return self.accounts_root / account

    def for_account(self, account: str) -> BlobStore:
        """`account`'s store."""
        store = self._stores.get(account)
        if store is None:
            with self._lock:
                store = self._stores.get(account)
                if store is None:
                    store = self._stores[account] = BlobStore(self.root_of(account), clock=self.clock)
        return store

    def holds_containers(self, account: str) -> bool:
        """Whether `account` has any container (an account holding one is not deleted)."""
        if account != DEFAULT_ACCOUNT and not self.root_of(account).exists():
            return False
        return bool(self.for_account(account).list_containers())


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):  # type: ignore[misc]
    """Containers and blobs for resource files, outputs and application packages: the caller's account's."""

    def __init__(self, store: BlobStore | AccountStores) -> None:
        self._stores = store

    @property
    def _store(self) -> BlobStore:
        if isinstance(self._stores, BlobStore):
            return self._stores
        return self._stores.for_account(caller().account)

    @rpc_errors
    async def CreateContainer(
        self, request: storage_pb2.CreateContainerRequest, context: Context
    ) -> storage_pb2.Container:
        """Create a container (quietly return the existing one with `exist_ok`)."""
        validate_container_id(request.id, "id")
        info = await asyncio.to_thread(self._store.create_container, request.id, request.exist_ok)
        return container_to_proto(info)

    @rpc_errors
    async def ListContainers(
        self, request: storage_pb2.ListContainersRequest, context: Context
    ) -> storage_pb2.ListContainersResponse:
        """Every container, by id."""
        infos = await asyncio.to_thread(self._store.list_containers)
        return storage_pb2.ListContainersResponse(containers=[container_to_proto(i) for i in infos])

    @rpc_errors
    async def DeleteContainer(
        self, request: storage_pb2.DeleteContainerRequest, context: Context
    ) -> storage_pb2.DeleteContainerResponse:
        """Delete a container with all its blobs."""
        validate_container_id(request.id, "id")
        await asyncio.to_thread(self._store.delete_container, request.id)
        return storage_pb2.DeleteContainerResponse()

    async def UploadBlob(
        self, request_iterator: AsyncIterator[storage_pb2.UploadBlobRequest], context: Context
    ) -> storage_pb2.Blob:
        """Receive a blob; it appears only once the whole stream arrived.

        The first message names the container and blob; later ones may leave the names
        empty (or repeat them exactly); the last one sets `finish`. A failed or cancelled
        upload leaves nothing behind. The end of the request stream alone does not commit:
        grpc.aio ends a cancelled client's stream exactly as it ends a closed one, so only
        `finish` tells a complete upload from a cut one.
        """
        writer: BlobWriter | None = None
        finished = False
        try:
            async for message in request_iterator:
                if finished:
                    raise invalid(UPLOAD_AFTER_FINISH, [("finish", "a message followed the one with finish set")])
                if writer is None:
                    writer = await self._start_upload(message)
                elif (message.container and message.container != writer.container) or (
                    message.blob_name and message.blob_name != writer.name
                ):
                    raise _invalid_names(
                        [
                            (f, "must be empty or the same as in the first message")
                            for f, v, first in (
                                ("container", message.container, writer.container),
                                ("blob_name", message.blob_name, writer.name),
                            )
                            if v and v != first
                        ]
                    )
                if message.data:
                    await asyncio.to_thread(writer.write, message.data)
                finished = message.finish
            if writer is None:
                raise _invalid_names(
                    [
                        ("container", "the upload stream was empty; its first message names the container"),
                        ("blob_name", "the upload stream was empty; its first message names the blob"),
                    ],
                )
            if not finished:
                raise invalid(UPLOAD_NOT_FINISHED, [("finish", "the stream ended without a message with finish set")])
            info = await asyncio.to_thread(writer.commit)
            return blob_to_proto(info)
        except ApiError as e:
            # Clean up before the client hears of the failure, so it never sees a leftover.
            await _discard(writer)
            await abort(context, e)
            raise AssertionError("abort returned") from e  # pragma: no cover
        finally:
            await _discard(writer)

    async def _start_upload(self, first: storage_pb2.UploadBlobRequest) -> BlobWriter:
        violations = []
        for field, check in (("container", validate_container_id), ("blob_name", validate_blob_name)):
            try:
                check(getattr(first, field), field)
            except ApiError as e:
                violations.extend(e.field_violations)
        if violations:
            raise _invalid_names(violations)
        return await asyncio.to_thread(self._store.open_writer, first.container, first.blob_name)

    @rpc_errors
    async def DownloadBlob(
        self, request: storage_pb2.DownloadBlobRequest, context: Context
    ) -> AsyncIterator[storage_pb2.BlobChunk]:
        """Stream a blob in 1 MiB chunks; initial metadata carries its size and sha256."""
        validate_container_id(request.container, "container")
        validate_blob_name(request.blob_name, "blob_name")
        reader = await asyncio.to_thread(self._store.open_blob, request.container, request.blob_name)
        try:
            await context.send_initial_metadata(
                ((SIZE_METADATA_KEY, str(reader.info.size)), (SHA256_METADATA_KEY, reader.info.sha256))
            )
            while data := await asyncio.to_thread(reader.read, DOWNLOAD_CHUNK_SIZE):
                yield storage_pb2.BlobChunk(data=data)
        finally:
            reader.close()

    @rpc_errors
    async def ListBlobs(self, request: storage_pb2.ListBlobsRequest, context: Context) -> storage_pb2.ListBlobsResponse:
        """Blobs with a name prefix, in name order, a page at a time."""
        validate_container_id(request.container, "container")
        page = await asyncio.to_thread(
            self._store.list_blobs, request.container, request.prefix, request.page_size, request.page_token
        )
        return storage_pb2.ListBlobsResponse(
            blobs=[blob_to_proto(b) for b in page.blobs], next_page_token=page.next_page_token
        )

    @rpc_errors
    async def DeleteBlob(
        self, request: storage_pb2.DeleteBlobRequest, context: Context
    ) -> storage_pb2.DeleteBlobResponse:
        """Delete one blob."""
        validate_container_id(request.container, "container")
        validate_blob_name(request.blob_name, "blob_name")
        await asyncio.to_thread(self._store.delete_blob, request.container, request.blob_name)
        return storage_pb2.DeleteBlobResponse()


def add_storage_service(server: grpc.aio.Server, store: BlobStore) -> StorageServicer:
    """Register a :class:`StorageServicer` for `store` on `server` (refusing malformed requests) and return it."""
    servicer = StorageServicer(store)
    storage_pb2_grpc.add_StorageServiceServicer_to_server(servicer, guarded(server))
    return servicer
