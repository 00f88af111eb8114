"""Field checks for container tasks: a pool's container configuration, and the container settings of a task,
a job manager, preparation or release task, or a start task.

The rules themselves (what an image name, a registry server and run options may be) are `shoal.containers`,
which the node agent applies again before it asks its engine. Here they become field violations, with the
pool's part of Batch's rule: a task that names an image needs a pool with a container configuration.

Run options are checked against the pool's `allow_host_run_options` when the pool is known. For a job whose
pool is not made yet (a job may name a pool made later) only their syntax is checked (as if the pool allowed
host options): the node checks them again against its pool before it makes the container, and refuses what
its pool does not allow (the task fails with ContainerInvalidSettings).
"""

from __future__ import annotations

from shoal.containers import (
    MAX_POOL_IMAGES,
    MAX_POOL_REGISTRIES,
    image_name_problem,
    parse_run_options,
    registry_server_problem,
)
from shoal.server.api.identity_checks import PoolAccounts
from shoal.v1 import common_pb2

Violations = list[tuple[str, str]]

#: Why a task's registry may not carry a password (task records are stored and returned as they are).
TASK_PASSWORD_REFUSED = (
    "must be empty: a registry's password is a secret of the pool, given in its "
    "container_configuration.container_registries (a task names the server and user only)"
)


def check_container_configuration(cfg: common_pb2.ContainerConfiguration, field: str) -> Violations:
    """A pool's container configuration: a known type, at most `MAX_POOL_IMAGES` valid image names, at most
    `MAX_POOL_REGISTRIES` registries, each with a valid server, a password only with a user name, and no
    server and user twice."""
    out: Violations = []
    if cfg.type not in common_pb2.ContainerType.DESCRIPTOR.values_by_number:
        names = ", ".join(v.name for v in common_pb2.ContainerType.DESCRIPTOR.values)
        out.append((f"{field}.type", f"must be one of {names} (got {cfg.type})"))
    images = cfg.container_image_names
    if len(images) > MAX_POOL_IMAGES:
        out.append((f"{field}.container_image_names", f"at most {MAX_POOL_IMAGES} images"))
    else:
        for i, name in enumerate(images):
            problem = image_name_problem(name)
            if problem:
                out.append((f"{field}.container_image_names[{i}]", problem))
    registries = cfg.container_registries
    if len(registries) > MAX_POOL_REGISTRIES:
        out.append((f"{field}.container_registries", f"at most {MAX_POOL_REGISTRIES} registries"))
        return out
    seen: dict[tuple[str, str], int] = {}
    for i, r in enumerate(registries):
        here = f"{field}.container_registries[{i}]"
        problem = registry_server_problem(r.registry_server)
        if problem:
            out.append((f"{here}.registry_server", problem))
        if r.password and not r.user_name:
            out.append((f"{here}.user_name", "is required with a password"))
        key = (r.registry_server.lower(), r.user_name)
        if key in seen:
            out.append((here, f"names the server and user of {field}.container_registries[{seen[key]}] again"))
        else:
            seen[key] = i
    return out


def check_container_settings(
    settings: common_pb2.TaskContainerSettings, field: str, pool: PoolAccounts | None
) -> Violations:
    """The container settings of a task (`field`: their path, `...container_settings`), against its pool
    when it is known (`pool`): the pool must have a container configuration; the image is required and
    valid; the run options pass `shoal.containers.parse_run_options` (host options only where the pool
    allows them; syntax only for a pool not known yet); the registry's server is valid and it carries no
    password (`TASK_PASSWORD_REFUSED`)."""
    if pool is not None and pool.containers is None:
        return [
            (
                field,
                f"pool {pool.pool_id!r} has no container configuration: a task may run in a container only on "
                "a pool made with one (container_configuration)",
            )
        ]
    out: Violations = []
    problem = image_name_problem(settings.image_name)
    if problem:
        out.append((f"{field}.image_name", problem))
    allow_host = pool is None or (pool.containers is not None and pool.containers.allow_host_run_options)
    problem = parse_run_options(settings.container_run_options, allow_host=allow_host).problem
    if problem:
        out.append((f"{field}.container_run_options", problem))
    if settings.working_directory not in common_pb2.ContainerWorkingDirectory.DESCRIPTOR.values_by_number:
        names = ", ".join(v.name for v in common_pb2.ContainerWorkingDirectory.DESCRIPTOR.values)
        out.append((f"{field}.working_directory", f"must be one of {names} (got {settings.working_directory})"))
    if settings.HasField("registry"):
        r = settings.registry
        problem = registry_server_problem(r.registry_server)
        if problem:
            out.append((f"{field}.registry.registry_server", problem))
        if r.password:
            out.append((f"{field}.registry.password", TASK_PASSWORD_REFUSED))
    return out


def check_container_settings_of(parent: object, field: str, pool: PoolAccounts | None) -> Violations:
    """The `container_settings` of a task, job task or start task message `parent`, when it has them."""
    if not parent.HasField("container_settings"):  # type: ignore[attr-defined]
        return []
    settings: common_pb2.TaskContainerSettings = parent.container_settings  # type: ignore[attr-defined]
    return check_container_settings(settings, f"{field}.container_settings", pool)
