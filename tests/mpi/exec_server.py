"""The agent's exec endpoint, serving plain local processes (the shim's peer in shim tests).

The real `ExecEndpoint` (TLS with a node certificate of the tests' CA, the framed protocol) on an
event loop of its own thread, admitting calls that carry `SECRET` and recording each hello.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from pathlib import Path

import pytest

from shoal.certs.authority import ClusterCA
from shoal.nodeagent.execport import Admitted, ExecEndpoint, ExecHello, ExecRefusal, server_context
from shoal.nodeagent.mpilauncher import build_shim
from tests.tlshelp import node_identity, shared_ca

SECRET = "test-secret"


class ExecOnly:
    """Admits calls with `SECRET`, running them in the current directory and environment."""

    def __init__(self) -> None:
        self.calls: list[ExecHello] = []
        self.started: list[int] = []

    def admit(self, hello: ExecHello) -> Admitted | ExecRefusal:
        self.calls.append(hello)
        if hello.secret != SECRET:
            return ExecRefusal("PERMISSION_DENIED", "EXEC_SECRET_MISMATCH", "Exec needs the attempt's secret")
        return Admitted(cwd=os.getcwd(), env=dict(os.environ), started=self.started.append)


class ServerThread:
    """An ExecEndpoint on a loop of its own thread; `stop(None)` ends it."""

    def __init__(self, host: str, svc: ExecOnly, *, ca: ClusterCA | None = None) -> None:
        ident = node_identity(ca=ca)
        self._endpoint = ExecEndpoint(svc.admit, server_context(ident.cert_pem, ident.key_pem))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._endpoint.start(host), self._loop).result(10)

    def stop(self, _grace: float | None = None) -> None:
        asyncio.run_coroutine_threadsafe(self._endpoint.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def serve(host: str = "127.0.0.1", *, ca: ClusterCA | None = None) -> tuple[ServerThread, int, ExecOnly]:
    """A running endpoint on `host` with a node certificate of `ca` (the tests' by default): (its
    handle, its port, its admission with the calls it saw)."""
    svc = ExecOnly()
    server = ServerThread(host, svc, ca=ca)
    return server, server.port, svc


def compiled_shim() -> Path:
    """The compiled shim (`mpi/shim.c`) as the agent builds it; the test is skipped where it cannot be."""
    built = build_shim()
    if built is None:
        pytest.skip("the compiled shim cannot be built here (a C compiler and OpenSSL's headers are needed)")
    return built


def shim_env() -> dict[str, str]:
    """What the shim needs in an attempt's environment to reach such a listener: the CA (and a secret)."""
    path = Path(tempfile.mkdtemp(prefix="shoal-shim-ca-")) / "ca.pem"
    path.write_bytes(shared_ca().cert_pem)
    return {"SHOAL_AGENT_CA_FILE": str(path), "SHOAL_EXEC_SECRET": SECRET}
