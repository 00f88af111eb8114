"""Types and conversions shared by every resource of the client (common.proto's messages).

:class:`ResourceFileSpec`, :class:`OutputFileSpec`, :class:`TaskConstraints` and
:class:`FailureInfo`, and the helpers that turn timestamps, durations,
environments and metadata into protos and back. :mod:`.types` and
:mod:`.workflow_types` build on them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2

from shoal.v1 import common_pb2

from .errors import InvalidArgument

__all__ = [
    "FailureInfo",
    "OutputFileSpec",
    "ResourceFileSpec",
    "TaskConstraints",
    "duration_to_proto",
]

E = TypeVar("E", bound=enum.Enum)

_UPLOAD_CONDITIONS = {
    "success": common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_SUCCESS,
    "failure": common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE,
    "completion": common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION,
}
_UPLOAD_CONDITIONS_FROM_PROTO = {v: k for k, v in _UPLOAD_CONDITIONS.items()}
#: Every name an upload condition may be given by (any case): Shoal's and Batch's (``TaskSuccess``...).
UPLOAD_CONDITION_NAMES: dict[str, str] = {
    **{name: name for name in _UPLOAD_CONDITIONS},
    **{f"task{name}": name for name in _UPLOAD_CONDITIONS},
}
_UPLOAD_CONDITIONS_FROM_PROTO[common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_UNSPECIFIED] = "success"

_ERROR_CATEGORIES = {
    common_pb2.ERROR_CATEGORY_UNSPECIFIED: "",
    common_pb2.ERROR_CATEGORY_USER_ERROR: "usererror",
    common_pb2.ERROR_CATEGORY_SERVER_ERROR: "servererror",
}

_RESULTS = {
    common_pb2.TASK_EXECUTION_RESULT_UNSPECIFIED: None,
    common_pb2.TASK_EXECUTION_RESULT_SUCCESS: "success",
    common_pb2.TASK_EXECUTION_RESULT_FAILURE: "failure",
}


# --------------------------------------------------------------------------- helpers


def _ts(parent: Any, name: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime, or None when unset."""
    if not parent.HasField(name):
        return None
    ts: timestamp_pb2.Timestamp = getattr(parent, name)
    return ts.ToDatetime(tzinfo=UTC)


def _duration(parent: Any, name: str) -> timedelta | None:
    if not parent.HasField(name):
        return None
    d: duration_pb2.Duration = getattr(parent, name)
    return d.ToTimedelta()


def duration_to_proto(value: timedelta) -> duration_pb2.Duration:
    """A timedelta as a protobuf Duration."""
    d = duration_pb2.Duration()
    d.FromTimedelta(value)
    return d


def _env_to_proto(env: Mapping[str, str]) -> list[common_pb2.EnvironmentSetting]:
    return [common_pb2.EnvironmentSetting(name=str(k), value=str(v)) for k, v in env.items()]


def _env_from_proto(settings: Any) -> dict[str, str]:
    return {s.name: s.value for s in settings}


def _optional_int(parent: Any, name: str) -> int | None:
    return int(getattr(parent, name)) if parent.HasField(name) else None


def _metadata_to_proto(metadata: Mapping[str, str]) -> list[common_pb2.MetadataItem]:
    """Name/value pairs in the mapping's order."""
    return [common_pb2.MetadataItem(name=str(k), value=str(v)) for k, v in metadata.items()]


def _metadata_from_proto(items: Any) -> dict[str, str]:
    return {m.name: m.value for m in items}


def _choice(kind: type[E], value: E | str, *, field: str, reason: str) -> E:
    """``value`` as a member of the string enum ``kind``.

    A member, or its value written in any case and with or without ``_``/``-``
    (``"perform_exit_options_job_action"``, ``"PerformExitOptionsJobAction"``).
    """
    if isinstance(value, kind):
        return value
    key = str(value).lower().replace("_", "").replace("-", "")
    for member in kind:
        if member.value == key:
            return member
    choices = sorted(str(m.value) for m in kind if m.value != "unspecified")
    raise InvalidArgument(
        f"{field} must be one of {choices}, not {value!r}",
        reason=reason,
        field_violations=[(field, f"one of {choices}")],
    )


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, kw_only=True)
class TaskConstraints:
    """Limits on one task; unset fields take the server's (or the job's) defaults."""

    max_wall_clock_time: timedelta | None = None
    """Kill the task after this long from the start of its process (``TaskEnded``); None means unlimited."""
    max_task_retry_count: int | None = None
    """Retries after a non-zero exit; None means the job's value, -1 unlimited."""
    retention_time: timedelta | None = None
    """How long the task directory is kept on its node after completion (server default 7 days)."""

    def to_proto(self) -> common_pb2.TaskConstraints:
        """The ``shoal.v1.TaskConstraints`` message (unset fields stay unset)."""
        msg = common_pb2.TaskConstraints()
        if self.max_wall_clock_time is not None:
            msg.max_wall_clock_time.CopyFrom(duration_to_proto(self.max_wall_clock_time))
        if self.max_task_retry_count is not None:
            msg.max_task_retry_count = self.max_task_retry_count
        if self.retention_time is not None:
            msg.retention_time.CopyFrom(duration_to_proto(self.retention_time))
        return msg

    @classmethod
    def from_proto(cls, msg: common_pb2.TaskConstraints) -> TaskConstraints:
        """Build from a ``shoal.v1.TaskConstraints`` message."""
        return cls(
            max_wall_clock_time=_duration(msg, "max_wall_clock_time"),
            max_task_retry_count=_optional_int(msg, "max_task_retry_count"),
            retention_time=_duration(msg, "retention_time"),
        )


