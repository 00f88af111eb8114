"""Low-priority (preemptible, spot) nodes as pure decisions: which may be preempted, which a random
preemption rate takes in a pass, and which preempted nodes come back.

No I/O and no clock: `server.lifecycle.preemption` applies them with the `now` and the random source it
is given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shoal.server.domain.errors import FailedPrecondition
from shoal.v1 import pool_pb2 as P

#: States a preemption cannot take a node from: it is gone already, or on its way out.
NOT_PREEMPTIBLE = frozenset({P.NODE_STATE_PREEMPTED, P.NODE_STATE_LEAVING_POOL})


@dataclass(frozen=True)
class SpotSettings:
    """How the local provider treats low-priority nodes (the server's `--spot-*` options)."""

    #: Preemptions per low-priority node per hour, at random (0: only when an operator asks).
    preemption_rate_per_hour: float = 0.0
    #: How long a preempted node waits before the provider has capacity for it again.
    recovery_seconds: float = 30.0
    #: Seeds the random preemptions (None: from the system), so a test can repeat a run.
    seed: int | None = None


@dataclass(frozen=True)
class SpotNode:
    """What the deciders need of a node."""

    key: str
    state: int
    is_dedicated: bool
    #: Seconds on the caller's clock when it was preempted (PREEMPTED nodes only).
    preempted_at: float | None = None


def check_preemptible(node: SpotNode, provider: str) -> None:
    """Refuse (FailedPrecondition) to preempt `node` of a pool made by `provider` unless it is a
    low-priority node of a local pool that is neither preempted already nor leaving."""
    if node.is_dedicated:
        raise FailedPrecondition(
            "NODE_IS_DEDICATED", f"node {node.key!r} is dedicated: only a low-priority node can be preempted"
        )
    if provider != "local":
        raise FailedPrecondition("PREEMPTION_NOT_SUPPORTED", f"the {provider!r} provider does not preempt nodes")
    if node.state in NOT_PREEMPTIBLE:
        what = "preempted already" if node.state == P.NODE_STATE_PREEMPTED else "leaving its pool"
        raise FailedPrecondition("NODE_NOT_PREEMPTIBLE", f"node {node.key!r} is {what}")


def preemptible(node: SpotNode) -> bool:
    """Whether a random preemption may take `node` (of a local pool)."""
    return not node.is_dedicated and node.state not in NOT_PREEMPTIBLE


def preemption_probability(rate_per_hour: float, elapsed_seconds: float) -> float:
    """The chance that one node is preempted within `elapsed_seconds` at `rate_per_hour` (a Poisson
    process: independent of how the time is cut into passes)."""
    if rate_per_hour <= 0 or elapsed_seconds <= 0:
        return 0.0
    return 1.0 - math.exp(-rate_per_hour * elapsed_seconds / 3600.0)


def random_preemptions(
    nodes: Iterable[SpotNode], rate_per_hour: float, elapsed_seconds: float, rng: random.Random
) -> list[str]:
    """The keys of the low-priority nodes a pass of `elapsed_seconds` preempts at `rate_per_hour`."""
    p = preemption_probability(rate_per_hour, elapsed_seconds)
    if p == 0.0:
        return []
    return [n.key for n in nodes if not n.is_dedicated and n.state not in NOT_PREEMPTIBLE and rng.random() < p]


def recoveries(nodes: Sequence[SpotNode], now: float, recovery_seconds: float) -> list[str]:
    """The keys of the preempted nodes whose capacity has come back by `now`."""
    return [
        n.key
        for n in nodes
        if n.state == P.NODE_STATE_PREEMPTED and n.preempted_at is not None and now - n.preempted_at >= recovery_seconds
    ]
