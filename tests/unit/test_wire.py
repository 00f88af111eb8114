"""The wire form of a new task is exactly what its message would serialize to."""

from __future__ import annotations

from google.protobuf import timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.server.domain.wire import new_task_bytes, new_task_tail
from shoal.v1 import common_pb2, task_pb2

T = task_pb2

specs = st.builds(
    lambda tid, cmd, env, slots, files: T.TaskSpec(
        id=tid,
        command_line=cmd,
        environment_settings=[common_pb2.EnvironmentSetting(name=k, value=v) for k, v in env],
        required_slots=slots,
        resource_files=[common_pb2.ResourceFile(file_path=f, http_url="http://127.0.0.1/x") for f in files],
    ),
    st.text(min_size=1, max_size=64),
    st.text(max_size=3000),  # long enough for lengths of two and three varint bytes
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=200)), max_size=5),
    st.integers(min_value=0, max_value=64),
    st.lists(st.text(max_size=30), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    spec=specs, job=st.text(min_size=1, max_size=64), seconds=st.integers(0, 2**33), nanos=st.integers(0, 999_999_999)
)
def test_new_task_bytes_equal_the_messages_serialization(spec, job, seconds, nanos) -> None:
    now = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    name = f"jobs/{job}/tasks/{spec.id}"
    expected = T.Task(
        name=name, spec=spec, state=T.TASK_STATE_ACTIVE, creation_time=now, state_transition_time=now
    ).SerializeToString()
    data = new_task_bytes(name, spec.SerializeToString(), new_task_tail(T.TASK_STATE_ACTIVE, now))
    assert data == expected
    parsed = T.Task.FromString(data)
    assert parsed.spec == spec and parsed.name == name and parsed.creation_time == now


def test_long_specs_and_names() -> None:
    now = timestamp_pb2.Timestamp(seconds=1, nanos=2)
    for size in (127, 128, 16383, 16384, 2_100_000):
        spec = T.TaskSpec(id="t", command_line="x" * size)
        name = "jobs/" + "j" * size + "/tasks/t"
        expected = T.Task(
            name=name, spec=spec, state=T.TASK_STATE_ACTIVE, creation_time=now, state_transition_time=now
        ).SerializeToString()
        assert new_task_bytes(name, spec.SerializeToString(), new_task_tail(T.TASK_STATE_ACTIVE, now)) == expected


# ---------------------------------------------------------------- changes appended to a stored task

timestamps = st.builds(
    lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n),
    st.integers(0, 2**33),
    st.sampled_from([0, 1, 999_999_999]) | st.integers(0, 999_999_999),
)
texts = st.text(max_size=300)


@settings(max_examples=200, deadline=None)
@given(
    spec=specs,
    created=timestamps,
    placed_at=timestamps,
    node=st.tuples(texts, texts, texts),
    start=timestamps,
    end=timestamps,
    exit_code=st.none() | st.integers(-(2**31), 2**31 - 1),
    root=texts,
)
def test_appended_changes_read_as_the_message_changed_in_place(
    spec, created, placed_at, node, start, end, exit_code, root
) -> None:
    """A first placement and a successful end, appended to a new task's bytes, parse to the message
    that `ControlPlane.assign` and `_complete_attempt` make by changing it field by field."""
    from shoal.server.domain import wire

    data = new_task_bytes("jobs/j/tasks/t", spec.SerializeToString(), new_task_tail(T.TASK_STATE_ACTIVE, created))
    pool_id, node_id, address = node
    placed = wire.FIRST_ATTEMPT + wire.state_change(
        T.TASK_STATE_PREPARING, T.TASK_STATE_ACTIVE, wire.transition_time(placed_at.seconds, placed_at.nanos)
    )
    data += placed + wire.node_info(pool_id, node_id, address)

    expected = T.Task.FromString(new_task_bytes("jobs/j/tasks/t", spec.SerializeToString(), b""))
    expected.state = T.TASK_STATE_ACTIVE
    expected.creation_time.CopyFrom(created)
    expected.attempt = 1
    expected.node_info.CopyFrom(T.TaskNodeInfo(pool_id=pool_id, node_id=node_id, node_address=address))
    expected.previous_state = T.TASK_STATE_ACTIVE
    expected.state = T.TASK_STATE_PREPARING
    expected.state_transition_time.CopyFrom(placed_at)
    assert T.Task.FromString(data) == expected

    ended_at = timestamp_pb2.Timestamp(seconds=end.seconds + 1, nanos=0)
    change = wire.state_change(
        T.TASK_STATE_COMPLETED, T.TASK_STATE_RUNNING, wire.transition_time(ended_at.seconds, ended_at.nanos)
    )
    success = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
    data += wire.ended(change, start.SerializeToString(), end.SerializeToString(), exit_code, success, root)
    info = expected.execution_info
    info.start_time.CopyFrom(start)
    info.end_time.CopyFrom(end)
    if exit_code is not None:
        info.exit_code = exit_code
    info.result = success
    if root:
        expected.node_info.task_root_directory = root
    expected.previous_state = T.TASK_STATE_RUNNING
    expected.state = T.TASK_STATE_COMPLETED
    expected.state_transition_time.CopyFrom(ended_at)
    parsed = T.Task.FromString(data)
    assert parsed == expected
    # What the server stores again once it changes the task in place is the same message.
    assert T.Task.FromString(parsed.SerializeToString()) == expected


def test_a_placement_replaces_what_the_fields_held() -> None:
    """Zero values are written out: merged into a task, they replace what was there."""
    from shoal.server.domain import wire

    task = T.Task(state=T.TASK_STATE_ACTIVE, previous_state=T.TASK_STATE_COMPLETED)
    task.state_transition_time.CopyFrom(timestamp_pb2.Timestamp(seconds=5, nanos=7))
    task.node_info.CopyFrom(T.TaskNodeInfo(pool_id="old", node_id="old", task_root_directory="/old", node_address="x"))
    change = wire.state_change(T.TASK_STATE_PREPARING, T.TASK_STATE_ACTIVE, wire.transition_time(0, 0))
    merged = T.Task.FromString(task.SerializeToString() + change + wire.node_info("p", "n", ""))
    assert merged.state_transition_time == timestamp_pb2.Timestamp()
    assert merged.node_info == T.TaskNodeInfo(pool_id="p", node_id="n")
    assert (merged.state, merged.previous_state) == (T.TASK_STATE_PREPARING, T.TASK_STATE_ACTIVE)
