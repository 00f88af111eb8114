"""Typed specs and results for workflows inside a job.

Task dependencies (:class:`TaskDependencies`, :class:`TaskIdRange`) and where a
task stands with them (:class:`DependencyState`); exit conditions
(:class:`ExitConditions` mapping exit codes to :class:`ExitOptions` with a
:class:`JobAction` and a :class:`DependencyAction`); the job's special tasks
(:class:`JobManagerTask`, :class:`JobPreparationTask`, :class:`JobReleaseTask`)
and the status of the last two per node
(:class:`PreparationAndReleaseTaskStatus`); the job options
:class:`OnTaskFailure`, :class:`OnDependencyFailure`, :class:`DisableJobOption`
and :class:`JobConstraints`.

Specs are frozen dataclasses with keyword-only fields that convert with
``to_proto()`` / ``from_proto()``; an enum field also takes its value as a
string in any case (``"terminate"``, ``"TERMINATE"``), and an unset one
(None) sends nothing, so that the server's default applies.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shoal.v1 import job_pb2, task_pb2

from .application_types import ApplicationPackageReference
from .common_types import (
    _RESULTS,
    FailureInfo,
    OutputFileSpec,
    ResourceFileSpec,
    TaskConstraints,
    _choice,
    _duration,
    _env_from_proto,
    _env_to_proto,
    _optional_int,
    _ts,
    duration_to_proto,
)
from .container_types import TaskContainerSettings, container_settings_of
from .errors import InvalidArgument
from .identity_types import UserIdentity, identity_of

__all__ = [
    "DependencyAction",
    "DependencyState",
    "DependencyStatus",
    "DisableJobOption",
    "ExitCodeMapping",
    "ExitCodeRangeMapping",
    "ExitConditions",
    "ExitOptions",
    "JobAction",
    "JobConstraints",
    "JobManagerTask",
    "JobPreparationTask",
    "JobReleaseTask",
    "OnDependencyFailure",
    "OnTaskFailure",
    "PreparationAndReleaseTaskStatus",
    "PreparationTaskExecutionInfo",
    "PreparationTaskState",
    "TaskDependencies",
    "TaskIdRange",
]


# --------------------------------------------------------------------------- enums


class JobAction(enum.StrEnum):
    """What a task's final outcome does to its job (when the job's ``on_task_failure`` asks for it)."""

    NONE = "none"
    DISABLE = "disable"
    """Disable the job, its running tasks requeued."""
    TERMINATE = "terminate"
    """Terminate the job (``terminate_reason`` ``TaskFailed``)."""


class DependencyAction(enum.StrEnum):
    """What a task's final outcome does to the tasks that depend on it."""

    SATISFY = "satisfy"
    BLOCK = "block"


class OnTaskFailure(enum.StrEnum):
    """What a job does when one of its tasks fails for good."""

    NO_ACTION = "noaction"
    PERFORM_EXIT_OPTIONS_JOB_ACTION = "performexitoptionsjobaction"
    """Apply the job action of the exit options that match the task's outcome."""


class OnDependencyFailure(enum.StrEnum):
    """What happens to the dependents of a task that failed for good (beyond Batch, which only blocks)."""

    BLOCK = "block"
    """They stay active and blocked until the failed task is reactivated and succeeds (Batch's behaviour)."""
    FAIL = "fail"
    """They complete at once, failed with ``DependencyFailed``, and so do their own dependents."""


class DisableJobOption(enum.StrEnum):
    """What ``jobs.disable`` does with the job's running tasks."""

    REQUEUE = "requeue"
    """End them and put them back to active, to run again once the job is enabled."""
    TERMINATE = "terminate"
    """End them; they complete, failed."""
    WAIT = "wait"
    """Let them finish; the job stays ``disabling`` until they have."""


class DependencyStatus(enum.StrEnum):
    """Where a task with dependencies stands."""

    WAITING = "waiting"
    """A task it depends on has not completed (or not been added) yet."""
    BLOCKED = "blocked"
    """A task it depends on failed (dependency action BLOCK) or was deleted."""
    SATISFIED = "satisfied"
    """Every task it depends on has satisfied it."""


