"""Error mapping: real rich statuses from a real in-process gRPC server become ShoalError subclasses."""

from __future__ import annotations

import grpc
import pytest

from shoal.client import (
    AlreadyExists,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ShoalError,
    TaskSpec,
    Unavailable,
)

from .fake_server import FakeServer


def test_not_found_carries_reason(client: Client) -> None:
    with pytest.raises(NotFound) as e:
        client.pools.get("nope")
    err = e.value
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "POOL_NOT_FOUND"
    assert err.metadata == {"k": "v"}
    assert "pool nope not found" in str(err)
    assert isinstance(err, ShoalError)


def test_invalid_argument_has_field_violations(client: Client) -> None:
    with pytest.raises(InvalidArgument) as e:
        client.pools.create(id="bad id!", target_nodes=1, task_slots_per_node=999)
    err = e.value
    assert err.reason == "INVALID_POOL"
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field_violations == [
        ("pool.id", "1..64 letters, digits, '-' and '_'"),
        ("pool.task_slots_per_node", "0..256"),
    ]
    assert isinstance(err, ValueError)


def test_already_exists_and_failed_precondition(client: Client) -> None:
    client.pools.create(id="p1", target_nodes=1)
    with pytest.raises(AlreadyExists) as e:
        client.pools.create(id="P1", target_nodes=1)
    assert e.value.reason == "POOL_EXISTS"
    client.jobs.create(id="j1", pool_id="p1")
    client.jobs.terminate("j1")
    with pytest.raises(FailedPrecondition) as f:
        client.jobs.terminate("j1")
    assert f.value.reason == "JOB_COMPLETED"


def test_errors_from_streams(client: Client, fake: FakeServer) -> None:
    with pytest.raises(NotFound) as e:
        list(client.tasks.wait("nojob"))
    assert e.value.reason == "JOB_NOT_FOUND"
    client.pools.create(id="p", target_nodes=0)
    client.jobs.create(id="j", pool_id="p")
    client.tasks.add("j", TaskSpec(id="t", command_line="x"))
    with pytest.raises(FailedPrecondition) as e1:
        client.tasks.read_file("j", "t", "stdout.txt")
    assert e1.value.reason == "TASK_FILES_UNAVAILABLE"
    fake.call(fake.state.set_running, "j", "t")
    with pytest.raises(NotFound) as e2:
        client.tasks.read_file("j", "t", "stdout.txt")
    assert e2.value.reason == "FILE_NOT_FOUND"
    with pytest.raises(NotFound) as e3:
        client.storage.download_bytes("nocontainer", "x")
    assert e3.value.reason == "CONTAINER_NOT_FOUND"


def test_unavailable_when_nobody_listens() -> None:
    server = FakeServer().start()
    address = server.address
    server.stop()
    with Client.connect(address, timeout=5) as c, pytest.raises(Unavailable) as e:
        c.pools.get("x")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(e.value, ConnectionError)


def test_status_without_details_maps_by_code() -> None:
    class Plain(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.RESOURCE_EXHAUSTED

        def details(self) -> str:
            return "too much"

        def trailing_metadata(self) -> tuple[()]:
            return ()

    from shoal.client import from_rpc_error

    err = from_rpc_error(Plain())
    assert type(err) is ShoalError
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.reason == ""
    assert str(err) == "too much"


def test_a_reason_with_a_class_of_its_own() -> None:
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    from shoal.client import TaskFilesCleanedUp, from_rpc_error

    def rich(code: grpc.StatusCode, reason: str) -> grpc.RpcError:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="shoal.v1"))
        status = status_pb2.Status(code=code.value[0], message="gone", details=[detail])

        class Rich(grpc.RpcError):
            def code(self) -> grpc.StatusCode:
                return code

            def details(self) -> str:
                return "gone"

            def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
                return (("grpc-status-details-bin", status.SerializeToString()),)

        return Rich()

    err = from_rpc_error(rich(grpc.StatusCode.NOT_FOUND, "TASK_FILES_CLEANED_UP"))
    assert type(err) is TaskFilesCleanedUp and isinstance(err, NotFound)
    assert err.reason == "TASK_FILES_CLEANED_UP"
    # The code decides first: the same reason on another code is not dressed as NotFound.
    assert (
        type(from_rpc_error(rich(grpc.StatusCode.FAILED_PRECONDITION, "TASK_FILES_CLEANED_UP"))) is FailedPrecondition
    )
    assert type(from_rpc_error(rich(grpc.StatusCode.NOT_FOUND, "FILE_NOT_FOUND"))) is NotFound
