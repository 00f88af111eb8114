"""Calling the API: stubs, error conversion and paging, shared by every resource's sub-API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from shoal.v1 import (
    account_pb2_grpc,
    certificate_pb2_grpc,
    job_pb2_grpc,
    join_pb2_grpc,
    pool_pb2_grpc,
    schedule_pb2_grpc,
    storage_pb2_grpc,
    task_pb2_grpc,
)

from .errors import Cancelled, from_rpc_error

T = TypeVar("T")

#: Items asked for per page when a method iterates over all pages.
PAGE_SIZE = 1000


class Rpc:
    """Calls stubs and turns gRPC errors into :class:`ShoalError`."""

    def __init__(self, channel: grpc.Channel, *, metadata: Sequence[tuple[str, str]], timeout: float | None):
        self.channel = channel
        self.metadata = tuple(metadata)
        self.timeout = timeout
        self.pools = pool_pb2_grpc.PoolServiceStub(channel)
        self.jobs = job_pb2_grpc.JobServiceStub(channel)
        self.schedules = schedule_pb2_grpc.JobScheduleServiceStub(channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(channel)
        self.accounts = account_pb2_grpc.AccountServiceStub(channel)
        self.certificates = certificate_pb2_grpc.CertificateServiceStub(channel)
        self.join = join_pb2_grpc.JoinServiceStub(channel)

    def unary(self, method: Callable[..., T], request: Any, *, timeout: float | None = None) -> T:
        """One unary call with the client's metadata and timeout."""
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def pages(self, method: Callable[..., Any], make_request: Callable[[str], Any], field: str) -> Iterator[Any]:
        """The items in ``field`` of every page, following ``next_page_token``."""
        token = ""
        while True:
            response = self.unary(method, make_request(token))
            yield from getattr(response, field)
            token = response.next_page_token
            if not token:
                return


def wait_or_cancel(cancel: threading.Event | None, seconds: float) -> None:
    """Sleep ``seconds``; :class:`Cancelled` as soon as ``cancel`` is set."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled("wait cancelled", reason="CANCELLED")
