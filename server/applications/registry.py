"""Every account's applications and their packages: records in the store, archives in a blob store of
Shoal's own.

Applications sit beside the scheduling state, as certificates do: nothing on the hot path reads them.
The lifecycles ask only when a node joins (the pool's packages, in its Welcome) and when a task with
references is placed (`deployments`). One row per application holds it and its packages.

The archives are blobs of a store under `<data dir>/applications/`, apart from the accounts' own
storage (`<data dir>/storage*`): no container of an account can name them, and they leave the server
only to the nodes of the package's account (`PackageService.DownloadPackage` on the agent port).
A blob is written first and its record committed after, and an archive replaced or deleted goes only
once the record no longer names it; blobs no record names (a crash between the two) are removed at
start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from shoal import archives
from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock, to_timestamp
from shoal.server.api.errors import ApiError
from shoal.server.applications import model
from shoal.server.domain.errors import AlreadyExists, FailedPrecondition, NotFound, invalid_input
from shoal.server.domain.etags import check_etag, etag_of
from shoal.server.storage.blobstore import BlobReader, BlobStore, BlobWriter
from shoal.server.store.base import Delete, Row, Store, StoredRow
from shoal.v1 import application_pb2 as A
from shoal.v1 import common_pb2

TABLE = "applications"
#: The one container of the packages' blob store.
CONTAINER = "packages"
#: The fields UpdateApplication sets.
UPDATABLE = ("display_name", "allow_updates", "default_version")
_FORMATS: dict[str, int] = {archives.ZIP: A.PACKAGE_FORMAT_ZIP, archives.TAR: A.PACKAGE_FORMAT_TAR}
_FORMAT_NAMES: dict[int, str] = {v: k for k, v in _FORMATS.items()}


@dataclass(frozen=True)
class PackageRec:
    """One version of an application."""

    version: str
    state: int
    creation_time: datetime
    format: int = A.PACKAGE_FORMAT_UNSPECIFIED
    size: int = 0
    sha256: str = ""
    #: The archive's blob name (empty: nothing uploaded yet).
    blob: str = ""
    last_activation_time: datetime | None = None

    def moved_to(self, state: int, **changes: object) -> PackageRec:
        """This package in `state` (checked against the transition table), with `changes`."""
        if not model.can_transition(self.state, state):
            raise ValueError(f"package state {self.state} -> {state} is not in the table")
        return replace(self, state=state, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AppRec:
    """One application of one account, with its packages (key(version) → package, in creation order)."""

    account: str
    id: str
    creation_time: datetime
    display_name: str = ""
    allow_updates: bool = True
    default_version: str = ""
    packages: dict[str, PackageRec] = field(default_factory=dict)

    def view(self) -> model.AppView:
        """What reference checks read."""
        return model.AppView(
            self.id,
            self.default_version,
            {k: model.PackageView(p.version, p.state) for k, p in self.packages.items()},
        )


def _row_key(account: str, app_id: str) -> str:
    return f"{account}/{model.key(app_id)}"


def _time(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _encode(rec: AppRec) -> bytes:
    return json.dumps(
        {
            "id": rec.id,
            "creation_time": rec.creation_time.isoformat(),
            "display_name": rec.display_name,
            "allow_updates": rec.allow_updates,
            "default_version": rec.default_version,
            "packages": [
                {
                    "version": p.version,
                    "state": p.state,
                    "creation_time": p.creation_time.isoformat(),
                    "format": p.format,
                    "size": p.size,
                    "sha256": p.sha256,
                    "blob": p.blob,
                    "last_activation_time": p.last_activation_time.isoformat() if p.last_activation_time else "",
                }
                for p in rec.packages.values()
            ],
        }
    ).encode()


def _decode(account: str, data: bytes) -> AppRec:
    blob = json.loads(data)
    packages = {}
    for p in blob["packages"]:
        packages[model.key(p["version"])] = PackageRec(
            version=p["version"],
            state=int(p["state"]),
            creation_time=datetime.fromisoformat(p["creation_time"]),
            format=int(p["format"]),
            size=int(p["size"]),
            sha256=p["sha256"],
            blob=p["blob"],
            last_activation_time=_time(p["last_activation_time"]),
        )
    return AppRec(
        account=account,
        id=blob["id"],
        creation_time=datetime.fromisoformat(blob["creation_time"]),
        display_name=blob["display_name"],
        allow_updates=bool(blob["allow_updates"]),
        default_version=blob["default_version"],
        packages=packages,
    )


class ApplicationRegistry:
    """Every account's applications (in memory, written through to the store) and their archives."""

    def __init__(self, store: Store, blobs: BlobStore, clock: Clock, limits: archives.Limits | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        #: What an archive may unpack to (checked at activation; the agents unpack with the defaults).
        self.limits = limits or archives.DEFAULT_LIMITS
        self.apps: dict[tuple[str, str], AppRec] = {}
        #: Changes of one account's applications are made one at a time (a commit awaits in between).
        self._locks: dict[str, asyncio.Lock] = {}

    # -- loading and persistence ------------------------------------------------------------------
    def load(self, rows: Iterable[StoredRow]) -> None:
        """Read the applications table (at start-up), and remove archives no package names."""
        for row in rows:
            rec = _decode(row.parent, row.data)
            self.apps[(rec.account, model.key(rec.id))] = rec
        self.blobs.create_container(CONTAINER, exist_ok=True)
        named = {p.blob for a in self.apps.values() for p in a.packages.values() if p.blob}
        for info in list(self.blobs.iter_blobs(CONTAINER)):
            if info.name not in named:
                self.blobs.delete_blob(CONTAINER, info.name)

    def _lock(self, account: str) -> asyncio.Lock:
        lock = self._locks.get(account)
        if lock is None:
            lock = self._locks[account] = asyncio.Lock()
        return lock

    async def _put(self, rec: AppRec) -> AppRec:
        await self.store.commit([Row(TABLE, _row_key(rec.account, rec.id), _encode(rec), parent=rec.account)])
        self.apps[(rec.account, model.key(rec.id))] = rec
        return rec

    async def _drop_blobs(self, names: Iterable[str]) -> None:
        for name in names:
            if name:
                await asyncio.to_thread(self._delete_blob, name)

    def _delete_blob(self, name: str) -> None:
        # (Gone already, or not removable now: the start-up sweep removes what is left.)
        with contextlib.suppress(ApiError, OSError):
            self.blobs.delete_blob(CONTAINER, name)

    def archive_path(self, pkg: PackageRec) -> Path:
        """Where a package's archive is on disk."""
        return self.blobs.root / CONTAINER / pkg.blob

    # -- reads ----------------------------------------------------------------------------------
    def get(self, account: str, app_id: str) -> AppRec:
        """The account's application, or NotFound (another account's answers as a missing one)."""
        rec = self.apps.get((account, model.key(app_id)))
        if rec is None:
            raise NotFound("APPLICATION_NOT_FOUND", f"application {app_id!r} does not exist")
        return rec

    def package(self, account: str, app_id: str, version: str) -> tuple[AppRec, PackageRec]:
        """The application and its package, or NotFound."""
        app = self.get(account, app_id)
        pkg = app.packages.get(model.key(version))
        if pkg is None:
            raise NotFound(
                "APPLICATION_PACKAGE_NOT_FOUND", f"application {app.id!r} has no package of version {version!r}"
            )
        return app, pkg

    def of_account(self, account: str) -> list[AppRec]:
        """The account's applications, by id."""
        return sorted((r for (a, _), r in self.apps.items() if a == account), key=lambda r: model.key(r.id))

    def view(self, account: str, app_id: str) -> model.AppView | None:
        """What reference checks read of an application (None: the account has no such one)."""
        rec = self.apps.get((account, model.key(app_id)))
        return rec.view() if rec is not None else None

    def holds_any(self, account: str) -> bool:
        """Whether the account has applications (an account is deleted only when empty)."""
        return any(a == account for a, _ in self.apps)

    def reference_problems(
        self, account: str, refs: Sequence[common_pb2.ApplicationPackageReference], field: str
    ) -> list[tuple[str, str]]:
        """Field violations of a pool's references against the account's applications now."""
        return model.reference_problems(refs, lambda app_id: self.view(account, app_id), field)

    # -- applications ---------------------------------------------------------------------------
    async def create(self, account: str, msg: A.Application) -> AppRec:
        """A new application without packages; AlreadyExists when the account has one of that id."""
        model.check_application(msg)
        async with self._lock(account):
            if (account, model.key(msg.id)) in self.apps:
                raise AlreadyExists("APPLICATION_EXISTS", f"application {msg.id!r} exists already")
            rec = AppRec(
                account,
                msg.id,
                self.clock.now(),
                display_name=msg.display_name,
                allow_updates=msg.allow_updates,
            )
            return await self._put(rec)

    async def update(self, account: str, msg: A.Application, app_id: str, paths: Sequence[str], etag: str) -> AppRec:
        """Set the fields `paths` names (`display_name`, `allow_updates`, `default_version`; none: all
        three) from `msg`. A default version must name an ACTIVE package of the application."""
        fields = [p.removeprefix("application.") for p in paths] or list(UPDATABLE)
        bad = [p for p in fields if p not in UPDATABLE]
        if bad:
            raise invalid_input(
                "INVALID_UPDATE_MASK",
                [("update_mask", f"{p!r} cannot be updated; updatable: {', '.join(UPDATABLE)}") for p in bad],
            )
        if "display_name" in fields and len(msg.display_name) > 1024:
            raise invalid_input(
                "INVALID_APPLICATION", [("application.display_name", "must be at most 1024 characters")]
            )
        async with self._lock(account):
            rec = self.get(account, app_id)
            check_etag(f"application {rec.id!r}", self.message(rec), etag)  # type: ignore[arg-type]
            changes: dict[str, object] = {}
            if "display_name" in fields:
                changes["display_name"] = msg.display_name
            if "allow_updates" in fields:
                changes["allow_updates"] = msg.allow_updates
            if "default_version" in fields:
                changes["default_version"] = self._default_version(rec, msg.default_version)
            return await self._put(replace(rec, **changes))  # type: ignore[arg-type]

    @staticmethod
    def _default_version(rec: AppRec, version: str) -> str:
        if not version:
            return ""
        pkg = rec.packages.get(model.key(version))
        if pkg is None or pkg.state != model.ACTIVE:
            why = "is not a version of the application" if pkg is None else "is not ACTIVE"
            raise FailedPrecondition(
                "INVALID_DEFAULT_VERSION",
                f"default version {version!r} {why}: it must name an ACTIVE package",
                [("application.default_version", f"{version!r} {why}")],
            )
        return pkg.version

    async def delete(self, account: str, app_id: str) -> None:
        """Delete the application with its packages (refused while one is ACTIVE and updates are not
        allowed)."""
        async with self._lock(account):
            rec = self.get(account, app_id)
            for pkg in rec.packages.values():
                model.check_deletable(pkg.state, rec.allow_updates)
            await self.store.commit([Delete(TABLE, _row_key(account, rec.id))])
            self.apps.pop((account, model.key(rec.id)), None)
        await self._drop_blobs(p.blob for p in rec.packages.values())

    # -- packages -------------------------------------------------------------------------------
    async def create_package(self, account: str, app_id: str, version: str) -> tuple[AppRec, PackageRec]:
        """A new PENDING package; AlreadyExists when the application has that version."""
        problem = model.id_problem(version)
        if problem:
            raise invalid_input("INVALID_VERSION", [("version", problem)])
        async with self._lock(account):
            rec = self.get(account, app_id)
            if model.key(version) in rec.packages:
                raise AlreadyExists(
                    "APPLICATION_PACKAGE_EXISTS", f"application {rec.id!r} has a package of version {version!r}"
                )
            pkg = PackageRec(version, model.PENDING, self.clock.now())
            rec = await self._put(replace(rec, packages={**rec.packages, model.key(version): pkg}))
            return rec, pkg

    def start_upload(self, account: str, app_id: str, version: str) -> BlobWriter:
        """A writer for a new archive of the package (refused for an ACTIVE package whose application does
        not allow updates). Nothing changes until `finish_upload`."""
        app, pkg = self.package(account, app_id, version)
        model.check_uploadable(pkg.state, app.allow_updates)
        return self.blobs.open_writer(CONTAINER, f"{uuid.uuid4().hex}.archive")

    async def finish_upload(self, account: str, app_id: str, version: str, writer: BlobWriter) -> PackageRec:
        """The upload is whole: its blob is committed, then the package names it (PENDING until activated)
        and the archive it had before goes."""
        if writer.size > model.MAX_ARCHIVE_BYTES:
            raise invalid_input(
                "INVALID_PACKAGE_ARCHIVE", [("data", f"must be at most {model.MAX_ARCHIVE_BYTES} bytes")]
            )
        info = await asyncio.to_thread(writer.commit)
        try:
            async with self._lock(account):
                app, pkg = self.package(account, app_id, version)
                model.check_uploadable(pkg.state, app.allow_updates)
                new = pkg.moved_to(
                    model.PENDING,
                    blob=info.name,
                    size=info.size,
                    sha256=info.sha256,
                    format=A.PACKAGE_FORMAT_UNSPECIFIED,
                )
                await self._put(replace(app, packages={**app.packages, model.key(version): new}))
        except BaseException:
            await self._drop_blobs([info.name])
            raise
        await self._drop_blobs([pkg.blob])
        return new

    async def activate(self, account: str, app_id: str, version: str, fmt: int) -> PackageRec:
        """Check the uploaded archive (`shoal.archives`) and make the package ACTIVE (an ACTIVE one is
        checked again and stays so)."""
        _app, pkg = self.package(account, app_id, version)
        if not pkg.blob:
            raise FailedPrecondition(
                "PACKAGE_NOT_UPLOADED", f"version {pkg.version!r} has no archive yet: upload it first"
            )
        wanted = _FORMAT_NAMES.get(fmt)
        try:
            summary = await asyncio.to_thread(archives.check, self.archive_path(pkg), wanted, self.limits)
        except archives.ArchiveError as e:
            # (The archive is the one the package `name` holds: no field of its own in the request.)
            field_name = "format" if "archive, not" in e.problem else "name"
            raise invalid_input("INVALID_PACKAGE_ARCHIVE", [(field_name, str(e))]) from e
        except FileNotFoundError as e:
            raise FailedPrecondition("PACKAGE_NOT_UPLOADED", "the archive was replaced meanwhile: try again") from e
        async with self._lock(account):
            app, now = self.package(account, app_id, version)
            if now.blob != pkg.blob:
                raise FailedPrecondition(
                    "PACKAGE_CHANGED",
                    f"version {pkg.version!r} was uploaded again while it was checked: activate again",
                )
            new = now.moved_to(model.ACTIVE, format=_FORMATS[summary.format], last_activation_time=self.clock.now())
            await self._put(replace(app, packages={**app.packages, model.key(version): new}))
            return new

    async def delete_package(self, account: str, app_id: str, version: str) -> None:
        """Delete a package (refused while ACTIVE and updates are not allowed); a default version it was
        is cleared."""
        async with self._lock(account):
            app, pkg = self.package(account, app_id, version)
            model.check_deletable(pkg.state, app.allow_updates)
            packages = {k: p for k, p in app.packages.items() if k != model.key(version)}
            default = "" if model.key(app.default_version) == model.key(version) else app.default_version
            await self._put(replace(app, packages=packages, default_version=default))
        await self._drop_blobs([pkg.blob])

    def open_archive(self, account: str, app_id: str, version: str, sha256: str) -> BlobReader:
        """The ACTIVE package's archive for a node (FAILED_PRECONDITION when it changed since `sha256`)."""
        _app, pkg = self.package(account, app_id, version)
        if pkg.state != model.ACTIVE or (sha256 and pkg.sha256 != sha256):
            raise FailedPrecondition(
                "PACKAGE_CHANGED", f"version {pkg.version!r} changed since it was deployed: deploy it again"
            )
        return self.blobs.open_blob(CONTAINER, pkg.blob)

    # -- nodes ----------------------------------------------------------------------------------
    def deployments(
        self, account: str, refs: Sequence[common_pb2.ApplicationPackageReference]
    ) -> list[agent_pb2.PackageDeployment]:
        """What a node deploys for `refs` now: each resolved to an ACTIVE package, or with why not."""
        out = []
        for ref in refs:
            resolved = model.resolve(ref, self.view(account, ref.application_id))
            d = agent_pb2.PackageDeployment(reference=resolved.reference, error=resolved.error)
            if not resolved.error:
                _app, pkg = self.package(account, resolved.application_id, resolved.version)
                d.application_id = resolved.application_id
                d.version = resolved.version
                d.default_version = resolved.default_version
                d.sha256 = pkg.sha256
                d.size = pkg.size
            out.append(d)
        return out

    # -- API messages ---------------------------------------------------------------------------
    @staticmethod
    def message(rec: AppRec) -> A.Application:
        """The API's view of an application (its etag filled in)."""
        msg = A.Application(
            name=model.app_name(rec.id),
            id=rec.id,
            display_name=rec.display_name,
            allow_updates=rec.allow_updates,
            default_version=rec.default_version,
            versions=[p.version for p in rec.packages.values()],
            account=rec.account,
            creation_time=to_timestamp(rec.creation_time),
        )
        msg.etag = etag_of(msg)  # type: ignore[arg-type]
        return msg

    @staticmethod
    def package_message(app: AppRec, pkg: PackageRec) -> A.ApplicationPackage:
        """The API's view of a package."""
        msg = A.ApplicationPackage(
            name=model.package_name(app.id, pkg.version),
            application_id=app.id,
            version=pkg.version,
            state=pkg.state,  # type: ignore[arg-type]
            format=pkg.format,  # type: ignore[arg-type]
            size=pkg.size,
            sha256=pkg.sha256,
            creation_time=to_timestamp(pkg.creation_time),
        )
        if pkg.last_activation_time is not None:
            msg.last_activation_time.CopyFrom(to_timestamp(pkg.last_activation_time))
        return msg
