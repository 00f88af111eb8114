"""What the server sends agents of containers, recorded by a scripted agent: the pool's configuration in the
Welcome (passwords filled in), a task's container in its assignment (its registry's password filled in),
the job manager's, preparation's and release's, the start task's; the node's container engine from its
Register; the container info the agent reports, in the task's execution info."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import timestamp_pb2

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent

pytestmark = pytest.mark.timeout(60)

A = agent_pb2
C = common_pb2
SECRET = "pw-Zq81-never-shown"
REGISTRY = C.ContainerRegistry(registry_server="reg.example:5000", user_name="bot")


def container_pool(pool_id: str = "cp", **extra: object) -> pool_pb2.Pool:
    cfg = C.ContainerConfiguration(
        container_image_names=["reg.example:5000/tools:1", "busybox"],
        container_registries=[
            C.ContainerRegistry(registry_server="reg.example:5000", user_name="bot", password=SECRET),
            C.ContainerRegistry(registry_server="other.example", user_name="nobody"),
        ],
    )
    return pool_pb2.Pool(
        id=pool_id,
        target_nodes=1,
        provider="join",
        container_configuration=cfg,
        **extra,  # type: ignore[arg-type]
    )


async def report(agent: ScriptedAgent, ref: A.AttemptRef, kind: int, info: C.TaskContainerExecutionInfo) -> None:
    """A TaskEvent with the attempt's container info (a success when COMPLETED)."""
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    ev = A.TaskEvent(event_id=next(agent._ids), attempt=ref, kind=kind, time=now, start_time=now, container_info=info)  # type: ignore[arg-type]
    if kind == A.TASK_EVENT_KIND_COMPLETED:
        ev.exit_code = 0
        ev.result = C.TASK_EXECUTION_RESULT_SUCCESS
    await agent._out.put(A.AgentMessage(task_events=A.TaskEvents(events=[ev])))
    await agent.expect("events_ack")


class Agent(ScriptedAgent):
    """A scripted agent that can wait for one kind of message past others."""

    async def expect_skipping(self, kind: str, timeout: float = 10.0) -> A.ServerMessage:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.inbox.get()
                if msg.WhichOneof("body") == kind:
                    return msg


async def test_the_welcome_carries_the_pool_configuration_and_the_start_task_container(server, stubs) -> None:
    st = C.StartTask(
        command_line="/bin/true",
        container_settings=C.TaskContainerSettings(image_name="reg.example:5000/tools:1", registry=REGISTRY),
    )
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool(start_task=st)))
    agent = ScriptedAgent(server, "cp", "127.0.2.71")
    agent.register_extra = {"container_engine": "podman 4.3.1, runc"}
    try:
        welcome = await agent.connect()
        cfg = welcome.containers
        assert list(cfg.container_image_names) == ["reg.example:5000/tools:1", "busybox"]
        assert [(r.registry_server, r.user_name, r.password) for r in cfg.container_registries] == [
            ("reg.example:5000", "bot", SECRET),
            ("other.example", "nobody", ""),
        ]
        assert welcome.start_task.container_settings.image_name == "reg.example:5000/tools:1"
        assert welcome.start_task.container_settings.registry.password == SECRET
        node = await stubs.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/cp/nodes/{agent.node_id}"))
        assert node.container_engine == "podman 4.3.1, runc"
        listed = await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/cp"))
        assert [n.container_engine for n in listed.nodes] == ["podman 4.3.1, runc"]
        # Still nothing of it in any read.
        pool = await stubs.pools.GetPool(pool_pb2.GetPoolRequest(name="pools/cp"))
        assert SECRET.encode() not in pool.SerializeToString()
    finally:
        await agent.close()


async def test_a_plain_pool_sends_no_containers(server, stubs) -> None:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.72")
    try:
        welcome = await agent.connect()
        assert not welcome.HasField("containers")
        node = await stubs.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p/nodes/{agent.node_id}"))
        assert node.container_engine == ""
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
        await stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(parent="jobs/j", task=task_pb2.TaskSpec(id="t", command_line="/bin/true"))
        )
        start = await agent.expect("start_tasks")
        assert not start.start_tasks.tasks[0].HasField("container")
    finally:
        await agent.close()


