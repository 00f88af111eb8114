"""The launch-line builders, and a real Hydra mpiexec starting its proxies through the shim."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.mpi.launch import (
    launcher_environment,
    mpiexec_command,
    multi_instance_environment,
    parse_agent_map,
)
from shoal.mpi.shim import split_args
from tests.mpi.exec_server import compiled_shim, serve, shim_env

ALLREDUCE = """
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.Get_rank() + 1)
print(f"rank {c.Get_rank()} of {c.Get_size()} sum {total}", flush=True)
"""


def test_mpiexec_command_for_mpich() -> None:
    assert mpiexec_command(["10.0.0.1", "10.0.0.2"], 2, ["python", "app.py"]) == [
        "mpiexec",
        "-hosts",
        "10.0.0.1:2,10.0.0.2:2",
        "-n",
        "4",
        "python",
        "app.py",
    ]
    with pytest.raises(ValueError):
        mpiexec_command([], 2, ["x"])


def test_environment_names_and_agent_map() -> None:
    env = multi_instance_environment(
        hosts=["127.0.1.1", "127.0.1.2"], instance_index=1, shared_dir="/d", agent_addresses=["a:1", "b:2"]
    )
    assert env["SHOAL_HOST_LIST"] == env["AZ_BATCH_HOST_LIST"] == "127.0.1.1,127.0.1.2"
    assert env["AZ_BATCH_NODE_LIST"] == "127.0.1.1;127.0.1.2"
    assert env["SHOAL_IS_CURRENT_NODE_MASTER"] == "false"
    assert env["SHOAL_NUM_INSTANCES"] == "2" and env["SHOAL_INSTANCE_INDEX"] == "1"
    assert parse_agent_map(env["SHOAL_MPI_AGENTS"]) == {"127.0.1.1": "a:1", "127.0.1.2": "b:2"}
    assert env["HYDRA_LAUNCHER_AUTOFORK"] == "0"


def test_split_ssh_style_args() -> None:
    assert split_args(["-x", "127.0.0.2", "/bin/proxy", "--a", "1"]) == ("127.0.0.2", ["/bin/proxy", "--a", "1"])
    assert split_args(["-p", "22", "user@h", "cmd"]) == ("h", ["cmd"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shim", ["installed", "compiled"])
def test_hydra_starts_ranks_on_two_hosts_through_the_shim(tmp_path: Path, shim: str) -> None:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if mpiexec is None:
        pytest.skip("the mpich wheel is not installed")
    # The console script beside this interpreter (Python, the package), or the agent's compiled one.
    program = compiled_shim() if shim == "compiled" else Path(sys.executable).parent / "shoal-mpi-launch"
    app = tmp_path / "app.py"
    app.write_text(ALLREDUCE)
    servers = [serve("127.0.0.2"), serve("127.0.0.3")]
    try:
        hosts = ["127.0.0.2", "127.0.0.3"]
        env = dict(os.environ)
        env.update(launcher_environment(str(program)))
        env["SHOAL_MPI_AGENTS"] = ",".join(f"{h}={h}:{s[1]}" for h, s in zip(hosts, servers, strict=True))
        env.update(shim_env())
        out = subprocess.run(
            mpiexec_command(hosts, 2, [sys.executable, str(app)], mpiexec=mpiexec),
            env=env,
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        # Ranks' output may interleave within a line; count the reports, not the lines.
        reports = sorted(re.findall(r"rank \d+ of \d+ sum \d+", out.stdout))
        assert reports == [f"rank {r} of 4 sum 10" for r in range(4)], out.stdout
        # Every proxy went through an agent: one call per host.
        assert [len(s[2].calls) for s in servers] == [1, 1]
        assert "hydra_pmi_proxy" in servers[0][2].calls[0].argv[2]
        assert servers[0][2].calls[0].secret == "test-secret"  # the attempt's, from its environment
    finally:
        for s in servers:
            s[0].stop(None)


def test_command_line_reads_the_host_list_on_the_node() -> None:
    import shlex

    from shoal.mpi.launch import mpiexec_command_line

    line = mpiexec_command_line(2, 2, ["python", "app.py", "a b"])
    argv = shlex.split(line)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2] == (
        "exec mpiexec -hosts $SHOAL_HOST_LIST -ppn 2 -n 4 -wdir $SHOAL_TASK_SHARED_DIR python app.py 'a b'"
    )
    with pytest.raises(ValueError):
        mpiexec_command_line(0, 2, ["x"])
