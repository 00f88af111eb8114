"""A task placed for the first time and ending well is changed as its stored bytes (see `wire`): it reads
the same as a task changed field by field, and its row's tag carries its attempt across a restart."""

from __future__ import annotations

import sqlite3

from google.protobuf import duration_pb2, timestamp_pb2

from shoal.agent.v1 import agent_pb2
from shoal.server.app import ServerConfig, ShoalServer
from shoal.server.domain.records import task_tag, untag
from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent

A = agent_pb2
T = task_pb2


def spec(task_id: str) -> T.TaskSpec:
    return T.TaskSpec(
        id=task_id,
        command_line="/bin/echo hello",
        environment_settings=[common_pb2.EnvironmentSetting(name="A", value="1")],
        constraints=common_pb2.TaskConstraints(max_wall_clock_time=duration_pb2.Duration(seconds=60)),
    )


async def complete(agent: ScriptedAgent, ref: A.AttemptRef, event_id: int) -> None:
    """A folded COMPLETED with fixed times, the same for every task."""
    ev = A.TaskEvent(
        event_id=event_id,
        attempt=ref,
        kind=A.TASK_EVENT_KIND_COMPLETED,
        time=timestamp_pb2.Timestamp(seconds=1_800_000_000, nanos=500),
        start_time=timestamp_pb2.Timestamp(seconds=1_799_999_999),
        exit_code=0,
        result=common_pb2.TASK_EXECUTION_RESULT_SUCCESS,
        task_root_directory=f"/tmp/shoal/{ref.job_id}/{ref.task_id}",
    )
    await agent._out.put(A.AgentMessage(task_events=A.TaskEvents(events=[ev])))


def comparable(task: T.Task) -> T.Task:
    """The task without what differs between two jobs' copies of it: its name, times (and the wait they
    make) and job id."""
    out = T.Task()
    out.CopyFrom(task)
    out.ClearField("name")
    out.ClearField("creation_time")
    out.ClearField("state_transition_time")
    out.ClearField("etag")  # (a hash of all of the above)
    out.stats.ClearField("wait_seconds")  # (from its creation time)
    out.node_info.task_root_directory = out.node_info.task_root_directory.replace("/fast/", "/j/").replace(
        "/slow/", "/j/"
    )
    return out


async def test_a_task_changed_as_bytes_reads_as_one_changed_in_place(server, stubs) -> None:
    cp = server.cp
    cp.dispatch_ahead = 0
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, task_slots_per_node=1, provider="join"))
    )
    agent = ScriptedAgent(server, "p", "127.0.2.11")
    await agent.connect()
    for job in ("fast", "slow"):
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job, pool_id="p")))
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/fast", tasks=[spec("t")]))
    fast = (await agent.expect("start_tasks")).start_tasks.tasks[0]
    assert cp.task("fast", "t").frozen  # placed as bytes
    # The node is busy: this one waits, and is made live (as any change in place would) before it is placed.
    await stubs.tasks.AddTasks(T.AddTasksRequest(parent="jobs/slow", tasks=[spec("t")]))
    cp.task("slow", "t").proto.ClearField("etag")
    await complete(agent, fast.attempt, 1)
    slow = (await agent.expect("start_tasks")).start_tasks.tasks[0]
    assert not cp.task("slow", "t").frozen
    await complete(agent, slow.attempt, 2)
    assert (await agent.expect("events_ack")).events_ack.up_to_event_id == 2

    got = {job: await stubs.tasks.GetTask(T.GetTaskRequest(name=f"jobs/{job}/tasks/t")) for job in ("fast", "slow")}
    assert got["fast"].state == T.TASK_STATE_COMPLETED
    assert comparable(got["fast"]) == comparable(got["slow"])
    # The StartTasks of both were the same, but for the job.
    fast.attempt.job_id = slow.attempt.job_id
    assert fast == slow
    counts = await stubs.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name="jobs/fast"))
    assert (counts.completed, counts.succeeded, counts.running, counts.active) == (1, 1, 0, 0)
    node = cp.nodes[cp.task("fast", "t").read().node_info.node_id.lower()]
    assert [(r[1], r[2], r[3]) for r in node.recent] == [("t", 1, 0), ("t", 1, 0)]
    await agent.close()


async def test_a_row_tag_carries_the_attempt_across_a_restart(tmp_path) -> None:
    """A task waiting for its second attempt comes back from its row's tag, attempt intact (and from its
    bytes when the tag predates attempts)."""
    config = ServerConfig(data_dir=tmp_path / "data", listen="127.0.0.1:0", publish_address=False)
    srv = ShoalServer(config)
    await srv.start()
    cp = srv.cp
    cp.dispatch_ahead = 0
    await cp.create_pool(pool_pb2.Pool(id="p", target_nodes=0, task_slots_per_node=1, provider="join"))
    agent = ScriptedAgent(srv, "p", "127.0.2.12")
    await agent.connect()
    await cp.create_job(job_pb2.Job(id="j", pool_id="p"))
    retry = T.TaskSpec(
        id="t0", command_line="/bin/false", constraints=common_pb2.TaskConstraints(max_task_retry_count=3)
    )
    await cp.add_tasks("j", [retry, T.TaskSpec(id="t1", command_line="/bin/true")])
    first = (await agent.expect("start_tasks")).start_tasks.tasks[0].attempt
    assert first.task_id == "t0" and first.attempt == 1
    # It fails and is retried: behind t1 in the queue, which takes the node.
    await agent.event(first, A.TASK_EVENT_KIND_COMPLETED, exit_code=1)
    assert (await agent.expect("start_tasks")).start_tasks.tasks[0].attempt.task_id == "t1"
    t0 = cp.task("j", "t0")
    assert (t0.state, t0.attempt) == (T.TASK_STATE_ACTIVE, 1)
    await agent.close()
    await srv.stop(stop_agents=True)

    db = sqlite3.connect(config.data_dir / "shoal.db")
    (tag,) = db.execute("SELECT tag FROM tasks WHERE key = 'j/t0'").fetchone()
    assert tag == task_tag(T.TASK_STATE_ACTIVE, 0, 1) and untag(tag) == (T.TASK_STATE_ACTIVE, 0, 1)

    for old_tags in (False, True):
        if old_tags:
            # As written before attempts were tagged: state (and result) only.
            with db:
                db.execute("UPDATE tasks SET tag = tag & 255")
        again = ShoalServer(config)
        await again.start()
        try:
            t0 = again.cp.task("j", "t0")
            assert (t0.state, t0.attempt) == (T.TASK_STATE_ACTIVE, 1)
            assert list(again.cp.job("j").queue) == ["t0"]
        finally:
            await again.stop(stop_agents=True)
        # An old tag is written again in full by the load, so that the next restart need not parse the row.
        (tag,) = db.execute("SELECT tag FROM tasks WHERE key = 'j/t0'").fetchone()
        assert tag == task_tag(T.TASK_STATE_ACTIVE, 0, 1)
    db.close()
