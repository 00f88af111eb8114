"""Environment variables for task processes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.layout import NODE_ROOT_ENV, NodeLayout
from shoal.v1 import common_pb2

if TYPE_CHECKING:
    from shoal.nodeagent.users import RunAs

#: Variables passed through from the agent's own environment.
PASSTHROUGH = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SHELL",
    "TERM",
    "VIRTUAL_ENV",
)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def basic_env(source: Mapping[str, str]) -> dict[str, str]:
    """The agent's PATH and a few basics, nothing else."""
    env = {k: source[k] for k in PASSTHROUGH if k in source}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


#: Shoal's own variables that Batch has no name for.
NO_BATCH_NAME = frozenset({"SHOAL_ADDRESS", "SHOAL_CA_CERT_FILE"})
#: Shoal's names for what Batch calls AZ_BATCH_ACCOUNT_NAME and AZ_BATCH_AUTHENTICATION_TOKEN: the task's
#: account, and a credential that acts for it (only while the node is in its pool).
ACCOUNT_ENV = "SHOAL_ACCOUNT_NAME"
TOKEN_ENV = "SHOAL_AUTHENTICATION_TOKEN"
#: The cluster CA certificate (a PEM file) that the server's TLS certificate is checked against.
CA_CERT_ENV = "SHOAL_CA_CERT_FILE"


def with_batch_names(shoal_vars: Mapping[str, str]) -> dict[str, str]:
    """Each `SHOAL_X` also as `AZ_BATCH_X` (but those in `NO_BATCH_NAME`)."""
    out = dict(shoal_vars)
    for name, value in shoal_vars.items():
        if name.startswith("SHOAL_") and name not in NO_BATCH_NAME:
            out["AZ_BATCH_" + name[len("SHOAL_") :]] = value
    return out


def node_vars(layout: NodeLayout, node_id: str, pool_id: str) -> dict[str, str]:
    """Variables every task on the node gets (start task included): the pool's application packages too."""
    access = layout.access
    out = dict(
        _node_vars(layout, node_id, pool_id, access.account, access.credential, access.ca_file, access.is_dedicated)
    )
    if layout.pool_packages:
        out.update(layout.pool_packages)
    return out


@functools.lru_cache(maxsize=8)
def _node_vars(
    layout: NodeLayout, node_id: str, pool_id: str, account: str, credential: str, ca_file: str, is_dedicated: bool
) -> tuple[tuple[str, str], ...]:
    # The same for every task of the node: made once, not per task.
    address = (("SHOAL_ADDRESS", layout.server_address),) if layout.server_address else ()
    access: tuple[tuple[str, str], ...] = ()
    if credential:
        # (`with_batch_names` adds AZ_BATCH_ACCOUNT_NAME and AZ_BATCH_AUTHENTICATION_TOKEN.)
        access = ((ACCOUNT_ENV, account), (TOKEN_ENV, credential))
    if ca_file:
        access = (*access, (CA_CERT_ENV, ca_file))
    return (
        *address,
        *access,
        (NODE_ROOT_ENV, str(layout.root)),
        ("SHOAL_NODE_SHARED_DIR", str(layout.shared)),
        ("SHOAL_NODE_STARTUP_DIR", str(layout.startup)),
        ("SHOAL_NODE_ID", node_id),
        ("SHOAL_POOL_ID", pool_id),
        ("SHOAL_NODE_IS_DEDICATED", "true" if is_dedicated else "false"),
    )


def build_env(
    source: Mapping[str, str],
    settings: Iterable[common_pb2.EnvironmentSetting],
    system: Mapping[str, str],
) -> dict[str, str]:
    """Basics from `source`, then user settings (later wins), then system variables (always win)."""
    env = basic_env(source)
    for s in settings:
        if s.name and "=" not in s.name and "\x00" not in s.name + s.value:
            env[s.name] = s.value
    env.update(with_batch_names(system))
    return env


