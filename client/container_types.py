"""Container tasks (Batch's container support): a pool's :class:`ContainerConfiguration` (the images every
node pulls, the private registries they come from) and a task's :class:`TaskContainerSettings` (the image it
runs in, more options for the container, the registry of a private image).

A registry's ``password`` is a secret: give it on the pool's configuration only. The server keeps it apart
and no read returns it (a pool read back shows its registries without passwords); a task's registry names
the server and user, and its node gets the pool's password for them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from shoal.v1 import common_pb2

from .common_types import _choice
from .errors import InvalidArgument

__all__ = [
    "ContainerConfiguration",
    "ContainerRegistry",
    "ContainerType",
    "ContainerWorkingDirectory",
    "TaskContainerExecutionInfo",
    "TaskContainerSettings",
]

C = common_pb2


class ContainerType(enum.StrEnum):
    """Batch's container engine kinds; Shoal's nodes run both with podman and runc."""

    DOCKER_COMPATIBLE = "dockercompatible"
    CRI_COMPATIBLE = "cricompatible"


class ContainerWorkingDirectory(enum.StrEnum):
    """Where a container task's command starts: ``task`` (the task's working directory, mounted at the
    same path: the default) or ``image`` (the image's own working directory)."""

    TASK_WORKING_DIRECTORY = "task"
    CONTAINER_IMAGE_DEFAULT = "image"


_TYPES = {
    ContainerType.DOCKER_COMPATIBLE: C.CONTAINER_TYPE_DOCKER_COMPATIBLE,
    ContainerType.CRI_COMPATIBLE: C.CONTAINER_TYPE_CRI_COMPATIBLE,
}
_WORKDIRS = {
    ContainerWorkingDirectory.TASK_WORKING_DIRECTORY: C.CONTAINER_WORKING_DIRECTORY_TASK_WORKING_DIRECTORY,
    ContainerWorkingDirectory.CONTAINER_IMAGE_DEFAULT: C.CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT,
}


def working_directory(value: ContainerWorkingDirectory | str) -> ContainerWorkingDirectory:
    """``value`` as a :class:`ContainerWorkingDirectory`: a member, its value (``task``, ``image``) or its
    name in any case (``container_image_default``)."""
    if isinstance(value, ContainerWorkingDirectory):
        return value
    text = str(value).strip()
    for member in ContainerWorkingDirectory:
        if text.lower() in (member.value, member.name.lower()):
            return member
    raise InvalidArgument(
        f"working_directory must be 'task' or 'image', not {value!r}",
        reason="INVALID_CONTAINER_SETTINGS",
        field_violations=[("working_directory", "one of ['image', 'task']")],
    )


@dataclass(frozen=True, kw_only=True)
class ContainerRegistry:
    """A registry images are pulled from."""

    registry_server: str = ""
    """``host[:port]``; empty: the registry the image name names (or the engine's default)."""
    user_name: str = ""
    """The user to log in as."""
    password: str = field(default="", repr=False)
    """Its password: on a pool's configuration only (a task's registry gives none). Never returned by the
    server: a registry read back has it empty."""

    def to_proto(self) -> common_pb2.ContainerRegistry:
        """The ``shoal.v1.ContainerRegistry`` message."""
        return C.ContainerRegistry(
            registry_server=self.registry_server, user_name=self.user_name, password=self.password
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.ContainerRegistry) -> ContainerRegistry:
        """Build from a ``shoal.v1.ContainerRegistry`` message."""
        return cls(registry_server=msg.registry_server, user_name=msg.user_name, password=msg.password)


@dataclass(frozen=True, kw_only=True)
class ContainerConfiguration:
    """A pool whose tasks may run in containers; set when the pool is created, never changed."""

    container_image_names: Sequence[str] = ()
    """Images every node pulls when it joins (and after a reboot or reimage), before it takes tasks; one
    that cannot be pulled is a node error (``ContainerInvalidImage``, ``ContainerInvalidRegistry``)."""
    container_registries: Sequence[ContainerRegistry] = ()
    """The private registries images come from, with their credentials."""
    type: ContainerType | str = ContainerType.DOCKER_COMPATIBLE
    """Batch's engine kind (both run the same way on Shoal's nodes)."""
    allow_host_run_options: bool = False
    """Let tasks' ``container_run_options`` reach outside the task (``--privileged``, host namespaces,
    devices, mounts, ...): refused unless this is set."""

    def to_proto(self) -> common_pb2.ContainerConfiguration:
        """The ``shoal.v1.ContainerConfiguration`` message."""
        kind = _choice(ContainerType, self.type, field="type", reason="INVALID_CONTAINER_CONFIGURATION")
        return C.ContainerConfiguration(
            type=_TYPES[kind],
            container_image_names=list(self.container_image_names),
            container_registries=[r.to_proto() for r in self.container_registries],
            allow_host_run_options=self.allow_host_run_options,
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.ContainerConfiguration) -> ContainerConfiguration:
        """Build from a ``shoal.v1.ContainerConfiguration`` message."""
        kind = (
            ContainerType.CRI_COMPATIBLE
            if msg.type == C.CONTAINER_TYPE_CRI_COMPATIBLE
            else ContainerType.DOCKER_COMPATIBLE
        )
        return cls(
            container_image_names=tuple(msg.container_image_names),
            container_registries=tuple(ContainerRegistry.from_proto(r) for r in msg.container_registries),
            type=kind,
            allow_host_run_options=msg.allow_host_run_options,
        )


@dataclass(frozen=True, kw_only=True)
class TaskContainerSettings:
    """Run a task (or a start, job manager, preparation or release task) in a container of ``image_name``;
    its pool must have a :class:`ContainerConfiguration`. The command line is the container's command; the
    node's root directory is mounted at the same path, so the task's files and the ``SHOAL_*`` /
    ``AZ_BATCH_*`` variables mean what they mean outside."""

    image_name: str
    """The image (``[registry/]name[:tag][@digest]``)."""
    container_run_options: str = ""
    """More options for the container (``--memory 1g --env NAME=value``). Options that reach outside the
    task (``--privileged``, ``--pid host``, ``--volume``, ...) are refused unless the pool allows them."""
    registry: ContainerRegistry | None = None
    """The registry of a private image: its server and user (the password is the pool's for them)."""
    working_directory: ContainerWorkingDirectory | str = ContainerWorkingDirectory.TASK_WORKING_DIRECTORY
    """``task`` (the task's working directory) or ``image`` (the image's own)."""

    def to_proto(self) -> common_pb2.TaskContainerSettings:
        """The ``shoal.v1.TaskContainerSettings`` message."""
        msg = C.TaskContainerSettings(
            image_name=self.image_name,
            container_run_options=self.container_run_options,
            working_directory=_WORKDIRS[working_directory(self.working_directory)],
        )
        if self.registry is not None:
            msg.registry.CopyFrom(self.registry.to_proto())
        return msg

    @classmethod
    def from_proto(cls, msg: common_pb2.TaskContainerSettings) -> TaskContainerSettings:
        """Build from a ``shoal.v1.TaskContainerSettings`` message."""
        image_default = msg.working_directory == C.CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT
        return cls(
            image_name=msg.image_name,
            container_run_options=msg.container_run_options,
            registry=ContainerRegistry.from_proto(msg.registry) if msg.HasField("registry") else None,
            working_directory=(
                ContainerWorkingDirectory.CONTAINER_IMAGE_DEFAULT
                if image_default
                else ContainerWorkingDirectory.TASK_WORKING_DIRECTORY
            ),
        )


@dataclass(frozen=True, kw_only=True)
class TaskContainerExecutionInfo:
    """The container of a task's attempt, as its node reported it."""

    container_id: str
    """The container's name on the node (``podman ps -a``)."""
    state: str
    """The engine's last word on it: ``exited``, ``killed``, ``removed``, ..."""
    error: str
    """What the engine said when it could not make or start it."""

    @classmethod
    def from_proto(cls, msg: common_pb2.TaskContainerExecutionInfo) -> TaskContainerExecutionInfo:
        """Build from a ``shoal.v1.TaskContainerExecutionInfo`` message."""
        return cls(container_id=msg.container_id, state=msg.state, error=msg.error)


def container_settings_of(parent: object) -> TaskContainerSettings | None:
    """The ``container_settings`` of a task, job task or start task message, when set."""
    if not parent.HasField("container_settings"):  # type: ignore[attr-defined]
        return None
    return TaskContainerSettings.from_proto(parent.container_settings)  # type: ignore[attr-defined]


def container_info_of(parent: object) -> TaskContainerExecutionInfo | None:
    """The ``container_info`` of an execution info or subtask message, when set."""
    if not parent.HasField("container_info"):  # type: ignore[attr-defined]
        return None
    return TaskContainerExecutionInfo.from_proto(parent.container_info)  # type: ignore[attr-defined]