async def test_an_assignment_carries_the_task_container_with_its_password(server, stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool(task_slots_per_node=2)))
    agent = ScriptedAgent(server, "cp", "127.0.2.73")
    try:
        await agent.connect()
        await agent.send_images_pulled()
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="cp")))
        # The registry by server and user; and by user alone, its server the image name's.
        named = C.TaskContainerSettings(
            image_name="reg.example:5000/tools:1",
            container_run_options="--memory 256m",
            registry=REGISTRY,
            working_directory=C.CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT,
        )
        by_image = C.TaskContainerSettings(
            image_name="REG.example:5000/tools:1", registry=C.ContainerRegistry(user_name="bot")
        )
        specs = [
            task_pb2.TaskSpec(id="a", command_line="/bin/true", container_settings=named),
            task_pb2.TaskSpec(id="b", command_line="/bin/true", container_settings=by_image),
        ]
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j", tasks=specs))
        sent = {}
        while len(sent) < 2:
            for a in (await agent.expect("start_tasks")).start_tasks.tasks:
                sent[a.attempt.task_id] = a
        a = sent["a"].container
        assert (a.image_name, a.container_run_options, a.working_directory) == (
            "reg.example:5000/tools:1",
            "--memory 256m",
            C.CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT,
        )
        assert (a.registry.registry_server, a.registry.user_name, a.registry.password) == (
            "reg.example:5000",
            "bot",
            SECRET,
        )
        assert sent["b"].container.registry.password == SECRET
        # The task as read keeps no password.
        t = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/a"))
        assert t.spec.container_settings.registry.password == ""
        assert SECRET.encode() not in t.SerializeToString()
        # The container info the agent reports: on a task kept as bytes (a success with no RUNNING
        # before it), and on a live one (RUNNING, then its end).
        info_b = C.TaskContainerExecutionInfo(container_id="shoal-j-b-1", state="exited")
        await report(agent, sent["b"].attempt, A.TASK_EVENT_KIND_COMPLETED, info_b)
        t = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/b"))
        assert t.state == task_pb2.TASK_STATE_COMPLETED
        assert t.execution_info.container_info == info_b
        running = C.TaskContainerExecutionInfo(container_id="shoal-j-a-1", state="running")
        await report(agent, sent["a"].attempt, A.TASK_EVENT_KIND_RUNNING, running)
        t = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/a"))
        assert t.state == task_pb2.TASK_STATE_RUNNING and t.execution_info.container_info == running
        ended = C.TaskContainerExecutionInfo(container_id="shoal-j-a-1", state="exited")
        await report(agent, sent["a"].attempt, A.TASK_EVENT_KIND_COMPLETED, ended)
        t = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/a"))
        assert t.state == task_pb2.TASK_STATE_COMPLETED and t.execution_info.container_info == ended
    finally:
        await agent.close()


async def test_job_manager_preparation_and_release_containers_reach_the_node(server, stubs) -> None:
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool()))
    agent = Agent(server, "cp", "127.0.2.74")
    settings = C.TaskContainerSettings(image_name="reg.example:5000/tools:1", registry=REGISTRY)
    try:
        await agent.connect()
        await agent.send_images_pulled()
        job = job_pb2.Job(
            id="j",
            pool_id="cp",
            job_manager_task=job_pb2.JobManagerTask(command_line="/bin/true", container_settings=settings),
            job_preparation_task=job_pb2.JobPreparationTask(command_line="/bin/true", container_settings=settings),
            job_release_task=job_pb2.JobReleaseTask(command_line="/bin/true", container_settings=settings),
        )
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job))
        start = await agent.expect("start_tasks")
        jm = start.start_tasks.tasks[0]
        assert jm.attempt.task_id == "jobmanager"
        assert jm.container.image_name == "reg.example:5000/tools:1"
        assert jm.container.registry.password == SECRET
        assert jm.job_preparation.container.image_name == "reg.example:5000/tools:1"
        assert jm.job_preparation.container.registry.password == SECRET
        t = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/jobmanager"))
        assert t.spec.container_settings.image_name == "reg.example:5000/tools:1"
        # The preparation ran on the node: the job's end asks for its release, in its container.
        prep = A.AttemptRef(job_id="j", task_id="jobpreparation", attempt=1)
        await agent.event(prep, A.TASK_EVENT_KIND_COMPLETED, exit_code=0, job_task=A.JOB_TASK_KIND_PREPARATION)
        await stubs.jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/j"))
        release = (await agent.expect_skipping("run_job_release")).run_job_release.release
        assert release.container.image_name == "reg.example:5000/tools:1"
        assert release.container.registry.password == SECRET
    finally:
        await agent.close()


async def test_a_node_takes_no_task_until_the_pools_images_are_pulled(server, stubs) -> None:
    """As Batch: a container pool's node is STARTING while its agent pulls the pool's images, IDLE once they
    are there; an image that could not be pulled leaves it UNUSABLE. A task added meanwhile waits."""
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=container_pool()))
    agent = ScriptedAgent(server, "cp", "127.0.2.75")

    async def state() -> int:
        nodes = await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/cp"))
        return nodes.nodes[0].state

    try:
        await agent.connect()
        assert await state() == pool_pb2.NODE_STATE_STARTING
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="cp")))
        await stubs.tasks.AddTask(
            task_pb2.AddTaskRequest(parent="jobs/j", task=task_pb2.TaskSpec(id="t", command_line="x"))
        )
        await asyncio.sleep(0.2)  # (a scheduling pass or two: nothing may be sent)
        assert agent.inbox.empty()
        await agent.send_images_pulled()
        start = await agent.expect("start_tasks")
        assert [a.attempt.task_id for a in start.start_tasks.tasks] == ["t"]
    finally:
        await agent.close()

    again = ScriptedAgent(server, "cp", "127.0.2.76")
    try:
        await again.connect()
        await again.send_images_pulled(pool_pb2.NodeError(code="ContainerInvalidImage", message="no such image"))

        async def unusable() -> None:
            while True:
                nodes = await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/cp"))
                if any(n.state == pool_pb2.NODE_STATE_UNUSABLE for n in nodes.nodes):
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(unusable(), 10)
    finally:
        await again.close()
