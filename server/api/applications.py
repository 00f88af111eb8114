"""ApplicationService: the caller's account's applications and packages (see `shoal.server.applications`),
and PackageService, which gives the archives to the nodes of their account (on the agent port)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.server.api.auth import caller
from shoal.server.api.errors import invalid, rpc_errors
from shoal.server.api.paging import page
from shoal.server.api.validation import check_enum
from shoal.server.applications import model
from shoal.server.applications.registry import ApplicationRegistry
from shoal.server.storage.blobstore import READ_CHUNK_SIZE, BlobWriter
from shoal.server.storage.service import SHA256_METADATA_KEY, SIZE_METADATA_KEY
from shoal.v1 import application_pb2 as A
from shoal.v1 import application_pb2_grpc, storage_pb2

Ctx = Any  # grpc.aio.ServicerContext


async def _discard(writer: BlobWriter | None) -> None:
    if writer is not None and not writer.committed:
        await asyncio.shield(asyncio.to_thread(writer.abort))


class ApplicationServicer(application_pb2_grpc.ApplicationServiceServicer):
    """Serves ApplicationService from the application registry; each caller sees its account's only."""

    def __init__(self, registry: ApplicationRegistry) -> None:
        self.registry = registry

    @rpc_errors
    async def CreateApplication(self, request: A.CreateApplicationRequest, context: Ctx) -> A.Application:
        return self.registry.message(await self.registry.create(caller().account, request.application))

    @rpc_errors
    async def GetApplication(self, request: A.GetApplicationRequest, context: Ctx) -> A.Application:
        app_id = model.app_from_name(request.name)
        return self.registry.message(self.registry.get(caller().account, app_id))

    @rpc_errors
    async def ListApplications(self, request: A.ListApplicationsRequest, context: Ctx) -> A.ListApplicationsResponse:
        recs = self.registry.of_account(caller().account)
        items, token = page(recs, request.page_size, request.page_token, "applications")
        return A.ListApplicationsResponse(applications=[self.registry.message(r) for r in items], next_page_token=token)

    @rpc_errors
    async def UpdateApplication(self, request: A.UpdateApplicationRequest, context: Ctx) -> A.Application:
        app = request.application
        app_id = model.app_from_name(app.name, "application.name") if app.name else app.id
        if not app_id:
            raise invalid("INVALID_NAME", [("application.name", "name the application (its name or its id)")])
        rec = await self.registry.update(
            caller().account, app, app_id, list(request.update_mask.paths), request.etag or app.etag
        )
        return self.registry.message(rec)

    @rpc_errors
    async def DeleteApplication(self, request: A.DeleteApplicationRequest, context: Ctx) -> A.DeleteApplicationResponse:
        await self.registry.delete(caller().account, model.app_from_name(request.name))
        return A.DeleteApplicationResponse()

    @rpc_errors
    async def CreateApplicationPackage(
        self, request: A.CreateApplicationPackageRequest, context: Ctx
    ) -> A.ApplicationPackage:
        app_id = model.app_from_name(request.parent, "parent")
        app, pkg = await self.registry.create_package(caller().account, app_id, request.version)
        return self.registry.package_message(app, pkg)

    @rpc_errors
    async def GetApplicationPackage(
        self, request: A.GetApplicationPackageRequest, context: Ctx
    ) -> A.ApplicationPackage:
        app_id, version = model.package_from_name(request.name)
        return self.registry.package_message(*self.registry.package(caller().account, app_id, version))

    @rpc_errors
    async def ListApplicationPackages(
        self, request: A.ListApplicationPackagesRequest, context: Ctx
    ) -> A.ListApplicationPackagesResponse:
        app = self.registry.get(caller().account, model.app_from_name(request.parent, "parent"))
        items, token = page(
            list(app.packages.values()), request.page_size, request.page_token, f"applications/{model.key(app.id)}"
        )
        return A.ListApplicationPackagesResponse(
            packages=[self.registry.package_message(app, p) for p in items], next_page_token=token
        )

    @rpc_errors
    async def UploadApplicationPackage(
        self, request_iterator: AsyncIterator[A.UploadApplicationPackageRequest], context: Ctx
    ) -> A.ApplicationPackage:
        """Receive an archive; the package names it only once the whole stream arrived with `finish`."""
        account = caller().account
        writer: BlobWriter | None = None
        app_id = version = ""
        finished = False
        try:
            async for message in request_iterator:
                if finished:
                    raise invalid("UPLOAD_AFTER_FINISH", [("finish", "a message followed the one with finish set")])
                if writer is None:
                    app_id, version = model.package_from_name(message.name)
                    writer = await asyncio.to_thread(self.registry.start_upload, account, app_id, version)
                elif message.name and message.name != model.package_name(app_id, version):
                    with contextlib.suppress(Exception):
                        if model.package_from_name(message.name) == (app_id, version):
                            message.name = ""
                    if message.name:
                        raise invalid("INVALID_NAME", [("name", "must be empty or the same as in the first message")])
                if message.data and writer is not None:
                    if writer.size + len(message.data) > model.MAX_ARCHIVE_BYTES:
                        raise invalid(
                            "INVALID_PACKAGE_ARCHIVE", [("data", f"must be at most {model.MAX_ARCHIVE_BYTES} bytes")]
                        )
                    await asyncio.to_thread(writer.write, message.data)
                finished = message.finish
            if writer is None:
                raise invalid("INVALID_NAME", [("name", "the upload stream was empty; its first message names it")])
            if not finished:
                raise invalid("UPLOAD_NOT_FINISHED", [("finish", "the stream ended without a message with finish set")])
            pkg = await self.registry.finish_upload(account, app_id, version, writer)
            app = self.registry.get(account, app_id)
            return self.registry.package_message(app, pkg)
        finally:
            await _discard(writer)

    @rpc_errors
    async def ActivateApplicationPackage(
        self, request: A.ActivateApplicationPackageRequest, context: Ctx
    ) -> A.ApplicationPackage:
        app_id, version = model.package_from_name(request.name)
        v = check_enum(request.format, A.PackageFormat, "format")
        if v:
            raise invalid("INVALID_PACKAGE_FORMAT", v)
        account = caller().account
        pkg = await self.registry.activate(account, app_id, version, request.format)
        return self.registry.package_message(self.registry.get(account, app_id), pkg)

    @rpc_errors
    async def DeleteApplicationPackage(
        self, request: A.DeleteApplicationPackageRequest, context: Ctx
    ) -> A.DeleteApplicationPackageResponse:
        app_id, version = model.package_from_name(request.name)
        await self.registry.delete_package(caller().account, app_id, version)
        return A.DeleteApplicationPackageResponse()


class PackageServicer(agent_pb2_grpc.PackageServiceServicer):
    """The archives for the nodes (agent port): a node's credential reads its account's packages only."""

    def __init__(self, registry: ApplicationRegistry) -> None:
        self.registry = registry

    @rpc_errors
    async def DownloadPackage(
        self, request: agent_pb2.DownloadPackageRequest, context: Ctx
    ) -> AsyncIterator[storage_pb2.BlobChunk]:
        reader = await asyncio.to_thread(
            self.registry.open_archive, caller().account, request.application_id, request.version, request.sha256
        )
        try:
            await context.send_initial_metadata(
                ((SIZE_METADATA_KEY, str(reader.info.size)), (SHA256_METADATA_KEY, reader.info.sha256))
            )
            while data := await asyncio.to_thread(reader.read, READ_CHUNK_SIZE):
                yield storage_pb2.BlobChunk(data=data)
        finally:
            reader.close()


__all__ = ["ApplicationServicer", "PackageServicer", "grpc"]
