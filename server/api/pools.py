"""PoolService: pools and their nodes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.server.api import nodeexec, nodelogs, tenancy
from shoal.server.api.auth import caller
from shoal.server.api.errors import failed_precondition, invalid, rpc_errors
from shoal.server.api.etags import tagged
from shoal.server.api.nodefiles import DELETE_SECONDS, NodeChannels, translate
from shoal.server.api.nodeusers import NodeUserMethods
from shoal.server.api.paging import page
from shoal.server.api.pool_admission import PackageProblems, admit_pool, check_packages
from shoal.server.api.statistics import PoolStatisticsMethods
from shoal.server.api.validation import (
    MAX_NODES_PER_POOL,
    POOL_OUTPUT_ONLY,
    check_autoscale,
    check_duration,
    check_enum,
    check_file_path,
    check_pool,
    check_request_id,
    check_resize_timeout,
    clear_output_only,
)
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import parse_name
from shoal.server.scheduling import poolupdate
from shoal.v1 import common_pb2, pool_pb2, pool_pb2_grpc

Ctx = grpc.aio.ServicerContext
#: Nodes per WatchNodes message of the initial snapshot.
WATCH_NODES_BATCH = 500


class PoolServicer(NodeUserMethods, PoolStatisticsMethods, pool_pb2_grpc.PoolServiceServicer):
    """Serves PoolService from the control plane."""

    def __init__(
        self,
        cp: ControlPlane,
        channels: NodeChannels,
        quotas: tenancy.QuotasOf = tenancy.no_quotas,
        certificate_states: Callable[[str], dict[str, int]] | None = None,
    ) -> None:
        self.cp = cp
        self.channels = channels
        self.quotas = quotas
        #: thumbprint → state of an account's certificates (None: a server without certificates).
        self.certificate_states = certificate_states or (lambda account: {})
        #: Field violations of a pool's application package references, from (account, references,
        #: field); None: a server without applications (references are refused).
        self.package_problems: PackageProblems | None = None
        #: Tells every node of a pool to deploy its (changed) application packages.
        self.deploy_packages: Callable[[str], object] | None = None

    @rpc_errors
    async def CreatePool(self, request: pool_pb2.CreatePoolRequest, context: Ctx) -> pool_pb2.Pool:
        v = check_pool(request.pool) + check_autoscale(request.pool) + check_request_id(request.request_id)
        if v:
            raise invalid("INVALID_POOL", v)
        clear_output_only(request.pool, POOL_OUTPUT_ONLY)
        account = request.pool.account = caller().account
        admit_pool(
            self.cp,
            account,
            request.pool,
            self.quotas(account),
            self.certificate_states(account),
            self.package_problems,
        )
        return tagged(await self.cp.create_pool(request.pool, tenancy.scoped_request_id(account, request.request_id)))

    @rpc_errors
    async def GetPool(self, request: pool_pb2.GetPoolRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        return tagged(self.cp.pool(pid).proto)

    @rpc_errors
    async def ListPools(self, request: pool_pb2.ListPoolsRequest, context: Ctx) -> pool_pb2.ListPoolsResponse:
        items, token = page(
            sorted(
                (p.proto for p in self.cp.pools.values() if tenancy.owner(p.proto) == caller().account),
                key=lambda p: p.id,
            ),
            request.page_size,
            request.page_token,
            "pools",
        )
        return pool_pb2.ListPoolsResponse(pools=[tagged(p) for p in items], next_page_token=token)

    @rpc_errors
    async def DeletePool(self, request: pool_pb2.DeletePoolRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        return tagged(await self.cp.delete_pool(pid, etag=request.etag))

    @rpc_errors
    async def ResizePool(self, request: pool_pb2.ResizePoolRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        if not 0 <= request.target_nodes <= MAX_NODES_PER_POOL:
            raise invalid("INVALID_TARGET_NODES", [("target_nodes", f"must be between 0 and {MAX_NODES_PER_POOL}")])
        v = check_enum(request.node_deallocation_option, pool_pb2.NodeDeallocationOption, "node_deallocation_option")
        if v:
            raise invalid("INVALID_NODE_DEALLOCATION_OPTION", v)
        low = request.target_low_priority_nodes if request.HasField("target_low_priority_nodes") else None
        if low is not None and not 0 <= low <= MAX_NODES_PER_POOL:
            raise invalid(
                "INVALID_TARGET_NODES",
                [("target_low_priority_nodes", f"must be between 0 and {MAX_NODES_PER_POOL}")],
            )
        account = caller().account
        current = self.cp.pool(pid).proto
        if low and current.provider == "join":
            raise invalid(
                "INVALID_TARGET_NODES",
                [
                    (
                        "target_low_priority_nodes",
                        "a join pool's nodes are the agents that join it: it has no such target",
                    )
                ],
            )
        growth = request.target_nodes - current.target_nodes
        if low is not None:
            growth += low - current.target_low_priority_nodes
        tenancy.check_quota(self.cp, account, self.quotas(account), nodes=growth)
        pool = await self.cp.resize_pool(
            pid,
            request.target_nodes,
            request.node_deallocation_option or pool_pb2.NODE_DEALLOCATION_OPTION_REQUEUE,
            etag=request.etag,
            target_low_priority=low,
        )
        return tagged(pool)

    @rpc_errors
    async def EnableAutoScale(self, request: pool_pb2.EnableAutoScaleRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        interval = None
        if request.HasField("auto_scale_evaluation_interval"):
            v = check_duration(request.auto_scale_evaluation_interval, "auto_scale_evaluation_interval")
            if v:
                raise invalid("INVALID_AUTO_SCALE_INTERVAL", v)
            interval = request.auto_scale_evaluation_interval.ToNanoseconds() / 1e9
        return tagged(await self.cp.enable_auto_scale(pid, request.auto_scale_formula, interval, etag=request.etag))

    @rpc_errors
    async def DisableAutoScale(self, request: pool_pb2.DisableAutoScaleRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        return tagged(await self.cp.disable_auto_scale(pid, etag=request.etag))

    @rpc_errors
    async def EvaluateAutoScale(
        self, request: pool_pb2.EvaluateAutoScaleRequest, context: Ctx
    ) -> pool_pb2.AutoScaleRun:
        (pid,) = parse_name(request.name, "pools")
        return self.cp.evaluate_auto_scale(pid, request.auto_scale_formula)

    @rpc_errors
    async def PreemptNode(self, request: pool_pb2.PreemptNodeRequest, context: Ctx) -> pool_pb2.Node:
        pid, nid = parse_name(request.name, "pools", "nodes")
        return await self.cp.preempt_node(pid, nid)

    @rpc_errors
    async def UpdatePool(self, request: pool_pb2.UpdatePoolRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.pool.name or f"pools/{request.pool.id}", "pools", field="pool.name")
        paths = list(request.update_mask.paths)
        account = caller().account
        named: frozenset[str] = frozenset()
        if not poolupdate.mask_problems(paths):
            named = poolupdate.resolve_mask(paths, request.pool)
            current = self.cp.pool(pid).proto
            if "application_package_references" in named:
                check_packages(account, request.pool.application_package_references, self.package_problems)
            growth = sum(
                getattr(request.pool, f) - getattr(current, f)
                for f in poolupdate.TARGETS
                if f in named and 0 <= getattr(request.pool, f) <= MAX_NODES_PER_POOL
            )
            if growth > 0:
                tenancy.check_quota(self.cp, account, self.quotas(account), nodes=growth)
        pool = await self.cp.update_pool(
            pid,
            request.pool,
            paths,
            etag=request.etag or request.pool.etag,
            certificate_states=self.certificate_states(account),
        )
        if "application_package_references" in named and self.deploy_packages is not None:
            self.deploy_packages(pid)
        return tagged(pool)

    @rpc_errors
    async def UploadNodeLogs(
        self, request: pool_pb2.UploadNodeLogsRequest, context: Ctx
    ) -> pool_pb2.UploadNodeLogsResponse:
        return await nodelogs.upload_node_logs(self.cp, self.channels, request)

    @rpc_errors
    async def ListNodes(self, request: pool_pb2.ListNodesRequest, context: Ctx) -> pool_pb2.ListNodesResponse:
        (pid,) = parse_name(request.parent, "pools", field="parent")
        v = check_enum(request.state, pool_pb2.NodeState, "state")
        if v:
            raise invalid("INVALID_FILTER", v)
        pool = self.cp.pool(pid)
        nodes = sorted(
            (n.view() for n in pool.nodes.values() if not request.state or n.state == request.state),
            key=lambda n: (len(n.id), n.id),
        )
        listing = f"pools/{pool.key}/nodes?state={request.state}"
        items, token = page(nodes, request.page_size, request.page_token, listing)
        return pool_pb2.ListNodesResponse(nodes=items, next_page_token=token)

    @rpc_errors
    async def GetNode(self, request: pool_pb2.GetNodeRequest, context: Ctx) -> pool_pb2.Node:
        pid, nid = parse_name(request.name, "pools", "nodes")
        return self.cp.node(pid, nid).view()

    @rpc_errors
    async def RemoveNodes(self, request: pool_pb2.RemoveNodesRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        v = check_enum(request.node_deallocation_option, pool_pb2.NodeDeallocationOption, "node_deallocation_option")
        timeout = None
        if request.HasField("resize_timeout"):
            v += check_resize_timeout(request.resize_timeout, "resize_timeout")
            timeout = float(request.resize_timeout.seconds)
        if v:
            raise invalid("INVALID_REMOVE_NODES", v)
        return tagged(
            await self.cp.remove_nodes(
                pid, list(request.node_ids), request.node_deallocation_option, timeout, etag=request.etag
            )
        )

    @rpc_errors
    async def StopPoolResize(self, request: pool_pb2.StopPoolResizeRequest, context: Ctx) -> pool_pb2.Pool:
        (pid,) = parse_name(request.name, "pools")
        return tagged(await self.cp.stop_pool_resize(pid, etag=request.etag))

    @rpc_errors
    async def WatchNodes(
        self, request: pool_pb2.WatchNodesRequest, context: Ctx
    ) -> AsyncIterator[pool_pb2.WatchNodesResponse]:
        (pid,) = parse_name(request.parent, "pools", field="parent")
        pool = self.cp.pool(pid)
        # Subscribed before the snapshot, so that no change falls between them.
        queue = self.cp.node_watch.open(pool)
        try:
            nodes = [n.view() for n in pool.nodes.values()]
            for i in range(0, max(len(nodes), 1), WATCH_NODES_BATCH):
                last = i + WATCH_NODES_BATCH >= len(nodes)
                yield pool_pb2.WatchNodesResponse(
                    nodes=nodes[i : i + WATCH_NODES_BATCH], initial=True, initial_complete=last
                )
            while True:
                changes = await queue.get()
                if changes is None:
                    return
                yield pool_pb2.WatchNodesResponse(
                    nodes=[pool_pb2.Node.FromString(b) for b in changes.nodes], removed_node_ids=changes.removed
                )
        finally:
            self.cp.node_watch.close(pool, queue)

    @rpc_errors
    async def DisableNodeScheduling(
        self, request: pool_pb2.DisableNodeSchedulingRequest, context: Ctx
    ) -> pool_pb2.Node:
        pid, nid = parse_name(request.name, "pools", "nodes")
        v = check_enum(request.option, pool_pb2.DisableNodeSchedulingOption, "option")
        if v:
            raise invalid("INVALID_OPTION", v)
        return await self.cp.disable_node_scheduling(pid, nid, request.option)

    @rpc_errors
    async def RebootNode(self, request: pool_pb2.RebootNodeRequest, context: Ctx) -> pool_pb2.Node:
        return await self._restart(request, reimage=False)

    @rpc_errors
    async def ReimageNode(self, request: pool_pb2.ReimageNodeRequest, context: Ctx) -> pool_pb2.Node:
        return await self._restart(request, reimage=True)

    async def _restart(
        self, request: pool_pb2.RebootNodeRequest | pool_pb2.ReimageNodeRequest, *, reimage: bool
    ) -> pool_pb2.Node:
        pid, nid = parse_name(request.name, "pools", "nodes")
        v = check_enum(request.option, pool_pb2.NodeDeallocationOption, "option")
        if v:
            raise invalid("INVALID_OPTION", v)
        restart = self.cp.reimage_node if reimage else self.cp.reboot_node
        return await restart(pid, nid, request.option)

    @rpc_errors
    async def EnableNodeScheduling(self, request: pool_pb2.EnableNodeSchedulingRequest, context: Ctx) -> pool_pb2.Node:
        pid, nid = parse_name(request.name, "pools", "nodes")
        return await self.cp.enable_node_scheduling(pid, nid)

    @rpc_errors
    async def ListPoolNodeCounts(
        self, request: pool_pb2.ListPoolNodeCountsRequest, context: Ctx
    ) -> pool_pb2.ListPoolNodeCountsResponse:
        mine = sorted(p.proto.id for p in self.cp.pools.values() if tenancy.owner(p.proto) == caller().account)
        ids, token = page(mine, request.page_size, request.page_token, "poolNodeCounts")
        return pool_pb2.ListPoolNodeCountsResponse(pools=self.cp.pool_node_counts(ids), next_page_token=token)

    @rpc_errors
    async def ExecNode(
        self, request_iterator: AsyncIterator[pool_pb2.ExecNodeRequest], context: Ctx
    ) -> AsyncIterator[pool_pb2.ExecNodeResponse]:
        """A command or shell on a node, relayed to its agent (see shoal.server.api.nodeexec)."""
        async with contextlib.aclosing(nodeexec.relay(self.cp, self.channels, request_iterator)) as responses:
            async for response in responses:
                yield response

    @rpc_errors
    async def ListNodeFiles(
        self, request: pool_pb2.ListNodeFilesRequest, context: Ctx
    ) -> pool_pb2.ListNodeFilesResponse:
        stub = self._node_files(request.name, request.path)
        resp = await self.channels.call(
            stub.ListFiles(
                agent_pb2.ListFilesRequest(
                    scope=agent_pb2.FILE_SCOPE_NODE, path=request.path, recursive=request.recursive
                ),
                timeout=30,
            )
        )
        return pool_pb2.ListNodeFilesResponse(files=resp.files)

    def _node_files(self, name: str, path: str) -> agent_pb2_grpc.NodeServiceStub:
        """The NodeService of the connected node `name` (`pools/{pool}/nodes/{node}`), once `path` is checked."""
        pid, nid = parse_name(name, "pools", "nodes")
        v = check_file_path(path, "path")
        if v:
            raise invalid("INVALID_PATH", v)
        node = self.cp.node(pid, nid)
        if not node.connected or not node.node_service_port:
            raise failed_precondition("NODE_NOT_CONNECTED", f"node {nid!r} is not connected")
        return agent_pb2_grpc.NodeServiceStub(self.channels.get(node))

    @rpc_errors
    async def ReadNodeFile(
        self, request: pool_pb2.ReadNodeFileRequest, context: Ctx
    ) -> AsyncIterator[common_pb2.FileChunk]:
        if request.offset < 0:
            raise invalid("INVALID_OFFSET", [("offset", "must not be negative")])
        stub = self._node_files(request.name, request.path)
        call = stub.ReadFile(
            agent_pb2.ReadFileRequest(
                scope=agent_pb2.FILE_SCOPE_NODE, path=request.path, offset=request.offset, follow=request.follow
            )
        )
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise translate(e) from None
        finally:
            # The caller went away (or the file ended): the agent stops following too.
            call.cancel()

    @rpc_errors
    async def GetNodeFileProperties(
        self, request: pool_pb2.GetNodeFilePropertiesRequest, context: Ctx
    ) -> common_pb2.NodeFile:
        stub = self._node_files(request.name, request.path)
        request_ = agent_pb2.StatFileRequest(scope=agent_pb2.FILE_SCOPE_NODE, path=request.path)
        return await self.channels.call(stub.StatFile(request_, timeout=30))

    @rpc_errors
    async def DeleteNodeFile(
        self, request: pool_pb2.DeleteNodeFileRequest, context: Ctx
    ) -> pool_pb2.DeleteNodeFileResponse:
        stub = self._node_files(request.name, request.path)
        request_ = agent_pb2.DeleteFileRequest(
            scope=agent_pb2.FILE_SCOPE_NODE, path=request.path, recursive=request.recursive
        )
        await self.channels.call(stub.DeleteFile(request_, timeout=DELETE_SECONDS))
        return pool_pb2.DeleteNodeFileResponse()
