"""Shoal across hosts: a server on one, agents that join with tokens on two others, a user on a fourth.

Four pretend hosts (`tests.e2e.nshosts`: network, mount, UTS, IPC and PID namespaces, each with its own
127.0.6.N address on a veth, its own disk at the same path, its own /etc, hostname, /dev/shm and boot
id; nothing shared but the network and the installed software). Everything real:

- host 1 runs `python -m shoal.server` on 127.0.6.1 with TLS and keys (the defaults), and the operator's
  CLI there makes a pool of joining nodes and a join token;
- hosts 2 and 3 run `shoal agent --server 127.0.6.1:7420 --token T`: each pins the cluster CA by the
  token, gets a node certificate, and speaks mutual TLS to the agent port from then on;
- host 4 has only the server's address, the CA certificate and the account's key (not the
  administrator's, and none of the server's files): it runs a job of ordinary tasks that land on both
  nodes and an MPI task (MPICH's Hydra through `shoal-mpi-launch`) with one rank on each host, all
  as the pool's unprivileged user, and sees a wrong key, no key, a plaintext agent port and an agent
  port without a node certificate refused;
- the user adds a PFX certificate to the account (the CLI, with a password file), the pool references
  it for tasks, and both nodes install it: the agent's store root's, each task's copy its user's.

A second test puts the server on every address (``--listen 0.0.0.0:7420``) and reaches it by its host's
address from another host, and by the loopback from its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.agentidentity import CERT_FILE, KEY_FILE, identity_dir
from shoal.nodeagent.usernames import DEFAULT_PREFIX, pool_user
from tests.certfiles import make_pfx
from tests.e2e.harness import wait_for
from tests.e2e.nshosts import Hosts, unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERVER, AGENTS, USER = 1, (2, 3), 4
API_PORT, AGENT_PORT = 7420, 7421
POOL = "multihost"
CLIENT = Path(__file__).with_name("multihost_client.py")


def _problem() -> str | None:
    """Why these tests cannot run here, or None."""
    why = unavailable()
    if why is None and shutil.which("mpiexec", path=str(Path(sys.executable).parent)) is None:
        why = "the mpich wheel is not installed"
    return why


def _env(hosts: Hosts, **extra: str) -> dict[str, str]:
    """A host's environment: its own home (on its own disk), the test's Python and PATH."""
    home = hosts.root / "home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "SHOAL_HOME": str(home / ".shoal"),
        "SHOAL_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def _start_server(hosts: Hosts, listen_host: str = "") -> subprocess.Popen[bytes]:
    """`shoal server` on the server's host, on its address (or on `listen_host`, e.g. every address)."""
    disk = hosts.disk(SERVER)
    (disk / "home").mkdir(parents=True, exist_ok=True)
    addr = listen_host or hosts.address(SERVER)
    with open(disk / "server.out", "ab") as out:
        proc = hosts.popen(
            SERVER,
            [
                sys.executable,
                "-m",
                "shoal.server",
                "--data-dir",
                str(hosts.root / "data"),
                "--listen",
                f"{addr}:{API_PORT}",
                "--agent-listen",
                f"{addr}:{AGENT_PORT}",
                "--heartbeat-interval",
                "0.5",
                "--heartbeat-timeout",
                "4",
                "--agent-orphan-timeout",
                "30",
            ],
            env=_env(hosts),
            stdout=out,
        )
    wait_for(
        "the server's credentials",
        lambda: proc.poll() is not None or (disk / "data" / "credentials.json").exists(),
        timeout=30,
    )
    assert proc.poll() is None, (disk / "server.out").read_text()
    return proc


def _operator(hosts: Hosts, *args: str) -> str:
    """The operator's CLI on the server's host (the administrator's credentials the server left there)."""
    done = hosts.run(SERVER, [sys.executable, "-m", "shoal.client.cli", *args], env=_env(hosts))
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout.strip()


def _start_agent(hosts: Hosts, i: int, token: str) -> subprocess.Popen[bytes]:
    disk = hosts.disk(i)
    with open(disk / "agent.out", "ab") as out:
        return hosts.popen(
            i,
            [
                sys.executable,
                "-m",
                "shoal.client.cli",
                "agent",
                "--server",
                f"{hosts.address(SERVER)}:{API_PORT}",
                "--token",
                token,
                "--node-root",
                str(hosts.root / "node"),
                "--ip",
                hosts.address(i),
                "--orphan-timeout",
                "30",
            ],
            env=_env(hosts),
            stdout=out,
        )


