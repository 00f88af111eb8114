"""NodeService.Exec: run a command inside a running multi-instance instance (MPI proxies).

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
from shoal.nodeagent.fileservice import abort
from shoal.nodeagent.process import LaunchError, as_user, exit_code_of, kill_group_now
from shoal.nodeagent.runner import TaskRunner

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024


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
    attempt = runner.find(first.job_id, first.task_id, first.attempt)
    if attempt is None or attempt.env is None or attempt.wd is None or attempt.killed:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"attempt {first.attempt} of {first.job_id}/{first.task_id} is not running on this node",
        )
        return
    if not attempt.exec_secret or not hmac.compare_digest(first.secret.encode(), attempt.exec_secret.encode()):
        log.warning("refused an Exec into %s/%s/%d without its secret", first.job_id, first.task_id, first.attempt)
        await abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            agenterrors.EXEC_SECRET_MISMATCH,
            "Exec needs the attempt's secret (SHOAL_EXEC_SECRET of its environment)",
        )
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
