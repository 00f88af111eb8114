"""An error repeats a client's value only in part: whatever was sent, the status fits the client's limits."""

from __future__ import annotations

import grpc
import pytest
from grpc_status import rpc_status

from shoal.server.api.errors import MAX_MESSAGE_BYTES, MAX_STATUS_BYTES, ApiError, clip, shown
from shoal.v1 import common_pb2, job_pb2, pool_pb2, storage_pb2, task_pb2
from tests.service.test_validation import details, make_pool_and_job

LONG = "x" * 6000
#: 3 bytes each in UTF-8, 9 once percent-encoded into the grpc-message trailer.
WIDE = "\u30d7" * 6000


def _small(err: grpc.aio.AioRpcError) -> None:
    status = rpc_status.from_call(err)
    assert status is not None
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES
    assert status.ByteSize() <= MAX_STATUS_BYTES


@pytest.mark.parametrize("value", [LONG, WIDE], ids=["ascii", "wide"])
async def test_a_6000_character_pool_id_or_name_is_invalid_argument_with_its_reason(stubs, value: str) -> None:
    calls = [
        (stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id=value))), "INVALID_POOL", "pool.id"),
        (stubs.pools.GetPool(pool_pb2.GetPoolRequest(name=value)), "INVALID_NAME", "name"),
        (stubs.pools.GetPool(pool_pb2.GetPoolRequest(name="pools/" + value)), "INVALID_NAME", "name"),
        (stubs.jobs.GetJob(job_pb2.GetJobRequest(name=value)), "INVALID_NAME", "name"),
        (stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent=value)), "INVALID_NAME", "parent"),
        (
            stubs.storage.CreateContainer(storage_pb2.CreateContainerRequest(id=value)),
            "INVALID_CONTAINER_ID",
            "id",
        ),
        (
            stubs.storage.DeleteBlob(storage_pb2.DeleteBlobRequest(container="box", blob_name=value)),
            "INVALID_BLOB_NAME",
            "blob_name",
        ),
    ]
    for call, reason, field in calls:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        assert details(e.value)[0] == reason
        assert field in [f for f, _ in details(e.value)[1]]
        _small(e.value)


async def test_many_long_violations_are_cut_and_counted(stubs) -> None:
    await make_pool_and_job(stubs)
    bad = common_pb2.ResourceFile(storage_container_name="box", file_path="../" + WIDE[:3000])
    specs = [task_pb2.TaskSpec(id=f"t{i}", command_line="x", resource_files=[bad]) for i in range(200)]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/j1", tasks=specs))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(e.value)
    assert reason == "INVALID_TASK"
    assert violations[0][0] == "tasks[0].resource_files[0].file_path"
    assert 1 <= len(violations) < 100
    _small(e.value)
    status = rpc_status.from_call(e.value)
    assert status is not None
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert int(info.metadata["omitted_violations"]) == 100 - len(violations)  # (AddTasks stops at 100)


def test_clip_and_shown() -> None:
    assert clip("abc", 10) == "abc"
    cut = clip("\u30d7" * 100, 10)
    assert len(cut.encode()) <= 10 and cut.endswith("\u2026")
    assert clip("a\udcff", 10) == "a?"  # a lone surrogate cannot go into a protobuf string
    assert shown("x" * 1000).endswith("\u2026") and len(shown("x" * 1000)) == 200
    assert shown("ab") == "'ab'"


def test_to_status_stays_small_whatever_the_error_holds() -> None:
    e = ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "R" * 1000,
        WIDE,
        [(WIDE, WIDE)] * 500,
        {f"k{i}": WIDE for i in range(100)},
    )
    status = e.to_status()
    assert status.ByteSize() <= MAX_STATUS_BYTES
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES
