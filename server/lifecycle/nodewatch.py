"""WatchNodes' part of the kernel: the changes of watched pools' nodes, collected as a flush writes them
and handed to each pool's streams once that flush has committed.

While no stream is open (`streams` is 0) nothing is collected: the kernel checks `streams` before it
calls here, so an unwatched cluster pays one integer test per node row and per IDLE/RUNNING flip.
"""

from __future__ import annotations

import asyncio

from shoal.server.domain.records import NodeChanges, PoolRec

#: The changes of one commit, by pool key.
Collected = dict[str, tuple[PoolRec, NodeChanges]]


class NodeWatch:
    """The WatchNodes streams of every pool, and what the flush under way changed of their nodes."""

    def __init__(self, pools: dict[str, PoolRec]) -> None:
        self._pools = pools
        #: WatchNodes streams open (over all pools).
        self.streams = 0
        self._changes: Collected = {}

    def open(self, pool: PoolRec) -> asyncio.Queue[NodeChanges | None]:
        """A new stream of `pool`: each commit's changes of its nodes, then None when the pool is gone."""
        queue: asyncio.Queue[NodeChanges | None] = asyncio.Queue()
        pool.watchers.add(queue)
        self.streams += 1
        return queue

    def close(self, pool: PoolRec, queue: asyncio.Queue[NodeChanges | None]) -> None:
        """The stream ended."""
        pool.watchers.discard(queue)
        self.streams -= 1

    def written(self, pool_key: str, node: bytes) -> None:
        """The flush under way writes `node` (serialized) of pool `pool_key`."""
        changes = self._of(pool_key)
        if changes is not None:
            changes.nodes.append(node)

    def removed(self, pool_key: str, node_id: str) -> None:
        """Node `node_id` left pool `pool_key`: its streams are told with the next commit."""
        if self.streams:
            changes = self._of(pool_key)
            if changes is not None:
                changes.removed.append(node_id)

    def _of(self, pool_key: str) -> NodeChanges | None:
        pool = self._pools.get(pool_key)
        if pool is None or not pool.watchers:
            return None
        entry = self._changes.get(pool_key)
        if entry is None:
            entry = self._changes[pool_key] = (pool, NodeChanges([], []))
        return entry[1]

    def take(self) -> Collected:
        """What this flush changed (collecting starts afresh for the next one)."""
        changes, self._changes = self._changes, {}
        return changes

    @staticmethod
    def publish(changes: Collected) -> None:
        """Give each watched pool's streams what a commit changed."""
        for pool, pool_changes in changes.values():
            for q in pool.watchers:
                q.put_nowait(pool_changes)

    @staticmethod
    def pool_gone(pool: PoolRec) -> None:
        """The pool is gone: its streams end."""
        for q in pool.watchers:
            q.put_nowait(None)