class PreparationTaskState(enum.StrEnum):
    """State of a job preparation or release task on one node."""

    UNSPECIFIED = "unspecified"
    RUNNING = "running"
    COMPLETED = "completed"


_JOB_ACTIONS = {
    JobAction.NONE: task_pb2.JOB_ACTION_NONE,
    JobAction.DISABLE: task_pb2.JOB_ACTION_DISABLE,
    JobAction.TERMINATE: task_pb2.JOB_ACTION_TERMINATE,
}
_JOB_ACTIONS_FROM_PROTO = {v: k for k, v in _JOB_ACTIONS.items()}

_DEPENDENCY_ACTIONS = {
    DependencyAction.SATISFY: task_pb2.DEPENDENCY_ACTION_SATISFY,
    DependencyAction.BLOCK: task_pb2.DEPENDENCY_ACTION_BLOCK,
}
_DEPENDENCY_ACTIONS_FROM_PROTO = {v: k for k, v in _DEPENDENCY_ACTIONS.items()}

_ON_TASK_FAILURE = {
    OnTaskFailure.NO_ACTION: job_pb2.ON_TASK_FAILURE_NO_ACTION,
    OnTaskFailure.PERFORM_EXIT_OPTIONS_JOB_ACTION: job_pb2.ON_TASK_FAILURE_PERFORM_EXIT_OPTIONS_JOB_ACTION,
}
_ON_TASK_FAILURE_FROM_PROTO = {v: k for k, v in _ON_TASK_FAILURE.items()}

_ON_DEPENDENCY_FAILURE = {
    OnDependencyFailure.BLOCK: job_pb2.ON_DEPENDENCY_FAILURE_BLOCK,
    OnDependencyFailure.FAIL: job_pb2.ON_DEPENDENCY_FAILURE_FAIL,
}
_ON_DEPENDENCY_FAILURE_FROM_PROTO = {v: k for k, v in _ON_DEPENDENCY_FAILURE.items()}

_DISABLE_JOB_OPTIONS = {
    DisableJobOption.REQUEUE: job_pb2.DISABLE_JOB_OPTION_REQUEUE,
    DisableJobOption.TERMINATE: job_pb2.DISABLE_JOB_OPTION_TERMINATE,
    DisableJobOption.WAIT: job_pb2.DISABLE_JOB_OPTION_WAIT,
}

_DEPENDENCY_STATUSES = {
    task_pb2.DEPENDENCY_STATUS_WAITING: DependencyStatus.WAITING,
    task_pb2.DEPENDENCY_STATUS_BLOCKED: DependencyStatus.BLOCKED,
    task_pb2.DEPENDENCY_STATUS_SATISFIED: DependencyStatus.SATISFIED,
}

_PREPARATION_TASK_STATES = {
    job_pb2.PREPARATION_TASK_STATE_UNSPECIFIED: PreparationTaskState.UNSPECIFIED,
    job_pb2.PREPARATION_TASK_STATE_RUNNING: PreparationTaskState.RUNNING,
    job_pb2.PREPARATION_TASK_STATE_COMPLETED: PreparationTaskState.COMPLETED,
}


def on_task_failure_to_proto(value: OnTaskFailure | str) -> int:
    """The ``shoal.v1.OnTaskFailure`` value of ``value`` (a member or its string)."""
    return int(_ON_TASK_FAILURE[_choice(OnTaskFailure, value, field="on_task_failure", reason="INVALID_JOB")])


def on_task_failure_from_proto(value: int) -> OnTaskFailure:
    """Unspecified means ``NO_ACTION``."""
    return _ON_TASK_FAILURE_FROM_PROTO.get(value, OnTaskFailure.NO_ACTION)  # type: ignore[call-overload]


def on_dependency_failure_to_proto(value: OnDependencyFailure | str) -> int:
    """The ``shoal.v1.OnDependencyFailure`` value of ``value`` (a member or its string)."""
    member = _choice(OnDependencyFailure, value, field="on_dependency_failure", reason="INVALID_JOB")
    return int(_ON_DEPENDENCY_FAILURE[member])


