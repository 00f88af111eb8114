"""The synchronous Shoal client: :class:`Client`, pools and storage (jobs in `_jobs.py`, tasks in `_tasks.py`)."""

from __future__ import annotations

import builtins
import collections
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, field_mask_pb2

from shoal.v1 import join_pb2, pool_pb2

from ._accounts import AccountsAPI
from ._applications import ApplicationsAPI
from ._autoscale import AutoScaleMixin
from ._certificates import CertificateReference, CertificatesAPI
from ._jobs import JobsAPI
from ._nodeops import NodeOperationsMixin, _deallocation_option
from ._nodeusers import NodeUsersMixin
from ._rpc import PAGE_SIZE, Rpc, wait_or_cancel
from ._schedules import SchedulesAPI
from ._stats import PoolStatisticsMixin
from ._storage import StorageAPI
from ._tasks import TasksAPI, TaskWatch
from .application_types import ApplicationPackageReference
from .common_types import _metadata_to_proto
from .container_types import ContainerConfiguration
from .credentials import DEFAULT_ADDRESS, Credentials, resolve, shoal_home
from .errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
    from_rpc_error,
)
from .identity_types import UserAccount
from .node_types import (
    NodeChanges,
    PoolNodeCounts,
)
from .types import (
    AllocationState,
    JoinToken,
    Node,
    NodeFillType,
    NodeState,
    Pool,
    StartTaskSpec,
    node_fill_type_to_proto,
    node_state_to_proto,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "Client",
    "JobsAPI",
    "PoolsAPI",
    "StorageAPI",
    "TaskWatch",
    "TasksAPI",
    "resolve_address",
    "shoal_home",
]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def resolve_address(address: str | None = None) -> str:
    """Where the server is.

    ``address``, else ``$SHOAL_ADDRESS``, else ``$SHOAL_HOME/credentials.json`` (or ``server.json``), else
    the default.
    """
    return resolve(address).address


