"""Every node's users: the desired state the server keeps, and what it tells each node's agent.

The reconcile loop of the agent protocol: a change is committed to the store first (table `nodeusers`,
one row per user, `parent` the node's key), then the node's whole list goes to its connected agent as
`ServerMessage.node_users`, and every Welcome carries it again, so an agent that was away, restarted or
reimaged makes exactly these users whatever it missed. The users go with their node when it leaves the
pool (its rows are deleted in the flush that deletes the node's, `forgotten`).

Changes to one node's users are made one at a time (a lock per node): the list an agent is sent is
always one that was committed, in the order it was committed.

Users sit beside the scheduling state, as certificates do: nothing on the task path reads them; the node
lifecycle calls `welcomed` as it makes a Welcome and `forgotten` as it forgets a node (the kernel's hooks).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.clock import Clock
from shoal.server.domain.errors import AlreadyExists, FailedPrecondition, NotFound, invalid_input
from shoal.server.domain.records import NodeRec
from shoal.server.nodeusers import model
from shoal.server.store.base import Delete, Op, Row, Store, StoredRow
from shoal.v1 import pool_pb2

if TYPE_CHECKING:
    from shoal.server.lifecycle.kernel import Kernel

log = logging.getLogger("shoal.server")

TABLE = "nodeusers"
#: `NodeRec.internal` key: the SSH port the node's agent found at its address when it last registered.
SSH_PORT = "ssh_port"
#: The user the agent must run as to make users.
ROOT = "root"


def _row_key(node_key: str, name: str) -> str:
    return f"{node_key}/{name}"


def _encode(user: model.NodeUser) -> bytes:
    return json.dumps(
        {
            "name": user.name,
            "is_admin": user.is_admin,
            "expiry": user.expiry.isoformat(),
            "password_hash": user.password_hash,
            "ssh_public_key": user.ssh_public_key,
        }
    ).encode()


def _decode(data: bytes) -> model.NodeUser:
    blob = json.loads(data)
    return model.NodeUser(
        name=blob["name"],
        is_admin=bool(blob["is_admin"]),
        expiry=datetime.fromisoformat(blob["expiry"]),
        password_hash=blob["password_hash"],
        ssh_public_key=blob["ssh_public_key"],
    )


class NodeUserRegistry:
    """The users of every node, and the remote login settings of each."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        kernel: Kernel,
        *,
        hash_password: Callable[[str], str] = model.hash_password,
    ) -> None:
        self.store = store
        self.clock = clock
        self.k = kernel
        self._hash = hash_password
        #: node key → user name → user, as committed.
        self.users: dict[str, dict[str, model.NodeUser]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- start-up and the node lifecycle's hooks --------------------------------------------------------
    async def load(self, rows: Iterable[StoredRow]) -> None:
        """Read the table (at start-up); rows of nodes no longer in the store go (a crash between a
        user's commit and its node's removal can leave one)."""
        stale: list[Op] = []
        for row in rows:
            if row.parent not in self.k.nodes:
                stale.append(Delete(TABLE, row.key))
                continue
            user = _decode(row.data)
            self.users.setdefault(row.parent, {})[user.name] = user
        if stale:
            await self.store.commit(stale)

    def install(self) -> None:
        """Register with the kernel: Welcomes carry the users, a forgotten node's users go with it."""
        self.k.welcome_hooks.append(self.welcomed)
        self.k.node_forgotten_hook = self.forgotten

    def welcomed(self, node: NodeRec, reg: agent_pb2.Register, welcome: agent_pb2.Welcome) -> None:
        """A Welcome for `node` is being made: it carries the node's users; the SSH port its agent found is
        kept on the node (written with the next flush)."""
        if node.internal.get(SSH_PORT, 0) != reg.ssh_port:
            node.internal[SSH_PORT] = reg.ssh_port
            self.k.mark("nodes", node.key, node)
        welcome.node_users.extend(self._specs(node.key))

    def forgotten(self, node: NodeRec) -> None:
        """`node` left its pool: its users' rows are deleted in the same flush as its own row."""
        self.users.pop(node.key, None)
        self._locks.pop(node.key, None)
        self.k.mark(TABLE + "!", node.key, Delete(TABLE, parent=node.key))

    # -- reads --------------------------------------------------------------------------------------------
    def _live(self, node_key: str) -> dict[str, model.NodeUser]:
        """The node's users not past their expiry (an expired one is gone from the node: its agent removed
        it at that time)."""
        now = self.clock.now()
        return {n: u for n, u in self.users.get(node_key, {}).items() if u.expiry > now}

    def _specs(self, node_key: str) -> list[agent_pb2.NodeUserSpec]:
        return [model.agent_spec(u) for _, u in sorted(self._live(node_key).items())]

    def list(self, pool_id: str, node_id: str) -> list[pool_pb2.NodeUser]:
        """The node's users, by name (never a password or its hash)."""
        node = self.k.node(pool_id, node_id)
        return [model.message(u) for _, u in sorted(self._live(node.key).items())]

    def remote_login(self, pool_id: str, node_id: str) -> pool_pb2.RemoteLoginSettings:
        """Where to reach the node with SSH: its address and the port its agent found an SSH server on, or
        why there is none."""
        node = self.k.node(pool_id, node_id)
        ip = node.proto.ip_address
        port = int(node.internal.get(SSH_PORT, 0))
        if port:
            return pool_pb2.RemoteLoginSettings(remote_login_ip_address=ip, remote_login_port=port, available=True)
        if not node.proto.HasField("last_boot_time"):
            reason = "the node's agent has not connected yet"
        else:
            reason = (
                f"no SSH server answered at {ip} (port 22, or the agent's --ssh-port) when the node's agent "
                "last connected: install and start one on the node (Debian: openssh-server), then reboot the "
                "node or restart its agent"
            )
        return pool_pb2.RemoteLoginSettings(remote_login_ip_address=ip, available=False, reason=reason)

    # -- changes ------------------------------------------------------------------------------------------
    def _usable(self, pool_id: str, node_id: str) -> NodeRec:
        """The node, when users may be added or changed on it now; else NotFound or FailedPrecondition."""
        node = self.k.node(pool_id, node_id)
        refusal = model.state_refusal(node.state)
        if refusal is not None:
            raise FailedPrecondition(*refusal)
        agent_user = node.proto.agent_user
        if agent_user and agent_user != ROOT:
            raise FailedPrecondition(
                "NODE_USERS_UNSUPPORTED",
                f"the agent of node {node_id!r} runs as {agent_user!r}, not root: it cannot make users",
            )
        return node

    def _lock(self, node_key: str) -> asyncio.Lock:
        lock = self._locks.get(node_key)
        if lock is None:
            lock = self._locks[node_key] = asyncio.Lock()
        return lock

    async def add(self, pool_id: str, node_id: str, user: pool_pb2.NodeUser) -> pool_pb2.NodeUser:
        """A new user on the node: NODE_USER_EXISTS when it has one of that name."""
        node = self.k.node(pool_id, node_id)
        now = self.clock.now()
        accounts = [a.name for a in self.k.pools[node.pool_key].proto.user_accounts]
        v = model.check(user, now, pool_accounts=accounts)
        if v:
            raise invalid_input("INVALID_NODE_USER", v)
        self._usable(pool_id, node_id)
        async with self._lock(node.key):
            node = self._usable(pool_id, node_id)
            if user.name in self._live(node.key):
                raise AlreadyExists("NODE_USER_EXISTS", f"node {node_id!r} has a user {user.name!r} already")
            password_hash = await asyncio.to_thread(self._hash, user.password) if user.password else ""
            rec = model.build(user, now, password_hash)
            await self._commit(node, pool_id, node_id, rec)
        return model.message(rec)

    async def update(self, pool_id: str, node_id: str, name: str, user: pool_pb2.NodeUser) -> pool_pb2.NodeUser:
        """Replace the user's password, SSH key and expiry (an omitted one is removed, or the default)."""
        node = self.k.node(pool_id, node_id)
        now = self.clock.now()
        v = model.check(user, now, with_name=False)
        if user.name and user.name != name:
            v.insert(0, ("user.name", f"must be empty or {name!r}, the user the request names"))
        if v:
            raise invalid_input("INVALID_NODE_USER", v)
        self._usable(pool_id, node_id)
        async with self._lock(node.key):
            node = self._usable(pool_id, node_id)
            old = self._live(node.key).get(name)
            if old is None:
                raise self._missing(node_id, name)
            password_hash = await asyncio.to_thread(self._hash, user.password) if user.password else ""
            replacement = pool_pb2.NodeUser()
            replacement.CopyFrom(user)
            replacement.name = name
            rec = model.build(replacement, now, password_hash, is_admin=old.is_admin)
            await self._commit(node, pool_id, node_id, rec)
        return model.message(rec)

    async def delete(self, pool_id: str, node_id: str, name: str) -> None:
        """Remove the user (in any node state: the node applies it when its agent is next connected)."""
        node = self.k.node(pool_id, node_id)
        async with self._lock(node.key):
            node = self.k.node(pool_id, node_id)
            if name not in self._live(node.key):
                raise self._missing(node_id, name)
            await self._commit(node, pool_id, node_id, None, remove=name)

    @staticmethod
    def _missing(node_id: str, name: str) -> NotFound:
        return NotFound("NODE_USER_NOT_FOUND", f"node {node_id!r} has no user {name!r}")

    async def _commit(
        self, node: NodeRec, pool_id: str, node_id: str, rec: model.NodeUser | None, *, remove: str = ""
    ) -> None:
        """Commit `rec` (or the removal of user `remove`), dropping expired users' rows with it; then
        send the node's agent the whole list."""
        now = self.clock.now()
        current = self.users.get(node.key, {})
        expired = [n for n, u in current.items() if u.expiry <= now and (rec is None or n != rec.name)]
        ops: list[Op] = [Delete(TABLE, _row_key(node.key, n)) for n in [*expired, *([remove] if remove else [])]]
        if rec is not None:
            ops.append(Row(TABLE, _row_key(node.key, rec.name), _encode(rec), parent=node.key))
        await self.store.commit(ops)
        if self.k.nodes.get(node.key) is not node:
            # The node left while the commit was under way: its rows go (the node's were deleted already).
            await self.store.commit([Delete(TABLE, parent=node.key)])
            raise NotFound("NODE_NOT_FOUND", f"node {node_id!r} is not in pool {pool_id!r}")
        users = self.users.setdefault(node.key, {})
        for n in expired:
            users.pop(n, None)
        if remove:
            users.pop(remove, None)
        if rec is not None:
            users[rec.name] = rec
        self._send(node)

    def _send(self, node: NodeRec) -> None:
        """The node's whole list to its agent, if connected (else its next Welcome carries it)."""
        session = node.session
        if session is None:
            return
        msg = agent_pb2.NodeUsers(command_id=session.command_id(), users=self._specs(node.key))
        session.send(agent_pb2.ServerMessage(node_users=msg))