def on_dependency_failure_from_proto(value: int) -> OnDependencyFailure:
    """Unspecified means ``BLOCK``."""
    return _ON_DEPENDENCY_FAILURE_FROM_PROTO.get(value, OnDependencyFailure.BLOCK)  # type: ignore[call-overload]


def disable_job_option_to_proto(value: DisableJobOption | str) -> int:
    """The ``shoal.v1.DisableJobOption`` value of ``value`` (a member or its string)."""
    member = _choice(DisableJobOption, value, field="disable_tasks", reason="INVALID_DISABLE_JOB")
    return int(_DISABLE_JOB_OPTIONS[member])


# --------------------------------------------------------------------------- dependencies


@dataclass(frozen=True, kw_only=True)
class TaskIdRange:
    """An inclusive range of integer task ids: a task whose id is a decimal integer in it belongs to it.

    ``"4"``, ``"04"`` and ``"004"`` are all 4.
    """

    start: int
    """The first id of the range."""
    end: int
    """The last id of the range (inclusive)."""

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InvalidArgument(
                f"task id range {self.start}-{self.end} ends before it starts",
                reason="INVALID_TASK_DEPENDENCIES",
                field_violations=[("depends_on.task_id_ranges.end", "at least start")],
            )

    def to_proto(self) -> task_pb2.TaskIdRange:
        """The ``shoal.v1.TaskIdRange`` message."""
        return task_pb2.TaskIdRange(start=self.start, end=self.end)

    @classmethod
    def from_proto(cls, msg: task_pb2.TaskIdRange) -> TaskIdRange:
        """Build from a ``shoal.v1.TaskIdRange`` message."""
        return cls(start=msg.start, end=msg.end)


@dataclass(frozen=True, kw_only=True)
class TaskDependencies:
    """The tasks a task waits for; they may be added after it. The job must use task dependencies.

    ::

        TaskDependencies(task_ids=("prepare",), task_id_ranges=(TaskIdRange(start=1, end=100),))
        TaskDependencies.of("prepare", ranges=[(1, 100)])      # the same
    """

    task_ids: Sequence[str] = ()
    """Ids of tasks it depends on (matched ignoring case)."""
    task_id_ranges: Sequence[TaskIdRange] = ()
    """Ranges of integer task ids it depends on."""

    def __post_init__(self) -> None:
        if isinstance(self.task_ids, str):
            # A bare string would otherwise be read as one dependency per character.
            raise InvalidArgument(
                "task_ids is a sequence of task ids, not one string",
                reason="INVALID_TASK_DEPENDENCIES",
                field_violations=[("depends_on.task_ids", "a sequence of task ids")],
            )
        # Tuples, so that a spec built from lists equals the same spec read back.
        object.__setattr__(self, "task_ids", tuple(str(t) for t in self.task_ids))
        object.__setattr__(self, "task_id_ranges", tuple(_as_range(r) for r in self.task_id_ranges))

    @classmethod
    def of(cls, *task_ids: str, ranges: Iterable[TaskIdRange | tuple[int, int]] = ()) -> TaskDependencies:
        """Depend on ``task_ids`` and on the inclusive ``(start, end)`` integer ``ranges``."""
        return cls(task_ids=task_ids, task_id_ranges=tuple(_as_range(r) for r in ranges))

    def to_proto(self) -> task_pb2.TaskDependencies:
        """The ``shoal.v1.TaskDependencies`` message."""
        return task_pb2.TaskDependencies(
            task_ids=list(self.task_ids), task_id_ranges=[r.to_proto() for r in self.task_id_ranges]
        )

    @classmethod
    def from_proto(cls, msg: task_pb2.TaskDependencies) -> TaskDependencies:
        """Build from a ``shoal.v1.TaskDependencies`` message."""
        return cls(
            task_ids=tuple(msg.task_ids), task_id_ranges=tuple(TaskIdRange.from_proto(r) for r in msg.task_id_ranges)
        )


