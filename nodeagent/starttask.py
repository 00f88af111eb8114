"""The pool's start task: runs in `<root>/startup`, retried on a non-zero exit.

It runs as the user its identity names (see `shoal.nodeagent.users`; a task-scope auto user means the
pool's); its directory is that user's and readable by every user (mode 0755), as tasks use what it
installs there through AZ_BATCH_NODE_STARTUP_DIR.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from shoal.clock import Clock, to_timestamp
from shoal.nodeagent import certificates, envvars, ownership, process
from shoal.nodeagent.containers import ContainerError
from shoal.nodeagent.containertasks import NodeContainers, PreparedContainer, runs_in_container, spawn_in_container
from shoal.nodeagent.layout import NodeLayout, working_dir
from shoal.nodeagent.outcome import SERVER_ERROR, USER_ERROR, Outcome, failure, outcome_of
from shoal.nodeagent.staging import StagingError, stage_resource_files
from shoal.nodeagent.storage import StorageClient
from shoal.nodeagent.users import IdentityError, NodeUsers
from shoal.v1 import common_pb2

log = logging.getLogger(__name__)


def _fresh_startup_dir(startup: Path, owner: tuple[int, int] | None = None) -> None:
    if startup.exists():
        shutil.rmtree(startup)
    wd = working_dir(startup)
    wd.mkdir(parents=True)
    if owner is not None:
        ownership.give_tree(startup, [wd], owner, 0o755)


async def run_start_task(
    start_task: common_pb2.StartTask,
    *,
    layout: NodeLayout,
    clock: Clock,
    node_id: str,
    pool_id: str,
    storage: StorageClient | None,
    report: Callable[[common_pb2.StartTaskInfo], None],
    grace_seconds: float = 2.0,
    source_env: dict[str, str] | None = None,
    on_process: Callable[[int | None], None] | None = None,
    users: NodeUsers | None = None,
    containers: NodeContainers | None = None,
) -> common_pb2.StartTaskInfo:
    """Run the start task to its end, calling `report` with RUNNING and then COMPLETED; returns the last.
    With `users`, as the user of its identity."""
    started = clock.now()
    info = common_pb2.StartTaskInfo(state=common_pb2.START_TASK_STATE_RUNNING, start_time=to_timestamp(started))
    report(info)
    startup = layout.startup
    wd = working_dir(startup)
    retries = 0
    outcome: Outcome
    run_as = owner = None
    container_info: common_pb2.TaskContainerExecutionInfo | None = None
    try:
        if users is not None:
            identity = start_task.user_identity if start_task.HasField("user_identity") else None
            run_as = await users.acquire(identity, "startup", shared_dir=True)
            owner = (run_as.uid, run_as.gid) if run_as is not None else None
        await asyncio.to_thread(_fresh_startup_dir, startup, owner)
        certs_dir = await asyncio.to_thread(layout.certificates.provide, startup, certificates.START_TASK, owner)
        await stage_resource_files(start_task.resource_files, wd, storage, root=layout.root, owner=owner)
    except IdentityError as e:
        outcome = Outcome(
            None, failure(SERVER_ERROR if e.server_side else USER_ERROR, process.CODE_LAUNCH_FAILED, e.message)
        )
    except StagingError as e:
        outcome = Outcome(None, failure(USER_ERROR, e.code, e.message))
    except OSError as e:
        outcome = Outcome(None, failure(USER_ERROR, "ResourceFileWriteFailed", str(e)))
    else:
        env = envvars.start_task_env(
            dict(os.environ) if source_env is None else source_env,
            start_task.environment_settings,
            layout=layout,
            node_id=node_id,
            pool_id=pool_id,
        )
        if run_as is not None:
            envvars.set_user(env, run_as, startup)
        env.update(certificates.certificates_env(certs_dir))
        limit = start_task.max_task_retry_count
        settings = start_task.container_settings if start_task.HasField("container_settings") else None
        in_container = runs_in_container(settings)
        while True:
            made: PreparedContainer | None = None
            try:
                if in_container:
                    assert settings is not None
                    proc, made = await spawn_in_container(
                        containers,
                        settings,
                        start_task.command_line,
                        job_id="",
                        task_id="startup",
                        cwd=wd,
                        env=env,
                        explicit=[e.name for e in start_task.environment_settings],
                        source_env=dict(os.environ) if source_env is None else source_env,
                        stdout=startup / "stdout.txt",
                        stderr=startup / "stderr.txt",
                        append=True,
                        user=owner,
                        writable=[startup],
                    )
                else:
                    proc = process.spawn(
                        start_task.command_line,
                        cwd=wd,
                        env=env,
                        stdout=startup / "stdout.txt",
                        stderr=startup / "stderr.txt",
                        append=True,
                        user=owner,
                    )
            except (process.LaunchError, ContainerError) as e:
                outcome = Outcome(None, failure(USER_ERROR, e.code, e.message))
                break
            if on_process is not None:
                on_process(proc.pid)
            try:
                result = await process.wait_with_limit(
                    proc, clock=clock, grace_seconds=grace_seconds, kill_leftovers=False
                )
            finally:
                if on_process is not None:
                    on_process(None)
            outcome = outcome_of(result)
            if made is not None and containers is not None:
                try:
                    container_info = await containers.finish(made.name, result.returncode, startup / "stderr.txt")
                except ContainerError as e:
                    container_info = common_pb2.TaskContainerExecutionInfo(container_id=made.name, error=e.message)
                    outcome = Outcome(None, failure(USER_ERROR, e.code, e.message))
            if outcome.succeeded or (limit >= 0 and retries >= limit):
                break
            retries += 1
            log.info("start task exited with %s; retry %d", result.exit_code, retries)
    info = common_pb2.StartTaskInfo(
        state=common_pb2.START_TASK_STATE_COMPLETED,
        start_time=to_timestamp(started),
        end_time=to_timestamp(clock.now()),
        retry_count=retries,
        result=common_pb2.TASK_EXECUTION_RESULT_SUCCESS
        if outcome.succeeded
        else common_pb2.TASK_EXECUTION_RESULT_FAILURE,
    )
    if outcome.exit_code is not None:
        info.exit_code = outcome.exit_code
    if outcome.failure_info is not None:
        info.failure_info.CopyFrom(outcome.failure_info)
    if container_info is not None:
        info.container_info.CopyFrom(container_info)
    report(info)
    return info
