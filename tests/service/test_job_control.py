"""Job disable / enable / update and task update through the real in-process server."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2, job_pb2, task_pb2
from tests.service.test_dependencies import add, counts, get, setup, started, task, wait_for
from tests.service.test_validation import details

A = agent_pb2
T = task_pb2
J = job_pb2


async def job(stubs) -> J.Job:  # type: ignore[no-untyped-def]
    return await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/j"))


async def disable(stubs, option: int) -> J.Job:  # type: ignore[no-untyped-def]
    return await stubs.jobs.DisableJob(J.DisableJobRequest(name="jobs/j", disable_tasks=option))


async def test_disable_requeue_stops_the_running_task_and_enable_runs_it_again(server, stubs) -> None:
    agent = await setup(server, stubs)
    await add(stubs, task("a"), task("b"))
    (a,) = await started(agent)
    await agent.event(a.attempt, A.TASK_EVENT_KIND_RUNNING)
    disabled = await disable(stubs, J.DISABLE_JOB_OPTION_REQUEUE)
    assert disabled.state == J.JOB_STATE_DISABLED and disabled.previous_state == J.JOB_STATE_DISABLING
    kill = await agent.expect("kill_tasks")
    assert kill.kill_tasks.attempts[0].task_id == a.attempt.task_id
    t = await get(stubs, a.attempt.task_id)
    assert t.state == T.TASK_STATE_ACTIVE and t.execution_info.requeue_count == 1
    # Its report, late, is fenced off: the attempt is no longer the task's.
    await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)
    await asyncio.sleep(0.05)
    assert (await get(stubs, a.attempt.task_id)).state == T.TASK_STATE_ACTIVE
    # Disabled: nothing is scheduled, even as the node is free; disabling again changes nothing.
    assert (await disable(stubs, J.DISABLE_JOB_OPTION_TERMINATE)).state == J.JOB_STATE_DISABLED
    while not agent.inbox.empty():
        assert agent.inbox.get_nowait().WhichOneof("body") == "events_ack"
    enabled = await stubs.jobs.EnableJob(J.EnableJobRequest(name="jobs/j"))
    assert enabled.state == J.JOB_STATE_ACTIVE and enabled.previous_state == J.JOB_STATE_ENABLING
    again = await started(agent)
    assert again[0].attempt.attempt == 2 or again[0].attempt.task_id != a.attempt.task_id


async def test_disable_terminate_completes_the_running_task_failed(server, stubs) -> None:
    agent = await setup(server, stubs)
    await add(stubs, task("a"))
    await started(agent)
    await disable(stubs, J.DISABLE_JOB_OPTION_TERMINATE)
    t = await get(stubs, "a")
    assert t.state == T.TASK_STATE_COMPLETED and t.execution_info.failure_info.code == "TaskEnded"
    assert (await job(stubs)).state == J.JOB_STATE_DISABLED


async def test_disable_wait_stays_disabling_until_the_running_task_ends(server, stubs) -> None:
    agent = await setup(server, stubs)
    await add(stubs, task("a"), task("b"))
    (a,) = await started(agent)
    assert (await disable(stubs, J.DISABLE_JOB_OPTION_WAIT)).state == J.JOB_STATE_DISABLING
    await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED)
    async with asyncio.timeout(10):
        while (await job(stubs)).state != J.JOB_STATE_DISABLED:
            await asyncio.sleep(0.01)
    assert (await get(stubs, "b")).state == T.TASK_STATE_ACTIVE


async def test_preconditions_of_disable_and_enable(server, stubs) -> None:
    await setup(server, stubs)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.EnableJob(J.EnableJobRequest(name="jobs/j", etag="stale"))
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert (await stubs.jobs.EnableJob(J.EnableJobRequest(name="jobs/j"))).state == J.JOB_STATE_ACTIVE
    await stubs.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/j"))
    for call in (
        stubs.jobs.DisableJob(J.DisableJobRequest(name="jobs/j")),
        stubs.jobs.EnableJob(J.EnableJobRequest(name="jobs/j")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert details(e.value)[0] in ("JOB_NOT_ACTIVE", "JOB_NOT_DISABLED")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.DisableJob(J.DisableJobRequest(name="jobs/j", disable_tasks=9))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_update_job_fields_by_mask(server, stubs) -> None:
    await setup(server, stubs)
    patch = J.Job(
        name="jobs/j",
        priority=7,
        max_parallel_tasks=3,
        metadata=[common_pb2.MetadataItem(name="owner", value="render")],
        on_task_failure=J.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION,
    )
    patch.constraints.max_task_retry_count = 2
    updated = await stubs.jobs.UpdateJob(
        J.UpdateJobRequest(job=patch, update_mask=["max_parallel_tasks", "metadata", "constraints", "on_task_failure"])
    )
    assert updated.priority == 0  # not in the mask
    assert updated.max_parallel_tasks == 3 and updated.constraints.max_task_retry_count == 2
    assert [(m.name, m.value) for m in updated.metadata] == [("owner", "render")]
    assert updated.on_task_failure == J.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION
    bad = [
        (J.UpdateJobRequest(job=J.Job(name="jobs/j"), update_mask=["pool_id"]), "INVALID_UPDATE_MASK"),
        (
            J.UpdateJobRequest(job=J.Job(name="jobs/j", max_parallel_tasks=0), update_mask=["max_parallel_tasks"]),
            "INVALID_JOB",
        ),
        (
            J.UpdateJobRequest(
                job=J.Job(name="jobs/j", metadata=[common_pb2.MetadataItem(name="")]), update_mask=["metadata"]
            ),
            "INVALID_JOB",
        ),
    ]
    for request, reason in bad:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stubs.jobs.UpdateJob(request)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and details(e.value)[0] == reason
    await stubs.jobs.UpdateJob(
        J.UpdateJobRequest(
            job=J.Job(name="jobs/j", on_all_tasks_complete=J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB),
            update_mask=["on_all_tasks_complete"],
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.UpdateJob(
            J.UpdateJobRequest(
                job=J.Job(name="jobs/j", on_all_tasks_complete=J.ON_ALL_TASKS_COMPLETE_NO_ACTION),
                update_mask=["on_all_tasks_complete"],
            )
        )
    assert details(e.value)[0] == "INVALID_ON_ALL_TASKS_COMPLETE"


async def test_max_parallel_tasks_caps_the_running_tasks_of_a_job(server, stubs) -> None:
    agent = await setup(server, stubs, slots=4, max_parallel_tasks=2)
    await add(stubs, *(task(f"t{i}") for i in range(5)))
    first = await started(agent)
    await asyncio.sleep(0.1)
    more = []
    while not agent.inbox.empty():
        msg = agent.inbox.get_nowait()
        if msg.WhichOneof("body") == "start_tasks":
            more += list(msg.start_tasks.tasks)
    assert len(first) + len(more) == 2
    c = await counts(stubs)
    assert (c.running, c.active) == (2, 3)
    await agent.event(first[0].attempt, A.TASK_EVENT_KIND_COMPLETED)
    (nxt,) = await started(agent)
    assert nxt.attempt.task_id not in {a.attempt.task_id for a in first + more}


async def test_update_task_replaces_its_constraints(server, stubs) -> None:
    await setup(server, stubs)
    await add(stubs, task("a", required_slots=1))
    patch = T.Task(name="jobs/j/tasks/a")
    patch.spec.constraints.max_task_retry_count = 4
    patch.spec.constraints.max_wall_clock_time.CopyFrom(duration_pb2.Duration(seconds=60))
    updated = await stubs.tasks.UpdateTask(T.UpdateTaskRequest(task=patch))
    assert updated.spec.constraints.max_task_retry_count == 4
    assert updated.spec.constraints.max_wall_clock_time.seconds == 60
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.UpdateTask(T.UpdateTaskRequest(task=patch, update_mask=["command_line"]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stubs.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/a"))
    t = await wait_for(stubs, "a", lambda t: t.state == T.TASK_STATE_COMPLETED)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.UpdateTask(T.UpdateTaskRequest(task=patch))
    assert details(e.value)[0] == "TASK_COMPLETED"
    assert t.spec.constraints.max_task_retry_count == 4


async def test_prep_status_needs_a_preparation_task(server, stubs) -> None:
    await setup(server, stubs)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.ListPreparationAndReleaseTaskStatus(
            J.ListPreparationAndReleaseTaskStatusRequest(name="jobs/j")
        )
    assert details(e.value)[0] == "JOB_PREPARATION_TASK_NOT_SPECIFIED"
