"""TurnShare: reports get a slice of each event-loop turn; the rest wait for later turns, in order."""

from __future__ import annotations

import asyncio
import time

from shoal.server.api.turns import TurnShare


async def test_work_past_the_slice_waits_for_a_later_turn_behind_what_became_ready() -> None:
    share = TurnShare(0.005)
    order: list[str] = []
    loop = asyncio.get_running_loop()

    async def reader(name: str) -> None:
        await share.enter()
        order.append(name)
        time.sleep(0.004)  # a report's worth of work, holding the loop
        if name == "r0":
            # Becomes ready during this turn (a commit ending, say): it must not wait for every reader.
            loop.call_soon(order.append, "commit done")

    await asyncio.gather(*(reader(f"r{i}") for i in range(6)))
    assert sorted(o for o in order if o.startswith("r")) == [f"r{i}" for i in range(6)]
    # Two readers fit in the first turn's slice; the rest came after what became ready in it.
    assert order.index("commit done") < order.index("r5")
    assert order.index("commit done") <= 3


async def test_the_first_work_of_a_turn_always_gets_in() -> None:
    share = TurnShare(0.0)
    got: list[int] = []

    async def reader(i: int) -> None:
        await share.enter()
        got.append(i)

    await asyncio.gather(*(reader(i) for i in range(4)))
    assert got == [0, 1, 2, 3]


async def test_a_cancelled_waiter_does_not_hold_up_the_others() -> None:
    share = TurnShare(0.0)
    await share.enter()
    first = asyncio.ensure_future(share.enter())
    second = asyncio.ensure_future(share.enter())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 1)


async def test_each_turn_takes_a_slice_worth_of_waiters_in_order() -> None:
    share = TurnShare(0.005)
    loop = asyncio.get_running_loop()
    turn = [0]
    ticking = [True]

    def tick() -> None:  # counts turns of the loop
        turn[0] += 1
        if ticking[0]:
            loop.call_soon(tick)

    loop.call_soon(tick)
    admitted: list[tuple[int, int]] = []

    async def reader(i: int) -> None:
        await share.enter()
        admitted.append((i, turn[0]))
        time.sleep(0.001)

    await asyncio.gather(*(reader(i) for i in range(40)))
    ticking[0] = False
    assert [i for i, _ in admitted] == list(range(40))  # first come, first in
    per_turn: dict[int, int] = {}
    for _, t in admitted:
        per_turn[t] = per_turn.get(t, 0) + 1
    # About five 1 ms reports per 5 ms slice, not one per turn once some had to wait.
    assert len(per_turn) <= 15
