"""The node providers a pool may name: the server accepts these, and the CLI offers exactly these.

- ``local``: the server starts each node's agent as a process on its own machine (the default).
- ``join``: nodes are agents started elsewhere (`shoal agent --pool ...`) that join the pool.
"""

from __future__ import annotations

POOL_PROVIDERS: tuple[str, ...] = ("local", "join")
DEFAULT_POOL_PROVIDER = "local"