def _duration(value: float | timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(value if isinstance(value, timedelta) else timedelta(seconds=value))
    return d


def _fill_type(value: str | NodeFillType) -> int:
    """A pool's ``node_fill_type`` as sent (InvalidArgument, before any call, for an unknown one)."""
    number = node_fill_type_to_proto(value)
    if number is None:
        choices = [t.value for t in NodeFillType]
        raise InvalidArgument(
            f"node_fill_type must be one of {choices} (got {value!r})",
            reason="INVALID_POOL",
            field_violations=[("pool.task_scheduling_policy.node_fill_type", f"one of {choices}")],
        )
    return number


class PoolsAPI(NodeOperationsMixin, NodeUsersMixin, AutoScaleMixin, PoolStatisticsMixin):
    """Pools and their nodes: ``client.pools``."""

    def __init__(self, rpc: Rpc):
        self._rpc = rpc

    def create(
        self,
        *,
        id: str,
        target_nodes: int = 0,
        task_slots_per_node: int = 1,
        start_task: StartTaskSpec | None = None,
        enable_inter_node_communication: bool = False,
        display_name: str = "",
        provider: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        user_accounts: Sequence[UserAccount] = (),
        certificate_references: Sequence[CertificateReference] = (),
        application_package_references: Sequence[ApplicationPackageReference] = (),
        resize_timeout: float | timedelta | None = None,
        target_low_priority_nodes: int = 0,
        auto_scale_formula: str | None = None,
        auto_scale_evaluation_interval: float | timedelta | None = None,
        node_fill_type: str | NodeFillType | None = None,
        container_configuration: ContainerConfiguration | None = None,
    ) -> Pool:
        """Create a pool; its nodes come up asynchronously (see :meth:`wait_nodes_idle`).

        ``resize_timeout`` (seconds, at least 5; default 15 minutes): nodes not up by then are given up,
        with the resize error ``AllocationTimedout``. ``target_low_priority_nodes``: preemptible nodes
        beside the ``target_nodes`` dedicated ones. ``auto_scale_formula``: the pool sizes itself by this
        formula (Batch's autoscale language; then give no targets), evaluated every
        ``auto_scale_evaluation_interval`` (seconds, default 15). ``node_fill_type``: ``"spread"`` (the
        default: each task goes to the node with the most free slots) or ``"pack"`` (a node fills before the
        next gets a task; changed by :meth:`update`).

        ``metadata``: name/value pairs kept for its users, in their order. ``user_accounts``: named users its
        nodes make, for tasks whose :class:`UserIdentity` names one. ``certificate_references``: certificates
        of the account (:attr:`Client.certificates`) its nodes install, and for whom (changed by :meth:`update`).
        ``application_package_references``: packages of the account's applications (:attr:`Client.applications`,
        at most 10) every node deploys before its start task, in every task's environment.
        ``container_configuration``: its tasks may run in containers (:class:`TaskContainerSettings`), and
        every node pulls these images before it takes tasks; set at creation only. Its registries'
        passwords are kept apart by the server and never returned.
        """
        pool = pool_pb2.Pool(
            id=id,
            display_name=display_name,
            target_nodes=target_nodes,
            task_slots_per_node=task_slots_per_node,
            enable_inter_node_communication=enable_inter_node_communication,
            provider=provider,
            metadata=_metadata_to_proto(metadata or {}),
            user_accounts=[a.to_proto() for a in user_accounts],
            certificate_references=[r.to_proto() for r in certificate_references],
            application_package_references=[r.to_proto() for r in application_package_references],
            target_low_priority_nodes=target_low_priority_nodes,
        )
        if start_task is not None:
            pool.start_task.CopyFrom(start_task.to_proto())
        if resize_timeout is not None:
            pool.resize_timeout.CopyFrom(_duration(resize_timeout))
        if auto_scale_formula is not None:
            pool.enable_auto_scale = True
            pool.auto_scale_formula = auto_scale_formula
        if auto_scale_evaluation_interval is not None:
            pool.auto_scale_evaluation_interval.CopyFrom(_duration(auto_scale_evaluation_interval))
        if node_fill_type is not None:
            pool.task_scheduling_policy.node_fill_type = _fill_type(node_fill_type)  # type: ignore[assignment]
        if container_configuration is not None:
            pool.container_configuration.CopyFrom(container_configuration.to_proto())
        request = pool_pb2.CreatePoolRequest(pool=pool, request_id=request_id or uuid.uuid4().hex)
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.CreatePool, request))

    def get(self, pool_id: str) -> Pool:
        """The pool ``pool_id``."""
        return Pool.from_proto(
            self._rpc.unary(self._rpc.pools.GetPool, pool_pb2.GetPoolRequest(name=f"pools/{pool_id}"))
        )

    def list(self) -> Iterator[Pool]:
        """Every pool (all pages)."""
        for msg in self._rpc.pages(
            self._rpc.pools.ListPools,
            lambda token: pool_pb2.ListPoolsRequest(page_size=PAGE_SIZE, page_token=token),
            "pools",
        ):
            yield Pool.from_proto(msg)

    def resize(
        self,
        pool_id: str,
        target_nodes: int,
        *,
        target_low_priority_nodes: int | None = None,
        node_deallocation_option: str = "requeue",
        etag: str | None = None,
    ) -> Pool:
        """Change the pool's target size (and, when given, its low-priority target);
        ``node_deallocation_option`` is requeue|terminate|taskcompletion|retaineddata.

        Only a pool whose allocation is steady may be resized (:class:`FailedPrecondition`
        ``POOL_RESIZING`` otherwise; see :meth:`wait_steady`). With ``etag`` (a :attr:`Pool.etag`
        read before), raises :class:`Aborted` ``ETAG_MISMATCH`` if the pool changed since.
        """
        request = pool_pb2.ResizePoolRequest(
            name=f"pools/{pool_id}",
            target_nodes=target_nodes,
            node_deallocation_option=_deallocation_option(node_deallocation_option, "INVALID_RESIZE"),  # type: ignore[arg-type]
            etag=etag or "",
        )
        if target_low_priority_nodes is not None:
            request.target_low_priority_nodes = target_low_priority_nodes
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.ResizePool, request))

    def update(
        self,
        pool_id: str,
        *,
        display_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        start_task: StartTaskSpec | None = None,
        remove_start_task: bool = False,
        certificates: Sequence[CertificateReference] | None = None,
        application_packages: Sequence[ApplicationPackageReference] | None = None,
        target_nodes: int | None = None,
        target_low_priority_nodes: int | None = None,
        resize_timeout: float | timedelta | None = None,
        node_fill_type: str | NodeFillType | None = None,
        etag: str | None = None,
    ) -> Pool:
        """Change the fields given, and only those (the update mask names them); returns the pool.

        An argument left None is left as it is. ``metadata`` and ``certificates`` replace the pool's whole
        (``{}``/``[]`` clear them); ``start_task`` replaces the start task whole, ``remove_start_task``
        removes it. Each is checked as :meth:`create` checks it (:class:`InvalidArgument` naming the field;
        a certificate must be an active one of the account). A new start task or new certificates reach no
        running node: nodes get them when their agent next joins (a new node, a restart, a reboot or a
        reimage), as in Batch. A new ``target_nodes`` resizes the pool as :meth:`resize` does (surplus nodes
        leave, their tasks requeued; :class:`FailedPrecondition` ``POOL_RESIZING`` unless it is steady). With
        ``etag`` (a :attr:`Pool.etag` read before), raises :class:`Aborted` ``ETAG_MISMATCH`` if the pool
        changed since. A new ``node_fill_type`` (``"spread"`` or ``"pack"``) holds for the next placements.
        New ``application_packages`` (they replace the pool's whole) are deployed to every node at once.
        """
        pool = pool_pb2.Pool(name=f"pools/{pool_id}")
        mask: builtins.list[str] = []
        if display_name is not None:
            pool.display_name = display_name
            mask.append("display_name")
        if metadata is not None:
            pool.metadata.extend(_metadata_to_proto(metadata))
            mask.append("metadata")
        if start_task is not None and remove_start_task:
            raise InvalidArgument(
                "give start_task or remove_start_task, not both",
                reason="INVALID_POOL",
                field_violations=[("pool.start_task", "both given and removed")],
            )
        if start_task is not None or remove_start_task:
            if start_task is not None:
                pool.start_task.CopyFrom(start_task.to_proto())
            mask.append("start_task")
        if certificates is not None:
            pool.certificate_references.extend(r.to_proto() for r in certificates)
            mask.append("certificate_references")
        if application_packages is not None:
            pool.application_package_references.extend(r.to_proto() for r in application_packages)
            mask.append("application_package_references")
        if target_nodes is not None:
            pool.target_nodes = target_nodes
            mask.append("target_nodes")
        if target_low_priority_nodes is not None:
            pool.target_low_priority_nodes = target_low_priority_nodes
            mask.append("target_low_priority_nodes")
        if resize_timeout is not None:
            pool.resize_timeout.CopyFrom(_duration(resize_timeout))
            mask.append("resize_timeout")
        if node_fill_type is not None:
            pool.task_scheduling_policy.node_fill_type = _fill_type(node_fill_type)  # type: ignore[assignment]
            mask.append("task_scheduling_policy")
        if not mask:
            raise InvalidArgument(
                "give at least one field to update",
                reason="INVALID_UPDATE_MASK",
                field_violations=[("update_mask", "empty")],
            )
        request = pool_pb2.UpdatePoolRequest(
            pool=pool, update_mask=field_mask_pb2.FieldMask(paths=mask), etag=etag or ""
        )
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.UpdatePool, request))

    def remove_nodes(
        self,
        pool_id: str,
        node_ids: Sequence[str],
        *,
        node_deallocation_option: str = "requeue",
        resize_timeout: float | timedelta | None = None,
        etag: str | None = None,
    ) -> Pool:
        """Exactly these nodes (1 to 100) leave the pool, their tasks as ``node_deallocation_option`` says
        (requeue|terminate|taskcompletion); the pool's target drops by as many. Only while its allocation
        is steady (:class:`FailedPrecondition` ``POOL_RESIZING`` otherwise)."""
        request = pool_pb2.RemoveNodesRequest(
            name=f"pools/{pool_id}",
            node_ids=list(node_ids),
            node_deallocation_option=_deallocation_option(node_deallocation_option, "INVALID_REMOVE_NODES"),  # type: ignore[arg-type]
            etag=etag or "",
        )
        if resize_timeout is not None:
            request.resize_timeout.CopyFrom(_duration(resize_timeout))
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.RemoveNodes, request))

    def stop_resize(self, pool_id: str, *, etag: str | None = None) -> Pool:
        """Stop the pool's resize where it is: nodes made stay, no more are made, nothing is rolled back; the
        pool is ``stopping``, then ``steady``, with the resize error ``ResizeStopped``
        (:class:`FailedPrecondition` ``POOL_NOT_RESIZING`` when it is steady)."""
        request = pool_pb2.StopPoolResizeRequest(name=f"pools/{pool_id}", etag=etag or "")
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.StopPoolResize, request))

    def delete(self, pool_id: str, *, etag: str | None = None) -> Pool:
        """Start deleting the pool: it goes to ``deleting``, its nodes leave, then it is gone.

        With ``etag``, raises :class:`Aborted` ``ETAG_MISMATCH`` if the pool changed since it was read.
        """
        request = pool_pb2.DeletePoolRequest(name=f"pools/{pool_id}", etag=etag or "")
        return Pool.from_proto(self._rpc.unary(self._rpc.pools.DeletePool, request))

    def nodes(self, pool_id: str, state: NodeState | str | None = None) -> Iterator[Node]:
        """The pool's nodes (all pages), only those in ``state`` when given."""
        state_value = node_state_to_proto(state) if state is not None else 0
        for msg in self._rpc.pages(
            self._rpc.pools.ListNodes,
            lambda token: pool_pb2.ListNodesRequest(
                parent=f"pools/{pool_id}",
                page_size=PAGE_SIZE,
                page_token=token,
                state=state_value,  # type: ignore[arg-type]
            ),
            "nodes",
        ):
            yield Node.from_proto(msg)

    def node(self, pool_id: str, node_id: str) -> Node:
        """One node."""
        request = pool_pb2.GetNodeRequest(name=f"pools/{pool_id}/nodes/{node_id}")
        return Node.from_proto(self._rpc.unary(self._rpc.pools.GetNode, request))

    def node_counts(self) -> builtins.list[PoolNodeCounts]:
        """Per pool of the account, how many of its nodes are in each state (all pages)."""
        return [
            PoolNodeCounts.from_proto(msg)
            for msg in self._rpc.pages(
                self._rpc.pools.ListPoolNodeCounts,
                lambda token: pool_pb2.ListPoolNodeCountsRequest(page_size=PAGE_SIZE, page_token=token),
                "pools",
            )
        ]

    def wait_node_state(
        self,
        pool_id: str,
        node_id: str,
        state: NodeState | str | Iterable[NodeState | str],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        cancel: threading.Event | None = None,
    ) -> Node:
        """Wait until the node is in ``state`` (one state, or any of several) and return it.

        Raises :class:`DeadlineExceeded` after ``timeout`` seconds and :class:`Cancelled` when ``cancel``
        is set.
        """
        wanted_list = [state] if isinstance(state, str) else builtins.list(state)
        # Through the proto values so that any spelling of a state ("leaving_pool") is accepted.
        wanted = {node_state_to_proto(s) for s in wanted_list}
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            node = self.node(pool_id, node_id)
            if node.proto.state in wanted:
                return node
            if deadline is not None and time.monotonic() >= deadline:
                names = ", ".join(str(s) for s in wanted_list)
                raise DeadlineExceeded(
                    f"node {pool_id}/{node_id} not in {names} after {timeout}s (it is {node.state})",
                    reason="WAIT_TIMEOUT",
                )
            wait_or_cancel(cancel, poll_interval)

    def watch_nodes(self, pool_id: str, *, timeout: float | None = None) -> Iterator[NodeChanges]:
        """The pool's nodes as they are, then each change as the server commits it (no polling): one
        :class:`NodeChanges` per message, the first ones (the snapshot) with ``initial``. Ends when the pool
        is gone; :class:`DeadlineExceeded` after ``timeout`` seconds. Closing the iterator ends the stream."""
        request = pool_pb2.WatchNodesRequest(parent=f"pools/{pool_id}")
        call = self._rpc.pools.WatchNodes(request, timeout=timeout, metadata=self._rpc.metadata)
        try:
            for msg in call:
                yield NodeChanges(
                    nodes=tuple(Node.from_proto(n) for n in msg.nodes),
                    removed_node_ids=tuple(msg.removed_node_ids),
                    initial=msg.initial,
                    initial_complete=msg.initial_complete,
                )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    def join_token(self, pool_id: str, *, ttl: float = 3600.0) -> JoinToken:
        """A token with which agents started elsewhere join pool ``pool_id`` for ``ttl`` seconds
        (``shoal agent --server ADDRESS --token TOKEN``). The token is a secret until it expires."""
        request = join_pb2.CreateJoinTokenRequest(pool_id=pool_id)
        request.ttl.FromNanoseconds(int(ttl * 1e9))
        return JoinToken.from_proto(self._rpc.unary(self._rpc.join.CreateJoinToken, request))

    def wait_steady(
        self,
        pool_id: str,
        *,
        count: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        cancel: threading.Event | None = None,
    ) -> Pool:
        """Wait until the pool's allocation is steady with ``count`` (default: target) nodes.

        Raises :class:`DeadlineExceeded` after ``timeout`` seconds and
        :class:`Cancelled` when ``cancel`` is set.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pool = self.get(pool_id)
            want = pool.target_nodes if count is None else count
            if pool.allocation_state == AllocationState.STEADY and pool.current_nodes >= want:
                return pool
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"pool {pool_id} not steady with {want} nodes after {timeout}s "
                    f"({pool.allocation_state}, {pool.current_nodes} nodes)",
                    reason="WAIT_TIMEOUT",
                )
            wait_or_cancel(cancel, poll_interval)

    def wait_nodes_idle(
        self,
        pool_id: str,
        *,
        count: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        cancel: threading.Event | None = None,
    ) -> builtins.list[Node]:
        """Wait until ``count`` (default: the pool's target) nodes are ready to run tasks (idle or running).

        Returns the ready nodes. Raises :class:`FailedPrecondition` (reason
        ``START_TASK_FAILED``) when too many nodes failed their start task for
        ``count`` to be reached, :class:`DeadlineExceeded` after ``timeout``
        seconds and :class:`Cancelled` when ``cancel`` is set.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            want = self.get(pool_id).target_nodes if count is None else count
            nodes = list(self.nodes(pool_id))
            ready = [n for n in nodes if n.state in (NodeState.IDLE, NodeState.RUNNING)]
            if len(ready) >= want:
                return ready
            failed = [n for n in nodes if n.state == NodeState.START_TASK_FAILED]
            if failed and len(nodes) - len(failed) < want and len(nodes) >= want:
                raise FailedPrecondition(
                    f"{len(failed)} node(s) of pool {pool_id} failed their start task "
                    f"({', '.join(n.id for n in failed)})",
                    reason="START_TASK_FAILED",
                )
            if deadline is not None and time.monotonic() >= deadline:
                states = collections.Counter(str(n.state) for n in nodes)
                raise DeadlineExceeded(
                    f"only {len(ready)} of {want} nodes of pool {pool_id} ready after {timeout}s ({dict(states)})",
                    reason="WAIT_TIMEOUT",
                )
            wait_or_cancel(cancel, poll_interval)


class Client:
    """A connection to a Shoal server.

    ::

        client = shoal.Client.connect()
        pool = client.pools.create(id="render", target_nodes=4, task_slots_per_node=2)
        job = client.jobs.create(id="frames", pool_id=pool.id)
        client.tasks.add_many(job.id, (TaskSpec(id=f"f{i}", command_line=f"render {i}") for i in range(1000)))
        for task in client.tasks.wait(job.id):
            print(task.id, task.exit_code)
    """

    pools: PoolsAPI
    """Pools and nodes."""
    jobs: JobsAPI
    """Jobs."""
    tasks: TasksAPI
    """Tasks of jobs."""
    storage: StorageAPI
    """Containers and blobs."""
    certificates: CertificatesAPI
    """The account's certificates."""
    applications: ApplicationsAPI
    """The account's applications and their packages."""
    address: str
    """The server address in use."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        address: str = "",
        key: str | None = None,
        account: str | None = None,
        timeout: float | None = 60.0,
    ):
        """Wrap an existing channel; most callers want :meth:`connect`."""
        metadata = Credentials(address, account, key).metadata()
        self._channel = channel
        self.address = address
        self.account = account
        self._rpc = Rpc(channel, metadata=metadata, timeout=timeout)
        self.pools = PoolsAPI(self._rpc)
        self.jobs = JobsAPI(self._rpc)
        self.schedules = SchedulesAPI(self._rpc)
        self.tasks = TasksAPI(self._rpc)
        self.storage = StorageAPI(self._rpc)
        self.accounts = AccountsAPI(self._rpc)
        self.certificates = CertificatesAPI(self._rpc)
        self.applications = ApplicationsAPI(self._rpc)

    @classmethod
    def connect(
        cls,
        address: str | None = None,
        *,
        account: str | None = None,
        key: str | None = None,
        admin: bool = False,
        ca_cert: bytes | str | Path | None = None,
        timeout: float | None = 60.0,
    ) -> Client:
        """Connect to the server at ``address`` as ``account`` with ``key``.

        Without them: ``$SHOAL_ADDRESS``, ``$SHOAL_ACCOUNT_NAME`` and ``$SHOAL_ACCOUNT_KEY`` (a task's
        ``$SHOAL_AUTHENTICATION_TOKEN``), else ``$SHOAL_HOME/credentials.json`` (written by ``shoal up``
        and ``shoal server``, mode 0600), else ``127.0.0.1:7420`` without credentials. With ``admin``,
        the administrator's key (``client.accounts``). The server's TLS certificate is checked against
        ``ca_cert`` (PEM bytes or a file), else ``$SHOAL_CA_CERT_FILE``, else the CA saved with its
        credentials. ``timeout`` bounds each unary call, in seconds.
        The connection is made lazily on the first call.
        """
        creds = resolve(address, account=account, key=key, admin=admin, ca_cert=ca_cert)
        resolved = creds.address
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        channel = creds.channel(options)
        return cls(channel, address=resolved, key=creds.key, account=creds.account, timeout=timeout)

    def wait_ready(self, *, timeout: float = 30.0) -> None:
        """Block until the server answers, or raise :class:`Unavailable` after ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"no Shoal server at {self.address} after {timeout}s", reason="UNAVAILABLE") from None

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(address={self.address!r})"
