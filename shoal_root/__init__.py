"""Shoal: a self-hosted batch and HPC cluster manager.

The public Python API lives in :mod:`shoal.client`; ``shoal.Client`` is the
entry point::

    client = shoal.Client.connect()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Client"]

if TYPE_CHECKING:
    from shoal.client import Client


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import shoal.v1` does not pull in the client.
    if name == "Client":
        from shoal.client import Client

        return Client
    raise AttributeError(name)
