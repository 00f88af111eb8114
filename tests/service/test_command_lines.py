"""A command line the agent could never split is refused when it is submitted, naming its field."""

from __future__ import annotations

import grpc
import pytest

from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.test_validation import details, make_pool_and_job

UNRUNNABLE = ['echo "hi', "echo 'it''s", "echo a\\", "a\x00b", "'' x"]


@pytest.mark.parametrize("line", UNRUNNABLE)
async def test_task_command_lines(stubs, line: str) -> None:
    await make_pool_and_job(stubs)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(parent="jobs/j1", task=task_pb2.TaskSpec(id="t", command_line=line))
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(e.value)[0] == "INVALID_TASK"
    assert [f for f, _ in details(e.value)[1]] == ["task.command_line"]

    mis = task_pb2.MultiInstanceSettings(number_of_instances=1, coordination_command_line=line)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(
                parent="jobs/j1", task=task_pb2.TaskSpec(id="t", command_line="x", multi_instance_settings=mis)
            )
        )
    assert [f for f, _ in details(e.value)[1]] == ["task.multi_instance_settings.coordination_command_line"]
    assert list((await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j1"))).tasks) == []


@pytest.mark.parametrize("line", UNRUNNABLE)
async def test_start_task_command_lines(stubs, line: str) -> None:
    pool = pool_pb2.Pool(id="p", start_task=common_pb2.StartTask(command_line=line))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(e.value)[0] == "INVALID_POOL"
    assert [f for f, _ in details(e.value)[1]] == ["pool.start_task.command_line"]
    assert list((await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools) == []


async def test_bulk_add_names_the_task_and_adds_nothing(stubs) -> None:
    """Like any invalid field of a bulk add (README: Shoal refuses the whole request, on purpose)."""
    await make_pool_and_job(stubs)
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="/bin/sh -c 'exit 0'") for i in range(5)]
    specs[3].command_line = "/bin/sh -c 'exit 0"
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=specs))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(e.value)
    assert reason == "INVALID_TASK"
    assert [f for f, _ in violations] == ["tasks[3].command_line"]
    assert "No closing quotation" in violations[0][1]
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j1"))
    assert counts.active == 0


async def test_quoted_command_lines_that_split_are_taken(stubs) -> None:
    await make_pool_and_job(stubs)
    lines = ["/bin/sh -c 'echo \"$X\" | wc -l'", 'echo "a b" c\\ d', "printf '%s\\n' \"it's\""]
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line=line) for i, line in enumerate(lines)]
    resp = await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=specs))
    assert [r.status for r in resp.results] == [task_pb2.ADD_TASK_STATUS_SUCCESS] * 3
