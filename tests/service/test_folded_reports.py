"""A short attempt's RUNNING folded into its COMPLETED: the task still went through RUNNING."""

from __future__ import annotations

from shoal.agent.v1 import agent_pb2
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent

A = agent_pb2


async def test_a_completion_without_a_running_report_counts_as_having_run(server, stubs) -> None:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.9")
    await agent.connect()
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    await stubs.tasks.AddTasks(
        task_pb2.AddTasksRequest(parent="jobs/j", tasks=[task_pb2.TaskSpec(id="t", command_line="/bin/true")])
    )
    start = await agent.expect("start_tasks")
    ref = start.start_tasks.tasks[0].attempt
    await agent.event(ref, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.002)
    ack = await agent.expect("events_ack")
    assert ack.events_ack.up_to_event_id == 1
    t = await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/t"))
    assert t.state == task_pb2.TASK_STATE_COMPLETED
    assert t.previous_state == task_pb2.TASK_STATE_RUNNING
    info = t.execution_info
    assert info.HasField("start_time") and info.HasField("end_time")
    assert info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/j"))
    assert counts.completed == 1 and counts.running == 0 and counts.succeeded == 1
    await agent.close()
