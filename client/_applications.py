"""Applications and their packages: ``client.applications``.

An application holds versions (packages), each an archive (zip or tar, the tar perhaps compressed)
unpacked on the nodes of pools and tasks that reference it (:class:`ApplicationPackageReference`).
:meth:`ApplicationsAPI.upload` does the three steps of a new version at once: create the package,
stream its archive, activate it (the server checks the archive: formats, paths, sizes).
"""

from __future__ import annotations

import builtins
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from google.protobuf import field_mask_pb2

from shoal.v1 import application_pb2, application_pb2_grpc

from ._rpc import PAGE_SIZE, Rpc
from .application_types import FORMATS_TO_PROTO, Application, ApplicationPackage, PackageFormat
from .common_types import _choice
from .errors import InvalidArgument, NotFound

__all__ = ["ApplicationsAPI", "zip_directory"]

A = application_pb2
#: Bytes per upload message.
UPLOAD_CHUNK = 1024 * 1024


def _app(app_id: str) -> str:
    return app_id if app_id.startswith("applications/") else f"applications/{app_id}"


def _package(app_id: str, version: str) -> str:
    return f"{_app(app_id)}/versions/{version}"


def zip_directory(directory: Path, dest: Path) -> Path:
    """Zip ``directory``'s contents (not the directory itself) into ``dest``, keeping executable bits and
    symbolic links (as links)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(dirs + files):
                path = Path(root) / name
                arc = path.relative_to(directory).as_posix()
                if path.is_symlink():
                    info = zipfile.ZipInfo(arc)
                    info.external_attr = (0o120777) << 16
                    zf.writestr(info, os.readlink(path))
                elif path.is_dir():
                    zf.write(path, arc + "/")
                else:
                    zf.write(path, arc)
    return dest


class ApplicationsAPI:
    """The account's applications and packages: ``client.applications``."""

    def __init__(self, rpc: Rpc):
        self._rpc = rpc
        self._stub = application_pb2_grpc.ApplicationServiceStub(rpc.channel)

    # ---- applications ---------------------------------------------------------------------------------

    def create(self, id: str, *, display_name: str = "", allow_updates: bool = True) -> Application:
        """A new application without packages (:class:`AlreadyExists` when the account has ``id``).
        ``allow_updates`` (default true, as Batch): whether an active package may be uploaded again or
        deleted."""
        msg = A.Application(id=id, display_name=display_name, allow_updates=allow_updates)
        return Application.from_proto(
            self._rpc.unary(self._stub.CreateApplication, A.CreateApplicationRequest(application=msg))
        )

    def get(self, app_id: str) -> Application:
        """The application ``app_id``."""
        request = A.GetApplicationRequest(name=_app(app_id))
        return Application.from_proto(self._rpc.unary(self._stub.GetApplication, request))

    def list(self) -> Iterator[Application]:
        """Every application of the account (all pages)."""
        for msg in self._rpc.pages(
            self._stub.ListApplications,
            lambda token: A.ListApplicationsRequest(page_size=PAGE_SIZE, page_token=token),
            "applications",
        ):
            yield Application.from_proto(msg)

    def update(
        self,
        app_id: str,
        *,
        display_name: str | None = None,
        allow_updates: bool | None = None,
        default_version: str | None = None,
        etag: str | None = None,
    ) -> Application:
        """Change the fields given (None: left as it is). ``default_version`` must name an active package
        (``""`` clears it; :class:`FailedPrecondition` ``INVALID_DEFAULT_VERSION`` otherwise)."""
        msg = A.Application(name=_app(app_id))
        paths: builtins.list[str] = []
        if display_name is not None:
            msg.display_name = display_name
            paths.append("display_name")
        if allow_updates is not None:
            msg.allow_updates = allow_updates
            paths.append("allow_updates")
        if default_version is not None:
            msg.default_version = default_version
            paths.append("default_version")
        if not paths:
            raise InvalidArgument(
                "give at least one field to update",
                reason="INVALID_UPDATE_MASK",
                field_violations=[("update_mask", "empty")],
            )
        request = A.UpdateApplicationRequest(
            application=msg, update_mask=field_mask_pb2.FieldMask(paths=paths), etag=etag or ""
        )
        return Application.from_proto(self._rpc.unary(self._stub.UpdateApplication, request))

    def set_default(self, app_id: str, version: str) -> Application:
        """Make ``version`` (an active package) the application's default version."""
        return self.update(app_id, default_version=version)

    def delete(self, app_id: str) -> None:
        """Delete the application and all its packages."""
        self._rpc.unary(self._stub.DeleteApplication, A.DeleteApplicationRequest(name=_app(app_id)))

    # ---- packages -------------------------------------------------------------------------------------

    def create_package(self, app_id: str, version: str) -> ApplicationPackage:
        """A new ``pending`` package (then :meth:`upload_archive` and :meth:`activate`, or :meth:`upload`)."""
        request = A.CreateApplicationPackageRequest(parent=_app(app_id), version=version)
        return ApplicationPackage.from_proto(self._rpc.unary(self._stub.CreateApplicationPackage, request))

    def get_package(self, app_id: str, version: str) -> ApplicationPackage:
        """The package ``version`` of ``app_id``."""
        request = A.GetApplicationPackageRequest(name=_package(app_id, version))
        return ApplicationPackage.from_proto(self._rpc.unary(self._stub.GetApplicationPackage, request))

    def list_packages(self, app_id: str) -> Iterator[ApplicationPackage]:
        """The application's packages, in the order they were created."""
        for msg in self._rpc.pages(
            self._stub.ListApplicationPackages,
            lambda token: A.ListApplicationPackagesRequest(parent=_app(app_id), page_size=PAGE_SIZE, page_token=token),
            "packages",
        ):
            yield ApplicationPackage.from_proto(msg)

    def upload_archive(self, app_id: str, version: str, archive: str | os.PathLike[str]) -> ApplicationPackage:
        """Stream an archive file to the package (``pending`` until :meth:`activate`)."""
        name = _package(app_id, version)

        def requests() -> Iterator[application_pb2.UploadApplicationPackageRequest]:
            with open(archive, "rb") as f:
                first = True
                while True:
                    data = f.read(UPLOAD_CHUNK)
                    last = len(data) < UPLOAD_CHUNK
                    yield A.UploadApplicationPackageRequest(name=name if first else "", data=data, finish=last)
                    first = False
                    if last:
                        return

        return ApplicationPackage.from_proto(
            self._rpc.unary(self._stub.UploadApplicationPackage, requests(), timeout=3600.0)
        )

    def activate(self, app_id: str, version: str, *, format: PackageFormat | str | None = None) -> ApplicationPackage:
        """Have the server check the uploaded archive and make the package ``active`` (:class:`InvalidArgument`
        ``INVALID_PACKAGE_ARCHIVE`` naming what is wrong with it otherwise). ``format``: ``zip`` or ``tar``;
        None: found from the content."""
        fmt = A.PACKAGE_FORMAT_UNSPECIFIED
        if format is not None:
            fmt = FORMATS_TO_PROTO[_choice(PackageFormat, format, field="format", reason="INVALID_PACKAGE_FORMAT")]
        request = A.ActivateApplicationPackageRequest(name=_package(app_id, version), format=fmt)  # type: ignore[arg-type]
        return ApplicationPackage.from_proto(
            self._rpc.unary(self._stub.ActivateApplicationPackage, request, timeout=3600.0)
        )

    def upload(
        self,
        app_id: str,
        version: str,
        path: str | os.PathLike[str],
        *,
        format: PackageFormat | str | None = None,
        set_default: bool = False,
    ) -> ApplicationPackage:
        """A new version of ``app_id`` from ``path`` (a zip or tar file, or a directory, which is zipped):
        the package is created (unless it exists), its archive uploaded and activated. With
        ``set_default``, it becomes the default version."""
        source = Path(path)
        try:
            self.get_package(app_id, version)
        except NotFound:
            self.create_package(app_id, version)
        with tempfile.TemporaryDirectory(prefix="shoal-package-") as tmp:
            archive = zip_directory(source, Path(tmp) / "package.zip") if source.is_dir() else source
            self.upload_archive(app_id, version, archive)
        pkg = self.activate(app_id, version, format=format)
        if set_default:
            self.set_default(app_id, pkg.version)
        return pkg

    def delete_package(self, app_id: str, version: str) -> None:
        """Delete one package (a default version it was is cleared)."""
        self._rpc.unary(
            self._stub.DeleteApplicationPackage, A.DeleteApplicationPackageRequest(name=_package(app_id, version))
        )
