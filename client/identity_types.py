"""Who a task runs as on its node: :class:`UserIdentity` (an :class:`AutoUser` or a pool's named
:class:`UserAccount`), as Batch's userIdentity.

Unset, a task runs as its pool's non-admin auto user (scope POOL). A node whose agent does not run as
root runs every task as the agent's user (its :attr:`Node.task_user_isolation` is false).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shoal.v1 import identity_pb2

from .common_types import _choice
from .errors import InvalidArgument

__all__ = ["AutoUser", "AutoUserScope", "ElevationLevel", "UserAccount", "UserIdentity"]

ID = identity_pb2


class ElevationLevel(enum.StrEnum):
    """What a task's user may do: ``admin`` runs as root on a Linux node."""

    NON_ADMIN = "nonadmin"
    ADMIN = "admin"


class AutoUserScope(enum.StrEnum):
    """``pool``: one user per pool on each node, shared by its tasks; ``task``: a user of the task's own."""

    POOL = "pool"
    TASK = "task"


_ELEVATIONS = {ElevationLevel.NON_ADMIN: ID.ELEVATION_LEVEL_NON_ADMIN, ElevationLevel.ADMIN: ID.ELEVATION_LEVEL_ADMIN}
_SCOPES = {AutoUserScope.POOL: ID.AUTO_USER_SCOPE_POOL, AutoUserScope.TASK: ID.AUTO_USER_SCOPE_TASK}


def _elevation(value: ElevationLevel | str) -> ElevationLevel:
    return _choice(ElevationLevel, value, field="elevation_level", reason="INVALID_ELEVATION_LEVEL")


def _elevation_from_proto(value: int) -> ElevationLevel:
    return ElevationLevel.ADMIN if value == ID.ELEVATION_LEVEL_ADMIN else ElevationLevel.NON_ADMIN


@dataclass(frozen=True, kw_only=True)
class AutoUser:
    """A user the node makes for tasks."""

    scope: AutoUserScope | str = AutoUserScope.POOL
    elevation_level: ElevationLevel | str = ElevationLevel.NON_ADMIN

    def to_proto(self) -> identity_pb2.AutoUserSpecification:
        """The ``shoal.v1.AutoUserSpecification`` message."""
        scope = _choice(AutoUserScope, self.scope, field="scope", reason="INVALID_AUTO_USER_SCOPE")
        return ID.AutoUserSpecification(
            scope=_SCOPES[scope], elevation_level=_ELEVATIONS[_elevation(self.elevation_level)]
        )

    @classmethod
    def from_proto(cls, msg: identity_pb2.AutoUserSpecification) -> AutoUser:
        """Build from a ``shoal.v1.AutoUserSpecification`` message."""
        scope = AutoUserScope.TASK if msg.scope == ID.AUTO_USER_SCOPE_TASK else AutoUserScope.POOL
        return cls(scope=scope, elevation_level=_elevation_from_proto(msg.elevation_level))