def _as_range(value: TaskIdRange | tuple[int, int] | Any) -> TaskIdRange:
    if isinstance(value, TaskIdRange):
        return value
    try:
        start, end = value
        return TaskIdRange(start=int(start), end=int(end))
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"a task id range is a TaskIdRange or a (start, end) pair, not {value!r}",
            reason="INVALID_TASK_DEPENDENCIES",
            field_violations=[("depends_on.task_id_ranges", "(start, end)")],
        ) from None


@dataclass(frozen=True, kw_only=True)
class DependencyState:
    """Where a task with dependencies stands (Batch keeps this unseen)."""

    status: DependencyStatus
    """``waiting``, ``blocked`` or ``satisfied``."""
    task_id: str
    """Waiting: one task it still waits for (the id as named, or an integer of a range). Blocked: one task
    that blocks it."""
    reason: str
    """Blocked: ``TaskFailed`` or ``TaskDeleted``; waiting: ``NotAdded`` when ``task_id`` does not exist yet."""
    unsatisfied: int
    """How many of its dependencies (ids, and integers of its ranges) are not satisfied yet."""

    @property
    def summary(self) -> str:
        """One line for people: ``waiting on b (2 left)``, ``blocked by a (TaskFailed)``, ``satisfied``."""
        if self.status == DependencyStatus.SATISFIED:
            return "satisfied"
        verb = "blocked by" if self.status == DependencyStatus.BLOCKED else "waiting on"
        text = f"{verb} {self.task_id}" if self.task_id else verb.split()[0]
        notes = [self.reason] if self.reason else []
        if self.status == DependencyStatus.WAITING and self.unsatisfied > 1:
            notes.append(f"{self.unsatisfied} left")
        return f"{text} ({', '.join(notes)})" if notes else text

    @classmethod
    def from_proto(cls, msg: task_pb2.DependencyState) -> DependencyState | None:
        """Build from a ``shoal.v1.DependencyState``; None for a task without dependencies."""
        status = _DEPENDENCY_STATUSES.get(msg.status)  # type: ignore[call-overload]
        if status is None:
            return None
        return cls(status=status, task_id=msg.task_id, reason=msg.reason, unsatisfied=msg.unsatisfied)


# --------------------------------------------------------------------------- exit conditions


@dataclass(frozen=True, kw_only=True)
class ExitOptions:
    """What one outcome of a task does; an unset action takes Batch's default.

    The defaults: job action ``none`` for exit code 0, ``terminate`` otherwise;
    dependency action ``satisfy`` for exit code 0, ``block`` otherwise.
    """

    job_action: JobAction | None = None
    """What it does to the job (only when the job's ``on_task_failure`` is
    ``performexitoptionsjobaction``); None for the default."""
    dependency_action: DependencyAction | None = None
    """What it does to the tasks depending on this one; None for the default."""

    def __post_init__(self) -> None:
        if self.job_action is not None:
            object.__setattr__(
                self,
                "job_action",
                _choice(JobAction, self.job_action, field="job_action", reason="INVALID_EXIT_OPTIONS"),
            )
        if self.dependency_action is not None:
            member = _choice(
                DependencyAction, self.dependency_action, field="dependency_action", reason="INVALID_EXIT_OPTIONS"
            )
            object.__setattr__(self, "dependency_action", member)

    def to_proto(self) -> task_pb2.ExitOptions:
        """The ``shoal.v1.ExitOptions`` message."""
        msg = task_pb2.ExitOptions()
        if self.job_action is not None:
            msg.job_action = _JOB_ACTIONS[self.job_action]
        if self.dependency_action is not None:
            msg.dependency_action = _DEPENDENCY_ACTIONS[self.dependency_action]
        return msg

    @classmethod
    def from_proto(cls, msg: task_pb2.ExitOptions) -> ExitOptions:
        """Build from a ``shoal.v1.ExitOptions`` message."""
        return cls(
            job_action=_JOB_ACTIONS_FROM_PROTO.get(msg.job_action),  # type: ignore[call-overload]
            dependency_action=_DEPENDENCY_ACTIONS_FROM_PROTO.get(msg.dependency_action),  # type: ignore[call-overload]
        )


