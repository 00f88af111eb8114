"""The server's collector policy: many survivors of a full collection are frozen; a refresh gives them back."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from shoal.server.gcpolicy import YOUNG_THRESHOLD, LongLivedGc


class Node:
    """Something the collector tracks, able to take part in a cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _policy(freeze_min_objects: int) -> Iterator[LongLivedGc]:
    p = LongLivedGc(refresh_seconds=5.0, freeze_min_objects=freeze_min_objects)
    gc.unfreeze()
    p.install()
    try:
        yield p
    finally:
        p.uninstall()
        # Whatever the test froze goes back to the collector: other tests' garbage must not stay.
        gc.unfreeze()


@pytest.fixture
def policy() -> Iterator[LongLivedGc]:
    yield from _policy(freeze_min_objects=1)


@pytest.fixture
def strict_policy() -> Iterator[LongLivedGc]:
    yield from _policy(freeze_min_objects=10**9)


def test_survivors_of_a_full_collection_are_frozen(policy: LongLivedGc) -> None:
    keep = [Node() for _ in range(1000)]
    before = policy.full_collections
    gc.collect()
    assert policy.full_collections == before + 1
    frozen = gc.get_freeze_count()
    assert frozen >= len(keep)
    # A younger collection freezes nothing more.
    gc.collect(0)
    assert gc.get_freeze_count() == frozen


def test_few_survivors_are_not_frozen(strict_policy: LongLivedGc) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # in flight during the collection
    gc.collect()
    assert strict_policy.full_collections >= 1 and strict_policy.freezes == 0
    assert gc.get_freeze_count() == 0
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None  # not frozen, so collected as usual


def test_refresh_collects_a_cycle_among_frozen_objects(policy: LongLivedGc) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect()  # both survive (referenced), and are frozen
    assert gc.get_freeze_count() > 0
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is not None  # frozen: a full collection no longer sees the cycle
    assert policy.refresh() >= 2
    assert gone() is None
    assert gc.get_freeze_count() > 0  # what survived the refresh is frozen again


def test_uninstalled_policy_freezes_nothing() -> None:
    before = gc.get_threshold()
    p = LongLivedGc(freeze_min_objects=1)
    p.install()
    p.install()  # once only
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    p.uninstall()
    assert gc.get_threshold() == before
    gc.unfreeze()
    gc.collect()
    assert gc.get_freeze_count() == 0
    assert p.full_collections == 0


async def test_run_refreshes_every_period(policy: LongLivedGc) -> None:
    waited: list[float] = []
    refreshed = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 3:
            refreshed.set()
            await asyncio.Event().wait()  # parked until cancelled

    before = policy.full_collections
    task = asyncio.create_task(policy.run(sleep))
    await asyncio.wait_for(refreshed.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waited == [5.0, 5.0, 5.0]
    assert policy.full_collections - before >= 2  # each refresh is one full collection
