"""Bad input gets the right status, reason and field violations, and changes nothing."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2


def details(err: grpc.aio.AioRpcError) -> tuple[str, list[tuple[str, str]]]:
    status = rpc_status.from_call(err)
    assert status is not None
    reason, violations = "", []
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason = info.reason
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    return reason, violations


async def make_pool_and_job(stubs, pool_id: str = "p1", job_id: str = "j1") -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id=pool_id, target_nodes=0)))
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id=pool_id)))


async def test_invalid_pool_fields_are_all_named(stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.pools.CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="bad id!", target_nodes=-1, task_slots_per_node=999))
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(e.value)
    assert reason == "INVALID_POOL"
    assert {f for f, _ in violations} == {"pool.id", "pool.target_nodes", "pool.task_slots_per_node"}
    listed = await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())
    assert list(listed.pools) == []


async def test_job_on_unknown_pool_is_not_found(stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="nope")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert details(e.value)[0] == "POOL_NOT_FOUND"
    assert list((await stubs.jobs.ListJobs(job_pb2.ListJobsRequest())).jobs) == []


async def test_duplicate_ids_in_bulk_add_reject_the_whole_request(stubs) -> None:
    await make_pool_and_job(stubs)
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(10)]
    specs.append(task_pb2.TaskSpec(id="T3", command_line="/bin/true"))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=specs))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(e.value)
    assert reason == "DUPLICATE_TASK_ID"
    assert violations[0][0] == "tasks[10].id"
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j1"))
    assert counts.active == 0


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        (
            "tasks[0].output_files[0].file_pattern",
            task_pb2.TaskSpec(
                id="t",
                command_line="x",
                output_files=[common_pb2.OutputFile(file_pattern="../../etc/*", container_name="out")],
            ),
        ),
        (
            "tasks[0].resource_files[0].file_path",
            task_pb2.TaskSpec(
                id="t",
                command_line="x",
                resource_files=[common_pb2.ResourceFile(storage_container_name="inp", file_path="../x")],
            ),
        ),
        ("tasks[0].command_line", task_pb2.TaskSpec(id="t", command_line="   ")),
        ("tasks[0].id", task_pb2.TaskSpec(id="a/b", command_line="x")),
        ("tasks[0].required_slots", task_pb2.TaskSpec(id="t", command_line="x", required_slots=-2)),
        (
            "tasks[0].application_package_references[1].application_id",
            task_pb2.TaskSpec(
                id="t",
                command_line="x",
                application_package_references=[
                    common_pb2.ApplicationPackageReference(application_id="app", version="2"),
                    common_pb2.ApplicationPackageReference(application_id="APP", version="2"),
                ],
            ),
        ),
        (
            "tasks[0].application_package_references",
            task_pb2.TaskSpec(
                id="t",
                command_line="x",
                application_package_references=[
                    common_pb2.ApplicationPackageReference(application_id=f"a{i}") for i in range(11)
                ],
            ),
        ),
    ],
)
async def test_bad_task_fields(stubs, field: str, spec: task_pb2.TaskSpec) -> None:
    await make_pool_and_job(stubs)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=[spec]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in details(e.value)[1]]
    listed = await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j1"))
    assert list(listed.tasks) == []


async def test_bulk_add_of_ten_thousand_with_a_result_each_and_task_exists_on_retry(stubs) -> None:
    await make_pool_and_job(stubs)
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line=f"echo {i}") for i in range(10_000)]
    resp = await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=specs))
    assert len(resp.results) == 10_000
    assert all(r.status == task_pb2.ADD_TASK_STATUS_SUCCESS for r in resp.results)
    again = await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/j1", tasks=[*specs[:2], task_pb2.TaskSpec(id="new", command_line="x")])
    )
    assert [r.error_reason for r in again.results] == ["TASK_EXISTS", "TASK_EXISTS", ""]
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j1"))
    assert counts.active == 10_001
    page1 = await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j1", page_size=4000))
    page2 = await stubs.tasks.ListTasks(
        task_pb2.ListTasksRequest(parent="jobs/j1", page_size=4000, page_token=page1.next_page_token)
    )
    page3 = await stubs.tasks.ListTasks(
        task_pb2.ListTasksRequest(parent="jobs/j1", page_size=4000, page_token=page2.next_page_token)
    )
    ids = [t.spec.id for p in (page1, page2, page3) for t in p.tasks]
    assert len(ids) == 10_001 and len(set(ids)) == 10_001
    assert page3.next_page_token == ""


async def test_bad_names_and_missing_resources(stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j1"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j1/tasks/t1"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert details(e.value)[0] == "JOB_NOT_FOUND"


async def test_terminate_and_reactivate_an_active_task(stubs) -> None:
    await make_pool_and_job(stubs)
    await stubs.tasks.AddTask(
        task_pb2.AddTaskRequest(parent="jobs/j1", task=task_pb2.TaskSpec(id="a", command_line="x"))
    )
    t = await stubs.tasks.TerminateTask(task_pb2.TerminateTaskRequest(name="jobs/j1/tasks/a"))
    assert t.state == task_pb2.TASK_STATE_COMPLETED
    assert t.execution_info.failure_info.code == "TaskEnded"
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.TerminateTask(task_pb2.TerminateTaskRequest(name="jobs/j1/tasks/a"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    t = await stubs.tasks.ReactivateTask(task_pb2.ReactivateTaskRequest(name="jobs/j1/tasks/a"))
    assert t.state == task_pb2.TASK_STATE_ACTIVE
    assert t.execution_info.retry_count == 0


async def test_non_loopback_listen_is_refused_in_plaintext_only(tmp_path) -> None:
    from shoal.server.app import NotLoopbackError, ServerConfig, ShoalServer

    with pytest.raises(NotLoopbackError):
        ShoalServer(ServerConfig(data_dir=tmp_path, listen="0.0.0.0:0", secure=False))
    # With TLS and keys, any address.
    ShoalServer(ServerConfig(data_dir=tmp_path, listen="0.0.0.0:0"))


async def test_oversized_request_is_refused_and_adds_nothing(stubs) -> None:
    await make_pool_and_job(stubs)
    big = "x" * (1024 * 1024)
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="echo", display_name=big[:1000]) for i in range(10)]
    specs += [task_pb2.TaskSpec(id=f"big{i}", command_line="echo " + big[:30000]) for i in range(4500)]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=specs))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j1"))
    assert counts.active == 0
