"""Container pools and tasks that the API refuses: the status, the reason and every field path, and nothing
changed by a refusal."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from shoal.server.api.container_checks import TASK_PASSWORD_REFUSED
from shoal.v1 import common_pb2, job_pb2, pool_pb2, schedule_pb2, schedule_pb2_grpc, task_pb2
from tests.channels import server_channel
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(60)

C = common_pb2


def container_pool(pool_id: str = "cp", **config: object) -> pool_pb2.Pool:
    cfg = C.ContainerConfiguration(container_image_names=["busybox"], **config)  # type: ignore[arg-type]
    return pool_pb2.Pool(id=pool_id, target_nodes=0, provider="join", container_configuration=cfg)


async def refusal(call: object) -> tuple[grpc.StatusCode, str, list[tuple[str, str]]]:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call  # type: ignore[misc]
    reason, violations = details(e.value)
    return e.value.code(), reason, violations


async def test_a_pool_configuration_with_bad_images_and_registries_is_refused_field_by_field(stubs) -> None:
    cfg = C.ContainerConfiguration(
        type=7,  # type: ignore[arg-type]
        container_image_names=["busybox", "ok/name:1", "Bad Name!"],
        container_registries=[
            C.ContainerRegistry(registry_server="reg.example:5000", user_name="u", password="s"),
            C.ContainerRegistry(registry_server="no/slash", user_name="u"),
            C.ContainerRegistry(registry_server="reg.example", password="p"),
            C.ContainerRegistry(registry_server="REG.example:5000", user_name="u", password="t"),
        ],
    )
    pool = pool_pb2.Pool(id="cp", target_nodes=0, provider="join", container_configuration=cfg)
    code, reason, violations = await refusal(stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_POOL"
    fields = [f for f, _ in violations]
    assert fields == [
        "pool.container_configuration.type",
        "pool.container_configuration.container_image_names[2]",
        "pool.container_configuration.container_registries[1].registry_server",
        "pool.container_configuration.container_registries[2].user_name",
        "pool.container_configuration.container_registries[3]",
    ]
    # (No description repeats a password.)
    assert not any(d == "s" or "t" in d.split() for _, d in violations)
    assert list((await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools) == []


async def test_too_many_images_or_registries_are_refused(stubs) -> None:
    many = C.ContainerConfiguration(
        container_image_names=[f"img{i}" for i in range(101)],
        container_registries=[C.ContainerRegistry(registry_server=f"r{i}.example") for i in range(21)],
    )
    pool = pool_pb2.Pool(id="cp", target_nodes=0, container_configuration=many)
    _, reason, violations = await refusal(stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool)))
    assert reason == "INVALID_POOL"
    assert [f for f, _ in violations] == [
        "pool.container_configuration.container_image_names",
        "pool.container_configuration.container_registries",
    ]


async def test_a_start_task_in_a_container_needs_a_container_pool(stubs) -> None:
    st = C.StartTask(command_line="/bin/true", container_settings=C.TaskContainerSettings(image_name="busybox"))
    pool = pool_pb2.Pool(id="plain", target_nodes=0, start_task=st)
    _, reason, violations = await refusal(stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool)))
    assert reason == "INVALID_POOL"
    assert [f for f, _ in violations] == ["pool.start_task.container_settings"]
    assert "no container configuration" in violations[0][1]
    # On a container pool it is taken; its run options are held to the pool's rule.
    ok = container_pool()
    ok.start_task.CopyFrom(st)
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=ok))
    bad = container_pool("cp2")
    bad.start_task.CopyFrom(st)
    bad.start_task.container_settings.container_run_options = "--privileged"
    bad.start_task.container_settings.registry.password = "secret"
    _, reason, violations = await refusal(stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=bad)))
    assert [f for f, _ in violations] == [
        "pool.start_task.container_settings.container_run_options",
        "pool.start_task.container_settings.registry.password",
    ]


async def test_update_pool_may_not_change_the_container_configuration(stubs) -> None:
    made = await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool()))
    # Named by the mask: a field fixed at creation.
    patch = pool_pb2.Pool(id="cp", container_configuration=C.ContainerConfiguration(container_image_names=["x"]))
    code, reason, violations = await refusal(
        stubs.pools.UpdatePool(
            pool_pb2.UpdatePoolRequest(
                pool=patch, update_mask=field_mask_pb2.FieldMask(paths=["container_configuration"])
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_UPDATE_MASK"
    assert "cannot be changed after the pool is created" in violations[0][1]
    # Carried by a patch under another mask, or the implied one: refused too.
    for paths in (["display_name"], [], ["*"]):
        code, reason, violations = await refusal(
            stubs.pools.UpdatePool(
                pool_pb2.UpdatePoolRequest(pool=patch, update_mask=field_mask_pb2.FieldMask(paths=paths))
            )
        )
        assert (reason, [f for f, _ in violations]) == ("INVALID_POOL", ["pool.container_configuration"]), paths
    # The pool as read, sent back: no change, taken.
    back = pool_pb2.Pool()
    back.CopyFrom(made)
    back.display_name = "renamed"
    updated = await stubs.pools.UpdatePool(
        pool_pb2.UpdatePoolRequest(pool=back, update_mask=field_mask_pb2.FieldMask(paths=["display_name"]))
    )
    assert updated.display_name == "renamed"
    assert list(updated.container_configuration.container_image_names) == ["busybox"]
    # A start task set by an update is held to the pool's configuration.
    st = C.StartTask(
        command_line="/bin/true",
        container_settings=C.TaskContainerSettings(image_name="busybox", container_run_options="--pid host"),
    )
    _, reason, violations = await refusal(
        stubs.pools.UpdatePool(
            pool_pb2.UpdatePoolRequest(
                pool=pool_pb2.Pool(id="cp", start_task=st), update_mask=field_mask_pb2.FieldMask(paths=["start_task"])
            )
        )
    )
    assert [f for f, _ in violations] == ["pool.start_task.container_settings.container_run_options"]


async def test_a_task_in_a_container_on_a_pool_without_a_configuration_is_refused(stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="plain", target_nodes=0)))
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="plain")))
    spec = task_pb2.TaskSpec(
        id="t", command_line="/bin/true", container_settings=C.TaskContainerSettings(image_name="busybox")
    )
    code, reason, violations = await refusal(stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=spec)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_TASK"
    assert [f for f, _ in violations] == ["task.container_settings"]
    assert "pool 'plain' has no container configuration" in violations[0][1]
    _, _, violations = await refusal(
        stubs.tasks.AddTasks(
            task_pb2.AddTasksRequest(parent="jobs/j", tasks=[task_pb2.TaskSpec(id="a", command_line="x"), spec])
        )
    )
    assert [f for f, _ in violations] == ["tasks[1].container_settings"]
    listed = await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j"))
    assert list(listed.tasks) == []


async def test_a_task_container_is_checked_field_by_field(stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool()))
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="cp")))
    settings = C.TaskContainerSettings(
        image_name="",
        container_run_options="--memory 1g --privileged",
        registry=C.ContainerRegistry(registry_server="bad server", user_name="u", password="hunter2"),
        working_directory=9,  # type: ignore[arg-type]
    )
    spec = task_pb2.TaskSpec(id="t", command_line="/bin/true", container_settings=settings)
    _, reason, violations = await refusal(stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=spec)))
    assert reason == "INVALID_TASK"
    assert [f for f, _ in violations] == [
        "task.container_settings.image_name",
        "task.container_settings.container_run_options",
        "task.container_settings.working_directory",
        "task.container_settings.registry.registry_server",
        "task.container_settings.registry.password",
    ]
    assert dict(violations)["task.container_settings.registry.password"] == TASK_PASSWORD_REFUSED
    assert not any("hunter2" in d for _, d in violations)
    # A valid one is taken, stored as given.
    good = C.TaskContainerSettings(image_name="busybox", container_run_options="--memory 1g -e A=b")
    spec = task_pb2.TaskSpec(id="t", command_line="/bin/true", container_settings=good)
    t = await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=spec))
    assert t.spec.container_settings == good


async def test_host_run_options_pass_only_where_the_pool_allows_them(stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool("open", allow_host_run_options=True)))
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="open")))
    settings = C.TaskContainerSettings(image_name="busybox", container_run_options="--privileged --pid host")
    spec = task_pb2.TaskSpec(id="t", command_line="/bin/true", container_settings=settings)
    await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=spec))


async def test_job_tasks_in_containers_are_checked_against_the_pool(stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="plain", target_nodes=0)))
    settings = C.TaskContainerSettings(image_name="busybox")
    job = job_pb2.Job(
        id="j",
        pool_id="plain",
        job_manager_task=job_pb2.JobManagerTask(command_line="/bin/true", container_settings=settings),
        job_preparation_task=job_pb2.JobPreparationTask(command_line="/bin/true", container_settings=settings),
        job_release_task=job_pb2.JobReleaseTask(command_line="/bin/true", container_settings=settings),
    )
    _, reason, violations = await refusal(stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job)))
    assert reason == "INVALID_JOB"
    assert [f for f, _ in violations] == [
        "job.job_manager_task.container_settings",
        "job.job_preparation_task.container_settings",
        "job.job_release_task.container_settings",
    ]
    # On a container pool: each is checked as a task's.
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool()))
    job.pool_id = "cp"
    job.job_preparation_task.container_settings.container_run_options = "--volume /:/host"
    job.job_release_task.container_settings.registry.password = "x"
    _, reason, violations = await refusal(stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job)))
    assert [f for f, _ in violations] == [
        "job.job_preparation_task.container_settings.container_run_options",
        "job.job_release_task.container_settings.registry.password",
    ]
    assert list((await stubs.jobs.ListJobs(job_pb2.ListJobsRequest())).jobs) == []


async def test_a_job_on_a_pool_not_made_yet_has_its_run_options_checked_for_syntax_only(stubs) -> None:
    # (A job may name a pool made later: the node checks its pool's rule before it runs the container.)
    settings = C.TaskContainerSettings(image_name="busybox", container_run_options="--privileged")
    job = job_pb2.Job(
        id="j", pool_id="later", job_manager_task=job_pb2.JobManagerTask(command_line="x", container_settings=settings)
    )
    # (Refused as missing: its pool does not exist; the container checks passed.)
    code, reason, _ = await refusal(stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job)))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
    job.job_manager_task.container_settings.container_run_options = "--env 'unclosed"
    _, reason, violations = await refusal(stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job)))
    assert (reason, [f for f, _ in violations]) == (
        "INVALID_JOB",
        ["job.job_manager_task.container_settings.container_run_options"],
    )


async def test_an_auto_pool_specification_is_checked_as_a_pool(stubs) -> None:
    cfg = C.ContainerConfiguration(container_image_names=["Bad Name"])
    auto = job_pb2.AutoPoolSpecification(
        pool_lifetime_option=job_pb2.POOL_LIFETIME_OPTION_JOB,
        pool=pool_pb2.Pool(target_nodes=0, container_configuration=cfg),
    )
    settings = C.TaskContainerSettings(image_name="busybox", container_run_options="--privileged")
    job = job_pb2.Job(
        id="j",
        auto_pool_specification=auto,
        job_manager_task=job_pb2.JobManagerTask(command_line="x", container_settings=settings),
    )
    _, reason, violations = await refusal(stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job)))
    assert reason == "INVALID_JOB"
    assert [f for f, _ in violations] == [
        "job.auto_pool_specification.pool.container_configuration.container_image_names[0]",
        "job.job_manager_task.container_settings.container_run_options",
    ]


async def test_a_job_schedule_specification_is_checked(server, stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="plain", target_nodes=0)))
    settings = C.TaskContainerSettings(image_name="busybox")
    spec = job_pb2.Job(
        pool_id="plain", job_manager_task=job_pb2.JobManagerTask(command_line="x", container_settings=settings)
    )
    js = schedule_pb2.JobSchedule(id="s", schedule=schedule_pb2.Schedule(), job_specification=spec)
    async with server_channel(server) as ch:
        schedules = schedule_pb2_grpc.JobScheduleServiceStub(ch)
        _, reason, violations = await refusal(
            schedules.CreateJobSchedule(schedule_pb2.CreateJobScheduleRequest(job_schedule=js))
        )
    assert reason == "INVALID_JOB_SCHEDULE"
    assert [f for f, _ in violations] == ["job_schedule.job_specification.job_manager_task.container_settings"]
