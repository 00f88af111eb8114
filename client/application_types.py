"""The types of ``client.applications``: applications, their packages, and the references with which
pools and tasks deploy them (Batch's application packages)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from shoal.v1 import application_pb2, common_pb2

from .common_types import _ts
from .errors import InvalidArgument

__all__ = [
    "Application",
    "ApplicationPackage",
    "ApplicationPackageReference",
    "PackageFormat",
    "PackageState",
]

A = application_pb2


class PackageState(enum.StrEnum):
    """Where a package is: ``pending`` until its archive is uploaded and activated, then ``active``."""

    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    ACTIVE = "active"


class PackageFormat(enum.StrEnum):
    """An archive's format (a tar may be compressed with gzip, bzip2 or xz)."""

    UNSPECIFIED = "unspecified"
    ZIP = "zip"
    TAR = "tar"


_STATES = {
    A.PACKAGE_STATE_UNSPECIFIED: PackageState.UNSPECIFIED,
    A.PACKAGE_STATE_PENDING: PackageState.PENDING,
    A.PACKAGE_STATE_ACTIVE: PackageState.ACTIVE,
}
_FORMATS = {
    A.PACKAGE_FORMAT_UNSPECIFIED: PackageFormat.UNSPECIFIED,
    A.PACKAGE_FORMAT_ZIP: PackageFormat.ZIP,
    A.PACKAGE_FORMAT_TAR: PackageFormat.TAR,
}
FORMATS_TO_PROTO = {v: k for k, v in _FORMATS.items()}


@dataclass(frozen=True, kw_only=True)
class ApplicationPackageReference:
    """A pool's or task's use of an application's package: deployed on the node before the tasks run,
    in ``$AZ_BATCH_APP_PACKAGE_<APP>_<VERSION>`` (and ``$AZ_BATCH_APP_PACKAGE_<APP>`` without a version),
    with ``SHOAL_`` names too; characters other than letters, digits and ``_`` become ``_``."""

    application_id: str
    """The application's id."""
    version: str = ""
    """The version; empty: the application's default version when it is deployed."""

    def to_proto(self) -> common_pb2.ApplicationPackageReference:
        """The ``shoal.v1.ApplicationPackageReference`` message."""
        return common_pb2.ApplicationPackageReference(application_id=self.application_id, version=self.version)

    @classmethod
    def from_proto(cls, msg: common_pb2.ApplicationPackageReference) -> ApplicationPackageReference:
        """Build from a ``shoal.v1.ApplicationPackageReference``."""
        return cls(application_id=msg.application_id, version=msg.version)

    @classmethod
    def parse(cls, text: str) -> ApplicationPackageReference:
        """From the CLI's ``APP[:VERSION]``."""
        app, _, version = text.strip().partition(":")
        if not app:
            raise InvalidArgument(
                f"{text!r} is not APP[:VERSION]",
                reason="INVALID_APPLICATION_PACKAGE_REFERENCES",
                field_violations=[("application_package_references", "APP[:VERSION]")],
            )
        return cls(application_id=app, version=version)

    def __str__(self) -> str:
        return f"{self.application_id}:{self.version}" if self.version else self.application_id


@dataclass(frozen=True, kw_only=True)
class Application:
    """An application of the account: named, versioned packages."""

    id: str
    """1..64 letters, digits, ``-``, ``_`` and ``.``; unique ignoring case."""
    name: str
    """``applications/{id}``."""
    display_name: str = ""
    """A free-form name for people."""
    allow_updates: bool = True
    """Whether an ``active`` package may be uploaded again or deleted."""
    default_version: str = ""
    """The version a reference without one deploys (empty: none)."""
    versions: tuple[str, ...] = ()
    """Its packages' versions, in the order they were created."""
    etag: str = ""
    """Changes with every change; pass it to ``applications.update`` to change only what was read."""
    creation_time: datetime | None = None
    """When it was created."""
    proto: application_pb2.Application = field(repr=False, compare=False, default_factory=application_pb2.Application)
    """The raw ``shoal.v1.Application``."""

    @classmethod
    def from_proto(cls, msg: application_pb2.Application) -> Application:
        """Build from a ``shoal.v1.Application``."""
        return cls(
            id=msg.id,
            name=msg.name,
            display_name=msg.display_name,
            allow_updates=msg.allow_updates,
            default_version=msg.default_version,
            versions=tuple(msg.versions),
            etag=msg.etag,
            creation_time=_ts(msg, "creation_time"),
            proto=msg,
        )


@dataclass(frozen=True, kw_only=True)
class ApplicationPackage:
    """One version of an application: an archive unpacked on the nodes."""

    application_id: str
    """Its application."""
    version: str
    """Its version."""
    name: str
    """``applications/{app}/versions/{version}``."""
    state: PackageState = PackageState.UNSPECIFIED
    """``pending`` (not uploaded and activated yet) or ``active`` (deployable)."""
    format: PackageFormat = PackageFormat.UNSPECIFIED
    """Its archive's format, once activated."""
    size: int = 0
    """The archive's size in bytes."""
    sha256: str = ""
    """The archive's SHA-256, hexadecimal."""
    creation_time: datetime | None = None
    """When it was created."""
    last_activation_time: datetime | None = None
    """When it was last activated."""

    @classmethod
    def from_proto(cls, msg: application_pb2.ApplicationPackage) -> ApplicationPackage:
        """Build from a ``shoal.v1.ApplicationPackage``."""
        return cls(
            application_id=msg.application_id,
            version=msg.version,
            name=msg.name,
            state=_STATES.get(msg.state, PackageState.UNSPECIFIED),
            format=_FORMATS.get(msg.format, PackageFormat.UNSPECIFIED),
            size=msg.size,
            sha256=msg.sha256,
            creation_time=_ts(msg, "creation_time"),
            last_activation_time=_ts(msg, "last_activation_time"),
        )
