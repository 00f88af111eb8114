"""Node users and remote login in the client: ``client.pools.add_node_user`` and the others (a base of
``PoolsAPI``), with their result types :class:`NodeUser` and :class:`RemoteLoginSettings`."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from shoal.v1 import pool_pb2

from ._rpc import Rpc

__all__ = ["NodeUser", "NodeUsersMixin", "RemoteLoginSettings"]


@dataclass(frozen=True, kw_only=True)
class NodeUser:
    """A login account on one node (Batch's compute node user). Never its password."""

    name: str
    """The Linux user name."""
    is_admin: bool
    """A member of the node's ``sudo`` group (``wheel`` where there is no ``sudo``)."""
    expiry_time: datetime
    """When the account stops working; the node removes it then."""
    ssh_public_key: str
    """The OpenSSH public key that logs in as it ("": none)."""
    proto: pool_pb2.NodeUser = field(repr=False, compare=False)
    """The raw ``shoal.v1.NodeUser`` message."""

    @classmethod
    def from_proto(cls, msg: pool_pb2.NodeUser) -> NodeUser:
        """Build from a ``shoal.v1.NodeUser``."""
        return cls(
            name=msg.name,
            is_admin=msg.is_admin,
            expiry_time=msg.expiry_time.ToDatetime(tzinfo=UTC),
            ssh_public_key=msg.ssh_public_key,
            proto=msg,
        )


@dataclass(frozen=True, kw_only=True)
class RemoteLoginSettings:
    """Where to reach a node with SSH (Batch's remote login settings), or why it cannot be."""

    ip_address: str
    """The node's address."""
    port: int
    """The port its SSH server listens on (0: none found)."""
    available: bool
    """An SSH server answered there when the node's agent last connected."""
    reason: str = ""
    """Why not, when not ``available``."""

    @classmethod
    def from_proto(cls, msg: pool_pb2.RemoteLoginSettings) -> RemoteLoginSettings:
        """Build from a ``shoal.v1.RemoteLoginSettings``."""
        return cls(
            ip_address=msg.remote_login_ip_address,
            port=msg.remote_login_port,
            available=msg.available,
            reason=msg.reason,
        )

    def ssh_command(self, user: str) -> str:
        """The command line that logs in as ``user`` (only meaningful when ``available``)."""
        port = "" if self.port in (0, 22) else f" -p {self.port}"
        host = f"[{self.ip_address}]" if ":" in self.ip_address else self.ip_address
        return f"ssh{port} {user}@{host}"


def _expiry(value: datetime | timedelta | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    when = datetime.now(UTC) + value if isinstance(value, timedelta) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def _user(
    name: str, password: str | None, ssh_public_key: str | None, expiry: datetime | timedelta | None, is_admin: bool
) -> pool_pb2.NodeUser:
    user = pool_pb2.NodeUser(
        name=name, is_admin=is_admin, password=password or "", ssh_public_key=(ssh_public_key or "").strip()
    )
    ts = _expiry(expiry)
    if ts is not None:
        user.expiry_time.CopyFrom(ts)
    return user


class NodeUsersMixin:
    """The node user methods of ``client.pools``."""

    _rpc: Rpc

    def add_node_user(
        self,
        pool_id: str,
        node_id: str,
        name: str,
        *,
        password: str | None = None,
        ssh_public_key: str | None = None,
        expiry: datetime | timedelta | None = None,
        is_admin: bool = False,
    ) -> NodeUser:
        """Add a login account to the node; its agent (running as root) makes it a real user there.

        ``name``: a Linux user name of at most 20 characters. ``password`` (sent once, kept only as a hash)
        and ``ssh_public_key`` (one OpenSSH key line) are both optional. ``expiry``: a time, or how long
        from now (default: a day). ``is_admin``: a member of the node's ``sudo`` group. Raises
        :class:`AlreadyExists` ``NODE_USER_EXISTS``, :class:`InvalidArgument` (``user.name``,
        ``user.ssh_public_key``, ...), :class:`FailedPrecondition` for a node not ready (``NODE_BEING_STARTED``,
        ...) or whose agent is not root (``NODE_USERS_UNSUPPORTED``).
        """
        request = pool_pb2.AddNodeUserRequest(
            parent=f"pools/{pool_id}/nodes/{node_id}",
            user=_user(name, password, ssh_public_key, expiry, is_admin),
        )
        return NodeUser.from_proto(self._rpc.unary(self._rpc.pools.AddNodeUser, request))

    def update_node_user(
        self,
        pool_id: str,
        node_id: str,
        name: str,
        *,
        password: str | None = None,
        ssh_public_key: str | None = None,
        expiry: datetime | timedelta | None = None,
    ) -> NodeUser:
        """Replace the user's password, SSH key and expiry, as Batch's update does: one not given is removed
        (the expiry: a day from now). Whether it is an admin stays as it was added."""
        request = pool_pb2.UpdateNodeUserRequest(
            name=f"pools/{pool_id}/nodes/{node_id}/users/{name}",
            user=_user("", password, ssh_public_key, expiry, False),
        )
        return NodeUser.from_proto(self._rpc.unary(self._rpc.pools.UpdateNodeUser, request))

    def delete_node_user(self, pool_id: str, node_id: str, name: str) -> None:
        """Remove the user from the node (its home with it). Raises :class:`NotFound` ``NODE_USER_NOT_FOUND``."""
        request = pool_pb2.DeleteNodeUserRequest(name=f"pools/{pool_id}/nodes/{node_id}/users/{name}")
        self._rpc.unary(self._rpc.pools.DeleteNodeUser, request)

    def list_node_users(self, pool_id: str, node_id: str) -> builtins.list[NodeUser]:
        """The node's users, by name (those past their expiry are gone)."""
        request = pool_pb2.ListNodeUsersRequest(parent=f"pools/{pool_id}/nodes/{node_id}")
        return [NodeUser.from_proto(u) for u in self._rpc.unary(self._rpc.pools.ListNodeUsers, request).users]

    def remote_login_settings(self, pool_id: str, node_id: str) -> RemoteLoginSettings:
        """The node's address and SSH port, or (``available`` false) why no SSH server can be reached there."""
        request = pool_pb2.GetRemoteLoginSettingsRequest(name=f"pools/{pool_id}/nodes/{node_id}")
        return RemoteLoginSettings.from_proto(self._rpc.unary(self._rpc.pools.GetRemoteLoginSettings, request))