@dataclass(frozen=True, kw_only=True)
class ResourceFileSpec:
    """A file (or a set of blobs) to place in the task's working directory before it runs.

    Give either ``storage_container`` (with an optional ``blob_prefix``: every blob
    under it is staged below ``file_path``, a directory) or ``http_url`` (then
    ``file_path`` is the file name to write).
    """

    file_path: str = ""
    """Relative to the working directory: a directory for a container source, a file for a URL."""
    storage_container: str = ""
    """A container in Shoal's storage."""
    blob_prefix: str = ""
    """Only blobs whose names start with this prefix; their path below it is kept."""
    http_url: str = ""
    """An http(s) URL to download."""
    file_mode: str = ""
    """Linux file mode as an octal string; empty means the server default ``0770``."""

    def __post_init__(self) -> None:
        if bool(self.storage_container) == bool(self.http_url):
            raise InvalidArgument(
                "a resource file needs exactly one of storage_container and http_url",
                reason="INVALID_RESOURCE_FILE",
                field_violations=[("storage_container", "exactly one of storage_container, http_url")],
            )
        if self.http_url and not self.file_path:
            raise InvalidArgument(
                "a resource file from a URL needs a file_path",
                reason="INVALID_RESOURCE_FILE",
                field_violations=[("file_path", "required with http_url")],
            )

    @classmethod
    def from_container(cls, container: str, *, blob_prefix: str = "", file_path: str = "") -> ResourceFileSpec:
        """Stage every blob of ``container`` under ``blob_prefix`` into directory ``file_path``."""
        return cls(storage_container=container, blob_prefix=blob_prefix, file_path=file_path)

    @classmethod
    def from_url(cls, url: str, *, file_path: str, file_mode: str = "") -> ResourceFileSpec:
        """Download ``url`` to ``file_path``."""
        return cls(http_url=url, file_path=file_path, file_mode=file_mode)

    def to_proto(self) -> common_pb2.ResourceFile:
        """The ``shoal.v1.ResourceFile`` message."""
        return common_pb2.ResourceFile(
            storage_container_name=self.storage_container,
            blob_prefix=self.blob_prefix,
            http_url=self.http_url,
            file_path=self.file_path,
            file_mode=self.file_mode,
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.ResourceFile) -> ResourceFileSpec:
        """Build from a ``shoal.v1.ResourceFile`` message."""
        return cls(
            storage_container=msg.storage_container_name,
            blob_prefix=msg.blob_prefix,
            http_url=msg.http_url,
            file_path=msg.file_path,
            file_mode=msg.file_mode,
        )


@dataclass(frozen=True, kw_only=True)
class OutputFileSpec:
    """Files to upload to a storage container after the task's process exits."""

    file_pattern: str
    """Glob relative to the working directory (``*``, ``**``, ``?``, ``[a-c]``).

    ``../stdout.txt`` names the task's stdout.
    """
    container: str
    """Destination container."""
    path: str = ""
    """Blob name when the pattern is one literal file; otherwise a prefix keeping relative paths."""
    upload_condition: str = "success"
    """``"success"``, ``"failure"`` or ``"completion"`` (always). Batch's names (``"tasksuccess"``,
    ``"TaskFailure"``, ``"taskcompletion"``) and any case are accepted, and kept as these three."""

    def __post_init__(self) -> None:
        name = UPLOAD_CONDITION_NAMES.get(str(self.upload_condition).lower())
        if name is None:
            names = ", ".join(UPLOAD_CONDITION_NAMES)
            raise InvalidArgument(
                f"upload_condition {self.upload_condition!r} is none of {names}",
                reason="INVALID_OUTPUT_FILE",
                field_violations=[("upload_condition", f"one of {names}")],
            )
        # (A frozen dataclass: the one name kept is set through object.)
        object.__setattr__(self, "upload_condition", name)

    def to_proto(self) -> common_pb2.OutputFile:
        """The ``shoal.v1.OutputFile`` message."""
        return common_pb2.OutputFile(
            file_pattern=self.file_pattern,
            container_name=self.container,
            path=self.path,
            upload_condition=_UPLOAD_CONDITIONS[self.upload_condition],  # type: ignore[arg-type]
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.OutputFile) -> OutputFileSpec:
        """Build from a ``shoal.v1.OutputFile`` message."""
        return cls(
            file_pattern=msg.file_pattern,
            container=msg.container_name,
            path=msg.path,
            upload_condition=_UPLOAD_CONDITIONS_FROM_PROTO.get(msg.upload_condition, "success"),
        )


@dataclass(frozen=True, kw_only=True)
class FailureInfo:
    """Why a task or start task failed."""

    category: str
    """``"usererror"`` or ``"servererror"`` (empty when unspecified)."""
    code: str
    """Batch-style code: ``FailureExitCode``, ``TaskEnded``, ``BlobNotFound``, ..."""
    message: str
    """Human-readable detail."""

    @classmethod
    def from_proto(cls, msg: common_pb2.FailureInfo) -> FailureInfo | None:
        """Build from a ``shoal.v1.FailureInfo``; None when it is empty."""
        if not msg.code and not msg.message and not msg.category:
            return None
        return cls(category=_ERROR_CATEGORIES.get(msg.category, ""), code=msg.code, message=msg.message)
