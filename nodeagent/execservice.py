"""NodeService.Exec: run a command inside a running multi-instance instance (MPI proxies).

Two doors share the checks here (`check_attempt`): the agent's exec port (`execport`, the framed
protocol `shoal-mpi-launch` speaks, admitted by `exec_admission`) and the gRPC method on the mutual
TLS NodeService port (for callers that hold a certificate of the cluster CA and the secret).

Only the attempt's own processes may: the first request must carry the attempt's secret
(`SHOAL_EXEC_SECRET` in its environment); without it, or with another, the call is refused
(PERMISSION_DENIED, reason EXEC_SECRET_MISMATCH) and nothing runs.

The command runs in the instance's working directory and environment (plus the request's
variables), in its own process group that the agent kills when the instance ends, so the
instance's wall clock and KillTasks reach it. stdin is relayed from the stream; stdout and
stderr are streamed back as they come; the last response carries the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from shoal import agenterrors
from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.execport import Admit, Admitted, ExecHello, ExecRefusal
from shoal.nodeagent.fileservice import abort
from shoal.nodeagent.process import LaunchError, as_user, exit_code_of, kill_group_now
from shoal.nodeagent.runner import Attempt, TaskRunner

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024


def check_attempt(runner: TaskRunner, job_id: str, task_id: str, attempt: int, secret: str) -> Attempt | ExecRefusal:
    """The running attempt an Exec may enter, or why not: it is not running here
    (FAILED_PRECONDITION), or `secret` is not its secret (PERMISSION_DENIED, compared in constant time)."""
    found = runner.find(job_id, task_id, attempt)
    if found is None or found.env is None or found.wd is None or found.killed:
        return ExecRefusal(
            "FAILED_PRECONDITION", "", f"attempt {attempt} of {job_id}/{task_id} is not running on this node"
        )
    if not found.exec_secret or not hmac.compare_digest(secret.encode(), found.exec_secret.encode()):
        log.warning("refused an Exec into %s/%s/%d without its secret", job_id, task_id, attempt)
        return ExecRefusal(
            "PERMISSION_DENIED",
            agenterrors.EXEC_SECRET_MISMATCH,
            "Exec needs the attempt's secret (SHOAL_EXEC_SECRET of its environment)",
        )
    return found


def exec_admission(runner: TaskRunner) -> Admit:
    """The exec port's admission: `check_attempt`, then the attempt's directory, environment and
    process groups (which the attempt's end kills)."""

    def admit(hello: ExecHello) -> Admitted | ExecRefusal:
        verdict = check_attempt(runner, hello.job_id, hello.task_id, hello.attempt, hello.secret)
        if isinstance(verdict, ExecRefusal):
            return verdict
        attempt = verdict
        assert attempt.env is not None and attempt.wd is not None
        return Admitted(
            cwd=str(attempt.wd),
            env=dict(attempt.env),
            owner=attempt.owner,
            started=lambda pgid: runner.add_group(attempt, pgid),
            ended=lambda pgid: runner.remove_group(attempt, pgid),
        )

    return admit


async def _pump_stdin(requests: AsyncIterator[agent_pb2.ExecRequest], stdin: asyncio.StreamWriter) -> None:
    try:
        async for req in requests:
            if req.stdin:
                stdin.write(req.stdin)
                await stdin.drain()
            if req.stdin_eof:
                break
    except (ConnectionError, grpc.aio.AioRpcError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            stdin.close()


async def _pump_output(
    stream: asyncio.StreamReader, out: asyncio.Queue[agent_pb2.ExecResponse | None], is_err: bool
) -> None:
    try:
        while True:
            data = await stream.read(READ_SIZE)
            if not data:
                return
            await out.put(agent_pb2.ExecResponse(stderr=data) if is_err else agent_pb2.ExecResponse(stdout=data))
    finally:
        await out.put(None)


async def exec_in_instance(
    runner: TaskRunner,
    requests: AsyncIterator[agent_pb2.ExecRequest],
    context: grpc.aio.ServicerContext,
) -> AsyncIterator[agent_pb2.ExecResponse]:
    """The body of NodeService.Exec."""
    try:
        first = await anext(aiter(requests))
    except StopAsyncIteration:
        return
    verdict = check_attempt(runner, first.job_id, first.task_id, first.attempt, first.secret)
    if isinstance(verdict, ExecRefusal):
        if verdict.reason:
            await abort(context, grpc.StatusCode[verdict.code], verdict.reason, verdict.message)
        await context.abort(grpc.StatusCode[verdict.code], verdict.message)
        return
    attempt = verdict
    assert attempt.env is not None and attempt.wd is not None
    if not first.argv:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "argv is empty")
        return
    env = dict(attempt.env)
    for s in first.environment:
        if s.name and "=" not in s.name:
            env[s.name] = s.value
    argv: list[str] = list(first.argv)
    extra: dict[str, Any] = {}
    try:
        if attempt.owner is not None:
            # As the instance's own user, as its command runs.
            argv, extra = as_user(argv, attempt.owner, env, attempt.wd)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=attempt.wd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            **extra,
        )
    except LaunchError as e:
        yield agent_pb2.ExecResponse(stderr=f"{e.message}\n".encode(), exit_code=127)
        return
    except OSError as e:
        yield agent_pb2.ExecResponse(stderr=f"cannot run {first.argv[0]!r}: {e}\n".encode(), exit_code=127)
        return
    pgid = proc.pid
    log.info("exec in %s/%s/%d: %s (pid %d)", first.job_id, first.task_id, first.attempt, first.argv, pgid)
    runner.add_group(attempt, pgid)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    if first.stdin:
        proc.stdin.write(first.stdin)
    out: asyncio.Queue[agent_pb2.ExecResponse | None] = asyncio.Queue(maxsize=64)
    if first.stdin_eof:
        proc.stdin.close()
        feeder = None
    else:
        feeder = asyncio.create_task(_pump_stdin(requests, proc.stdin))
    readers = [
        asyncio.create_task(_pump_output(proc.stdout, out, False)),
        asyncio.create_task(_pump_output(proc.stderr, out, True)),
    ]
    finished = False
    try:
        open_streams = 2
        while open_streams:
            item = await out.get()
            if item is None:
                open_streams -= 1
            else:
                yield item
        rc = await proc.wait()
        finished = True
        yield agent_pb2.ExecResponse(exit_code=exit_code_of(rc))
    finally:
        if not finished or proc.returncode is None:
            # The caller went away (mpiexec ended or was killed): the proxy and the
            # ranks below it, which live in sessions of their own, go too.
            kill_group_now(pgid)
        for t in [*readers, *([feeder] if feeder else [])]:
            t.cancel()
        runner.remove_group(attempt, pgid)
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
