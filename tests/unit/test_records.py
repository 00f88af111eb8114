"""Record helpers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.server.domain.records import (
    RECENT_TASKS_PER_NODE,
    AgentSession,
    JobRec,
    NodeRec,
    SlotMap,
    TaskRec,
    task_shape,
    task_tag,
)
from shoal.v1 import pool_pb2, task_pb2

ops = st.lists(st.tuples(st.sampled_from(["set", "pop", "clear"]), st.integers(0, 4), st.integers(1, 4)), max_size=40)


@given(ops)
def test_slot_map_total_is_the_sum(script: list[tuple[str, int, int]]) -> None:
    m = SlotMap()
    for op, k, v in script:
        key = ("j", f"t{k}")
        if op == "set":
            m[key] = v
        elif op == "pop":
            m.pop(key, None)
        else:
            m.clear()
        assert m.total == sum(m.values())


async def test_event_acks_ride_on_queued_messages_or_leave_alone_after_a_delay() -> None:
    import asyncio

    from shoal.agent.v1 import agent_pb2

    s = AgentSession("n1", "boot")
    s.send(agent_pb2.ServerMessage(welcome=agent_pb2.Welcome(node_id="n1")))
    assert (await s.get()).WhichOneof("body") == "welcome"
    # A message still waiting for the writer carries the acknowledgement.
    s.send(agent_pb2.ServerMessage(start_tasks=agent_pb2.StartTasks(command_id=1)))
    s.ack(5)
    s.ack(7)
    msg = await s.get()
    assert msg.WhichOneof("body") == "start_tasks" and msg.events_acked_up_to == 7
    # Nothing queued: the next message sent within the delay takes it ...
    s.ack(9)
    s.send(agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(command_id=2)))
    assert (await s.get()).events_acked_up_to == 9
    # ... and without one, an EventsAck of its own goes out after it.
    s.ack(12)
    alone = await asyncio.wait_for(s.get(), 2)
    assert alone.WhichOneof("body") == "events_ack" and alone.events_ack.up_to_event_id == 12
    s.close()
    assert await s.get() is None


def test_a_frozen_task_is_read_without_being_kept() -> None:
    from shoal.v1 import task_pb2

    proto = task_pb2.Task(spec=task_pb2.TaskSpec(id="t1"), state=task_pb2.TASK_STATE_COMPLETED)
    t = TaskRec("j", "t1", 1, proto)
    data = t.stored_bytes(cold=True)
    assert t.frozen and t.state == task_pb2.TASK_STATE_COMPLETED
    assert t.read().spec.id == "t1" and t.frozen  # a copy to look at
    assert t.stored_bytes(cold=True) is data  # no work while frozen
    t.proto.attempt = 2  # a change brings it back, and it stays
    assert not t.frozen and t.read().attempt == 2


def test_dequeue_keeps_the_queue_in_order_and_its_head_cheap() -> None:
    from shoal.v1 import job_pb2

    job = JobRec("j", 1, job_pb2.Job(id="j"))
    job.queue = dict.fromkeys(f"t{i}" for i in range(5000))
    for i in range(4000):
        job.dequeue(f"t{i}")
    job.dequeue("absent")
    assert list(job.queue)[:2] == ["t4000", "t4001"] and len(job.queue) == 1000
    assert job._holes < 1024 + 1000  # rebuilt on the way: the holes never outnumber the entries for long


def test_recent_tasks_are_kept_aside_and_shown_on_view() -> None:
    proto = pool_pb2.Node(id="n1", pool_id="P", task_slots=2)
    proto.recent_tasks.add(job_id="j", task_id="old", attempt=1, state="completed", exit_code=3)
    n = NodeRec("n1", proto)
    assert n.pool_key == "p" and list(n.recent) == [("j", "old", 1, 3)]
    for i in range(RECENT_TASKS_PER_NODE + 2):
        n.recent.append(("j", f"t{i}", 1, None if i % 2 else 0))
        n.recent_changed = True
    assert len(proto.recent_tasks) == 1  # not copied until read
    n.running[("j", "a")] = 1
    n.running[("j", "b")] = 2  # sent ahead: more than the node's slots
    view = n.view()
    assert view.running_task_slots == 2
    ids = [r.task_id for r in view.recent_tasks]
    assert ids == [f"t{i}" for i in range(2, RECENT_TASKS_PER_NODE + 2)]
    assert view.recent_tasks[0].HasField("exit_code") and not view.recent_tasks[1].HasField("exit_code")
    # Read back from the stored message, as after a restart.
    again = NodeRec("n1", pool_pb2.Node.FromString(view.SerializeToString()))
    assert list(again.recent) == list(n.recent)


def test_a_stored_task_is_what_the_constructor_makes() -> None:
    from shoal.v1 import task_pb2

    data = task_pb2.Task(spec=task_pb2.TaskSpec(id="t"), state=task_pb2.TASK_STATE_COMPLETED).SerializeToString()
    fast = TaskRec.stored("j", "t", 7, data, task_pb2.TASK_STATE_COMPLETED)
    slow = TaskRec("j", "t", 7, data=data, state=task_pb2.TASK_STATE_COMPLETED)
    # (A class compiled by mypyc, see `shoal.native`, lists its attributes in __mypyc_attrs__.)
    for name in getattr(TaskRec, "__slots__", None) or TaskRec.__mypyc_attrs__:
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.read().spec.id == "t" and fast.frozen


def test_stored_bytes_keeps_a_live_task_live_unless_it_is_cold() -> None:
    proto = task_pb2.Task(spec=task_pb2.TaskSpec(id="t", command_line="x"), state=task_pb2.TASK_STATE_RUNNING)
    t = TaskRec("j", "t", 1, proto)
    data = t.stored_bytes(cold=False)
    assert data == proto.SerializeToString() and not t.frozen
    assert t.stored_bytes(cold=True) == data and t.frozen
    assert t.stored_bytes(cold=True) == data  # frozen: the kept bytes, no work


def test_node_counts_and_placement_are_kept_aside_and_shown_on_view() -> None:
    proto = pool_pb2.Node(id="N1", pool_id="P", ip_address="10.0.0.1", total_tasks_run=5, total_tasks_succeeded=4)
    n = NodeRec("n1", proto)
    assert (n.tasks_run, n.tasks_succeeded) == (5, 4)
    n.tasks_run += 2
    n.tasks_succeeded += 1
    view = n.view()
    assert (view.total_tasks_run, view.total_tasks_succeeded) == (7, 5)
    info = n.placement_info()
    assert (info.pool_id, info.node_id, info.node_address) == ("P", "N1", "10.0.0.1")
    assert n.placement_info() is info  # made once per registration


@given(st.sampled_from(list(task_pb2.TaskState.values())), st.integers(0, 127), st.integers(0, 2**31 - 1))
def test_a_task_tag_gives_back_state_result_and_attempt(state: int, result: int, attempt: int) -> None:
    from shoal.server.domain.records import untag

    got_state, got_result, got_attempt = untag(task_tag(state, result, attempt))
    assert (got_state, got_attempt) == (state, attempt)
    # The result is kept for a completed task only.
    assert got_result == (result if state == task_pb2.TASK_STATE_COMPLETED else 0)
    # A tag written before attempts were tagged: the attempt is unknown, not 0.
    assert untag(state | result << 8)[2] is None


def test_task_shapes_are_shared_and_kept_by_a_frozen_task() -> None:
    from google.protobuf import duration_pb2

    from shoal.v1 import common_pb2

    plain = task_shape(task_pb2.TaskSpec(id="a", command_line="x"))
    assert plain == (1, 1, None, False, False, False)
    assert plain is task_shape(task_pb2.TaskSpec(id="b", required_slots=1))
    limited = task_pb2.TaskSpec(
        id="c",
        required_slots=2,
        constraints=common_pb2.TaskConstraints(max_wall_clock_time=duration_pb2.Duration(seconds=90)),
        multi_instance_settings=task_pb2.MultiInstanceSettings(number_of_instances=3),
    )
    assert task_shape(limited) == (2, 3, 90.0, True, False, False)
    t = TaskRec("j", "c", 1, task_pb2.Task(spec=limited))
    t.stored_bytes(cold=True)
    assert t.shape() == (2, 3, 90.0, True, False, False) and t.frozen


def test_shapes_are_shared_up_to_a_bound(monkeypatch) -> None:
    from shoal.server.domain import records

    monkeypatch.setattr(records, "_SHAPES", {})
    monkeypatch.setattr(records, "MAX_SHARED_SHAPES", 2)
    specs = [task_pb2.TaskSpec(id="x", required_slots=n) for n in (1, 2, 3)]
    first = [task_shape(s) for s in specs]
    again = [task_shape(s) for s in specs]
    # The first two are shared; past the bound each task keeps a shape of its own (equal, not shared).
    assert again[0] is first[0] and again[1] is first[1]
    assert again[2] == first[2] and again[2] is not first[2]
    assert len(records._SHAPES) == 2