def _give_user_the_account_key(hosts: Hosts, user: int = USER) -> None:
    """The user's machine gets the address, the CA and the account's key: not the administrator's."""
    saved = json.loads((hosts.disk(SERVER) / "data" / "credentials.json").read_text())
    mine = {k: saved[k] for k in ("tls", "ca_cert", "account", "key")}
    mine["address"] = f"{hosts.address(SERVER)}:{API_PORT}"
    home = hosts.disk(user) / "home" / ".shoal"
    home.mkdir(parents=True)
    (home / "credentials.json").write_text(json.dumps(mine))
    (home / "credentials.json").chmod(0o600)


def _user(hosts: Hosts, *args: str, timeout: float = 120, user: int = USER) -> dict[str, object]:
    """Run the user's program on the user's host; its JSON answer."""
    done = hosts.run(user, [sys.executable, str(CLIENT), *args], env=_env(hosts), timeout=timeout)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


#: The certificate the user adds (a PFX under this password) and the pool references for its tasks.
PFX_PASSWORD = "multihost-pfx-pw"


def _add_certificate_for_the_pool(hosts: Hosts) -> tuple[str, list[str]]:
    """The user (host 4, the account key only) adds a PFX with the CLI; its thumbprint, and the pool-create
    arguments that reference it for tasks, so that both nodes install it when they join."""
    pfx, thumbprint = make_pfx("multihost", PFX_PASSWORD)
    disk = hosts.disk(USER)
    (disk / "site.pfx").write_bytes(pfx)
    (disk / "pfx-password").write_text(PFX_PASSWORD)
    inside = [str(hosts.root / "site.pfx"), "--password-file", str(hosts.root / "pfx-password")]
    done = hosts.run(
        USER, [sys.executable, "-m", "shoal.client.cli", "certificate", "add", *inside, "-o", "json"], env=_env(hosts)
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    added = json.loads(done.stdout)
    assert added["thumbprint"] == thumbprint and added["has_private_key"], added
    return thumbprint, ["--certificate", f"{thumbprint}:task"]


def _check_certificate_on_every_node(hosts: Hosts, thumbprint: str, task_user: str) -> None:
    """The certificate is on every node: in the agent's store (root's), and in each task's own `certs/`
    there, the key mode 0600 and the task user's (as that host's own /etc/passwd has it)."""
    key, cert = f"sha1-{thumbprint}.key", f"sha1-{thumbprint}.pem"
    for i in AGENTS:
        store = hosts.disk(i) / "node" / "certs"
        assert b"BEGIN CERTIFICATE" in (store / cert).read_bytes()
        st = os.lstat(store / key)
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0), (i, oct(st.st_mode))
        passwd = (hosts.disk(i).parent / "etc" / "upper" / "passwd").read_text()
        uid = next(int(line.split(":")[2]) for line in passwd.splitlines() if line.startswith(task_user + ":"))
        copies = list((hosts.disk(i) / "node" / "workitems" / "mh" / "job-1").glob(f"t*/certs/{key}"))
        assert copies, f"no task on host {i} got the certificate"
        for copy in copies:
            st = os.lstat(copy)
            assert (st.st_mode & 0o777, st.st_uid) == (0o600, uid), (copy, oct(st.st_mode), st.st_uid)
            assert (copy.parent / cert).read_bytes() == (store / cert).read_bytes()


