"""The container options of the CLI: a pool's container configuration (``shoal pool create``) and a task's
container settings (``shoal task add``).

A registry password never comes from the command line (where other users of the machine could read it in
the process list): ``--registry-password-stdin`` reads it from standard input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from .container_types import (
    ContainerConfiguration,
    ContainerRegistry,
    ContainerWorkingDirectory,
    TaskContainerSettings,
)

__all__ = [
    "TASK_CONTAINER_OPTIONS",
    "container_configuration_from_options",
    "pool_container_options",
    "read_password",
    "task_container_options",
    "task_container_settings_from_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The parameter names of `task_container_options` (task options a --json-file may not be given with).
TASK_CONTAINER_OPTIONS = ("image", "container_run_options", "container_workdir", "registry_server", "registry_user")


def _apply(f: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        f = option(f)
    return f


def pool_container_options(f: F) -> F:
    """``--container-image``, ``--container-registry``, ``--registry-user``, ``--registry-password-stdin``,
    ``--allow-host-run-options`` of ``pool create``."""
    return _apply(
        f,
        [
            click.option(
                "--container-image",
                "container_images",
                multiple=True,
                metavar="IMAGE",
                help="Make a container pool: every node pulls IMAGE before it takes tasks (repeatable). "
                "Tasks of a container pool may run in containers (`shoal task add --image`).",
            ),
            click.option(
                "--container-registry",
                default=None,
                metavar="SERVER",
                help="A private registry (host[:port]) the pool's images come from, with --registry-user.",
            ),
            click.option(
                "--registry-user", "pool_registry_user", default=None, help="The user to log in to the registry as."
            ),
            click.option(
                "--registry-password-stdin",
                is_flag=True,
                help="Read the registry user's password from standard input (never from the command line). "
                "The server keeps it apart and never shows it.",
            ),
            click.option(
                "--allow-host-run-options",
                is_flag=True,
                help="Let tasks' --container-run-options reach outside the task (--privileged, host namespaces, "
                "mounts, devices); refused otherwise.",
            ),
        ],
    )


def read_password(stream: IO[str]) -> str:
    """A password from `stream` (its first line, without the line end)."""
    line = stream.readline()
    return line.rstrip("\r\n")


def container_configuration_from_options(
    container_images: tuple[str, ...],
    container_registry: str | None,
    registry_user: str | None,
    registry_password_stdin: bool,
    allow_host_run_options: bool,
    stdin: IO[str],
) -> ContainerConfiguration | None:
    """The pool's :class:`ContainerConfiguration` the options describe, or None without any."""
    registry_given = container_registry is not None or registry_user is not None or registry_password_stdin
    if not container_images and not registry_given and not allow_host_run_options:
        return None
    if registry_password_stdin and not registry_user:
        raise click.UsageError("--registry-password-stdin needs --registry-user")
    registries: tuple[ContainerRegistry, ...] = ()
    if registry_given:
        password = read_password(stdin) if registry_password_stdin else ""
        if registry_password_stdin and not password:
            raise click.UsageError("--registry-password-stdin: standard input gave no password")
        registries = (
            ContainerRegistry(
                registry_server=container_registry or "", user_name=registry_user or "", password=password
            ),
        )
    return ContainerConfiguration(
        container_image_names=container_images,
        container_registries=registries,
        allow_host_run_options=allow_host_run_options,
    )


def task_container_options(f: F) -> F:
    """``--image``, ``--container-run-options``, ``--container-workdir``, ``--registry-server``,
    ``--registry-user`` of ``task add``."""
    return _apply(
        f,
        [
            click.option(
                "--image",
                default=None,
                metavar="IMAGE",
                help="Run the task in a container of IMAGE (the job's pool must be a container pool: "
                "`shoal pool create --container-image`).",
            ),
            click.option(
                "--container-run-options",
                default="",
                metavar="OPTIONS",
                help="More options for the container, e.g. '--memory 1g --env NAME=value'. Options that reach "
                "outside the task (--privileged, --pid host, --volume, ...) need a pool that allows them.",
            ),
            click.option(
                "--container-workdir",
                type=click.Choice(["task", "image"]),
                default=None,
                help="Where the command starts: the task's working directory (task, the default) or the "
                "image's own (image).",
            ),
            click.option(
                "--registry-server",
                default=None,
                metavar="SERVER",
                help="The registry of a private image (host[:port]; default: the one the image name names). "
                "Its password is the pool's.",
            ),
            click.option(
                "--registry-user",
                default=None,
                help="The registry user to pull the image as (its password is the pool's for that registry).",
            ),
        ],
    )


def task_container_settings_from_options(
    image: str | None,
    container_run_options: str,
    container_workdir: str | None,
    registry_server: str | None,
    registry_user: str | None,
) -> TaskContainerSettings | None:
    """The task's :class:`TaskContainerSettings` the options describe, or None without ``--image``."""
    if image is None:
        if container_run_options or container_workdir or registry_server or registry_user:
            raise click.UsageError(
                "--container-run-options, --container-workdir, --registry-server and --registry-user need --image"
            )
        return None
    registry = None
    if registry_server or registry_user:
        registry = ContainerRegistry(registry_server=registry_server or "", user_name=registry_user or "")
    return TaskContainerSettings(
        image_name=image,
        container_run_options=container_run_options,
        registry=registry,
        working_directory=ContainerWorkingDirectory(container_workdir or "task"),
    )