@dataclass(frozen=True, kw_only=True)
class UserIdentity:
    """Exactly one of ``user_name`` (one of the pool's user accounts) or ``auto_user``."""

    user_name: str | None = None
    auto_user: AutoUser | None = None

    def __post_init__(self) -> None:
        if (self.user_name is None) == (self.auto_user is None):
            raise InvalidArgument(
                "a user identity has exactly one of user_name or auto_user", reason="INVALID_USER_IDENTITY"
            )

    @classmethod
    def auto(
        cls, scope: AutoUserScope | str = AutoUserScope.POOL, elevation: ElevationLevel | str = ElevationLevel.NON_ADMIN
    ) -> UserIdentity:
        """An auto user of `scope` and `elevation`."""
        return cls(auto_user=AutoUser(scope=scope, elevation_level=elevation))

    @classmethod
    def named(cls, user_name: str) -> UserIdentity:
        """One of the pool's user accounts."""
        return cls(user_name=user_name)

    @classmethod
    def parse(cls, run_as: str, elevation: str | None = None) -> UserIdentity:
        """From the CLI's ``--run-as`` (``pool``, ``task`` or ``user:NAME``) and ``--elevation``
        (``admin``, ``nonadmin``; for auto users)."""
        if run_as.startswith("user:"):
            if elevation is not None:
                raise InvalidArgument(
                    "--elevation is the account's own with --run-as user:NAME", reason="INVALID_USER_IDENTITY"
                )
            return cls.named(run_as.removeprefix("user:"))
        return cls.auto(run_as, elevation or ElevationLevel.NON_ADMIN)

    def to_proto(self) -> identity_pb2.UserIdentity:
        """The ``shoal.v1.UserIdentity`` message."""
        if self.user_name is not None:
            return ID.UserIdentity(user_name=self.user_name)
        assert self.auto_user is not None
        return ID.UserIdentity(auto_user=self.auto_user.to_proto())

    @classmethod
    def from_proto(cls, msg: identity_pb2.UserIdentity) -> UserIdentity | None:
        """Build from a ``shoal.v1.UserIdentity`` message (None when it names neither)."""
        kind = msg.WhichOneof("identity")
        if kind == "user_name":
            return cls.named(msg.user_name)
        if kind == "auto_user":
            return cls(auto_user=AutoUser.from_proto(msg.auto_user))
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserIdentity:
        """From ``{"user_name": ...}`` or ``{"auto_user": {"scope": ..., "elevation_level": ...}}``."""
        if "user_name" in data:
            return cls.named(str(data["user_name"]))
        auto = data.get("auto_user") or {}
        return cls.auto(auto.get("scope", AutoUserScope.POOL), auto.get("elevation_level", ElevationLevel.NON_ADMIN))


def identity_of(msg: Any) -> UserIdentity | None:
    """The ``user_identity`` of a task, job task or start task message, if it has one."""
    return UserIdentity.from_proto(msg.user_identity) if msg.HasField("user_identity") else None


@dataclass(frozen=True, kw_only=True)
class UserAccount:
    """A named user every node of a pool makes (tasks run as it with :meth:`UserIdentity.named`)."""

    name: str
    """A Linux user name: 1-20 lowercase letters, digits, '_' or '-'."""
    elevation_level: ElevationLevel | str = ElevationLevel.NON_ADMIN
    uid: int | None = None
    """Its user id on every node (with ``gid``, or neither: the node chooses)."""
    gid: int | None = None

    def to_proto(self) -> identity_pb2.UserAccount:
        """The ``shoal.v1.UserAccount`` message."""
        msg = ID.UserAccount(name=self.name, elevation_level=_ELEVATIONS[_elevation(self.elevation_level)])
        if self.uid is not None:
            msg.linux_user_configuration.uid = self.uid
        if self.gid is not None:
            msg.linux_user_configuration.gid = self.gid
        return msg

    @classmethod
    def from_proto(cls, msg: identity_pb2.UserAccount) -> UserAccount:
        """Build from a ``shoal.v1.UserAccount`` message."""
        linux = msg.linux_user_configuration
        return cls(
            name=msg.name,
            elevation_level=_elevation_from_proto(msg.elevation_level),
            uid=linux.uid if linux.HasField("uid") else None,
            gid=linux.gid if linux.HasField("gid") else None,
        )

    @classmethod
    def parse(cls, text: str) -> UserAccount:
        """From the CLI's ``--user-account NAME[:admin][:UID:GID]``."""
        parts = text.split(":")
        name, rest = parts[0], parts[1:]
        elevation: str = ElevationLevel.NON_ADMIN
        if rest and not rest[0].isdigit():
            elevation = rest.pop(0)
        if len(rest) not in (0, 2) or not all(p.isdigit() for p in rest):
            raise InvalidArgument(f"--user-account {text!r}: NAME[:admin][:UID:GID]", reason="INVALID_USER_ACCOUNT")
        uid, gid = (int(rest[0]), int(rest[1])) if rest else (None, None)
        return cls(name=name, elevation_level=elevation, uid=uid, gid=gid)
