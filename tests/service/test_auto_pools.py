"""Auto pools on a real server with real local agents: a job's pool made with it, running its task and
gone when it completes; kept alive; gone with DeleteJob; a pool that cannot be made completing the job
with Batch's scheduling error; refusals; a schedule's pool shared by its jobs; and the end of a job after
a server restart still deleting its pool."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from shoal.server.app import ShoalServer
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, configured_server, start_server
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(90)

J = job_pb2
P = pool_pb2
T = task_pb2


@pytest.fixture
async def fast_server(tmp_path: Path) -> AsyncIterator[ShoalServer]:
    async with configured_server(tmp_path / "data", heartbeat_interval=0.2) as srv:
        yield srv


@pytest.fixture
async def fast(fast_server: ShoalServer) -> AsyncIterator[Stubs]:
    async with server_channel(fast_server) as channel:
        yield Stubs(channel)


def auto_job(job_id: str, *, nodes: int = 0, keep_alive: bool = False, prefix: str = "ap-", **job: object) -> J.Job:
    """A job with an auto pool of `nodes` dedicated nodes (JOB lifetime)."""
    spec = J.AutoPoolSpecification(
        auto_pool_id_prefix=prefix,
        pool_lifetime_option=J.POOL_LIFETIME_OPTION_JOB,
        keep_alive=keep_alive,
        pool=P.Pool(target_nodes=nodes, task_slots_per_node=1),
    )
    return J.Job(id=job_id, auto_pool_specification=spec, **job)  # type: ignore[arg-type]


async def pool_ids(stubs: Stubs) -> list[str]:
    return sorted(p.id for p in (await stubs.pools.ListPools(P.ListPoolsRequest())).pools)


async def until(probe: Callable[[], object], pred: Callable[[object], bool], timeout: float = 30.0) -> object:
    """Ask `probe` (a coroutine function) until `pred` holds of its answer."""
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()  # type: ignore[misc]
            if pred(value):
                return value
            await asyncio.sleep(0.05)


async def test_a_job_runs_on_its_auto_pool_which_goes_when_the_job_completes(fast: Stubs) -> None:
    job = await fast.jobs.CreateJob(
        J.CreateJobRequest(
            job=auto_job("render", nodes=1, on_all_tasks_complete=J.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB),
            request_id="r1",
        )
    )
    pool_id = job.pool_id
    assert pool_id.startswith("ap-render-") and job.execution_info.pool_id == pool_id
    assert job.state == J.JOB_STATE_ACTIVE and not job.execution_info.HasField("scheduling_error")
    pool = await fast.pools.GetPool(P.GetPoolRequest(name=f"pools/{pool_id}"))
    assert pool.auto_pool_owner == "jobs/render" and pool.target_nodes == 1
    # A retry of the same request makes nothing more.
    again = await fast.jobs.CreateJob(J.CreateJobRequest(job=auto_job("render", nodes=1), request_id="r1"))
    assert again.pool_id == pool_id and await pool_ids(fast) == [pool_id]

    await fast.tasks.AddTasks(
        T.AddTasksRequest(parent="jobs/render", tasks=[T.TaskSpec(id="t", command_line=f"{sys.executable} -c pass")])
    )
    done = await until(
        lambda: fast.jobs.GetJob(J.GetJobRequest(name="jobs/render")),
        lambda j: j.state == J.JOB_STATE_COMPLETED,  # type: ignore[attr-defined]
    )
    assert done.execution_info.terminate_reason == "AllTasksComplete"  # type: ignore[attr-defined]
    task = await fast.tasks.GetTask(T.GetTaskRequest(name="jobs/render/tasks/t"))
    assert task.execution_info.exit_code == 0 and task.node_info.pool_id == pool_id
    # Its nodes leave, then the pool is gone.
    await until(lambda: pool_ids(fast), lambda ids: ids == [])


async def test_terminating_the_job_ends_its_running_task_and_takes_the_pool(fast: Stubs) -> None:
    job = await fast.jobs.CreateJob(J.CreateJobRequest(job=auto_job("long", nodes=1)))
    await fast.tasks.AddTasks(
        T.AddTasksRequest(parent="jobs/long", tasks=[T.TaskSpec(id="t", command_line="sleep 30")])
    )
    await until(
        lambda: fast.tasks.GetTask(T.GetTaskRequest(name="jobs/long/tasks/t")),
        lambda t: t.state == T.TASK_STATE_RUNNING,  # type: ignore[attr-defined]
    )
    ended = await fast.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/long"))
    assert ended.state == J.JOB_STATE_COMPLETED
    task = await fast.tasks.GetTask(T.GetTaskRequest(name="jobs/long/tasks/t"))
    # Ended as terminated, not requeued by its node leaving with the pool.
    assert task.state == T.TASK_STATE_COMPLETED and task.execution_info.failure_info.code == "TaskEnded"
    assert job.pool_id
    await until(lambda: pool_ids(fast), lambda ids: ids == [])


async def test_keep_alive_keeps_the_pool_and_may_change_and_delete_job_deletes_it(fast: Stubs) -> None:
    kept = await fast.jobs.CreateJob(J.CreateJobRequest(job=auto_job("kept")))
    # keep_alive is the one part of the spec UpdateJob changes.
    patch = J.Job(name="jobs/kept", auto_pool_specification=J.AutoPoolSpecification(keep_alive=True))
    updated = await fast.jobs.UpdateJob(
        J.UpdateJobRequest(job=patch, update_mask=["auto_pool_specification.keep_alive"])
    )
    assert updated.auto_pool_specification.keep_alive
    err = await refused(
        fast.jobs.UpdateJob(J.UpdateJobRequest(job=patch, update_mask=["auto_pool_specification.pool"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_UPDATE_MASK",
    )
    assert details(err)[1][0][0] == "update_mask"
    await fast.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/kept"))
    assert await pool_ids(fast) == [kept.pool_id]
    pool = await fast.pools.GetPool(P.GetPoolRequest(name=f"pools/{kept.pool_id}"))
    # Kept past its job, it is an ordinary pool: no longer the job's.
    assert pool.state == P.POOL_STATE_ACTIVE and pool.auto_pool_owner == ""
    # Deleting the job leaves a kept pool too.
    await fast.jobs.DeleteJob(J.DeleteJobRequest(name="jobs/kept"))
    assert await pool_ids(fast) == [kept.pool_id]
    # A later job of the same id, on that pool, does not take it away when it ends.
    await fast.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="kept", pool_id=kept.pool_id)))
    await fast.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/kept"))
    assert await pool_ids(fast) == [kept.pool_id]

    gone = await fast.jobs.CreateJob(J.CreateJobRequest(job=auto_job("gone", prefix="")))
    assert gone.pool_id == f"gone-{gone.pool_id.rsplit('-', 1)[1]}"
    assert sorted(await pool_ids(fast)) == sorted([kept.pool_id, gone.pool_id])
    await fast.jobs.DeleteJob(J.DeleteJobRequest(name="jobs/gone"))
    assert await pool_ids(fast) == [kept.pool_id]

    # A job on a named pool has no keep_alive to change.
    await fast.jobs.CreateJob(J.CreateJobRequest(job=J.Job(id="plain", pool_id=kept.pool_id)))
    await refused(
        fast.jobs.UpdateJob(
            J.UpdateJobRequest(
                job=J.Job(name="jobs/plain", auto_pool_specification=J.AutoPoolSpecification(keep_alive=True)),
                update_mask=["auto_pool_specification.keep_alive"],
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_AUTO_POOL",
    )


async def test_pools_that_cannot_be_made_complete_the_job_with_a_scheduling_error(server: ShoalServer) -> None:
    key = await make_account(server, "small", max_pools=1, max_nodes=2)
    async with channel_as(server, "small", key) as ch:
        stubs = Stubs(ch)
        await stubs.pools.CreatePool(P.CreatePoolRequest(pool=P.Pool(id="mine", target_nodes=0)))
        # The account holds its one pool: the auto pool is over its quota.
        job = await stubs.jobs.CreateJob(J.CreateJobRequest(job=auto_job("over")))
        assert job.state == J.JOB_STATE_COMPLETED and job.pool_id == ""
        error = job.execution_info.scheduling_error
        assert error.code == "AutoPoolCreationFailedWithQuotaReached"
        assert error.category == 1 and "at most 1 pools" in error.message  # USER_ERROR
        assert job.execution_info.HasField("end_time")
        assert await pool_ids(stubs) == ["mine"]
        await stubs.pools.DeletePool(P.DeletePoolRequest(name="pools/mine"))
        await until(lambda: pool_ids(stubs), lambda ids: ids == [])
        # Too many nodes for the account.
        job = await stubs.jobs.CreateJob(J.CreateJobRequest(job=auto_job("big", nodes=3)))
        assert job.execution_info.scheduling_error.code == "AutoPoolCreationFailedWithQuotaReached"
        # A formula that does not parse.
        spec = auto_job("formula")
        spec.auto_pool_specification.pool.enable_auto_scale = True
        spec.auto_pool_specification.pool.auto_scale_formula = "$TargetDedicatedNodes = = 1;"
        job = await stubs.jobs.CreateJob(J.CreateJobRequest(job=spec))
        assert job.state == J.JOB_STATE_COMPLETED
        assert job.execution_info.scheduling_error.code == "InvalidAutoScaleFormulaInAutoPool"
        # A certificate the account does not have.
        spec = auto_job("certs")
        spec.auto_pool_specification.pool.certificate_references.add(thumbprint="ab" * 20)
        job = await stubs.jobs.CreateJob(J.CreateJobRequest(job=spec))
        assert job.execution_info.scheduling_error.code == "InvalidCertificatesInAutoPool"
        # An application package the account does not have.
        spec = auto_job("packages")
        spec.auto_pool_specification.pool.application_package_references.add(application_id="nowhere")
        job = await stubs.jobs.CreateJob(J.CreateJobRequest(job=spec))
        assert job.execution_info.scheduling_error.code == "InvalidApplicationPackageReferencesInAutoPool"
        assert await pool_ids(stubs) == []
        # Such a job is over: no task is added to it, and it is read back as it was made.
        await refused(
            stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/certs", tasks=[T.TaskSpec(id="t", command_line="x")])),
            grpc.StatusCode.FAILED_PRECONDITION,
            "JOB_NOT_ACTIVE",
        )
        read = await stubs.jobs.GetJob(J.GetJobRequest(name="jobs/certs"))
        assert read.execution_info.scheduling_error.code == "InvalidCertificatesInAutoPool"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda j: setattr(j, "pool_id", "p"), "job.pool_id"),
        (lambda j: j.ClearField("auto_pool_specification"), "job.pool_id"),
        (lambda j: setattr(j.auto_pool_specification, "auto_pool_id_prefix", "x" * 21), "auto_pool_id_prefix"),
        (lambda j: setattr(j.auto_pool_specification, "auto_pool_id_prefix", "a/b"), "auto_pool_id_prefix"),
        (
            lambda j: setattr(j.auto_pool_specification, "pool_lifetime_option", J.POOL_LIFETIME_OPTION_JOB_SCHEDULE),
            "pool_lifetime_option",
        ),
        (lambda j: setattr(j.auto_pool_specification, "pool_lifetime_option", 7), "pool_lifetime_option"),
        (lambda j: j.auto_pool_specification.ClearField("pool"), "job.auto_pool_specification.pool"),
        (lambda j: setattr(j.auto_pool_specification.pool, "id", "named"), "pool.id"),
        (lambda j: setattr(j.auto_pool_specification.pool, "target_nodes", -1), "pool.target_nodes"),
        (lambda j: setattr(j.auto_pool_specification.pool, "task_slots_per_node", 999), "pool.task_slots_per_node"),
        (lambda j: setattr(j.auto_pool_specification.pool, "auto_scale_formula", "x = 1;"), "pool.auto_scale_formula"),
    ],
)
async def test_invalid_auto_pool_specs_are_refused_and_nothing_is_made(
    stubs: Stubs, change: Callable[[J.Job], None], field: str
) -> None:
    job = auto_job("bad")
    change(job)
    err = await refused(
        stubs.jobs.CreateJob(J.CreateJobRequest(job=job)), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_JOB"
    )
    fields = [f for f, _ in details(err)[1]]
    assert any(f.endswith(field) for f in fields), fields
    assert all(f.startswith("job.") for f in fields), fields
    assert (await stubs.jobs.ListJobs(J.ListJobsRequest())).jobs == []
    assert await pool_ids(stubs) == []


async def test_a_schedules_jobs_share_its_pool_which_goes_with_the_schedule(server: ShoalServer, stubs: Stubs) -> None:
    """The contract with the job schedules room: it makes each job with `make_job` (job_schedule_id set)
    and calls `schedule_end_hooks` when a schedule ends."""
    cp = server.cp

    def schedule_job(job_id: str, schedule_id: str, lifetime: int, keep_alive: bool = False) -> J.Job:
        spec = auto_job(job_id, prefix="s-", keep_alive=keep_alive)
        spec.auto_pool_specification.pool_lifetime_option = lifetime  # type: ignore[assignment]
        spec.job_schedule_id = schedule_id
        return spec

    shared = J.POOL_LIFETIME_OPTION_JOB_SCHEDULE
    first = cp.job_life.make_job(schedule_job("nightly:job-1", "nightly", shared))
    await cp.flush()
    pool = cp.pool(first.proto.pool_id).proto
    assert pool.auto_pool_owner == "jobschedules/nightly" and pool.id.startswith("s-nightly-")
    # The next job of the schedule runs on the same pool, even once the first one has ended.
    await cp.job_life.terminate_job("nightly:job-1")
    second = cp.job_life.make_job(schedule_job("nightly:job-2", "nightly", shared))
    await cp.flush()
    assert second.proto.pool_id == pool.id and await pool_ids(stubs) == [pool.id]
    # JOB lifetime on a schedule: a pool per job, gone with it.
    own = cp.job_life.make_job(schedule_job("weekly:job-1", "weekly", J.POOL_LIFETIME_OPTION_JOB))
    await cp.flush()
    assert cp.pool(own.proto.pool_id).proto.auto_pool_owner == "jobs/weekly:job-1"
    assert own.proto.pool_id.startswith("s-weekly-job-1-")
    await cp.job_life.terminate_job("weekly:job-1")
    assert await pool_ids(stubs) == [pool.id]
    # The schedule ends (hooks called twice: completed, then deleted): its pool goes, once.
    for _ in range(2):
        for hook in cp.schedule_end_hooks:
            hook("nightly", schedule_job("", "nightly", shared))
        await cp.flush()
    assert await pool_ids(stubs) == []
    # A schedule whose specification keeps its pool alive keeps it.
    kept = cp.job_life.make_job(schedule_job("monthly:job-1", "monthly", shared, keep_alive=True))
    await cp.flush()
    for hook in cp.schedule_end_hooks:
        hook("monthly", schedule_job("", "monthly", shared, keep_alive=True))
    await cp.flush()
    assert await pool_ids(stubs) == [kept.proto.pool_id]


async def test_a_job_made_before_a_restart_still_takes_its_pool_with_it(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            job = await Stubs(ch).jobs.CreateJob(J.CreateJobRequest(job=auto_job("durable")))
    finally:
        await server.stop(stop_agents=True)
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            pool = await stubs.pools.GetPool(P.GetPoolRequest(name=f"pools/{job.pool_id}"))
            assert pool.auto_pool_owner == "jobs/durable"
            await stubs.jobs.TerminateJob(J.TerminateJobRequest(name="jobs/durable"))
            assert await pool_ids(stubs) == []
    finally:
        await server.stop(stop_agents=True)


async def test_a_job_manager_task_is_sized_by_the_auto_pool(stubs: Stubs) -> None:
    too_big = auto_job("big", job_manager_task=J.JobManagerTask(command_line="x", required_slots=5))
    too_big.auto_pool_specification.pool.task_slots_per_node = 4
    err = await refused(
        stubs.jobs.CreateJob(J.CreateJobRequest(job=too_big)), grpc.StatusCode.FAILED_PRECONDITION, "TASK_CANNOT_FIT"
    )
    assert details(err)[1] == [("job.job_manager_task.required_slots", "more than a node of the pool has")]
    assert await pool_ids(stubs) == []
    # A job manager running exclusively takes every slot of a node of the pool made with it.
    fits = auto_job("fits", job_manager_task=J.JobManagerTask(command_line="x"))
    fits.auto_pool_specification.pool.task_slots_per_node = 4
    job = await stubs.jobs.CreateJob(J.CreateJobRequest(job=fits))
    jm = await stubs.tasks.GetTask(T.GetTaskRequest(name="jobs/fits/tasks/jobmanager"))
    assert jm.spec.required_slots == 4 and await pool_ids(stubs) == [job.pool_id]
