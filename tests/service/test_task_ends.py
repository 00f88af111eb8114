"""How a task, or an instance of a multi-instance task, that Shoal ends reads: its exit code, result and
failure info (README, "Failure codes")."""

from __future__ import annotations

from shoal.agent.v1 import agent_pb2
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_multi_instance import get, join_pool, mi_task, wait_state

A = agent_pb2
T = task_pb2
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILURE = common_pb2.TASK_EXECUTION_RESULT_FAILURE


async def start_gang(agents: list[ScriptedAgent]) -> dict[int, tuple[ScriptedAgent, agent_pb2.TaskAssignment]]:
    got = {}
    for a in agents:
        (assignment,) = (await a.expect("start_tasks")).start_tasks.tasks
        got[assignment.multi_instance.instance_index] = (a, assignment)
    return got


async def subtasks(stubs, task_id: str) -> list[task_pb2.Subtask]:
    return list((await stubs.tasks.ListSubtasks(T.ListSubtasksRequest(name=f"jobs/j/tasks/{task_id}"))).subtasks)


async def coordinate(got: dict[int, tuple[ScriptedAgent, agent_pb2.TaskAssignment]]) -> None:
    for a, asg in got.values():
        await a.event(asg.attempt, A.TASK_EVENT_KIND_RUNNING)
    for a, asg in got.values():
        await a.event(asg.attempt, A.TASK_EVENT_KIND_COORDINATED)
    await got[0][0].expect("run_application")


async def test_instances_ended_with_a_successful_primary_succeeded(server, stubs) -> None:
    agents = await join_pool(server, stubs, 3)
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 3)]))
    got = await start_gang(agents)
    await coordinate(got)
    await got[0][0].event(got[0][1].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=0)
    t = await wait_state(stubs, "m", T.TASK_STATE_COMPLETED)
    assert t.execution_info.result == SUCCESS and t.execution_info.exit_code == 0
    primary, *others = await subtasks(stubs, "m")
    assert (primary.result, primary.exit_code, primary.HasField("failure_info")) == (SUCCESS, 0, False)
    for sub in others:
        # Its coordination command exited 0 by itself; it did its part and ended with the task, which succeeded.
        assert sub.state == T.SUBTASK_STATE_COMPLETED
        assert sub.result == SUCCESS and sub.exit_code == 0
        assert not sub.HasField("failure_info")
    for a in agents:
        await a.close()


async def test_instances_ended_with_a_failed_primary_say_so(server, stubs) -> None:
    agents = await join_pool(server, stubs, 2)
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 2)]))
    got = await start_gang(agents)
    await coordinate(got)
    await got[0][0].event(got[0][1].attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=3)
    t = await wait_state(stubs, "m", T.TASK_STATE_COMPLETED)
    assert t.execution_info.result == FAILURE and t.execution_info.exit_code == 3
    primary, sub = await subtasks(stubs, "m")
    assert (primary.result, primary.exit_code, primary.failure_info.code) == (FAILURE, 3, "FailureExitCode")
    assert sub.state == T.SUBTASK_STATE_COMPLETED and sub.result == FAILURE
    # Its own command (the coordination command) exited 0; it was ended because the primary failed.
    assert sub.exit_code == 0
    assert sub.failure_info.code == "TaskEnded"
    assert sub.failure_info.category == common_pb2.ERROR_CATEGORY_SERVER_ERROR
    assert "primary" in sub.failure_info.message and "exit code 3" in sub.failure_info.message
    for a in agents:
        await a.close()


async def test_instances_ended_before_they_exited_get_the_terminated_exit_code(server, stubs) -> None:
    agents = await join_pool(server, stubs, 2)
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=[mi_task("m", 2)]))
    got = await start_gang(agents)
    # Instance 1 is still staging or coordinating when the task is terminated.
    await got[0][0].event(got[0][1].attempt, A.TASK_EVENT_KIND_RUNNING)
    await wait_state(stubs, "m", T.TASK_STATE_RUNNING)
    t = await stubs.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/m"))
    assert t.execution_info.exit_code == TERMINATED_EXIT_CODE
    assert t.execution_info.failure_info.code == "TaskEnded"
    for sub in await subtasks(stubs, "m"):
        assert sub.state == T.SUBTASK_STATE_COMPLETED and sub.result == FAILURE
        assert sub.exit_code == TERMINATED_EXIT_CODE
        assert sub.failure_info.code == "TaskEnded" and "terminated" in sub.failure_info.message
    for a in agents:
        await a.close()


async def test_a_terminated_task_gets_batchs_terminated_exit_code(server, stubs) -> None:
    """0xC000013A, as Batch records for a task it ended; a task ended before it was placed has none."""
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.30")
    await agent.connect()
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    specs = [T.TaskSpec(id="running", command_line="sleep 100"), T.TaskSpec(id="waiting", command_line="true")]
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/j", tasks=specs))
    (asg,) = (await agent.expect("start_tasks")).start_tasks.tasks
    await agent.event(asg.attempt, A.TASK_EVENT_KIND_RUNNING)
    await wait_state(stubs, "running", T.TASK_STATE_RUNNING)
    assert (await get(stubs, "waiting")).state == T.TASK_STATE_ACTIVE
    w = await stubs.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/waiting"))
    assert w.execution_info.failure_info.code == "TaskEnded" and not w.execution_info.HasField("exit_code")

    t = await stubs.tasks.TerminateTask(T.TerminateTaskRequest(name="jobs/j/tasks/running"))
    info = t.execution_info
    assert t.state == T.TASK_STATE_COMPLETED and info.result == FAILURE
    assert info.exit_code == TERMINATED_EXIT_CODE == -1073741510 == 0xC000013A - 2**32
    assert (info.failure_info.category, info.failure_info.code) == (common_pb2.ERROR_CATEGORY_SERVER_ERROR, "TaskEnded")
    # The node is told to kill it; its late report does not change what was recorded.
    await agent.expect("kill_tasks")
    await agent.event(asg.attempt, A.TASK_EVENT_KIND_COMPLETED, exit_code=143, failure="TaskEnded")
    assert (await get(stubs, "running")).execution_info.exit_code == TERMINATED_EXIT_CODE
    await agent.close()
