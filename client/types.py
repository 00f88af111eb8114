"""Input specs and result types of the Shoal client.

Inputs (:class:`TaskSpec`, :class:`ResourceFileSpec`, :class:`OutputFileSpec`,
:class:`StartTaskSpec`) are frozen dataclasses with keyword-only fields that
convert to protos with ``to_proto()``. Results (:class:`Pool`, :class:`Node`,
:class:`Job`, :class:`Task`, ...) are frozen dataclasses built from the protos
with ``from_proto()``; the raw message stays reachable as ``.proto``.

The types every resource shares live in :mod:`.common_types`, those of
workflows inside a job (dependencies, exit conditions, the job's own tasks) in
:mod:`.workflow_types`, those of node operations (scheduling state, node counts) in
:mod:`.node_types`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.v1 import common_pb2, job_pb2, join_pb2, pool_pb2, storage_pb2, task_pb2

from ._certificates import CertificateReference
from .application_types import ApplicationPackageReference
from .autopool_types import AutoPoolSpecification, JobSchedulingError, auto_pool_of, scheduling_error_of
from .autoscale_types import AutoScaleRun, AutoScaleSettings
from .common_types import (
    _RESULTS,
    FailureInfo,
    OutputFileSpec,
    ResourceFileSpec,
    TaskConstraints,
    _duration,
    _env_from_proto,
    _env_to_proto,
    _metadata_from_proto,
    _optional_int,
    _ts,
)
from .container_types import (
    ContainerConfiguration,
    TaskContainerExecutionInfo,
    TaskContainerSettings,
    container_info_of,
    container_settings_of,
)
from .errors import InvalidArgument
from .identity_types import UserAccount, UserIdentity, identity_of
from .json_specs import parse_message
from .node_types import NodeError, ResizeError, SchedulingState, scheduling_state_from_proto
from .stats_types import TaskStatistics, UsageStatistics, task_statistics_of
from .workflow_types import (
    DependencyState,
    ExitConditions,
    JobConstraints,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    OnDependencyFailure,
    OnTaskFailure,
    TaskDependencies,
    on_dependency_failure_from_proto,
    on_task_failure_from_proto,
)

__all__ = [
    "AddTaskResult",
    "AllocationState",
    "Blob",
    "Container",
    "FailureInfo",
    "Job",
    "JobState",
    "MultiInstanceSettings",
    "Node",
    "NodeFile",
    "NodeState",
    "OutputFileSpec",
    "Pool",
    "PoolState",
    "RecentTask",
    "ResourceFileSpec",
    "StartTaskInfo",
    "StartTaskSpec",
    "Subtask",
    "Task",
    "TaskChanges",
    "TaskConstraints",
    "TaskCounts",
    "TaskSpec",
    "TaskState",
]


# --------------------------------------------------------------------------- enums


class TaskState(enum.StrEnum):
    """Lifecycle state of a task."""

    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"


class JobState(enum.StrEnum):
    """Lifecycle state of a job."""

    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    DELETING = "deleting"
    DISABLING = "disabling"
    """``jobs.disable``: its running tasks are being requeued, terminated or waited for."""
    DISABLED = "disabled"
    """No task of the job is scheduled."""
    ENABLING = "enabling"
    """``jobs.enable``: on the way back to active."""


class PoolState(enum.StrEnum):
    """Lifecycle state of a pool."""

    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    DELETING = "deleting"


class AllocationState(enum.StrEnum):
    """Whether a pool is resizing."""

    UNSPECIFIED = "unspecified"
    STEADY = "steady"
    RESIZING = "resizing"
    STOPPING = "stopping"


class NodeFillType(enum.StrEnum):
    """How a pool's tasks are placed on its nodes (Batch's ``nodeFillType``)."""

    SPREAD = "spread"
    """Each task goes to the node with the most free slots (the default)."""
    PACK = "pack"
    """A node's slots fill before the next node gets a task."""


class NodeState(enum.StrEnum):
    """State of a compute node (Batch names)."""

    UNSPECIFIED = "unspecified"
    CREATING = "creating"
    STARTING = "starting"
    WAITING_FOR_START_TASK = "waitingforstarttask"
    START_TASK_FAILED = "starttaskfailed"
    IDLE = "idle"
    RUNNING = "running"
    UNKNOWN = "unknown"
    LEAVING_POOL = "leavingpool"
    OFFLINE = "offline"
    REBOOTING = "rebooting"
    REIMAGING = "reimaging"
    UNUSABLE = "unusable"
    PREEMPTED = "preempted"


_TASK_STATES = {
    task_pb2.TASK_STATE_UNSPECIFIED: TaskState.UNSPECIFIED,
    task_pb2.TASK_STATE_ACTIVE: TaskState.ACTIVE,
    task_pb2.TASK_STATE_PREPARING: TaskState.PREPARING,
    task_pb2.TASK_STATE_RUNNING: TaskState.RUNNING,
    task_pb2.TASK_STATE_COMPLETED: TaskState.COMPLETED,
}
_TASK_STATES_TO_PROTO = {v: k for k, v in _TASK_STATES.items()}

_JOB_STATES = {
    job_pb2.JOB_STATE_UNSPECIFIED: JobState.UNSPECIFIED,
    job_pb2.JOB_STATE_ACTIVE: JobState.ACTIVE,
    job_pb2.JOB_STATE_TERMINATING: JobState.TERMINATING,
    job_pb2.JOB_STATE_COMPLETED: JobState.COMPLETED,
    job_pb2.JOB_STATE_DELETING: JobState.DELETING,
    job_pb2.JOB_STATE_DISABLING: JobState.DISABLING,
    job_pb2.JOB_STATE_DISABLED: JobState.DISABLED,
    job_pb2.JOB_STATE_ENABLING: JobState.ENABLING,
}
_JOB_STATES_TO_PROTO = {v: k for k, v in _JOB_STATES.items()}

_POOL_STATES = {
    pool_pb2.POOL_STATE_UNSPECIFIED: PoolState.UNSPECIFIED,
    pool_pb2.POOL_STATE_ACTIVE: PoolState.ACTIVE,
    pool_pb2.POOL_STATE_DELETING: PoolState.DELETING,
}

_ALLOCATION_STATES = {
    pool_pb2.ALLOCATION_STATE_UNSPECIFIED: AllocationState.UNSPECIFIED,
    pool_pb2.ALLOCATION_STATE_STEADY: AllocationState.STEADY,
    pool_pb2.ALLOCATION_STATE_RESIZING: AllocationState.RESIZING,
    pool_pb2.ALLOCATION_STATE_STOPPING: AllocationState.STOPPING,
}

