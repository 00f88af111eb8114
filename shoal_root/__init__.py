"""Shoal: a self-hosted batch and HPC cluster manager.

The public Python API lives in :mod:`shoal.client`; ``shoal.Client`` is the
entry point::

    client = shoal.Client.connect()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal import native

__all__ = ["Client"]

# The control plane's hottest modules load compiled where a build of them is current (see `native`).
native.enable()

if TYPE_CHECKING:
    from shoal.client import Client


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import shoal.v1` does not pull in the client.
    if name == "Client":
        from shoal.client import Client

        return Client
    raise AttributeError(name)
