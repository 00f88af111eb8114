"""The Shoal Python client.

::

    from shoal.client import Client, TaskSpec

    client = Client.connect()
    job = client.jobs.create(id="j1", pool_id="local")
    client.tasks.add_many(job.id, (TaskSpec(id=f"t{i}", command_line=f"echo {i}") for i in range(100)))
    for task in client.tasks.wait(job.id):
        print(task.id, task.result)
"""

from __future__ import annotations

from ._client import (
    DEFAULT_ADDRESS,
    Client,
    JobsAPI,
    PoolsAPI,
    StorageAPI,
    TasksAPI,
    TaskWatch,
    resolve_address,
    shoal_home,
)
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ShoalError,
    TaskFilesCleanedUp,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from .types import (
    AddTaskResult,
    AllocationState,
    Blob,
    Container,
    FailureInfo,
    Job,
    JobState,
    MultiInstanceSettings,
    Node,
    NodeFile,
    NodeState,
    OutputFileSpec,
    Pool,
    PoolState,
    RecentTask,
    ResourceFileSpec,
    StartTaskInfo,
    StartTaskSpec,
    Subtask,
    Task,
    TaskCounts,
    TaskSpec,
    TaskState,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "Aborted",
    "AddTaskResult",
    "AllocationState",
    "AlreadyExists",
    "Blob",
    "Cancelled",
    "Client",
    "Container",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FailureInfo",
    "InvalidArgument",
    "Job",
    "JobState",
    "JobsAPI",
    "MultiInstanceSettings",
    "Node",
    "NodeFile",
    "NodeState",
    "NotFound",
    "OutputFileSpec",
    "PermissionDenied",
    "Pool",
    "PoolState",
    "PoolsAPI",
    "RecentTask",
    "ResourceFileSpec",
    "ShoalError",
    "StartTaskInfo",
    "StartTaskSpec",
    "StorageAPI",
    "Subtask",
    "Task",
    "TaskCounts",
    "TaskFilesCleanedUp",
    "TaskSpec",
    "TaskState",
    "TaskWatch",
    "TasksAPI",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
    "resolve_address",
    "shoal_home",
]
