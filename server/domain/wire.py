"""The stored (wire) form of a new task, made without building its message.

A bulk add makes 100,000 tasks in one call, and a new task is stored and then kept
as bytes until it is placed: building a `Task` message for each (which copies its
spec) only to serialize it and let it go was most of the add's cost. Protobuf
messages concatenate, so the bytes are the task's name and spec, each as a
length-delimited field, followed by the fields every task of the call shares.
The result is what `Task.SerializeToString()` gives for the same fields
(`tests/unit/test_wire.py` checks it).
"""

from __future__ import annotations

from typing import Final

from google.protobuf import timestamp_pb2

from shoal.v1 import task_pb2

#: Field 1 (`name`) and field 2 (`spec`) of `Task`, length-delimited (wire type 2).
_NAME_TAG: Final = bytes([1 << 3 | 2])
_SPEC_TAG: Final = bytes([2 << 3 | 2])


#: The varint of every length below 2**14, two bytes at most: names and most specs are shorter.
_SHORT: Final = [bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)]


def _varint(n: int) -> bytes:
    if n < 1 << 14:
        return _SHORT[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def new_task_tail(state: int, now: timestamp_pb2.Timestamp) -> bytes:
    """The fields every new task of one call shares, serialized: its state and both times (fields 10, 12, 13)."""
    return task_pb2.Task(state=state, creation_time=now, state_transition_time=now).SerializeToString()  # type: ignore[arg-type]


def new_task_bytes(name: str, spec: bytes, tail: bytes) -> bytes:
    """A new task's serialized `Task`: `name`, the serialized `spec`, then `tail` (see `new_task_tail`)."""
    n = name.encode()
    return b"".join((_NAME_TAG, _varint(len(n)), n, _SPEC_TAG, _varint(len(spec)), spec, tail))


# ---------------------------------------------------------------- changes appended to a stored task
#
# Parsing concatenated messages merges them: a scalar field read later replaces the one read
# before, a message field is merged field by field. So a change that only sets fields can be
# appended to a task's stored bytes instead of parsing them into a message, changing it and
# serializing it again (which, with the message's field reads and writes, cost a placed task's
# dispatch and completion more than the rest of their bookkeeping). Every field a change must
# replace is written out, zero values too: a serializer leaves them out, and merging would then
# keep the old value. `tests/unit/test_wire.py` checks each change against the message changed
# the usual way.

#: Field tags (field number << 3 | wire type) of `Task` and of the messages inside it.
_STATE_TRANSITION_TIME: Final = bytes([13 << 3 | 2])
_EXECUTION_INFO: Final = bytes([14 << 3 | 2])
_NODE_INFO: Final = bytes([15 << 3 | 2])
#: `attempt` (field 16, a two-byte tag) = 1.
FIRST_ATTEMPT: Final = bytes([16 << 3 | 0x80, 1, 1])
# Timestamp
_SECONDS: Final = bytes([1 << 3])
_NANOS: Final = bytes([2 << 3])
# TaskExecutionInfo
_START_TIME: Final = bytes([1 << 3 | 2])
_END_TIME: Final = bytes([2 << 3 | 2])
_EXIT_CODE: Final = bytes([3 << 3])
_RESULT: Final = 9 << 3
# TaskNodeInfo
_TASK_ROOT_DIRECTORY: Final = bytes([3 << 3 | 2])

#: `state` and `previous_state` (fields 10 and 11) for every pair of states.
_STATES: Final = {
    (new, old): bytes([10 << 3, new, 11 << 3, old])
    for new in task_pb2.TaskState.values()
    for old in task_pb2.TaskState.values()
}


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the length of `body`, `body`."""
    return b"".join((tag, _varint(len(body)), body))


def _signed(n: int) -> bytes:
    """An int32 or int64 varint: negative numbers take ten bytes (two's complement of 64 bits)."""
    return _varint(n if n >= 0 else n + (1 << 64))


def transition_time(seconds: int, nanos: int) -> bytes:
    """`state_transition_time` with both of its fields written out, zeros included."""
    return _field(_STATE_TRANSITION_TIME, b"".join((_SECONDS, _signed(seconds), _NANOS, _signed(nanos))))


def state_change(new: int, old: int, transition_time: bytes) -> bytes:
    """`state` = `new`, `previous_state` = `old`, and `transition_time` (see `transition_time`)."""
    return _STATES[new, old] + transition_time


def node_info(pool_id: str, node_id: str, address: str) -> bytes:
    """`node_info` of a task placed on a node, every field written out (the task directory empty): it
    replaces what an earlier placement left."""
    fields = ((1, pool_id.encode()), (2, node_id.encode()), (3, b""), (4, address.encode()))
    return _field(_NODE_INFO, b"".join(_field(bytes([n << 3 | 2]), v) for n, v in fields))


def ended(
    state_change: bytes, start: bytes, end: bytes, exit_code: int | None, result: int, task_root_directory: str
) -> bytes:
    """The end of an attempt for which no start, end, exit code, failure or result is recorded yet
    (`start` and `end`: serialized Timestamps, `result` a TaskExecutionResult)."""
    short = _SHORT
    exit_field = b"" if exit_code is None else _EXIT_CODE + _signed(exit_code)
    info = b"".join(
        (_START_TIME, short[len(start)], start, _END_TIME, short[len(end)], end, exit_field, bytes([_RESULT, result]))
    )
    change = b"".join((state_change, _EXECUTION_INFO, short[len(info)], info))
    if not task_root_directory:
        return change
    return change + _field(_NODE_INFO, _field(_TASK_ROOT_DIRECTORY, task_root_directory.encode()))


#: TaskExecutionInfo.container_info (field 11).
_CONTAINER_INFO: Final = bytes([11 << 3 | 2])


def container_info(info: bytes) -> bytes:
    """`execution_info.container_info` set to the serialized `TaskContainerExecutionInfo` `info`: appended
    to an attempt's end that recorded none before (merged on parsing, as every change here)."""
    return _field(_EXECUTION_INFO, _field(_CONTAINER_INFO, info))
