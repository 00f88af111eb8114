"""The agent's exec port: where `shoal-mpi-launch` asks to run a command inside an attempt's instance.

A TLS listener (the node's certificate, no client certificate) speaking the shim's small framed
protocol (`shoal.mpi.shim`, "Wire format") rather than gRPC, so that the shim, which starts once per
MPI proxy, need not import gRPC. The checks are `execservice.exec_admission`'s: the hello
names a running attempt and carries its secret, compared in constant time; otherwise the caller gets
a REFUSED frame and nothing runs. The command runs in the instance's working directory and
environment, in a session of its own that the attempt's end kills; when the caller goes away before
it ends, it is killed at once (the shim lives exactly as long as the remote command).

`ExecEndpoint` knows nothing of attempts: `admit` decides, so the shim's tests serve the same
endpoint with an admission of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.mpi import shim as wire
from shoal.nodeagent.process import LaunchError, as_user, exit_code_of, kill_group_now

log = logging.getLogger(__name__)

#: How long a caller has to finish the TLS handshake and send its hello.
HELLO_TIMEOUT = 10.0


@dataclass(frozen=True)
class ExecHello:
    """What a caller asks for (the hello frame)."""

    job_id: str
    task_id: str
    attempt: int
    argv: list[str]
    secret: str = field(repr=False)
    env: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def parse(payload: bytes) -> ExecHello:
        """The hello in `payload`; ValueError when it is not one."""
        try:
            return ExecHello._parse(payload)
        except TypeError as e:  # e.g. int() of a list
            raise ValueError(f"not a hello: {e}") from None

    @staticmethod
    def _parse(payload: bytes) -> ExecHello:
        d = json.loads(payload)
        if not isinstance(d, dict):
            raise ValueError("the hello is not an object")
        argv, env = d.get("argv", []), d.get("env", {})
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv is not a list of strings")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("env is not a mapping of strings")
        return ExecHello(
            job_id=str(d.get("job_id", "")),
            task_id=str(d.get("task_id", "")),
            attempt=int(d.get("attempt", 0)),
            argv=argv,
            secret=str(d.get("secret", "")),
            env={k: v for k, v in env.items() if k and "=" not in k},
        )


@dataclass(frozen=True)
class Admitted:
    """Run it: where, with what environment, and whom to tell about its process group."""

    cwd: str
    env: dict[str, str]
    #: The uid and gid the instance's processes run as (None: the agent's own).
    owner: tuple[int, int] | None = None
    started: Callable[[int], None] = lambda pgid: None
    ended: Callable[[int], None] = lambda pgid: None
    #: For an instance in a container: the process (argv, environment) that runs a command in it, as its
    #: user (`podman exec`); `owner` is then not used.
    wrap: Callable[[list[str], dict[str, str]], tuple[list[str], dict[str, str]]] | None = None


@dataclass(frozen=True)
class ExecRefusal:
    """Do not run it: a gRPC-style status name, an ErrorInfo-style reason, a message (never the secret)."""

    code: str
    reason: str
    message: str


Admit = Callable[[ExecHello], Admitted | ExecRefusal]


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """TLS for the exec port: the node's certificate, no client certificate asked for."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # `load_cert_chain` reads files only: a private directory, gone once loaded.
    with tempfile.TemporaryDirectory(prefix="shoal-exec-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        context.load_cert_chain(cert, key)
    return context


class ExecEndpoint:
    """The listener; `await start(host)` returns its port."""

    def __init__(self, admit: Admit, context: ssl.SSLContext) -> None:
        self._admit = admit
        self._context = context
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int = 0) -> int:
        """Listen on `host` (port 0: any free one); the port."""
        self._server = await asyncio.start_server(
            self._serve, host, port, ssl=self._context, ssl_handshake_timeout=HELLO_TIMEOUT
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end the calls in progress (their commands are killed)."""
        if self._server is not None:
            self._server.close()
        for t in list(self._connections):
            t.cancel()
        for t in list(self._connections):
            with contextlib.suppress(BaseException):
                await t

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._call(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, wire.WireError, TimeoutError):
            pass  # the caller went away or spoke something else: nothing more to say to it
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind, payload = await asyncio.wait_for(_read_frame(reader), HELLO_TIMEOUT)
        try:
            if kind != wire.HELLO:
                raise ValueError("the first frame is not a hello")
            hello = ExecHello.parse(payload)
        except ValueError as e:
            await _refuse(writer, ExecRefusal("INVALID_ARGUMENT", "BAD_EXEC_REQUEST", str(e)))
            return
        verdict = self._admit(hello)
        if isinstance(verdict, ExecRefusal):
            await _refuse(writer, verdict)
            return
        if not hello.argv:
            await _refuse(writer, ExecRefusal("INVALID_ARGUMENT", "BAD_EXEC_REQUEST", "argv is empty"))
            return
        env = {**verdict.env, **hello.env}
        argv: list[str] = list(hello.argv)
        extra: dict[str, Any] = {}
        try:
            if verdict.wrap is not None:
                argv, env = verdict.wrap(argv, env)
            elif verdict.owner is not None:
                # As the instance's own user, as its command runs.
                argv, extra = as_user(argv, verdict.owner, env, Path(verdict.cwd))
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=verdict.cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                **extra,
            )
        except LaunchError as e:
            writer.write(wire.frame(wire.STDERR, f"{e.message}\n".encode()))
            writer.write(wire.frame(wire.EXIT, b"127"))
            await writer.drain()
            return
        except OSError as e:
            writer.write(wire.frame(wire.STDERR, f"cannot run {hello.argv[0]!r}: {e}\n".encode()))
            writer.write(wire.frame(wire.EXIT, b"127"))
            await writer.drain()
            return
        pgid = proc.pid
        log.info("exec in %s/%s/%d: %s (pid %d)", hello.job_id, hello.task_id, hello.attempt, hello.argv, pgid)
        verdict.started(pgid)
        try:
            await _relay(proc, reader, writer)
        finally:
            if proc.returncode is None:
                # The caller went away (mpiexec ended or was killed): the proxy and the ranks below
                # it, which live in sessions of their own, go too.
                kill_group_now(pgid)
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(proc.wait(), 5)
            verdict.ended(pgid)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, length = wire.HEADER.unpack(await reader.readexactly(wire.HEADER.size))
    if length > wire.MAX_FRAME:
        raise wire.WireError(f"a frame of {length} bytes")
    return kind, await reader.readexactly(length)


async def _refuse(writer: asyncio.StreamWriter, refusal: ExecRefusal) -> None:
    body = {"code": refusal.code, "reason": refusal.reason, "message": refusal.message}
    writer.write(wire.frame(wire.REFUSED, json.dumps(body).encode()))
    await writer.drain()


async def _relay(proc: asyncio.subprocess.Process, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """stdin in, stdout and stderr out, then the exit frame; returns early when the caller goes."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin

    async def caller() -> None:
        # Until the connection ends: stdin frames, then (after STDIN_EOF) just watching for the end.
        with contextlib.suppress(Exception):
            while True:
                kind, payload = await _read_frame(reader)
                if stdin.is_closing():
                    continue
                with contextlib.suppress(ConnectionError):
                    if kind == wire.STDIN and payload:
                        stdin.write(payload)
                        await stdin.drain()
                    elif kind == wire.STDIN_EOF:
                        stdin.close()

    async def output(stream: asyncio.StreamReader, kind: bytes) -> None:
        while data := await stream.read(wire.READ_SIZE):
            writer.write(wire.frame(kind, data))
            await writer.drain()

    async def command() -> None:
        await asyncio.gather(output(proc.stdout, wire.STDOUT), output(proc.stderr, wire.STDERR))  # type: ignore[arg-type]
        rc = await proc.wait()
        writer.write(wire.frame(wire.EXIT, str(exit_code_of(rc)).encode()))
        await writer.drain()

    gone, done = asyncio.create_task(caller()), asyncio.create_task(command())
    try:
        await asyncio.wait({gone, done}, return_when=asyncio.FIRST_COMPLETED)
        if done.done():
            done.result()  # a broken connection while sending ends the call like a caller gone
    finally:
        for t in (gone, done):
            t.cancel()
        with contextlib.suppress(Exception):
            stdin.close()
