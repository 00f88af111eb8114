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
