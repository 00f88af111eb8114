"""An async caller of an agent's exec port (the shim's protocol), for tests that need to say odd things."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from shoal.certs.authority import ClusterCA
from shoal.mpi import shim as wire
from shoal.tlsconfig import NODE_TLS_NAME
from tests.tlshelp import shared_ca


@dataclass
class ExecResult:
    """What came back: output, the exit code, or the refusal (code, reason, message)."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    refusal: dict[str, Any] = field(default_factory=dict)


async def exec_call(
    address: str, hello: dict[str, Any], *, stdin: list[bytes] | None = None, ca: ClusterCA | None = None
) -> ExecResult:
    """Send `hello`, then `stdin`'s chunks and its end, and collect everything until the agent closes."""
    context = ssl.create_default_context(cadata=(ca or shared_ca()).cert_pem.decode())
    host, port = wire.host_port(address)
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=NODE_TLS_NAME)
    writer.write(wire.frame(wire.HELLO, json.dumps(hello).encode()))
    for chunk in stdin or []:
        writer.write(wire.frame(wire.STDIN, chunk))
    writer.write(wire.frame(wire.STDIN_EOF))
    await writer.drain()
    result = ExecResult()
    frames = wire.FrameReader()
    try:
        while data := await reader.read(65536):
            for kind, payload in frames.feed(data):
                if kind == wire.STDOUT:
                    result.stdout += payload
                elif kind == wire.STDERR:
                    result.stderr += payload
                elif kind == wire.EXIT:
                    result.exit_code = int(payload)
                elif kind == wire.REFUSED:
                    result.refusal = json.loads(payload)
    except (ConnectionError, ssl.SSLError):
        pass
    writer.close()
    return result
