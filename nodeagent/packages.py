"""Application packages on the node: fetched from the control plane, checked, unpacked once per version.

Each package lives in `<node root>/applications/<app>#<version>/` and is shared by every task that names
it (and, for the pool's packages, by every task of the node). A package is fetched and unpacked at most
once at a time (one lock per package: tasks that need it meanwhile wait for that one deployment), into a
temporary directory renamed into place once whole, so no task ever sees half of one. What was deployed
is recorded beside it (`applications/.shoal/<app>#<version>.sha256`): the same archive is not fetched
again, after a restart of the agent or a reboot of the node either; an archive uploaded again under the
same version (an application that allows updates) replaces it.

Tasks find a package through `SHOAL_APP_PACKAGE_<APP>_<VERSION>` and `AZ_BATCH_APP_PACKAGE_<APP>_<VERSION>`
(and without `_<VERSION>` when the reference named no version): Batch's Linux names, the application id
and version as they were created, each character other than a letter, digit or `_` made `_`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import grpc

from shoal import archives
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.nodeagent.envvars import with_batch_names
from shoal.nodeagent.layout import NodeAccess
from shoal.v1 import pool_pb2

log = logging.getLogger(__name__)

#: The failure code of a task whose package cannot be deployed, and the code of the node error of a
#: pool's package that cannot (Batch's).
PACKAGE_ERROR = "ApplicationPackageError"
ENV_PREFIX = "SHOAL_APP_PACKAGE_"
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")
#: The agent's own files beside the packages (records, downloads, trash): a name no package has.
STATE_DIR = ".shoal"

#: Fetches the archive of a deployment into a file: (deployment, destination) → its sha256 and size.
Fetch = Callable[[agent_pb2.PackageDeployment, Path], Awaitable[tuple[str, int]]]


class PackageError(Exception):
    """A package could not be deployed; the message says which and why."""


def env_part(value: str) -> str:
    """An id or version as part of a variable name (Batch's Linux rule)."""
    return _NOT_IN_NAME.sub("_", value)


def dir_name(app_id: str, version: str) -> str:
    """The package's directory under `applications/` (one path component: ids have no '/')."""
    return f"{app_id}#{version}"


def package_vars(d: agent_pb2.PackageDeployment, path: Path) -> dict[str, str]:
    """The variables that name a deployed package's directory (SHOAL_ names; `with_batch_names` adds
    Batch's)."""
    app = env_part(d.application_id)
    out = {f"{ENV_PREFIX}{app}_{env_part(d.version)}": str(path)}
    if d.default_version:
        out[f"{ENV_PREFIX}{app}"] = str(path)
    return out


def describe(d: agent_pb2.PackageDeployment) -> str:
    """The reference as given (or app:version)."""
    return d.reference or f"{d.application_id}:{d.version}"


class PackageCache:
    """The node's deployed packages."""

    def __init__(self, applications: Path, fetch: Fetch, limits: archives.Limits = archives.DEFAULT_LIMITS) -> None:
        self.root = applications
        self.fetch = fetch
        self.limits = limits
        #: key → the sha256 deployed there in this process (the fast path: no disk, no lock).
        self._ready: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: Deployments made (fetched and unpacked) by this process: tests count them.
        self.deployed = 0

    @property
    def _state(self) -> Path:
        return self.root / STATE_DIR

    def _marker(self, name: str) -> Path:
        return self._state / f"{name}.sha256"

    async def ensure(self, d: agent_pb2.PackageDeployment) -> Path:
        """The package's directory, deployed first if it is not there yet (PackageError when it cannot be)."""
        if d.error:
            raise PackageError(f"application package {describe(d)!r}: {d.error}")
        if not d.application_id or "/" in d.application_id + d.version or not d.version.strip("."):
            raise PackageError(f"application package {describe(d)!r}: not a valid application or version")
        name = dir_name(d.application_id, d.version)
        path = self.root / name
        key = (d.application_id.lower(), d.version.lower())
        if self._ready.get(key) == d.sha256:
            return path
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            if self._ready.get(key) == d.sha256:
                return path
            if not await asyncio.to_thread(self._is_deployed, name, d.sha256):
                await self._deploy(d, name)
            self._ready[key] = d.sha256
        return path

    def _is_deployed(self, name: str, sha256: str) -> bool:
        try:
            return (self.root / name).is_dir() and self._marker(name).read_text().strip() == sha256
        except OSError:
            return False

    async def _deploy(self, d: agent_pb2.PackageDeployment, name: str) -> None:
        work = self._state / "tmp"
        # (The agent's own: a download is nobody else's until it is checked and in place.)
        await asyncio.to_thread(work.mkdir, 0o700, True, True)
        token = uuid.uuid4().hex
        archive = work / f"{token}.archive"
        unpacked = work / f"{token}.d"
        try:
            try:
                sha256, size = await self.fetch(d, archive)
            except PackageError:
                raise
            except Exception as e:
                raise PackageError(f"application package {describe(d)!r} could not be fetched: {e}") from e
            if sha256 != d.sha256 or (d.size and size != d.size):
                raise PackageError(
                    f"application package {describe(d)!r}: the archive fetched is not the one expected "
                    f"(sha256 {sha256[:12]}…, {size} bytes)"
                )
            try:
                await asyncio.to_thread(archives.extract, archive, unpacked, None, self.limits)
            except archives.ArchiveError as e:
                raise PackageError(f"application package {describe(d)!r} cannot be unpacked: {e}") from e
            except Exception as e:  # (an OSError, or any other surprise of an archive: the task's, not the agent's)
                raise PackageError(f"application package {describe(d)!r}: unpacking failed: {e}") from e
            await asyncio.to_thread(self._put_in_place, unpacked, name, d.sha256)
            self.deployed += 1
            log.info("deployed application package %s (%d bytes)", describe(d), size)
        finally:
            await asyncio.to_thread(_remove, archive, unpacked)

    def _put_in_place(self, unpacked: Path, name: str, sha256: str) -> None:
        """Rename the unpacked tree into place (an older one of that version goes), then record it."""
        final = self.root / name
        marker = self._marker(name)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        if final.exists() or final.is_symlink():
            trash = self._state / "trash" / uuid.uuid4().hex
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(final, trash)
            _remove(trash)
        os.rename(unpacked, final)
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(sha256)
        os.replace(tmp, marker)

    async def ensure_all(self, deployments: Iterable[agent_pb2.PackageDeployment]) -> dict[str, str]:
        """Deploy each (in order) and return their variables, SHOAL_ and Batch names; PackageError at the
        first that fails."""
        env: dict[str, str] = {}
        for d in deployments:
            env.update(package_vars(d, await self.ensure(d)))
        return with_batch_names(env)


def _remove(*paths: Path) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def open_to_task_users(applications: Path) -> None:
    """`applications/` readable by every user tasks run as (the packages themselves are unpacked so)."""
    applications.mkdir(parents=True, exist_ok=True)
    os.chmod(applications, 0o755)


async def write_chunks(chunks: AsyncIterator[bytes], dest: Path) -> tuple[str, int]:
    """Write byte chunks to `dest`: their sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    f = await asyncio.to_thread(open, dest, "wb")
    try:
        async for data in chunks:
            digest.update(data)
            size += len(data)
            await asyncio.to_thread(f.write, data)
    finally:
        await asyncio.to_thread(f.close)
    return digest.hexdigest(), size


def grpc_fetch(channel: Callable[[], grpc.aio.Channel | None], access: NodeAccess, timeout: float = 1800.0) -> Fetch:
    """Fetch archives from the control plane's PackageService (agent port) as the node's account."""

    async def fetch(d: agent_pb2.PackageDeployment, dest: Path) -> tuple[str, int]:
        ch = channel()
        if ch is None:
            raise PackageError("the agent is not connected to the control plane")
        stub = agent_pb2_grpc.PackageServiceStub(ch)
        call = stub.DownloadPackage(
            agent_pb2.DownloadPackageRequest(application_id=d.application_id, version=d.version, sha256=d.sha256),
            timeout=timeout,
            metadata=access.metadata(),
        )

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in call:
                yield chunk.data

        try:
            return await write_chunks(chunks(), dest)
        except grpc.aio.AioRpcError as e:
            raise PackageError(
                f"application package {describe(d)!r} could not be fetched: {e.code().name}: {e.details()}"
            ) from e

    return fetch


async def deploy_pool_packages(
    cache: PackageCache | None, wanted: Iterable[agent_pb2.PackageDeployment]
) -> tuple[dict[str, str], list[pool_pb2.NodeError]]:
    """Deploy a pool's packages on this node: the variables of those deployed, and a node error
    (`ApplicationPackageError`) for each that could not be."""
    env: dict[str, str] = {}
    errors: list[pool_pb2.NodeError] = []
    for d in wanted:
        try:
            if cache is None:
                raise PackageError("the agent cannot fetch packages yet")
            env.update(package_vars(d, await cache.ensure(d)))
        except PackageError as e:
            errors.append(pool_pb2.NodeError(code=PACKAGE_ERROR, message=str(e)))
        except Exception as e:
            log.exception("deploying application package %s failed", describe(d))
            errors.append(pool_pb2.NodeError(code=PACKAGE_ERROR, message=f"agent error: {e}"))
    return env, errors
