"""Pure builders for MPI launch lines and the launcher environment.

Nothing here touches a process or a file: given hosts and counts, return the
argv and environment that make a plain `mpiexec` start its per-node proxies
through Shoal's agents (via the `shoal-mpi-launch` shim) instead of ssh.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Literal

Flavor = Literal["mpich", "openmpi"]
SHIM_NAME = "shoal-mpi-launch"


def launcher_environment(shim: str = SHIM_NAME, *, run_as_root: bool = False) -> dict[str, str]:
    """Variables that point MPICH's Hydra and Open MPI's PRRTE at the shim.

    Hydra: the ssh launcher with the shim as its executable, and autofork off so
    that even a host that looks local goes through its agent. Open MPI 5
    (PRRTE): the ssh PLM agent is the shim, with no tree spawn (the shim only
    works from the primary). `OMPI_MCA_plm_rsh_agent` is for Open MPI 4; PRRTE
    3 ignores it. Tasks that run as root also need Open MPI's explicit consent.
    """
    env = {
        "HYDRA_LAUNCHER": "ssh",
        "HYDRA_LAUNCHER_EXEC": shim,
        "HYDRA_LAUNCHER_AUTOFORK": "0",
        "PRTE_MCA_plm_ssh_agent": shim,
        "PRTE_MCA_plm_ssh_no_tree_spawn": "1",
        "OMPI_MCA_plm_rsh_agent": shim,
    }
    if run_as_root:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def multi_instance_environment(
    *,
    hosts: Sequence[str],
    instance_index: int,
    shared_dir: str,
    agent_addresses: Sequence[str],
    master_port: int = 6105,
    run_as_root: bool = False,
) -> dict[str, str]:
    """Every variable a multi-instance task's instance sees, under SHOAL_* and their Batch names."""
    if not hosts:
        raise ValueError("a multi-instance task has at least one host")
    if len(agent_addresses) != len(hosts):
        raise ValueError("one agent address per host")
    shoal = {
        "HOST_LIST": ",".join(hosts),
        "NODE_LIST": ";".join(hosts),
        "MASTER_NODE": f"{hosts[0]}:{master_port}",
        "IS_CURRENT_NODE_MASTER": "true" if instance_index == 0 else "false",
        "TASK_SHARED_DIR": shared_dir,
    }
    env = {f"SHOAL_{k}": v for k, v in shoal.items()}
    env.update({f"AZ_BATCH_{k}": v for k, v in shoal.items()})
    env["SHOAL_NUM_INSTANCES"] = str(len(hosts))
    env["SHOAL_INSTANCE_INDEX"] = str(instance_index)
    env["SHOAL_MPI_AGENTS"] = ",".join(f"{h}={a}" for h, a in zip(hosts, agent_addresses, strict=True))
    env["CCP_NODES"] = " ".join([str(len(hosts))] + [f"{h} 1" for h in hosts])
    env.update(launcher_environment(run_as_root=run_as_root))
    return env


def parse_agent_map(value: str) -> dict[str, str]:
    """`SHOAL_MPI_AGENTS` (`host=ip:port,...`) as a mapping."""
    out: dict[str, str] = {}
    for item in value.split(","):
        if "=" in item:
            host, addr = item.split("=", 1)
            out[host.strip()] = addr.strip()
    return out


def mpiexec_command(
    hosts: Sequence[str],
    ppn: int,
    program: Sequence[str],
    *,
    flavor: Flavor = "mpich",
    mpiexec: str = "mpiexec",
    extra: Sequence[str] = (),
) -> list[str]:
    """The `mpiexec` argv that runs `program` with `ppn` ranks on each host."""
    if ppn < 1:
        raise ValueError("ppn must be at least 1")
    if not hosts:
        raise ValueError("at least one host")
    if not program:
        raise ValueError("no program to run")
    n = ppn * len(hosts)
    if flavor == "mpich":
        host_arg = ",".join(f"{h}:{ppn}" for h in hosts)
        return [mpiexec, "-hosts", host_arg, "-n", str(n), *extra, *program]
    host_arg = ",".join(f"{h}:{ppn}" for h in hosts)
    # prted daemonizes by default and would leave the agent's process tree (and its cleanup).
    return [mpiexec, "--host", host_arg, "-n", str(n), "--leave-session-attached", *extra, *program]


def mpiexec_command_line(
    nodes: int,
    ppn: int,
    program: Sequence[str],
    *,
    flavor: Flavor = "mpich",
    wdir_var: str | None = "SHOAL_TASK_SHARED_DIR",
    hosts_var: str = "SHOAL_HOST_LIST",
    mpiexec: str = "mpiexec",
) -> str:
    """The command line of a multi-instance task that runs `program` on every rank.

    The hosts are not known at submission (the scheduler picks them), so the
    line is a `/bin/sh -c` script that reads `$SHOAL_HOST_LIST` on the primary:
    ``mpiexec -hosts $SHOAL_HOST_LIST -ppn 2 -n 4 -wdir $SHOAL_TASK_SHARED_DIR prog``.
    `mpiexec` is looked up on the node's PATH unless given as a path: where
    several MPI implementations are installed, name the one you mean.
    """
    launcher = shlex.quote(mpiexec)
    if nodes < 1 or ppn < 1:
        raise ValueError("nodes and ppn must be at least 1")
    if not program:
        raise ValueError("no program to run")
    prog = " ".join(shlex.quote(p) for p in program)
    n = nodes * ppn
    if flavor == "mpich":
        parts = [f"exec {launcher} -hosts ${hosts_var} -ppn {ppn} -n {n}"]
        if wdir_var:
            parts.append(f"-wdir ${wdir_var}")
    else:
        # Open MPI wants slots per host: `h1:2,h2:2` from the comma-separated list.
        hosts = f'$(echo ${hosts_var} | sed "s/,/:{ppn},/g"):{ppn}'
        parts = [f"exec {launcher} --host {hosts} -n {n} --leave-session-attached"]
        if wdir_var:
            parts.append(f"--wdir ${wdir_var}")
    parts.append(prog)
    return f"/bin/sh -c {shlex.quote(' '.join(parts))}"


def environment_settings(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Sorted (name, value) pairs, for building protobuf EnvironmentSettings."""
    return sorted(env.items())