def task_env(
    source: Mapping[str, str],
    settings: Iterable[common_pb2.EnvironmentSetting],
    *,
    layout: NodeLayout,
    node_id: str,
    pool_id: str,
    job_id: str,
    task_id: str,
    attempt: int,
    task_dir: Path,
    working_dir: Path,
) -> dict[str, str]:
    """The environment of one task attempt."""
    system = node_vars(layout, node_id, pool_id)
    system.update(
        {
            "SHOAL_JOB_ID": job_id,
            "SHOAL_TASK_ID": task_id,
            "SHOAL_TASK_DIR": str(task_dir),
            "SHOAL_TASK_WORKING_DIR": str(working_dir),
        }
    )
    env = build_env(source, settings, system)
    env["SHOAL_TASK_ATTEMPT"] = str(attempt)
    return env


def job_prep_vars(prep_dir: Path) -> dict[str, str]:
    """The job preparation task's directories, as the job's tasks (and its preparation and release
    tasks) see them: `SHOAL_JOB_PREP_DIR` and `SHOAL_JOB_PREP_WORKING_DIR`, and their `AZ_BATCH_` names."""
    return with_batch_names({"SHOAL_JOB_PREP_DIR": str(prep_dir), "SHOAL_JOB_PREP_WORKING_DIR": str(prep_dir / "wd")})


def start_task_env(
    source: Mapping[str, str],
    settings: Iterable[common_pb2.EnvironmentSetting],
    *,
    layout: NodeLayout,
    node_id: str,
    pool_id: str,
) -> dict[str, str]:
    """The environment of the start task (no job or task id)."""
    system = node_vars(layout, node_id, pool_id)
    system["SHOAL_TASK_DIR"] = str(layout.startup)
    system["SHOAL_TASK_WORKING_DIR"] = str(layout.startup / "wd")
    return build_env(source, settings, system)


def set_user(env: dict[str, str], run_as: RunAs, task_dir: Path) -> None:
    """HOME, USER and LOGNAME of the task's user (a task-scope user's HOME is its task directory; root's is
    the agent's own)."""
    env.update(run_as.env)
    if run_as.per_task:
        env["HOME"] = str(task_dir)


def multi_instance_env(
    mi: agent_pb2.MultiInstance,
    shared_dir: Path,
    path: str,
    launcher_dir: Path | None = None,
    *,
    as_root: bool | None = None,
) -> dict[str, str]:
    """The variables of one instance of a multi-instance task (host lists, master, launcher shim).

    The directory of the agent's Python comes first on PATH, so that `shoal-mpi-launch` and the
    MPI tools installed beside the agent (e.g. the `mpich` wheel) are found; before it, where given,
    `launcher_dir`, whose `shoal-mpi-launch` is the same shim, compiled or started without site
    (see `mpilauncher`).
    `as_root`: the instance's processes run as root (default: the agent does).
    """
    from shoal.mpi.launch import multi_instance_environment

    hosts = list(mi.host_list)
    addresses = list(mi.agent_addresses)
    if len(addresses) != len(hosts):
        addresses = (addresses + [""] * len(hosts))[: len(hosts)]
    env = multi_instance_environment(
        hosts=hosts or ["127.0.0.1"],
        instance_index=mi.instance_index,
        shared_dir=str(shared_dir),
        agent_addresses=addresses or [""],
        run_as_root=os.geteuid() == 0 if as_root is None else as_root,
    )
    parts = path.split(os.pathsep) if path else []
    for d in (Path(sys.executable).parent, launcher_dir):
        if d is not None and str(d) not in parts:
            parts.insert(0, str(d))
    if os.pathsep.join(parts) != path:
        env["PATH"] = os.pathsep.join(parts)
    return env


#: The attempt's Exec secret: `shoal-mpi-launch` sends it to the exec port (see execservice).
EXEC_SECRET_ENV = "SHOAL_EXEC_SECRET"
#: The cluster CA certificate (PEM file), to reach the agents' Exec listener over verified TLS.
AGENT_CA_ENV = "SHOAL_AGENT_CA_FILE"


def exec_env(secret: str, ca_file: Path | None) -> dict[str, str]:
    """The variables that let an attempt's processes (and only theirs) Exec into it on its nodes."""
    env = {EXEC_SECRET_ENV: secret}
    if ca_file is not None:
        env[AGENT_CA_ENV] = str(ca_file)
    return env
