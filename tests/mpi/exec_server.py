"""A minimal NodeService.Exec server that runs commands as local processes (the shim's peer in shim tests)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import IO

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.tlsconfig import server_credentials
from tests.tlshelp import node_identity, shared_ca


class ExecOnly(agent_pb2_grpc.NodeServiceServicer):
    def __init__(self) -> None:
        self.calls: list[agent_pb2.ExecRequest] = []

    def Exec(self, request_iterator: Iterator[agent_pb2.ExecRequest], context: grpc.ServicerContext):
        first = next(request_iterator)
        self.calls.append(first)
        proc = subprocess.Popen(list(first.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def feed() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(OSError, ValueError):
                for req in request_iterator:
                    if req.stdin:
                        proc.stdin.write(req.stdin)
                        proc.stdin.flush()
                    if req.stdin_eof:
                        break
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()

        outputs: dict[str, bytes] = {}

        def drain(name: str, stream: IO[bytes]) -> None:
            outputs[name] = stream.read()

        assert proc.stdout is not None and proc.stderr is not None
        threads = [
            threading.Thread(target=feed, daemon=True),
            threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
            threading.Thread(target=drain, args=("err", proc.stderr), daemon=True),
        ]
        for t in threads:
            t.start()
        proc.wait()
        for t in threads[1:]:
            t.join()
        out, err = outputs.get("out", b""), outputs.get("err", b"")
        yield agent_pb2.ExecResponse(stdout=out, stderr=err, exit_code=proc.returncode)


def serve(host: str = "127.0.0.1") -> tuple[grpc.Server, int, ExecOnly]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    svc = ExecOnly()
    agent_pb2_grpc.add_NodeServiceServicer_to_server(svc, server)
    port = add_exec_port(server, host)
    server.start()
    return server, port, svc


def add_exec_port(server: grpc.Server, host: str) -> int:
    """An Exec listener as an agent's: TLS with a node certificate of the tests' CA, no client certificate."""
    ident = node_identity()
    return server.add_secure_port(f"{host}:0", server_credentials(ident.cert_pem, ident.key_pem))


def shim_env() -> dict[str, str]:
    """What the shim needs in an attempt's environment to reach such a listener: the CA (and a secret)."""
    path = Path(tempfile.mkdtemp(prefix="shoal-shim-ca-")) / "ca.pem"
    path.write_bytes(shared_ca().cert_pem)
    return {"SHOAL_AGENT_CA_FILE": str(path), "SHOAL_EXEC_SECRET": "test-secret"}
