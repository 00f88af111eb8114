"""Fields the fuzzer showed unchecked: enum values out of range, unbounded strings, paths too long."""

from __future__ import annotations

import grpc
import pytest

from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.test_validation import details, make_pool_and_job


async def _refused(call, reason: str, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    got_reason, violations = details(e.value)
    assert got_reason == reason
    assert field in [f for f, _ in violations], violations


async def test_enum_values_that_do_not_exist(stubs) -> None:
    await make_pool_and_job(stubs)
    await _refused(
        stubs.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p1", node_deallocation_option=7)),  # type: ignore[arg-type]
        "INVALID_NODE_DEALLOCATION_OPTION",
        "node_deallocation_option",
    )
    await _refused(stubs.jobs.ListJobs(job_pb2.ListJobsRequest(state=-1)), "INVALID_FILTER", "state")  # type: ignore[arg-type]
    await _refused(
        stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p1", state=99)),  # type: ignore[arg-type]
        "INVALID_FILTER",
        "state",
    )
    await _refused(
        stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j1", state=5)),  # type: ignore[arg-type]
        "INVALID_FILTER",
        "state",
    )
    await _refused(
        stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j2", pool_id="p1", on_all_tasks_complete=3))),  # type: ignore[arg-type]
        "INVALID_JOB",
        "job.on_all_tasks_complete",
    )
    await _refused(
        stubs.jobs.UpdateJob(
            job_pb2.UpdateJobRequest(
                job=job_pb2.Job(name="jobs/j1", on_all_tasks_complete=-5),  # type: ignore[arg-type]
                update_mask=["on_all_tasks_complete"],
            )
        ),
        "INVALID_JOB",
        "job.on_all_tasks_complete",
    )
    out = common_pb2.OutputFile(file_pattern="*.txt", container_name="box", upload_condition=9)  # type: ignore[arg-type]
    await _refused(
        stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(
                parent="jobs/j1", task=task_pb2.TaskSpec(id="t", command_line="x", output_files=[out])
            )
        ),
        "INVALID_TASK",
        "task.output_files[0].upload_condition",
    )
    job = await stubs.jobs.GetJob(job_pb2.GetJobRequest(name="jobs/j1"))
    assert job.on_all_tasks_complete == job_pb2.ON_ALL_TASKS_COMPLETE_NO_ACTION


async def test_unbounded_strings(stubs) -> None:
    await make_pool_and_job(stubs)
    long = "x" * 5000
    await _refused(
        stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p2"), request_id=long)),
        "INVALID_POOL",
        "request_id",
    )
    await _refused(
        stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j2", pool_id="p1"), request_id=long)),
        "INVALID_JOB",
        "request_id",
    )
    await _refused(
        stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j2", pool_id="p1", display_name=long))),
        "INVALID_JOB",
        "job.display_name",
    )
    await _refused(
        stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(
                parent="jobs/j1", task=task_pb2.TaskSpec(id="t", command_line="x", display_name=long)
            )
        ),
        "INVALID_TASK",
        "task.display_name",
    )
    await _refused(
        stubs.jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/j1", terminate_reason=long)),
        "INVALID_REASON",
        "terminate_reason",
    )
    assert [p.id for p in (await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools] == ["p1"]
    job = await stubs.jobs.GetJob(job_pb2.GetJobRequest(name="jobs/j1"))
    assert job.state == job_pb2.JOB_STATE_ACTIVE


@pytest.mark.parametrize(
    "path", ["a" * 256, "\u30d7" * 86, "/".join(["abcdefgh"] * 120), "../x", "/etc/passwd", "a\x00b"]
)
async def test_file_paths_are_checked_before_any_node_is_asked(stubs, path: str) -> None:
    await make_pool_and_job(stubs)
    await _refused(
        stubs.tasks.ReadTaskFile(task_pb2.ReadTaskFileRequest(name="jobs/j1/tasks/nope", path=path)).read(),
        "INVALID_PATH",
        "path",
    )
    await _refused(
        stubs.tasks.ListTaskFiles(task_pb2.ListTaskFilesRequest(name="jobs/j1/tasks/nope", path=path)),
        "INVALID_PATH",
        "path",
    )
    await _refused(
        stubs.pools.ListNodeFiles(pool_pb2.ListNodeFilesRequest(name="pools/p1/nodes/n1", path=path)),
        "INVALID_PATH",
        "path",
    )
    node = "pools/p1/nodes/n1"
    for call in (
        stubs.pools.ReadNodeFile(pool_pb2.ReadNodeFileRequest(name=node, path=path, follow=True)).read(),
        stubs.pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name=node, path=path)),
        stubs.pools.DeleteNodeFile(pool_pb2.DeleteNodeFileRequest(name=node, path=path, recursive=True)),
        stubs.tasks.GetTaskFileProperties(task_pb2.GetTaskFilePropertiesRequest(name="jobs/j1/tasks/nope", path=path)),
        stubs.tasks.DeleteTaskFile(task_pb2.DeleteTaskFileRequest(name="jobs/j1/tasks/nope", path=path)),
    ):
        await _refused(call, "INVALID_PATH", "path")