@dataclass(frozen=True, kw_only=True)
class ExitCodeMapping:
    """The exit options of one exit code."""

    code: int
    """The process exit code."""
    exit_options: ExitOptions
    """What that exit code does."""

    def to_proto(self) -> task_pb2.ExitCodeMapping:
        """The ``shoal.v1.ExitCodeMapping`` message."""
        return task_pb2.ExitCodeMapping(code=self.code, exit_options=self.exit_options.to_proto())

    @classmethod
    def from_proto(cls, msg: task_pb2.ExitCodeMapping) -> ExitCodeMapping:
        """Build from a ``shoal.v1.ExitCodeMapping`` message."""
        return cls(code=msg.code, exit_options=ExitOptions.from_proto(msg.exit_options))


@dataclass(frozen=True, kw_only=True)
class ExitCodeRangeMapping:
    """The exit options of an inclusive range of exit codes."""

    start: int
    """The first exit code of the range."""
    end: int
    """The last exit code of the range (inclusive)."""
    exit_options: ExitOptions
    """What those exit codes do."""

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InvalidArgument(
                f"exit code range {self.start}-{self.end} ends before it starts",
                reason="INVALID_EXIT_CONDITIONS",
                field_violations=[("exit_conditions.exit_code_ranges.end", "at least start")],
            )

    def to_proto(self) -> task_pb2.ExitCodeRangeMapping:
        """The ``shoal.v1.ExitCodeRangeMapping`` message."""
        return task_pb2.ExitCodeRangeMapping(start=self.start, end=self.end, exit_options=self.exit_options.to_proto())

    @classmethod
    def from_proto(cls, msg: task_pb2.ExitCodeRangeMapping) -> ExitCodeRangeMapping:
        """Build from a ``shoal.v1.ExitCodeRangeMapping`` message."""
        return cls(start=msg.start, end=msg.end, exit_options=ExitOptions.from_proto(msg.exit_options))


