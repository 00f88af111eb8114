"""What a node's agent is sent of containers when it joins: its pool's container configuration (the images
to pull before its start task and first task), and its start task's container, each with the registry
passwords kept apart (`shoal.server.containers.credentials`).

A task's container goes with its assignment (`lifecycle.attempts.assign`), a preparation or release task's
with its JobTaskSpec (`lifecycle.jobprep`): both filled through `RegistryCredentials.fill`.
"""

from __future__ import annotations

from shoal.agent.v1 import agent_pb2
from shoal.server.containers.credentials import RegistryCredentials
from shoal.server.domain.records import NodeRec
from shoal.server.lifecycle.kernel import Kernel


class ContainerWelcomes:
    """Adds the pool's containers to each Welcome (a kernel welcome hook)."""

    def __init__(self, k: Kernel, credentials: RegistryCredentials) -> None:
        self.k = k
        self.credentials = credentials

    def install(self) -> None:
        """Register with the kernel."""
        self.k.welcome_hooks.append(self.welcomed)

    def welcomed(self, node: NodeRec, reg: agent_pb2.Register, welcome: agent_pb2.Welcome) -> None:
        """A Welcome for `node`: its pool's container configuration, passwords filled in; the start task's
        container (a copy of the pool's, already in the Welcome) its registry's password."""
        pool = self.k.pools.get(node.pool_key)
        if pool is None:
            return
        account = pool.proto.account
        if pool.proto.HasField("container_configuration"):
            welcome.containers.CopyFrom(self.credentials.configuration(account, pool.proto.container_configuration))
        if welcome.HasField("start_task") and welcome.start_task.HasField("container_settings"):
            self.credentials.fill(account, welcome.start_task.container_settings)