_NODE_FILL_TYPES = {
    pool_pb2.NODE_FILL_TYPE_UNSPECIFIED: NodeFillType.SPREAD,
    pool_pb2.NODE_FILL_TYPE_SPREAD: NodeFillType.SPREAD,
    pool_pb2.NODE_FILL_TYPE_PACK: NodeFillType.PACK,
}
_NODE_FILL_TYPES_TO_PROTO = {
    NodeFillType.SPREAD: pool_pb2.NODE_FILL_TYPE_SPREAD,
    NodeFillType.PACK: pool_pb2.NODE_FILL_TYPE_PACK,
}


def node_fill_type_to_proto(value: str | NodeFillType) -> int | None:
    """``"spread"`` or ``"pack"`` (any case) as a ``shoal.v1.NodeFillType`` value; None for anything else."""
    try:
        return _NODE_FILL_TYPES_TO_PROTO[NodeFillType(str(value).lower())]
    except ValueError:
        return None


_NODE_STATES = {
    pool_pb2.NODE_STATE_UNSPECIFIED: NodeState.UNSPECIFIED,
    pool_pb2.NODE_STATE_CREATING: NodeState.CREATING,
    pool_pb2.NODE_STATE_STARTING: NodeState.STARTING,
    pool_pb2.NODE_STATE_WAITING_FOR_START_TASK: NodeState.WAITING_FOR_START_TASK,
    pool_pb2.NODE_STATE_START_TASK_FAILED: NodeState.START_TASK_FAILED,
    pool_pb2.NODE_STATE_IDLE: NodeState.IDLE,
    pool_pb2.NODE_STATE_RUNNING: NodeState.RUNNING,
    pool_pb2.NODE_STATE_UNKNOWN: NodeState.UNKNOWN,
    pool_pb2.NODE_STATE_LEAVING_POOL: NodeState.LEAVING_POOL,
    pool_pb2.NODE_STATE_OFFLINE: NodeState.OFFLINE,
    pool_pb2.NODE_STATE_REBOOTING: NodeState.REBOOTING,
    pool_pb2.NODE_STATE_REIMAGING: NodeState.REIMAGING,
    pool_pb2.NODE_STATE_UNUSABLE: NodeState.UNUSABLE,
    pool_pb2.NODE_STATE_PREEMPTED: NodeState.PREEMPTED,
}
_NODE_STATES_TO_PROTO = {v: k for k, v in _NODE_STATES.items()}

_ON_ALL_TASKS_COMPLETE = {
    "noaction": job_pb2.ON_ALL_TASKS_COMPLETE_NO_ACTION,
    "terminatejob": job_pb2.ON_ALL_TASKS_COMPLETE_TERMINATE_JOB,
}
_ON_ALL_TASKS_COMPLETE_FROM_PROTO = {v: k for k, v in _ON_ALL_TASKS_COMPLETE.items()}
_ON_ALL_TASKS_COMPLETE_FROM_PROTO[job_pb2.ON_ALL_TASKS_COMPLETE_UNSPECIFIED] = "noaction"

_START_TASK_STATES = {
    common_pb2.START_TASK_STATE_UNSPECIFIED: "",
    common_pb2.START_TASK_STATE_RUNNING: "running",
    common_pb2.START_TASK_STATE_COMPLETED: "completed",
}

_ADD_STATUS = {
    task_pb2.ADD_TASK_STATUS_UNSPECIFIED: "unspecified",
    task_pb2.ADD_TASK_STATUS_SUCCESS: "success",
    task_pb2.ADD_TASK_STATUS_CLIENT_ERROR: "clienterror",
    task_pb2.ADD_TASK_STATUS_SERVER_ERROR: "servererror",
}


def task_state_to_proto(state: TaskState | str) -> int:
    """The proto enum value of a task state given as ``TaskState`` or its string."""
    try:
        return int(_TASK_STATES_TO_PROTO[TaskState(str(state).lower())])
    except ValueError:
        raise InvalidArgument(
            f"unknown task state {state!r}",
            reason="INVALID_TASK_STATE",
            field_violations=[("state", "unknown")],
        ) from None


def job_state_to_proto(state: JobState | str) -> int:
    """The proto enum value of a job state given as ``JobState`` or its string."""
    try:
        return int(_JOB_STATES_TO_PROTO[JobState(str(state).lower())])
    except ValueError:
        raise InvalidArgument(
            f"unknown job state {state!r}",
            reason="INVALID_JOB_STATE",
            field_violations=[("state", "unknown")],
        ) from None


def node_state_to_proto(state: NodeState | str) -> int:
    """The proto enum value of a node state given as ``NodeState`` or its string."""
    key = str(state).lower().replace("_", "")
    for ns, value in _NODE_STATES_TO_PROTO.items():
        if ns.value == key:
            return int(value)
    raise InvalidArgument(
        f"unknown node state {state!r}", reason="INVALID_NODE_STATE", field_violations=[("state", "unknown")]
    )


# --------------------------------------------------------------------------- input specs


@dataclass(frozen=True, kw_only=True)
class StartTaskSpec:
    """A command every node of a pool runs when it joins the pool."""

    command_line: str
    """Split like a shell would and run without a shell; use ``/bin/sh -c '...'`` for shell features."""
    resource_files: Sequence[ResourceFileSpec] = ()
    """Files staged into the start task's working directory."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables."""
    max_task_retry_count: int = 0
    """Retries after a non-zero exit (-1 unlimited)."""
    wait_for_success: bool = True
    """When true, no task is scheduled on a node until its start task succeeded."""
    user_identity: UserIdentity | None = None
    """Who it runs as (None: the pool's non-admin auto user; installing software wants ``admin``)."""
    container_settings: TaskContainerSettings | None = None
    """Run it in a container (the pool needs a :class:`ContainerConfiguration`)."""

    def to_proto(self) -> common_pb2.StartTask:
        """The ``shoal.v1.StartTask`` message."""
        msg = common_pb2.StartTask(
            command_line=self.command_line,
            resource_files=[r.to_proto() for r in self.resource_files],
            environment_settings=_env_to_proto(self.environment),
            max_task_retry_count=self.max_task_retry_count,
            wait_for_success=self.wait_for_success,
        )
        if self.user_identity is not None:
            msg.user_identity.CopyFrom(self.user_identity.to_proto())
        if self.container_settings is not None:
            msg.container_settings.CopyFrom(self.container_settings.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: common_pb2.StartTask) -> StartTaskSpec:
        """Build from a ``shoal.v1.StartTask`` message."""
        return cls(
            command_line=msg.command_line,
            resource_files=tuple(ResourceFileSpec.from_proto(r) for r in msg.resource_files),
            environment=_env_from_proto(msg.environment_settings),
            max_task_retry_count=msg.max_task_retry_count,
            wait_for_success=msg.wait_for_success,
            user_identity=identity_of(msg),
            container_settings=container_settings_of(msg),
        )


