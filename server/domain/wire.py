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

from google.protobuf import timestamp_pb2

from shoal.v1 import task_pb2

#: Field 1 (`name`) and field 2 (`spec`) of `Task`, length-delimited (wire type 2).
_NAME_TAG = bytes([1 << 3 | 2])
_SPEC_TAG = bytes([2 << 3 | 2])


#: The varint of every length below 2**14, two bytes at most: names and most specs are shorter.
_SHORT = [bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)]


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
