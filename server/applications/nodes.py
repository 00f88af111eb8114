"""Application packages on nodes: the pool's in every Welcome, and to every node at once when the pool's
references change (UpdatePool). A task's own are resolved as it is placed (`Kernel.task_packages`)."""

from __future__ import annotations

from shoal.agent.v1 import agent_pb2
from shoal.server.applications.registry import ApplicationRegistry
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.server.domain.records import NodeRec, PoolRec
from shoal.server.lifecycle.kernel import Kernel


class PackageDeployer:
    """Tells nodes which application packages to deploy, resolved against the registry when it tells."""

    def __init__(self, k: Kernel, registry: ApplicationRegistry) -> None:
        self.k = k
        self.registry = registry

    def install(self) -> None:
        """Register with the kernel: Welcomes carry the pool's packages, placed tasks their own."""
        self.k.welcome_hooks.append(self.welcomed)
        self.k.task_packages = self.registry.deployments

    def pool_packages(self, pool: PoolRec) -> list[agent_pb2.PackageDeployment]:
        """The pool's references, resolved now."""
        refs = pool.proto.application_package_references
        return self.registry.deployments(pool.proto.account or DEFAULT_ACCOUNT, refs) if refs else []

    def welcomed(self, node: NodeRec, reg: agent_pb2.Register, welcome: agent_pb2.Welcome) -> None:
        """A Welcome for `node`: the pool's packages, to deploy before its start task and first task."""
        pool = self.k.pools.get(node.pool_key)
        if pool is not None and pool.proto.application_package_references:
            welcome.packages.extend(self.pool_packages(pool))

    def deploy_pool(self, pool: PoolRec) -> int:
        """The pool's references changed (committed): every connected node deploys them now (the others
        get them in their next Welcome). The number of nodes told."""
        packages = self.pool_packages(pool)
        told = 0
        for node in pool.nodes.values():
            session = node.session
            if session is None:
                continue
            msg = agent_pb2.DeployPackages(command_id=session.command_id(), packages=packages)
            session.send(agent_pb2.ServerMessage(deploy_packages=msg))
            told += 1
        return told
