"""`shoal run`: one MPI program on N nodes in one call.

Builds a multi-instance task whose command line is a plain `mpiexec` (the pure
builder in :mod:`shoal.mpi.launch`), stages the given files into the task's
shared directory, adds it to a job (created on the pool if needed), then
streams the primary's output and returns the finished task.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from shoal.mpi.launch import Flavor, mpiexec_command_line

from ._client import Client
from .errors import NotFound, ShoalError
from .types import MultiInstanceSettings, ResourceFileSpec, Task, TaskSpec, TaskState

RUN_CONTAINER = "shoal-run"


def mpi_task_spec(
    *,
    task_id: str,
    nodes: int,
    ppn: int,
    program: Sequence[str],
    files_container: str | None = None,
    flavor: Flavor = "mpich",
    coordination_command_line: str = "",
    max_wall_clock_time: timedelta | None = None,
    max_task_retry_count: int | None = None,
    mpiexec: str = "mpiexec",
) -> TaskSpec:
    """The multi-instance task for `program` with `ppn` ranks on each of `nodes` nodes (pure)."""
    # Every blob of the run's own container, under its name, in the shared directory (a blob keeps
    # its full name when staged, so the files are uploaded under their bare names).
    common = (ResourceFileSpec(storage_container=files_container, file_path="."),) if files_container else ()
    return TaskSpec(
        id=task_id,
        command_line=mpiexec_command_line(nodes, ppn, program, flavor=flavor, mpiexec=mpiexec),
        max_wall_clock_time=max_wall_clock_time,
        max_task_retry_count=max_task_retry_count,
        multi_instance_settings=MultiInstanceSettings(
            number_of_instances=nodes,
            coordination_command_line=coordination_command_line,
            common_resource_files=common,
        ),
    )


def run_mpi(
    client: Client,
    *,
    pool_id: str,
    nodes: int,
    ppn: int,
    program: Sequence[str],
    job_id: str = "shoal-run",
    task_id: str | None = None,
    files: Sequence[Path] = (),
    flavor: Flavor = "mpich",
    max_wall_clock_time: timedelta | None = None,
    max_task_retry_count: int | None = None,
    on_output: Callable[[bytes], None] | None = None,
    timeout: float | None = None,
    mpiexec: str = "mpiexec",
) -> Task:
    """Run `program` as an MPI job on `nodes` nodes of `pool_id` and return the completed task.

    Files are uploaded and staged into ``SHOAL_TASK_SHARED_DIR``, which is also
    the ranks' working directory. The primary's stdout goes to `on_output` as
    it is written.
    """
    task_id = task_id or f"run-{uuid.uuid4().hex[:10]}"
    try:
        client.jobs.get(job_id)
    except NotFound:
        client.jobs.create(id=job_id, pool_id=pool_id)
    container = None
    if files:
        container = run_container(job_id, task_id)
        for f in files:
            client.storage.upload_file(container, f, Path(f).name)
    spec = mpi_task_spec(
        task_id=task_id,
        nodes=nodes,
        ppn=ppn,
        program=program,
        files_container=container,
        flavor=flavor,
        max_wall_clock_time=max_wall_clock_time,
        max_task_retry_count=max_task_retry_count,
        mpiexec=mpiexec,
    )
    client.tasks.add(job_id, spec)
    if on_output is not None:
        for chunk in client.tasks.follow_file(job_id, task_id, "stdout.txt", timeout=timeout):
            on_output(chunk)
    done = next(iter(client.tasks.wait(job_id, task_ids=[task_id], timeout=timeout)), None)
    if done is None:
        done = client.tasks.get(job_id, task_id)
    if container is not None and done.state == TaskState.COMPLETED:
        with contextlib.suppress(ShoalError):
            client.storage.delete_container(container)
    return done


def run_container(job_id: str, task_id: str) -> str:
    """The container that holds one run's files (a valid container id whatever the ids)."""
    return f"{RUN_CONTAINER}-{hashlib.sha256(f'{job_id}/{task_id}'.encode()).hexdigest()[:16]}"