@dataclass(frozen=True, kw_only=True)
class ExitConditions:
    """What a task's final outcome (after its retries) does, as Batch's ``exitConditions``.

    The first of ``exit_codes``, then of ``exit_code_ranges``, that matches the
    exit code applies; else ``pre_processing_error`` or ``file_upload_error``
    for those failures; else ``default`` for any failure. A success not listed
    takes the defaults of :class:`ExitOptions`.
    """

    exit_codes: Sequence[ExitCodeMapping] = ()
    """Exit options of single exit codes."""
    exit_code_ranges: Sequence[ExitCodeRangeMapping] = ()
    """Exit options of ranges of exit codes."""
    pre_processing_error: ExitOptions | None = None
    """When the task could not start (resource files, command not found...)."""
    file_upload_error: ExitOptions | None = None
    """When its output files could not be uploaded."""
    default: ExitOptions | None = None
    """For any other failure."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "exit_codes", tuple(self.exit_codes))
        object.__setattr__(self, "exit_code_ranges", tuple(self.exit_code_ranges))

    def to_proto(self) -> task_pb2.ExitConditions:
        """The ``shoal.v1.ExitConditions`` message (unset options stay unset)."""
        msg = task_pb2.ExitConditions(
            exit_codes=[m.to_proto() for m in self.exit_codes],
            exit_code_ranges=[m.to_proto() for m in self.exit_code_ranges],
        )
        for name in ("pre_processing_error", "file_upload_error", "default"):
            options: ExitOptions | None = getattr(self, name)
            if options is not None:
                getattr(msg, name).CopyFrom(options.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: task_pb2.ExitConditions) -> ExitConditions:
        """Build from a ``shoal.v1.ExitConditions`` message."""

        def options(name: str) -> ExitOptions | None:
            return ExitOptions.from_proto(getattr(msg, name)) if msg.HasField(name) else None

        return cls(
            exit_codes=tuple(ExitCodeMapping.from_proto(m) for m in msg.exit_codes),
            exit_code_ranges=tuple(ExitCodeRangeMapping.from_proto(m) for m in msg.exit_code_ranges),
            pre_processing_error=options("pre_processing_error"),
            file_upload_error=options("file_upload_error"),
            default=options("default"),
        )


# --------------------------------------------------------------------------- the job's own tasks


def _constraints_from_proto(parent: Any) -> TaskConstraints | None:
    return TaskConstraints.from_proto(parent.constraints) if parent.HasField("constraints") else None


@dataclass(frozen=True, kw_only=True)
class JobManagerTask:
    """A task created with the job that starts before its other tasks, often to add them.

    From inside it, ``shoal.Client.connect()`` and the ``shoal`` CLI reach the server without configuration.
    """

    command_line: str
    """Split like a shell would and run without a shell."""
    id: str = ""
    """Its task id; empty means ``jobmanager``."""
    display_name: str = ""
    """A free-form name for people."""
    resource_files: Sequence[ResourceFileSpec] = ()
    """Files staged into its working directory."""
    output_files: Sequence[OutputFileSpec] = ()
    """Files uploaded after its process exits."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables."""
    constraints: TaskConstraints | None = None
    """Its limits; None for the defaults."""
    kill_job_on_completion: bool = True
    """Terminate the job (``terminate_reason`` ``JMComplete``) when it completes."""
    run_exclusive: bool = True
    """Nothing else runs on its node while it runs."""
    required_slots: int = 1
    """Slots it takes on its node."""
    user_identity: UserIdentity | None = None
    """Who it runs as (None: the pool's non-admin auto user)."""
    allow_low_priority_node: bool = True
    """It may run on a low-priority (preemptible) node (False: dedicated nodes only), as Batch's."""
    application_package_references: Sequence[ApplicationPackageReference] = ()
    """Packages deployed on its node before it runs."""
    container_settings: TaskContainerSettings | None = None
    """Run it in a container (the job's pool needs a :class:`ContainerConfiguration`)."""

    def to_proto(self) -> job_pb2.JobManagerTask:
        """The ``shoal.v1.JobManagerTask`` message."""
        msg = job_pb2.JobManagerTask(
            id=self.id,
            display_name=self.display_name,
            command_line=self.command_line,
            resource_files=[r.to_proto() for r in self.resource_files],
            output_files=[o.to_proto() for o in self.output_files],
            environment_settings=_env_to_proto(self.environment),
            kill_job_on_completion=self.kill_job_on_completion,
            run_exclusive=self.run_exclusive,
            required_slots=self.required_slots,
            allow_low_priority_node=self.allow_low_priority_node,
            application_package_references=[r.to_proto() for r in self.application_package_references],
        )
        if self.constraints is not None:
            msg.constraints.CopyFrom(self.constraints.to_proto())
        if self.user_identity is not None:
            msg.user_identity.CopyFrom(self.user_identity.to_proto())
        if self.container_settings is not None:
            msg.container_settings.CopyFrom(self.container_settings.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: job_pb2.JobManagerTask) -> JobManagerTask:
        """Build from a ``shoal.v1.JobManagerTask`` message (unset options read as their defaults)."""
        return cls(
            id=msg.id,
            display_name=msg.display_name,
            command_line=msg.command_line,
            resource_files=tuple(ResourceFileSpec.from_proto(r) for r in msg.resource_files),
            output_files=tuple(OutputFileSpec.from_proto(o) for o in msg.output_files),
            environment=_env_from_proto(msg.environment_settings),
            constraints=_constraints_from_proto(msg),
            kill_job_on_completion=msg.kill_job_on_completion if msg.HasField("kill_job_on_completion") else True,
            run_exclusive=msg.run_exclusive if msg.HasField("run_exclusive") else True,
            required_slots=msg.required_slots or 1,
            user_identity=identity_of(msg),
            allow_low_priority_node=msg.allow_low_priority_node if msg.HasField("allow_low_priority_node") else True,
            application_package_references=tuple(
                ApplicationPackageReference.from_proto(r) for r in msg.application_package_references
            ),
            container_settings=container_settings_of(msg),
        )


