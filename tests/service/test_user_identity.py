"""User identities through the API: refused when they name no account of the job's pool (nothing
changes), and carried to the agents (the pool's accounts in Welcome, each task's identity in its
assignment, the job's own tasks' in theirs)."""

from __future__ import annotations

import grpc
import pytest

from shoal.agent.v1 import agent_pb2
from shoal.server.app import ShoalServer
from shoal.v1 import common_pb2, identity_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_validation import details

ID = identity_pb2
ALICE = ID.UserIdentity(user_name="alice")
TASK_ADMIN = ID.UserIdentity(
    auto_user=ID.AutoUserSpecification(scope=ID.AUTO_USER_SCOPE_TASK, elevation_level=ID.ELEVATION_LEVEL_ADMIN)
)


def pool_with_alice(target: int = 0, provider: str = "") -> pool_pb2.Pool:
    return pool_pb2.Pool(
        id="p",
        target_nodes=target,
        provider=provider,
        user_accounts=[
            ID.UserAccount(
                name="alice",
                elevation_level=ID.ELEVATION_LEVEL_NON_ADMIN,
                linux_user_configuration=ID.LinuxUserConfiguration(uid=4321, gid=4321),
            )
        ],
    )


async def test_unknown_user_name_is_refused_and_changes_nothing(stubs: Stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_with_alice()))
    bad_job = job_pb2.Job(
        id="j",
        pool_id="p",
        job_manager_task=job_pb2.JobManagerTask(command_line="x", user_identity=ID.UserIdentity(user_name="bob")),
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=bad_job))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(e.value)[1][0][0] == "job.job_manager_task.user_identity.user_name"
    assert list((await stubs.jobs.ListJobs(job_pb2.ListJobsRequest())).jobs) == []

    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    bob = task_pb2.TaskSpec(id="t1", command_line="/bin/true", user_identity=ID.UserIdentity(user_name="bob"))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=bob))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(e.value)
    assert reason == "INVALID_TASK"
    assert violations[0][0] == "task.user_identity.user_name"
    good = task_pb2.TaskSpec(id="t0", command_line="/bin/true", user_identity=ALICE)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=[good, bob]))
    assert details(e.value)[1][0][0] == "tasks[1].user_identity.user_name"
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    assert counts.active == 0
    # A name of the pool's accounts is taken, and kept with the task.
    await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=good))
    got = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/t0"))
    assert got.spec.user_identity == ALICE


async def test_bad_accounts_refuse_the_pool(stubs: Stubs) -> None:
    pool = pool_with_alice()
    pool.user_accounts.add(name="alice")
    pool.start_task.CopyFrom(common_pb2.StartTask(command_line="x", user_identity=ID.UserIdentity(user_name="carol")))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {f for f, _ in details(e.value)[1]}
    assert fields == {"pool.user_accounts[1].name", "pool.start_task.user_identity.user_name"}
    assert list((await stubs.pools.ListPools(pool_pb2.ListPoolsRequest())).pools) == []


async def test_identities_reach_the_agent(server: ShoalServer, stubs: Stubs) -> None:
    pool = pool_with_alice(target=1, provider="join")
    pool.start_task.CopyFrom(common_pb2.StartTask(command_line="/bin/true", user_identity=TASK_ADMIN))
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    agent = ScriptedAgent(server, "p", "127.0.4.1")
    try:
        welcome = await agent.connect()
        assert [a.name for a in welcome.user_accounts] == ["alice"]
        assert welcome.user_accounts[0].linux_user_configuration.uid == 4321
        assert welcome.start_task.user_identity == TASK_ADMIN
        job = job_pb2.Job(
            id="j",
            pool_id="p",
            job_manager_task=job_pb2.JobManagerTask(command_line="/bin/true", user_identity=TASK_ADMIN),
            job_preparation_task=job_pb2.JobPreparationTask(command_line="/bin/true", user_identity=ALICE),
            job_release_task=job_pb2.JobReleaseTask(command_line="/bin/true", user_identity=TASK_ADMIN),
        )
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job))
        msg = await agent.expect("start_tasks")
        (jm,) = msg.start_tasks.tasks
        assert jm.attempt.task_id == "jobmanager"
        assert jm.user_identity == TASK_ADMIN
        assert jm.job_preparation.user_identity == ALICE
        # The preparation ran here (so the release will), then the job manager.
        prep = agent_pb2.AttemptRef(job_id="j", task_id="jobpreparation", attempt=1)
        await agent.event(
            prep, agent_pb2.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=agent_pb2.JOB_TASK_KIND_PREPARATION
        )
        await agent.event(jm.attempt, agent_pb2.TASK_EVENT_KIND_COMPLETED, exit_code=0)
        # (The job manager's end terminates the job: the release runs on the node.)
        release = await agent.expect("run_job_release")
        assert release.run_job_release.release.user_identity == TASK_ADMIN
    finally:
        await agent.close()


async def test_default_identity_is_not_sent(server: ShoalServer, stubs: Stubs) -> None:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.4.2")
    try:
        welcome = await agent.connect()
        assert list(welcome.user_accounts) == []
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
        await stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(parent="jobs/j", task=task_pb2.TaskSpec(id="t", command_line="/bin/true"))
        )
        (a,) = (await agent.expect("start_tasks")).start_tasks.tasks
        assert not a.HasField("user_identity")
    finally:
        await agent.close()


async def test_node_reports_its_isolation(server: ShoalServer, stubs: Stubs) -> None:
    """What the agent says in Register (tasks as their users or as the agent's) shows in GetNode."""
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.4.3")
    agent.register_extra = {"task_user_isolation": True, "agent_user": "root"}
    try:
        await agent.connect()
        node = await stubs.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p/nodes/{agent.node_id}"))
        assert node.task_user_isolation is True
        assert node.agent_user == "root"
    finally:
        await agent.close()
