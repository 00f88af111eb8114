"""Registry passwords are secrets: no read returns them (pools, jobs with an auto pool specification, job
schedules), the database holds them sealed only, and a server restart keeps them for the nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import field_mask_pb2

from shoal.v1 import common_pb2, job_pb2, pool_pb2, schedule_pb2, schedule_pb2_grpc
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent

pytestmark = pytest.mark.timeout(60)

C = common_pb2
SECRET = "pw-Zq81-never-shown"
OTHER = "pw-Kx22-the-newer-one"


def config(password: str = SECRET) -> C.ContainerConfiguration:
    return C.ContainerConfiguration(
        container_image_names=["reg.example:5000/tools:1"],
        container_registries=[
            C.ContainerRegistry(registry_server="reg.example:5000", user_name="bot", password=password)
        ],
    )


def no_password(msg: object) -> None:
    """`msg` (any message) holds no password anywhere, and its registries still name their server and user."""
    data = msg.SerializeToString()  # type: ignore[attr-defined]
    assert SECRET.encode() not in data and OTHER.encode() not in data
    assert b"reg.example:5000" in data and b"bot" in data


def database_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("shoal.db*")))


async def test_pool_reads_never_return_a_registry_password(server, stubs) -> None:
    pool = pool_pb2.Pool(id="cp", target_nodes=0, provider="join", container_configuration=config())
    made = await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool, request_id="r1"))
    no_password(made)
    assert made.container_configuration.container_registries[0].password == ""
    no_password(await stubs.pools.GetPool(pool_pb2.GetPoolRequest(name="pools/cp")))
    no_password(await stubs.pools.ListPools(pool_pb2.ListPoolsRequest()))
    # (A repeated request answers with the pool as stored.)
    no_password(await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool, request_id="r1")))
    updated = await stubs.pools.UpdatePool(
        pool_pb2.UpdatePoolRequest(
            pool=pool_pb2.Pool(id="cp", display_name="x"), update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
        )
    )
    no_password(updated)
    no_password(await stubs.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/cp", target_nodes=0)))
    assert SECRET.encode() not in database_bytes(server.data_dir)


async def test_a_job_with_an_auto_pool_and_its_pool_never_return_the_password(server, stubs) -> None:
    auto = job_pb2.AutoPoolSpecification(
        auto_pool_id_prefix="ct",
        pool_lifetime_option=job_pb2.POOL_LIFETIME_OPTION_JOB,
        pool=pool_pb2.Pool(target_nodes=0, provider="join", container_configuration=config()),
    )
    made = await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", auto_pool_specification=auto)))
    no_password(made.auto_pool_specification)
    job = await stubs.jobs.GetJob(job_pb2.GetJobRequest(name="jobs/j"))
    no_password(job.auto_pool_specification)
    no_password(await stubs.jobs.ListJobs(job_pb2.ListJobsRequest()))
    pool_id = job.execution_info.pool_id
    assert pool_id
    no_password(await stubs.pools.GetPool(pool_pb2.GetPoolRequest(name=f"pools/{pool_id}")))
    assert SECRET.encode() not in database_bytes(server.data_dir)
    # The auto pool's nodes get it all the same.
    agent = ScriptedAgent(server, pool_id, "127.0.2.61")
    try:
        welcome = await agent.connect()
        assert welcome.containers.container_registries[0].password == SECRET
    finally:
        await agent.close()


async def test_job_schedules_never_return_the_password(server, stubs) -> None:
    auto = job_pb2.AutoPoolSpecification(
        pool_lifetime_option=job_pb2.POOL_LIFETIME_OPTION_JOB_SCHEDULE,
        pool=pool_pb2.Pool(target_nodes=0, provider="join", container_configuration=config()),
    )
    js = schedule_pb2.JobSchedule(
        id="s", schedule=schedule_pb2.Schedule(), job_specification=job_pb2.Job(auto_pool_specification=auto)
    )
    async with server_channel(server) as ch:
        schedules = schedule_pb2_grpc.JobScheduleServiceStub(ch)
        no_password(await schedules.CreateJobSchedule(schedule_pb2.CreateJobScheduleRequest(job_schedule=js)))
        no_password(await schedules.GetJobSchedule(schedule_pb2.GetJobScheduleRequest(name="jobschedules/s")))
        no_password(await schedules.ListJobSchedules(schedule_pb2.ListJobSchedulesRequest()))
        # A new specification, with a new password: kept apart too.
        js.job_specification.auto_pool_specification.pool.container_configuration.CopyFrom(config(OTHER))
        updated = await schedules.UpdateJobSchedule(
            schedule_pb2.UpdateJobScheduleRequest(
                job_schedule=js, update_mask=field_mask_pb2.FieldMask(paths=["job_specification"])
            )
        )
        no_password(updated)
        no_password(await schedules.GetJobSchedule(schedule_pb2.GetJobScheduleRequest(name="jobschedules/s")))
    # (The job the schedule made at once, and its pool.)
    jobs = await stubs.jobs.ListJobs(job_pb2.ListJobsRequest())
    assert jobs.jobs
    for j in jobs.jobs:
        no_password(j.auto_pool_specification)
    pools = await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())
    assert pools.pools
    no_password(pools)
    data = database_bytes(server.data_dir)
    assert SECRET.encode() not in data and OTHER.encode() not in data
    # The latest password given for the server and user wins.
    assert server.cp.registry_credentials.password("", "reg.example:5000", "bot") == OTHER


async def test_a_restart_keeps_the_passwords_for_the_nodes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(data_dir)
    try:
        async with server_channel(server) as ch:
            pool = pool_pb2.Pool(id="cp", target_nodes=1, provider="join", container_configuration=config())
            await Stubs(ch).pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    finally:
        await server.stop(stop_agents=True)
    assert SECRET.encode() not in database_bytes(data_dir)
    server = await start_server(data_dir)
    agent = ScriptedAgent(server, "cp", "127.0.2.62")
    try:
        welcome = await agent.connect()
        assert welcome.containers.container_registries[0].password == SECRET
        async with server_channel(server) as ch:
            no_password(await Stubs(ch).pools.GetPool(pool_pb2.GetPoolRequest(name="pools/cp")))
    finally:
        await agent.close()
        await server.stop(stop_agents=True)