@dataclass(frozen=True, kw_only=True)
class JobPreparationTask:
    """Runs on a node before the first task of the job there, once per node and job."""

    command_line: str
    """Split like a shell would and run without a shell."""
    id: str = ""
    """Its id; empty means ``jobpreparation``."""
    resource_files: Sequence[ResourceFileSpec] = ()
    """Files staged into its working directory."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables."""
    constraints: TaskConstraints | None = None
    """Its limits; None for the defaults."""
    wait_for_success: bool = True
    """The job's tasks run on the node only after it succeeded."""
    rerun_on_node_reboot_after_success: bool = True
    """Run it again after the node reboots even if it succeeded."""
    user_identity: UserIdentity | None = None
    """Who it runs as (None: the pool's non-admin auto user); its directory is readable by every user."""
    container_settings: TaskContainerSettings | None = None
    """Run it in a container (the job's pool needs a :class:`ContainerConfiguration`)."""

    def to_proto(self) -> job_pb2.JobPreparationTask:
        """The ``shoal.v1.JobPreparationTask`` message."""
        msg = job_pb2.JobPreparationTask(
            id=self.id,
            command_line=self.command_line,
            resource_files=[r.to_proto() for r in self.resource_files],
            environment_settings=_env_to_proto(self.environment),
            wait_for_success=self.wait_for_success,
            rerun_on_node_reboot_after_success=self.rerun_on_node_reboot_after_success,
        )
        if self.constraints is not None:
            msg.constraints.CopyFrom(self.constraints.to_proto())
        if self.user_identity is not None:
            msg.user_identity.CopyFrom(self.user_identity.to_proto())
        if self.container_settings is not None:
            msg.container_settings.CopyFrom(self.container_settings.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: job_pb2.JobPreparationTask) -> JobPreparationTask:
        """Build from a ``shoal.v1.JobPreparationTask`` message (unset options read as their defaults)."""
        return cls(
            id=msg.id,
            command_line=msg.command_line,
            resource_files=tuple(ResourceFileSpec.from_proto(r) for r in msg.resource_files),
            environment=_env_from_proto(msg.environment_settings),
            constraints=_constraints_from_proto(msg),
            wait_for_success=msg.wait_for_success if msg.HasField("wait_for_success") else True,
            rerun_on_node_reboot_after_success=(
                msg.rerun_on_node_reboot_after_success if msg.HasField("rerun_on_node_reboot_after_success") else True
            ),
            user_identity=identity_of(msg),
            container_settings=container_settings_of(msg),
        )


@dataclass(frozen=True, kw_only=True)
class JobReleaseTask:
    """Runs when the job ends on every node that ran its preparation task (the job needs one)."""

    command_line: str
    """Split like a shell would and run without a shell."""
    id: str = ""
    """Its id; empty means ``jobrelease``."""
    resource_files: Sequence[ResourceFileSpec] = ()
    """Files staged into its working directory."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables."""
    max_wall_clock_time: timedelta | None = None
    """Kill it after this long; None for the default and most, 15 minutes."""
    retention_time: timedelta | None = None
    """How long its directory is kept on the node; None for the default, 7 days."""
    user_identity: UserIdentity | None = None
    """Who it runs as (None: the pool's non-admin auto user)."""
    container_settings: TaskContainerSettings | None = None
    """Run it in a container (the job's pool needs a :class:`ContainerConfiguration`)."""

    def to_proto(self) -> job_pb2.JobReleaseTask:
        """The ``shoal.v1.JobReleaseTask`` message."""
        msg = job_pb2.JobReleaseTask(
            id=self.id,
            command_line=self.command_line,
            resource_files=[r.to_proto() for r in self.resource_files],
            environment_settings=_env_to_proto(self.environment),
        )
        if self.max_wall_clock_time is not None:
            msg.max_wall_clock_time.CopyFrom(duration_to_proto(self.max_wall_clock_time))
        if self.retention_time is not None:
            msg.retention_time.CopyFrom(duration_to_proto(self.retention_time))
        if self.user_identity is not None:
            msg.user_identity.CopyFrom(self.user_identity.to_proto())
        if self.container_settings is not None:
            msg.container_settings.CopyFrom(self.container_settings.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: job_pb2.JobReleaseTask) -> JobReleaseTask:
        """Build from a ``shoal.v1.JobReleaseTask`` message."""
        return cls(
            id=msg.id,
            command_line=msg.command_line,
            resource_files=tuple(ResourceFileSpec.from_proto(r) for r in msg.resource_files),
            environment=_env_from_proto(msg.environment_settings),
            max_wall_clock_time=_duration(msg, "max_wall_clock_time"),
            retention_time=_duration(msg, "retention_time"),
            user_identity=identity_of(msg),
            container_settings=container_settings_of(msg),
        )