@dataclass(frozen=True, kw_only=True)
class MultiInstanceSettings:
    """Runs one task on several nodes at once (an MPI job); the pool must enable inter-node communication."""

    number_of_instances: int
    """Nodes the task needs at once; instance 0, the primary, runs the task's command line."""
    coordination_command_line: str = ""
    """Runs on every instance after the common resource files are staged; then the primary runs the command."""
    common_resource_files: Sequence[ResourceFileSpec] = ()
    """Staged by every instance into ``SHOAL_TASK_SHARED_DIR``."""

    def to_proto(self) -> task_pb2.MultiInstanceSettings:
        """The ``shoal.v1.MultiInstanceSettings`` message."""
        return task_pb2.MultiInstanceSettings(
            number_of_instances=self.number_of_instances,
            coordination_command_line=self.coordination_command_line,
            common_resource_files=[r.to_proto() for r in self.common_resource_files],
        )

    @classmethod
    def from_proto(cls, msg: task_pb2.MultiInstanceSettings) -> MultiInstanceSettings:
        """Build from a ``shoal.v1.MultiInstanceSettings`` message."""
        return cls(
            number_of_instances=msg.number_of_instances,
            coordination_command_line=msg.coordination_command_line,
            common_resource_files=tuple(ResourceFileSpec.from_proto(r) for r in msg.common_resource_files),
        )


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What to run as one task of a job."""

    id: str
    """1..64 letters, digits, '-' and '_'; unique in the job ignoring case."""
    command_line: str
    """Split like a shell would and run without a shell; environment variables expand only under a shell."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables (on top of the job's common environment)."""
    resource_files: Sequence[ResourceFileSpec] = ()
    """Files staged into the working directory before the task runs."""
    output_files: Sequence[OutputFileSpec] = ()
    """Files uploaded to storage after the task's process exits."""
    max_wall_clock_time: timedelta | None = None
    """Kill the task after this long (``TaskEnded`` failure); None means unlimited."""
    max_task_retry_count: int | None = None
    """Retries after a non-zero exit; None means the job's value, -1 unlimited."""
    retention_time: timedelta | None = None
    """How long the task directory is kept on its node after completion (server default 7 days)."""
    required_slots: int = 1
    """Slots the task takes on its node."""
    display_name: str = ""
    """A free-form name for people."""
    multi_instance_settings: MultiInstanceSettings | None = None
    """Set for a multi-instance (MPI) task."""
    depends_on: TaskDependencies | None = None
    """The tasks this one waits for (the job must use task dependencies)."""
    exit_conditions: ExitConditions | None = None
    """What its final outcome does to the job and to the tasks depending on it; None for Batch's defaults."""
    user_identity: UserIdentity | None = None
    """Who it runs as on its node (None: the pool's non-admin auto user)."""
    dedicated_nodes_only: bool = False
    """Run only on dedicated nodes, never on a low-priority (preemptible) one: it waits for room on a
    dedicated node (every instance of a multi-instance task too)."""
    application_package_references: Sequence[ApplicationPackageReference] = ()
    """Packages deployed on its node before it runs (``ApplicationPackageError``, not retried, when one
    cannot be)."""
    container_settings: TaskContainerSettings | None = None
    """Run it in a container (its job's pool needs a :class:`ContainerConfiguration`)."""

    @property
    def constraints(self) -> TaskConstraints:
        """Its wall clock, retry count and retention as one value (what ``tasks.update`` takes)."""
        return TaskConstraints(
            max_wall_clock_time=self.max_wall_clock_time,
            max_task_retry_count=self.max_task_retry_count,
            retention_time=self.retention_time,
        )

    def to_proto(self) -> task_pb2.TaskSpec:
        """The ``shoal.v1.TaskSpec`` message."""
        constraints = self.constraints.to_proto()
        msg = task_pb2.TaskSpec(
            id=self.id,
            display_name=self.display_name,
            command_line=self.command_line,
            environment_settings=_env_to_proto(self.environment),
            resource_files=[r.to_proto() for r in self.resource_files],
            output_files=[o.to_proto() for o in self.output_files],
            required_slots=self.required_slots,
            dedicated_nodes_only=self.dedicated_nodes_only,
            application_package_references=[r.to_proto() for r in self.application_package_references],
        )
        if constraints.ListFields():
            msg.constraints.CopyFrom(constraints)
        if self.multi_instance_settings is not None:
            msg.multi_instance_settings.CopyFrom(self.multi_instance_settings.to_proto())
        if self.depends_on is not None:
            msg.depends_on.CopyFrom(self.depends_on.to_proto())
        if self.exit_conditions is not None:
            msg.exit_conditions.CopyFrom(self.exit_conditions.to_proto())
        if self.user_identity is not None:
            msg.user_identity.CopyFrom(self.user_identity.to_proto())
        if self.container_settings is not None:
            msg.container_settings.CopyFrom(self.container_settings.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: task_pb2.TaskSpec) -> TaskSpec:
        """Build from a ``shoal.v1.TaskSpec`` message."""
        c = msg.constraints
        return cls(
            id=msg.id,
            command_line=msg.command_line,
            environment=_env_from_proto(msg.environment_settings),
            resource_files=tuple(ResourceFileSpec.from_proto(r) for r in msg.resource_files),
            output_files=tuple(OutputFileSpec.from_proto(o) for o in msg.output_files),
            max_wall_clock_time=_duration(c, "max_wall_clock_time"),
            max_task_retry_count=_optional_int(c, "max_task_retry_count"),
            retention_time=_duration(c, "retention_time"),
            required_slots=msg.required_slots or 1,
            display_name=msg.display_name,
            multi_instance_settings=(
                MultiInstanceSettings.from_proto(msg.multi_instance_settings)
                if msg.HasField("multi_instance_settings")
                else None
            ),
            depends_on=TaskDependencies.from_proto(msg.depends_on) if msg.HasField("depends_on") else None,
            exit_conditions=(
                ExitConditions.from_proto(msg.exit_conditions) if msg.HasField("exit_conditions") else None
            ),
            user_identity=identity_of(msg),
            dedicated_nodes_only=msg.dedicated_nodes_only,
            application_package_references=tuple(
                ApplicationPackageReference.from_proto(r) for r in msg.application_package_references
            ),
            container_settings=container_settings_of(msg),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Build from a JSON-style dict (the format of ``shoal task add-many`` input files).

        Durations are seconds; ``resource_files`` and ``output_files`` are lists of
        dicts with the field names of :class:`ResourceFileSpec` and :class:`OutputFileSpec`;
        ``depends_on`` and ``exit_conditions`` are written as in the API (see :meth:`from_json`).
        For a spec wholly in the API's field names, use :meth:`from_json`.
        """
        known = {
            "id",
            "command_line",
            "environment",
            "resource_files",
            "output_files",
            "max_wall_clock_time",
            "max_task_retry_count",
            "retention_time",
            "required_slots",
            "display_name",
            "multi_instance_settings",
            "depends_on",
            "exit_conditions",
            "user_identity",
            "dedicated_nodes_only",
            "container_settings",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(
                f"unknown task field(s): {', '.join(unknown)}",
                reason="INVALID_TASK_SPEC",
                field_violations=[(u, "unknown field") for u in unknown],
            )
        if "id" not in data or "command_line" not in data:
            raise InvalidArgument(
                "a task needs an id and a command_line",
                reason="INVALID_TASK_SPEC",
                field_violations=[(f, "required") for f in ("id", "command_line") if f not in data],
            )

        def secs(key: str) -> timedelta | None:
            v = data.get(key)
            return None if v is None else timedelta(seconds=float(v))

        retry = data.get("max_task_retry_count")
        mi = data.get("multi_instance_settings")
        multi = None
        if mi is not None:
            multi = MultiInstanceSettings(
                number_of_instances=int(mi["number_of_instances"]),
                coordination_command_line=str(mi.get("coordination_command_line", "")),
                common_resource_files=tuple(ResourceFileSpec(**r) for r in mi.get("common_resource_files") or ()),
            )
        return cls(
            id=str(data["id"]),
            command_line=str(data["command_line"]),
            environment={str(k): str(v) for k, v in dict(data.get("environment") or {}).items()},
            resource_files=tuple(ResourceFileSpec(**r) for r in data.get("resource_files") or ()),
            output_files=tuple(OutputFileSpec(**o) for o in data.get("output_files") or ()),
            max_wall_clock_time=secs("max_wall_clock_time"),
            max_task_retry_count=None if retry is None else int(retry),
            retention_time=secs("retention_time"),
            required_slots=int(data.get("required_slots", 1)),
            display_name=str(data.get("display_name", "")),
            multi_instance_settings=multi,
            depends_on=(
                None
                if data.get("depends_on") is None
                else TaskDependencies.from_proto(
                    parse_message(
                        data["depends_on"], task_pb2.TaskDependencies, path="depends_on", reason="INVALID_TASK_SPEC"
                    )
                )
            ),
            exit_conditions=(
                None
                if data.get("exit_conditions") is None
                else ExitConditions.from_proto(
                    parse_message(
                        data["exit_conditions"],
                        task_pb2.ExitConditions,
                        path="exit_conditions",
                        reason="INVALID_TASK_SPEC",
                    )
                )
            ),
            user_identity=None if data.get("user_identity") is None else UserIdentity.from_dict(data["user_identity"]),
            dedicated_nodes_only=bool(data.get("dedicated_nodes_only", False)),
            container_settings=(
                None
                if data.get("container_settings") is None
                else TaskContainerSettings.from_proto(
                    parse_message(
                        data["container_settings"],
                        common_pb2.TaskContainerSettings,
                        path="container_settings",
                        reason="INVALID_TASK_SPEC",
                    )
                )
            ),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, path: str = "") -> TaskSpec:
        """Build from a JSON object in the API's own field names (``shoal task add --json-file``).

        A ``shoal.v1.TaskSpec`` in the proto JSON mapping: ``command_line`` or
        ``commandLine``; ``constraints.max_wall_clock_time`` as ``"90s"``;
        ``depends_on.task_id_ranges`` as ``[{"start": 1, "end": 10}]``; enums by
        name (``"JOB_ACTION_TERMINATE"``). Unknown fields and bad values raise
        :class:`InvalidArgument` naming the field (prefixed by ``path``).
        """
        msg = parse_message(data, task_pb2.TaskSpec, path=path, reason="INVALID_TASK_SPEC")
        try:
            return cls.from_proto(msg)
        except InvalidArgument as e:
            # A value the specs refuse (a range ending before it starts, a resource file without a source).
            raise InvalidArgument(
                e.message,
                reason="INVALID_TASK_SPEC",
                field_violations=[(".".join(p for p in (path, f) if p), d) for f, d in e.field_violations],
            ) from None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, kw_only=True)
class StartTaskInfo:
    """What happened to a node's start task."""

    state: str
    """``"running"`` or ``"completed"`` (empty when not started)."""
    start_time: datetime | None
    """When the current attempt started."""
    end_time: datetime | None
    """When it ended."""
    exit_code: int | None
    """The process exit code, when it exited."""
    retry_count: int
    """Retries so far."""
    failure: FailureInfo | None
    """Why it failed, if it did."""
    result: str | None
    """``"success"``, ``"failure"`` or None while unknown."""

    @classmethod
    def from_proto(cls, msg: common_pb2.StartTaskInfo) -> StartTaskInfo:
        """Build from a ``shoal.v1.StartTaskInfo``."""
        return cls(
            state=_START_TASK_STATES.get(msg.state, ""),
            start_time=_ts(msg, "start_time"),
            end_time=_ts(msg, "end_time"),
            exit_code=_optional_int(msg, "exit_code"),
            retry_count=msg.retry_count,
            failure=FailureInfo.from_proto(msg.failure_info),
            result=_RESULTS.get(msg.result),
        )


@dataclass(frozen=True, kw_only=True)
class Pool:
    """A pool of compute nodes."""

    id: str
    """The pool id."""
    name: str
    """Resource name ``pools/{id}``."""
    display_name: str
    """Free-form name for people."""
    target_nodes: int
    """Nodes the pool is sized towards."""
    current_nodes: int
    """Nodes it has now."""
    task_slots_per_node: int
    """Tasks that may run at once on one node."""
    start_task: StartTaskSpec | None
    """The start task every node runs, if any."""
    enable_inter_node_communication: bool
    """Whether multi-instance (MPI) tasks may run on it."""
    provider: str
    """Where nodes come from: ``"local"``, ``"join"``, ``"slurm"``."""
    state: PoolState
    """``active`` or ``deleting``."""
    allocation_state: AllocationState
    """``steady``, ``resizing`` or ``stopping``."""
    creation_time: datetime | None
    """When it was created."""
    state_transition_time: datetime | None
    """When its state last changed."""
    etag: str
    """Changes with every change of the pool; pass it as ``etag=`` to ``pools.resize`` or ``pools.delete``
    to act only on the pool as read (:class:`~shoal.client.Aborted` ``ETAG_MISMATCH`` otherwise)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Name/value pairs kept for its users, in their order; Shoal gives them no meaning."""
    user_accounts: tuple[UserAccount, ...] = ()
    """Named users its nodes make, for tasks whose identity names one."""
    certificate_references: tuple[CertificateReference, ...] = ()
    """Certificates of its account that its nodes install, and for whom."""
    application_package_references: tuple[ApplicationPackageReference, ...] = ()
    """Application packages every node deploys (in every task's environment)."""
    resize_timeout: timedelta | None = None
    """How long a resize may take before the nodes not up are given up (None: the default, 15 minutes)."""
    resize_errors: tuple[ResizeError, ...] = ()
    """Why its last resize did not reach its target (``ResizeStopped``, ``AllocationTimedout``)."""
    allocation_state_transition_time: datetime | None = None
    """When its allocation state last changed."""
    target_low_priority_nodes: int = 0
    """Low-priority (preemptible) nodes the pool is sized towards, beside ``target_nodes`` dedicated ones."""
    current_low_priority_nodes: int = 0
    """Low-priority nodes it has now, preempted ones included (``current_nodes`` counts the dedicated)."""
    autoscale: AutoScaleSettings | None = None
    """Its autoscale formula and the last evaluation, when autoscale is enabled (None: sized by hand)."""
    last_auto_scale_run: AutoScaleRun | None = None
    """The last evaluation of its formula (kept after autoscale is disabled)."""
    node_fill_type: NodeFillType = NodeFillType.SPREAD
    """How its tasks are placed on its nodes: ``spread`` (the node with the most free slots) or ``pack``
    (fill a node before the next)."""
    auto_pool_owner: str = ""
    """The job (``jobs/{id}``) or job schedule (``jobschedules/{id}``) whose auto pool this is; "" for a
    pool made by ``pools.create``."""
    container_configuration: ContainerConfiguration | None = None
    """Its tasks may run in containers, and its nodes pull these images (None: not a container pool). Its
    registries' passwords are never returned: they read as empty."""
    proto: pool_pb2.Pool = field(repr=False, compare=False)
    """The raw ``shoal.v1.Pool`` message."""

    @classmethod
    def from_proto(cls, msg: pool_pb2.Pool) -> Pool:
        """Build from a ``shoal.v1.Pool``."""
        return cls(
            id=msg.id,
            name=msg.name,
            display_name=msg.display_name,
            target_nodes=msg.target_nodes,
            current_nodes=msg.current_nodes,
            task_slots_per_node=msg.task_slots_per_node,
            start_task=StartTaskSpec.from_proto(msg.start_task) if msg.HasField("start_task") else None,
            enable_inter_node_communication=msg.enable_inter_node_communication,
            provider=msg.provider,
            state=_POOL_STATES.get(msg.state, PoolState.UNSPECIFIED),
            allocation_state=_ALLOCATION_STATES.get(msg.allocation_state, AllocationState.UNSPECIFIED),
            creation_time=_ts(msg, "creation_time"),
            state_transition_time=_ts(msg, "state_transition_time"),
            etag=msg.etag,
            metadata=_metadata_from_proto(msg.metadata),
            user_accounts=tuple(UserAccount.from_proto(a) for a in msg.user_accounts),
            certificate_references=tuple(CertificateReference.from_proto(r) for r in msg.certificate_references),
            application_package_references=tuple(
                ApplicationPackageReference.from_proto(r) for r in msg.application_package_references
            ),
            resize_timeout=msg.resize_timeout.ToTimedelta() if msg.HasField("resize_timeout") else None,
            resize_errors=tuple(ResizeError.from_proto(e) for e in msg.resize_errors),
            allocation_state_transition_time=_ts(msg, "allocation_state_transition_time"),
            target_low_priority_nodes=msg.target_low_priority_nodes,
            current_low_priority_nodes=msg.current_low_priority_nodes,
            autoscale=AutoScaleSettings.from_proto(msg) if msg.enable_auto_scale else None,
            last_auto_scale_run=AutoScaleRun.from_proto(msg.auto_scale_run) if msg.HasField("auto_scale_run") else None,
            node_fill_type=_NODE_FILL_TYPES.get(msg.task_scheduling_policy.node_fill_type, NodeFillType.SPREAD),
            auto_pool_owner=msg.auto_pool_owner,
            container_configuration=(
                ContainerConfiguration.from_proto(msg.container_configuration)
                if msg.HasField("container_configuration")
                else None
            ),
            proto=msg,
        )


@dataclass(frozen=True, kw_only=True)
class RecentTask:
    """A task that ran recently on a node."""

    job_id: str
    """Its job."""
    task_id: str
    """Its id."""
    attempt: int
    """Which attempt ran there."""
    state: str
    """Its state as the node saw it."""
    exit_code: int | None
    """Its exit code when it exited."""


@dataclass(frozen=True, kw_only=True)
class Node:
    """One compute node (a ``shoal agent`` process)."""

    id: str
    """The node id."""
    name: str
    """Resource name ``pools/{pool}/nodes/{id}``."""
    pool_id: str
    """Its pool."""
    state: NodeState
    """``idle``, ``running``, ``starttaskfailed``, ..."""
    ip_address: str
    """Where its agent listens."""
    task_slots: int
    """Slots it has."""
    running_task_slots: int
    """Slots in use."""
    total_tasks_run: int
    """Tasks it has run."""
    total_tasks_succeeded: int
    """Of which succeeded."""
    cores: int
    """CPU cores."""
    memory_bytes: int
    """Memory."""
    state_transition_time: datetime | None
    """When its state last changed."""
    last_heartbeat_time: datetime | None
    """When its agent was last heard from."""
    start_task_info: StartTaskInfo | None
    """Its start task's progress, when the pool has one."""
    recent_tasks: tuple[RecentTask, ...]
    """Tasks that ran on it recently."""
    root_directory: str
    """The node's root directory (``SHOAL_NODE_ROOT_DIR``)."""
    cpu_percent: float
    """Recent CPU use."""
    task_user_isolation: bool = False
    """Whether its agent runs each task as the user its identity names; false: every task runs as
    ``agent_user`` (the agent is not root, or cannot isolate; its log says why)."""
    agent_user: str = ""
    """The user its agent runs as."""
    certificate_references: tuple[CertificateReference, ...] = ()
    """The certificates installed on it (its pool's references when its agent last started)."""
    scheduling_state: SchedulingState = SchedulingState.ENABLED
    """``enabled``, or ``disabled`` (``pools.disable_node_scheduling``): it takes no new task."""
    is_dedicated: bool = True
    """Every node is dedicated until pools have low-priority nodes."""
    allocation_time: datetime | None = None
    """When it joined its pool."""
    last_boot_time: datetime | None = None
    """When its agent last started (an agent restart is the node's reboot)."""
    running_tasks_count: int = 0
    """Tasks (not slots) running on it now."""
    agent_version: str = ""
    """The version of Shoal its agent runs."""
    errors: tuple[NodeError, ...] = ()
    """What is wrong with it now (an ``unusable`` node has at least one)."""
    container_engine: str = ""
    """The container engine its agent found (``podman 4.3.1, runc``); "" for none: no container task
    runs there."""
    metrics_address: str = ""
    """Where its agent serves Prometheus metrics (``host:port``, path ``/metrics``); "" when it serves none."""
    proto: pool_pb2.Node = field(repr=False, compare=False)
    """The raw ``shoal.v1.Node`` message."""

    @classmethod
    def from_proto(cls, msg: pool_pb2.Node) -> Node:
        """Build from a ``shoal.v1.Node``."""
        return cls(
            id=msg.id,
            name=msg.name,
            pool_id=msg.pool_id,
            state=_NODE_STATES.get(msg.state, NodeState.UNSPECIFIED),
            ip_address=msg.ip_address,
            task_slots=msg.task_slots,
            running_task_slots=msg.running_task_slots,
            total_tasks_run=msg.total_tasks_run,
            total_tasks_succeeded=msg.total_tasks_succeeded,
            cores=msg.cores,
            memory_bytes=msg.memory_bytes,
            state_transition_time=_ts(msg, "state_transition_time"),
            last_heartbeat_time=_ts(msg, "last_heartbeat_time"),
            start_task_info=(
                StartTaskInfo.from_proto(msg.start_task_info) if msg.HasField("start_task_info") else None
            ),
            recent_tasks=tuple(
                RecentTask(
                    job_id=r.job_id,
                    task_id=r.task_id,
                    attempt=r.attempt,
                    state=r.state,
                    exit_code=_optional_int(r, "exit_code"),
                )
                for r in msg.recent_tasks
            ),
            root_directory=msg.root_directory,
            cpu_percent=msg.cpu_percent,
            task_user_isolation=msg.task_user_isolation,
            agent_user=msg.agent_user,
            certificate_references=tuple(CertificateReference.from_proto(r) for r in msg.certificate_references),
            scheduling_state=scheduling_state_from_proto(msg.scheduling_state),
            is_dedicated=msg.is_dedicated,
            allocation_time=_ts(msg, "allocation_time"),
            last_boot_time=_ts(msg, "last_boot_time"),
            running_tasks_count=msg.running_tasks_count,
            agent_version=msg.agent_version,
            errors=tuple(NodeError.from_proto(e) for e in msg.errors),
            container_engine=msg.container_engine,
            metrics_address=msg.metrics_address,
            proto=msg,
        )


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job: a set of tasks on one pool."""

    id: str
    """The job id."""
    name: str
    """Resource name ``jobs/{id}``."""
    display_name: str
    """Free-form name for people."""
    pool_id: str
    """The pool its tasks run on."""
    priority: int
    """-1000..1000; higher runs first."""
    max_wall_clock_time: timedelta | None
    """Limit from the job's creation; None means unlimited."""
    max_task_retry_count: int
    """Default retry count of its tasks (-1 unlimited)."""
    common_environment: Mapping[str, str]
    """Environment every task gets."""
    on_all_tasks_complete: str
    """``"noaction"`` or ``"terminatejob"``."""
    state: JobState
    """``active``, ``disabling``, ``disabled``, ``enabling``, ``terminating``, ``completed`` or ``deleting``."""
    creation_time: datetime | None
    """When it was created."""
    state_transition_time: datetime | None
    """When its state last changed."""
    start_time: datetime | None
    """When it started."""
    end_time: datetime | None
    """When it completed."""
    terminate_reason: str
    """Why it completed (``UserTerminate``, ``AllTasksComplete``, ``MaxWallClockTimeExpiry``...)."""
    etag: str
    """Changes with every change of the job; pass it as ``etag=`` to ``jobs.update``, ``jobs.terminate`` or
    ``jobs.delete`` to act only on the job as read (:class:`~shoal.client.Aborted` ``ETAG_MISMATCH`` otherwise)."""
    uses_task_dependencies: bool = False
    """Whether its tasks may depend on others."""
    on_task_failure: OnTaskFailure = OnTaskFailure.NO_ACTION
    """What a task failing for good does to the job."""
    on_dependency_failure: OnDependencyFailure = OnDependencyFailure.BLOCK
    """What happens to the dependents of a task that failed for good."""
    job_manager_task: JobManagerTask | None = None
    """Its job manager task, if it has one."""
    job_preparation_task: JobPreparationTask | None = None
    """Its job preparation task, if it has one."""
    job_release_task: JobReleaseTask | None = None
    """Its job release task, if it has one."""
    max_parallel_tasks: int = -1
    """At most this many of its tasks run at once; -1 unlimited."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Name/value pairs kept for its users, in their order; Shoal gives them no meaning."""
    previous_state: JobState = JobState.UNSPECIFIED
    """The state before the current one."""
    previous_state_transition_time: datetime | None = None
    """When it entered the previous state."""
    dedicated_nodes_only: bool = False
    """None of its tasks runs on a low-priority (preemptible) node."""
    auto_pool: AutoPoolSpecification | None = None
    """The pool the job had made for it (``pool_id`` names it), if it gave one instead of a pool id."""
    execution_pool_id: str = ""
    """The pool the job runs on (its auto pool's id, for a job with one; "" if that could not be made)."""
    scheduling_error: JobSchedulingError | None = None
    """Why the job completed without running: its auto pool could not be made."""
    job_schedule_id: str = ""
    """The job schedule that made it (its jobs are named ``<schedule id>:job-<n>``); "" for one made by hand."""
    proto: job_pb2.Job = field(repr=False, compare=False)
    """The raw ``shoal.v1.Job`` message."""

    @property
    def constraints(self) -> JobConstraints:
        """Its wall clock and default retry count as one value (what ``jobs.update(constraints=)`` takes)."""
        return JobConstraints(
            max_wall_clock_time=self.max_wall_clock_time, max_task_retry_count=self.max_task_retry_count
        )

    @classmethod
    def from_proto(cls, msg: job_pb2.Job) -> Job:
        """Build from a ``shoal.v1.Job``."""
        ex = msg.execution_info
        return cls(
            id=msg.id,
            name=msg.name,
            display_name=msg.display_name,
            pool_id=msg.pool_id,
            priority=msg.priority,
            max_wall_clock_time=_duration(msg.constraints, "max_wall_clock_time"),
            max_task_retry_count=msg.constraints.max_task_retry_count,
            common_environment=_env_from_proto(msg.common_environment_settings),
            on_all_tasks_complete=_ON_ALL_TASKS_COMPLETE_FROM_PROTO.get(msg.on_all_tasks_complete, "noaction"),
            state=_JOB_STATES.get(msg.state, JobState.UNSPECIFIED),
            creation_time=_ts(msg, "creation_time"),
            state_transition_time=_ts(msg, "state_transition_time"),
            start_time=_ts(ex, "start_time"),
            end_time=_ts(ex, "end_time"),
            terminate_reason=ex.terminate_reason,
            etag=msg.etag,
            uses_task_dependencies=msg.uses_task_dependencies,
            on_task_failure=on_task_failure_from_proto(msg.on_task_failure),
            on_dependency_failure=on_dependency_failure_from_proto(msg.on_dependency_failure),
            job_manager_task=(
                JobManagerTask.from_proto(msg.job_manager_task) if msg.HasField("job_manager_task") else None
            ),
            job_preparation_task=(
                JobPreparationTask.from_proto(msg.job_preparation_task)
                if msg.HasField("job_preparation_task")
                else None
            ),
            job_release_task=(
                JobReleaseTask.from_proto(msg.job_release_task) if msg.HasField("job_release_task") else None
            ),
            max_parallel_tasks=msg.max_parallel_tasks if msg.HasField("max_parallel_tasks") else -1,
            metadata=_metadata_from_proto(msg.metadata),
            previous_state=_JOB_STATES.get(msg.previous_state, JobState.UNSPECIFIED),
            previous_state_transition_time=_ts(msg, "previous_state_transition_time"),
            dedicated_nodes_only=msg.dedicated_nodes_only,
            auto_pool=auto_pool_of(msg),
            execution_pool_id=ex.pool_id,
            scheduling_error=scheduling_error_of(msg),
            job_schedule_id=msg.job_schedule_id,
            proto=msg,
        )


def on_all_tasks_complete_to_proto(value: str) -> int:
    """``"noaction"``/``"terminatejob"`` as the proto enum value."""
    key = value.lower().replace("_", "").replace("-", "")
    if key not in _ON_ALL_TASKS_COMPLETE:
        raise InvalidArgument(
            f"on_all_tasks_complete must be one of {sorted(_ON_ALL_TASKS_COMPLETE)}",
            reason="INVALID_JOB",
            field_violations=[("on_all_tasks_complete", f"one of {sorted(_ON_ALL_TASKS_COMPLETE)}")],
        )
    return int(_ON_ALL_TASKS_COMPLETE[key])


@dataclass(frozen=True, kw_only=True)
class TaskCounts:
    """How many of a job's tasks are in each state."""

    active: int
    """Waiting for a node."""
    running: int
    """Preparing or running."""
    completed: int
    """Completed (succeeded + failed)."""
    succeeded: int
    """Completed with success."""
    failed: int
    """Completed with failure."""
    waiting_on_dependencies: int = 0
    """Active tasks (counted in ``active`` too) that wait for other tasks."""
    blocked: int = 0
    """Active tasks (counted in ``active`` too) blocked by a task that failed or was deleted."""

    @property
    def total(self) -> int:
        """All tasks of the job."""
        return self.active + self.running + self.completed

    @classmethod
    def from_proto(cls, msg: job_pb2.TaskCounts) -> TaskCounts:
        """Build from a ``shoal.v1.TaskCounts``."""
        return cls(
            active=msg.active,
            running=msg.running,
            completed=msg.completed,
            succeeded=msg.succeeded,
            failed=msg.failed,
            waiting_on_dependencies=msg.waiting_on_dependencies,
            blocked=msg.blocked,
        )


_SUBTASK_STATES = {
    task_pb2.SUBTASK_STATE_UNSPECIFIED: "",
    task_pb2.SUBTASK_STATE_PREPARING: "preparing",
    task_pb2.SUBTASK_STATE_RUNNING: "running",
    task_pb2.SUBTASK_STATE_COMPLETED: "completed",
}


@dataclass(frozen=True, kw_only=True)
class Subtask:
    """One instance of a multi-instance task's current (or last) attempt."""

    id: int
    """Instance index; 0 is the primary."""
    state: str
    """``"preparing"``, ``"running"`` or ``"completed"``."""
    pool_id: str
    """Pool of its node."""
    node_id: str
    """The node it runs on."""
    node_address: str
    """That node's address."""
    start_time: datetime | None
    """When it started."""
    end_time: datetime | None
    """When it ended."""
    exit_code: int | None
    """Its exit code, when it exited."""
    failure: FailureInfo | None
    """Why it failed, if it did."""
    result: str | None
    """``"success"``, ``"failure"`` or None while running."""
    container: TaskContainerExecutionInfo | None = None
    """Its container, for a task that runs in one."""

    @classmethod
    def from_proto(cls, msg: task_pb2.Subtask) -> Subtask:
        """Build from a ``shoal.v1.Subtask``."""
        return cls(
            id=msg.id,
            state=_SUBTASK_STATES.get(msg.state, ""),
            pool_id=msg.node_info.pool_id,
            node_id=msg.node_info.node_id,
            node_address=msg.node_info.node_address,
            start_time=_ts(msg, "start_time"),
            end_time=_ts(msg, "end_time"),
            exit_code=_optional_int(msg, "exit_code"),
            failure=FailureInfo.from_proto(msg.failure_info),
            result=_RESULTS.get(msg.result),
            container=container_info_of(msg),
        )


@dataclass(frozen=True, kw_only=True)
class Task:
    """A task and its status."""

    id: str
    """The task id."""
    job_id: str
    """Its job."""
    name: str
    """Resource name ``jobs/{job}/tasks/{id}``."""
    spec: TaskSpec
    """What was submitted."""
    state: TaskState
    """``active``, ``preparing``, ``running`` or ``completed``."""
    previous_state: TaskState
    """The state before the current one."""
    creation_time: datetime | None
    """When it was added."""
    state_transition_time: datetime | None
    """When its state last changed."""
    start_time: datetime | None
    """When the current (or last) attempt started."""
    end_time: datetime | None
    """When it ended."""
    exit_code: int | None
    """Exit code of the last attempt, when its process exited."""
    retry_count: int
    """Retries after non-zero exits."""
    requeue_count: int
    """Requeues because its node was lost (not counted as retries)."""
    last_retry_time: datetime | None
    """When it was last retried."""
    last_requeue_time: datetime | None
    """When it was last requeued."""
    failure: FailureInfo | None
    """Why it failed, if it did."""
    result: str | None
    """``"success"``, ``"failure"``, or None until it completes."""
    pool_id: str
    """Pool of the node it ran on."""
    node_id: str
    """Node it runs or ran on."""
    node_address: str
    """That node's address."""
    task_root_directory: str
    """The task directory on the node."""
    attempt: int
    """Increases with every placement."""
    etag: str
    """Changes with every change of the task; pass it as ``etag=`` to ``tasks.terminate``, ``tasks.delete`` or
    ``tasks.reactivate`` to act only on the task as read (:class:`~shoal.client.Aborted` otherwise)."""
    subtasks: tuple[Subtask, ...] = ()
    """Multi-instance tasks: every instance of the current (or last) attempt."""
    waiting_reason: str = ""
    """Why an ``active`` multi-instance task still waits for nodes (``PoolTooSmall: ...``,
    ``NodesHeld: ...``, ``WaitingForNodes: ...``); empty otherwise."""
    dependency_state: DependencyState | None = None
    """Where it stands with the tasks it depends on (waiting on or blocked by which); None without
    dependencies."""
    job_manager: bool = False
    """It is its job's job manager task."""
    last_attempt_stats: TaskStatistics | None = None
    """What its last attempt used (None until one has ended)."""
    stats: UsageStatistics | None = None
    """What all its attempts used, with the time it waited before each (None before any attempt)."""
    container: TaskContainerExecutionInfo | None = None
    """The container of its current (or last) attempt, for a task that runs in one."""
    proto: task_pb2.Task = field(repr=False, compare=False)
    """The raw ``shoal.v1.Task`` message."""

    @property
    def command_line(self) -> str:
        """The submitted command line."""
        return self.spec.command_line

    @property
    def succeeded(self) -> bool:
        """Completed with success."""
        return self.state == TaskState.COMPLETED and self.result == "success"

    @property
    def failure_code(self) -> str | None:
        """``failure.code`` (``FailureExitCode``, ``TaskEnded``, ...), or None."""
        return self.failure.code if self.failure else None

    @property
    def failure_category(self) -> str | None:
        """``failure.category`` (``usererror``/``servererror``), or None."""
        return self.failure.category if self.failure else None

    @property
    def failure_message(self) -> str | None:
        """``failure.message``, or None."""
        return self.failure.message if self.failure else None

    @property
    def failed(self) -> bool:
        """Completed with failure."""
        return self.state == TaskState.COMPLETED and self.result == "failure"

    @classmethod
    def from_proto(cls, msg: task_pb2.Task) -> Task:
        """Build from a ``shoal.v1.Task``."""
        ex = msg.execution_info
        ni = msg.node_info
        parts = msg.name.split("/")
        job_id = parts[1] if len(parts) >= 4 and parts[0] == "jobs" else ""
        return cls(
            id=msg.spec.id or (parts[-1] if parts else ""),
            job_id=job_id,
            name=msg.name,
            spec=TaskSpec.from_proto(msg.spec),
            state=_TASK_STATES.get(msg.state, TaskState.UNSPECIFIED),
            previous_state=_TASK_STATES.get(msg.previous_state, TaskState.UNSPECIFIED),
            creation_time=_ts(msg, "creation_time"),
            state_transition_time=_ts(msg, "state_transition_time"),
            start_time=_ts(ex, "start_time"),
            end_time=_ts(ex, "end_time"),
            exit_code=_optional_int(ex, "exit_code"),
            retry_count=ex.retry_count,
            requeue_count=ex.requeue_count,
            last_retry_time=_ts(ex, "last_retry_time"),
            last_requeue_time=_ts(ex, "last_requeue_time"),
            failure=FailureInfo.from_proto(ex.failure_info),
            result=_RESULTS.get(ex.result),
            pool_id=ni.pool_id,
            node_id=ni.node_id,
            node_address=ni.node_address,
            task_root_directory=ni.task_root_directory,
            attempt=msg.attempt,
            etag=msg.etag,
            subtasks=tuple(Subtask.from_proto(st) for st in msg.subtasks),
            waiting_reason=msg.waiting_reason,
            dependency_state=DependencyState.from_proto(msg.dependency_state),
            job_manager=msg.job_manager,
            last_attempt_stats=task_statistics_of(ex.last_attempt_stats, ex.HasField("last_attempt_stats")),
            stats=UsageStatistics.from_proto(msg.stats) if msg.HasField("stats") else None,
            container=container_info_of(ex),
            proto=msg,
        )


@dataclass(frozen=True, kw_only=True)
class TaskChanges:
    """One message of ``tasks.watch``: tasks as they are now (every change of a task, not only completions)."""

    tasks: tuple[Task, ...]
    """The tasks that changed (or, with ``initial``, those of the snapshot)."""
    initial: bool = False
    """Part of the snapshot of the job's tasks as they were when the watch began."""
    initial_complete: bool = False
    """The last message of that snapshot (later messages are changes)."""


@dataclass(frozen=True, kw_only=True)
class AddTaskResult:
    """The outcome of adding one task through ``tasks.add_many``."""

    task_id: str
    """The task id."""
    status: str
    """``"success"``, ``"clienterror"`` (e.g. ``TASK_EXISTS``; retrying won't help) or ``"servererror"``."""
    error_reason: str = ""
    """ErrorInfo-style reason, e.g. ``TASK_EXISTS``."""
    error_message: str = ""
    """Human-readable detail."""

    @property
    def ok(self) -> bool:
        """The task was added."""
        return self.status == "success"

    @classmethod
    def from_proto(cls, msg: task_pb2.AddTaskResult) -> AddTaskResult:
        """Build from a ``shoal.v1.AddTaskResult``."""
        return cls(
            task_id=msg.task_id,
            status=_ADD_STATUS.get(msg.status, "unspecified"),
            error_reason=msg.error_reason,
            error_message=msg.error_message,
        )


@dataclass(frozen=True, kw_only=True)
class NodeFile:
    """One file or directory in a task's or node's directory tree."""

    path: str
    """Relative to the directory listed, '/'-separated."""
    is_directory: bool
    """Whether it is a directory."""
    size: int
    """Size in bytes."""
    modify_time: datetime | None
    """Last modification."""
    file_mode: str
    """Octal mode string."""

    @classmethod
    def from_proto(cls, msg: common_pb2.NodeFile) -> NodeFile:
        """Build from a ``shoal.v1.NodeFile``."""
        return cls(
            path=msg.path,
            is_directory=msg.is_directory,
            size=msg.size,
            modify_time=_ts(msg, "modify_time"),
            file_mode=msg.file_mode,
        )


@dataclass(frozen=True, kw_only=True)
class Container:
    """A storage container."""

    id: str
    """The container id."""
    name: str
    """Resource name ``containers/{id}``."""
    creation_time: datetime | None
    """When it was created."""

    @classmethod
    def from_proto(cls, msg: storage_pb2.Container) -> Container:
        """Build from a ``shoal.v1.Container``."""
        return cls(id=msg.id, name=msg.name, creation_time=_ts(msg, "creation_time"))


@dataclass(frozen=True, kw_only=True)
class Blob:
    """A blob in a storage container."""

    container: str
    """Its container id."""
    name: str
    """'/'-separated path in the container."""
    size: int
    """Size in bytes."""
    sha256: str
    """Hex SHA-256 of the content."""
    modify_time: datetime | None
    """When it was written."""

    @classmethod
    def from_proto(cls, msg: storage_pb2.Blob) -> Blob:
        """Build from a ``shoal.v1.Blob``."""
        return cls(
            container=msg.container,
            name=msg.name,
            size=msg.size,
            sha256=msg.sha256,
            modify_time=_ts(msg, "modify_time"),
        )


@dataclass(frozen=True, kw_only=True)
class JoinToken:
    """A pool's join token (``client.pools.join_token``): secret until ``expire_time``."""

    token: str
    pool_id: str
    expire_time: datetime | None
    #: SHA-256 (hex) of the cluster CA certificate, which the token also carries.
    ca_fingerprint: str

    def __repr__(self) -> str:
        # The token stays out of reprs (they end up in logs).
        return f"JoinToken(pool_id={self.pool_id!r}, expire_time={self.expire_time!r})"

    @classmethod
    def from_proto(cls, msg: join_pb2.JoinToken) -> JoinToken:
        return cls(
            token=msg.token,
            pool_id=msg.pool_id,
            expire_time=msg.expire_time.ToDatetime(tzinfo=UTC) if msg.HasField("expire_time") else None,
            ca_fingerprint=msg.ca_fingerprint,
        )
