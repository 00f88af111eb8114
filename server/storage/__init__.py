"""Embedded blob storage: containers of blobs on local disk, served as `shoal.v1.StorageService`."""

from shoal.server.storage.blobstore import (
    BlobInfo,
    BlobPage,
    BlobReader,
    BlobStore,
    BlobWriter,
    ContainerInfo,
    validate_blob_name,
    validate_container_id,
)
from shoal.server.storage.service import StorageServicer, add_storage_service

__all__ = [
    "BlobInfo",
    "BlobPage",
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "ContainerInfo",
    "StorageServicer",
    "add_storage_service",
    "validate_blob_name",
    "validate_container_id",
]
