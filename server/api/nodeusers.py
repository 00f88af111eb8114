"""PoolService's node user methods (AddNodeUser and the others, GetRemoteLoginSettings), served from the
node user registry (`shoal.server.nodeusers`). A base of `PoolServicer`: the file grows apart from the
rest of the pool and node methods.

Tenancy is the authenticator's, as for every request naming a pool: another account's node answers as a
missing one. Passwords in requests are hashed by the registry and never echoed: no reply carries one.
"""

from __future__ import annotations

import grpc

from shoal.server.api.errors import rpc_errors
from shoal.server.domain.errors import FailedPrecondition
from shoal.server.domain.ids import parse_name
from shoal.server.nodeusers.registry import NodeUserRegistry
from shoal.v1 import pool_pb2

Ctx = grpc.aio.ServicerContext


class NodeUserMethods:
    """The node user RPCs of PoolService."""

    #: Set by the server that assembles the services; None: a servicer without node users.
    node_users: NodeUserRegistry | None = None

    def _registry(self) -> NodeUserRegistry:
        if self.node_users is None:
            raise FailedPrecondition("NODE_USERS_UNAVAILABLE", "this server keeps no node users")
        return self.node_users

    @rpc_errors
    async def AddNodeUser(self, request: pool_pb2.AddNodeUserRequest, context: Ctx) -> pool_pb2.NodeUser:
        pid, nid = parse_name(request.parent, "pools", "nodes", field="parent")
        return await self._registry().add(pid, nid, request.user)

    @rpc_errors
    async def UpdateNodeUser(self, request: pool_pb2.UpdateNodeUserRequest, context: Ctx) -> pool_pb2.NodeUser:
        pid, nid, name = parse_name(request.name, "pools", "nodes", "users")
        return await self._registry().update(pid, nid, name, request.user)

    @rpc_errors
    async def DeleteNodeUser(
        self, request: pool_pb2.DeleteNodeUserRequest, context: Ctx
    ) -> pool_pb2.DeleteNodeUserResponse:
        pid, nid, name = parse_name(request.name, "pools", "nodes", "users")
        await self._registry().delete(pid, nid, name)
        return pool_pb2.DeleteNodeUserResponse()

    @rpc_errors
    async def ListNodeUsers(
        self, request: pool_pb2.ListNodeUsersRequest, context: Ctx
    ) -> pool_pb2.ListNodeUsersResponse:
        pid, nid = parse_name(request.parent, "pools", "nodes", field="parent")
        return pool_pb2.ListNodeUsersResponse(users=self._registry().list(pid, nid))

    @rpc_errors
    async def GetRemoteLoginSettings(
        self, request: pool_pb2.GetRemoteLoginSettingsRequest, context: Ctx
    ) -> pool_pb2.RemoteLoginSettings:
        pid, nid = parse_name(request.name, "pools", "nodes")
        return self._registry().remote_login(pid, nid)