@dataclass(frozen=True, kw_only=True)
class JobConstraints:
    """Limits on a whole job (``jobs.update(constraints=...)`` replaces them whole)."""

    max_wall_clock_time: timedelta | None = None
    """From the job's creation; None means unlimited."""
    max_task_retry_count: int = 0
    """Default retry count of its tasks (-1 unlimited)."""

    def to_proto(self) -> job_pb2.JobConstraints:
        """The ``shoal.v1.JobConstraints`` message."""
        msg = job_pb2.JobConstraints(max_task_retry_count=self.max_task_retry_count)
        if self.max_wall_clock_time is not None:
            msg.max_wall_clock_time.CopyFrom(duration_to_proto(self.max_wall_clock_time))
        return msg

    @classmethod
    def from_proto(cls, msg: job_pb2.JobConstraints) -> JobConstraints:
        """Build from a ``shoal.v1.JobConstraints`` message."""
        return cls(
            max_wall_clock_time=_duration(msg, "max_wall_clock_time"), max_task_retry_count=msg.max_task_retry_count
        )


# --------------------------------------------------------------------------- preparation and release status


@dataclass(frozen=True, kw_only=True)
class PreparationTaskExecutionInfo:
    """One run of a job preparation or release task on one node."""

    state: PreparationTaskState
    """``running`` or ``completed``."""
    start_time: datetime | None
    """When it started."""
    end_time: datetime | None
    """When it ended."""
    exit_code: int | None
    """Its exit code, when its process exited."""
    failure: FailureInfo | None
    """Why it failed, if it did."""
    retry_count: int
    """Retries so far."""
    last_retry_time: datetime | None
    """When it was last retried."""
    result: str | None
    """``"success"``, ``"failure"`` or None while running."""
    task_root_directory: str
    """Its directory on the node."""

    @classmethod
    def from_proto(cls, msg: job_pb2.PreparationTaskExecutionInfo) -> PreparationTaskExecutionInfo:
        """Build from a ``shoal.v1.PreparationTaskExecutionInfo``."""
        return cls(
            state=_PREPARATION_TASK_STATES.get(msg.state, PreparationTaskState.UNSPECIFIED),
            start_time=_ts(msg, "start_time"),
            end_time=_ts(msg, "end_time"),
            exit_code=_optional_int(msg, "exit_code"),
            failure=FailureInfo.from_proto(msg.failure_info),
            retry_count=msg.retry_count,
            last_retry_time=_ts(msg, "last_retry_time"),
            result=_RESULTS.get(msg.result),
            task_root_directory=msg.task_root_directory,
        )


@dataclass(frozen=True, kw_only=True)
class PreparationAndReleaseTaskStatus:
    """The job preparation and release tasks run on one node."""

    pool_id: str
    """The node's pool."""
    node_id: str
    """The node."""
    node_address: str
    """The node's address."""
    preparation: PreparationTaskExecutionInfo | None
    """The job preparation task there; None if it has not run there."""
    release: PreparationTaskExecutionInfo | None
    """The job release task there; None until the job ends."""

    @classmethod
    def from_proto(cls, msg: job_pb2.PreparationAndReleaseTaskStatus) -> PreparationAndReleaseTaskStatus:
        """Build from a ``shoal.v1.PreparationAndReleaseTaskStatus``."""

        def info(name: str) -> PreparationTaskExecutionInfo | None:
            if not msg.HasField(name):
                return None
            return PreparationTaskExecutionInfo.from_proto(getattr(msg, name))

        return cls(
            pool_id=msg.pool_id,
            node_id=msg.node_id,
            node_address=msg.node_address,
            preparation=info("job_preparation_task_execution_info"),
            release=info("job_release_task_execution_info"),
        )