def test_a_cluster_across_hosts(tmp_path: Path) -> None:
    why = _problem()
    if why is not None:
        pytest.skip(why)
    hosts = Hosts(tmp_path, 4)
    try:
        hosts.start()
        _start_server(hosts)
        saved = json.loads((hosts.disk(SERVER) / "data" / "credentials.json").read_text())
        assert saved["address"] == f"{hosts.address(SERVER)}:{API_PORT}"
        _give_user_the_account_key(hosts)
        thumbprint, with_certificates = _add_certificate_for_the_pool(hosts)
        _operator(
            hosts, "pool", "create", POOL, "--nodes", "2", "--provider", "join", "--inter-node", *with_certificates
        )
        token = _operator(hosts, "pool", "join-token", POOL, "--ttl", "10m")
        assert token.startswith("shoal1.")
        for i in AGENTS:
            _start_agent(hosts, i, token)

        result = _user(hosts, "work", POOL)
        nodes: dict[str, str] = result["nodes"]  # type: ignore[assignment]
        # Each node is its host: the address it joined with.
        assert sorted(nodes.values()) == [hosts.address(i) for i in AGENTS], nodes
        host_of = {node: hosts.hostname(i) for i in AGENTS for node, ip in nodes.items() if ip == hosts.address(i)}
        task_user = pool_user(DEFAULT_PREFIX, POOL)
        tasks: dict[str, dict[str, object]] = result["tasks"]  # type: ignore[assignment]
        plain = {tid: t for tid, t in tasks.items() if tid != "mpi"}
        for tid, t in plain.items():
            assert t["exit_code"] == 0 and t["result"] == "success", (tid, t)
            node = str(t["node_id"])
            # On its node's host, as the pool's user (not root: the agents run as root, tasks do not).
            assert t["stdout"] == f"node {node} host {host_of[node]} user {task_user}\n", (tid, t)
        assert {t["node_id"] for t in plain.values()} == set(nodes), plain
        mpi = tasks["mpi"]
        assert mpi["exit_code"] == 0 and mpi["result"] == "success", mpi
        assert mpi["subtask_nodes"] == sorted(nodes), mpi
        # One rank on each host, each started by that host's agent, and the allreduce went between them.
        ranks = [line.split() for line in str(mpi["stdout"]).splitlines()]
        assert sorted(r[1] for r in ranks) == ["0", "1"] and all(r[2:6] == ["of", "2", "sum", "3"] for r in ranks), mpi
        assert sorted(r[7] for r in ranks) == sorted(host_of.values()), mpi
        assert all(r[9] == task_user for r in ranks), mpi
        # Each host made that user in its own /etc; the machine's has no such user.
        for i in AGENTS:
            assert f"\n{task_user}:" in "\n" + (hosts.disk(i).parent / "etc" / "upper" / "passwd").read_text()
        assert f"\n{task_user}:" not in "\n" + Path("/etc/passwd").read_text()
        # Each node's key stayed on its own host, private, beside the certificate it joined with.
        for i in AGENTS:
            ident = identity_dir(hosts.on_disk(i, hosts.root / "node"))
            assert (ident / KEY_FILE).stat().st_mode & 0o077 == 0 and (ident / CERT_FILE).exists()
        _check_certificate_on_every_node(hosts, thumbprint, task_user)

        refused = _user(hosts, "refusals", f"{hosts.address(SERVER)}:{AGENT_PORT}")
        assert refused == {
            "wrong_key": "UNAUTHENTICATED",
            "no_key": "UNAUTHENTICATED",
            "plaintext_agent_port": "UNAVAILABLE",
            "agent_port_without_certificate": "UNAVAILABLE",
            "right_key": "OK",
        }, refused
        # The token and the key are secrets: in no log of any host.
        key = json.loads((hosts.disk(SERVER) / "data" / "credentials.json").read_text())["key"]
        logs = [hosts.disk(SERVER) / "server.out"] + [
            p for i in AGENTS for p in (hosts.disk(i) / "agent.out", hosts.disk(i) / "node" / "agent.log")
        ]
        for log in logs:
            text = log.read_text(errors="replace")
            assert token not in text and key not in text, log
    finally:
        hosts.close()


def test_a_server_on_every_address_is_reached_by_its_address(tmp_path: Path) -> None:
    """`--listen 0.0.0.0:PORT`, as a server for several machines usually is: the operator's CLI on its own
    host, an agent joining from another by the host's address, and a user there, all check its
    certificate (it names every address the host has) and get through."""
    why = _problem()
    if why is not None:
        pytest.skip(why)
    hosts = Hosts(tmp_path, 2)
    try:
        hosts.start()
        _start_server(hosts, listen_host="0.0.0.0")
        _operator(hosts, "pool", "create", POOL, "--nodes", "1", "--provider", "join")
        token = _operator(hosts, "pool", "join-token", POOL, "--ttl", "10m")
        _start_agent(hosts, 2, token)
        _give_user_the_account_key(hosts, user=2)
        refused = _user(hosts, "refusals", f"{hosts.address(SERVER)}:{API_PORT + 1}", user=2)
        assert refused["right_key"] == "OK" and refused["wrong_key"] == "UNAUTHENTICATED", refused
        idle = wait_for(
            "the agent to join",
            lambda: json.loads(_operator(hosts, "pool", "nodes", POOL, "--state", "idle", "-o", "json")),
            timeout=30,
            every=0.5,
        )
        assert [n["ip_address"] for n in idle] == [hosts.address(2)], idle
    finally:
        hosts.close()
