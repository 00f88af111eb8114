"""A whole run, then every log it wrote is searched for every secret it used: none may be there.

Secrets: the administrator's key, account keys (old and new), a node's task credential, a join
token, the CA's and the nodes' private keys, a wrong key a caller sent, a certificate's private key and
its PFX password (right and wrong).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from shoal.client import Client, TaskSpec, Unauthenticated
from shoal.client.credentials import resolve
from shoal.v1 import certificate_pb2 as C
from shoal.v1 import certificate_pb2_grpc, task_pb2
from tests.certfiles import make_pfx
from tests.e2e.harness import ServerProcess, sh

pytestmark = pytest.mark.timeout(180)


def _logs(root: Path) -> dict[Path, str]:
    """Every log file under `root`: the server's and the agents' (tasks' own output is theirs, not a log)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and (path.suffix == ".log" or path.name in ("agent.out", "up.log")):
            found[path] = path.read_text(errors="replace")
    return found


def _pem_body(path: Path) -> str:
    """The base64 of a PEM file, without its header lines (what a leaked key would show)."""
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("-----")]
    return "".join(lines)[:64]


def test_no_secret_reaches_a_log(server: ServerProcess, tmp_path: Path) -> None:
    creds = json.loads((server.data_dir / "credentials.json").read_text())
    secrets: dict[str, str] = {"admin key": creds["admin_key"], "default key": creds["key"]}
    ca = creds["ca_cert"].encode()
    with Client.connect(server.address, admin=True, ca_cert=ca, timeout=30) as admin:
        admin.accounts.create("teamx")
        old = admin.accounts.keys("teamx")
        new = admin.accounts.regenerate_key("teamx", "primary")
        secrets |= {"old primary": old.primary, "secondary": old.secondary, "new primary": new.primary}
        assert all(old.primary not in repr(a) for a in admin.accounts.list())
    wrong = new.primary[:-6] + "AAAAAA"
    secrets["wrong key"] = wrong
    with Client.connect(server.address, account="teamx", key=wrong, ca_cert=ca, timeout=30) as bad:
        with pytest.raises(Unauthenticated) as refused:
            list(bad.pools.list())
        assert wrong not in str(refused.value)
    with Client.connect(server.address, account="teamx", key=new.primary, ca_cert=ca, timeout=30) as teamx:
        teamx.pools.create(id="xp", target_nodes=1, task_slots_per_node=2)
        teamx.pools.wait_nodes_idle("xp", count=1, timeout=60)
        teamx.pools.create(id="xj", target_nodes=1, provider="join")
        secrets["join token"] = teamx.pools.join_token("xj", ttl=600).token
        teamx.jobs.create(id="xjob", pool_id="xp")
        # A task that uses its own credential (as a job manager does), and one that prints it.
        use = "import shoal; print(sorted(p.id for p in shoal.Client.connect().pools.list()))"
        teamx.tasks.add_many(
            "xjob",
            [
                TaskSpec(id="uses", command_line=f'{sys.executable} -c "{use}"'),
                TaskSpec(id="shows", command_line="/bin/sh -c 'echo $SHOAL_AUTHENTICATION_TOKEN'"),
            ],
        )
        done = {t.id: t for t in teamx.tasks.wait("xjob", timeout=90)}
        assert done["uses"].exit_code == 0 and done["shows"].exit_code == 0
        assert "['xj', 'xp']" in teamx.tasks.read_file("xjob", "uses", "stdout.txt").decode()
        token = teamx.tasks.read_file("xjob", "shows", "stdout.txt").decode().strip()
        assert token.startswith("st1.teamx.xp.")
        secrets["task credential"] = token
    _certificate_secrets(server, secrets)
    secrets["CA key"] = _pem_body(server.data_dir / "certs" / "ca.key")
    for key_file in server.data_dir.rglob("node.key"):
        secrets[f"node key {key_file.parent}"] = _pem_body(key_file)
    server.stop()
    logs = _logs(server.data_dir)
    assert any("server.log" in str(p) for p in logs) and any(p.name == "agent.out" for p in logs), sorted(logs)
    for path, text in logs.items():
        for what, secret in secrets.items():
            assert secret and secret not in text, f"the {what} is in {path}"
    # (The resolved credentials of this process never name another server's key.)
    assert resolve("127.0.0.9:1").key is None


def _certificate_secrets(server: ServerProcess, secrets: dict[str, str]) -> None:
    """A PFX added (after a wrong password), referenced by a pool whose node installs its key, used by a task."""
    password, wrong = "pfx-pa55word-kept", "pfx-wr0ng-pa55word"
    pfx, tp = make_pfx("no-secrets", password)
    key = pkcs12.load_key_and_certificates(pfx, password.encode())[0]
    assert key is not None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    secrets |= {"PFX password": password, "wrong PFX password": wrong}
    secrets["certificate key"] = "".join(ln for ln in key_pem.splitlines() if not ln.startswith("-----"))[:64]
    assert server.channel is not None
    certs = certificate_pb2_grpc.CertificateServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as e:
        certs.AddCertificate(C.AddCertificateRequest(data=pfx, format=C.CERTIFICATE_FORMAT_PFX, password=wrong))
    assert wrong not in str(e.value.details())
    added = certs.AddCertificate(C.AddCertificateRequest(data=pfx, format=C.CERTIFICATE_FORMAT_PFX, password=password))
    assert password not in str(added) and "PRIVATE" not in str(added)
    server.create_pool("cp", nodes=1, certificate_references=[C.CertificateReference(thumbprint=tp)])
    server.wait_nodes("cp", 1)
    server.create_job("cj", "cp")
    server.add(
        "cj", [task_pb2.TaskSpec(id="k", command_line=sh('test -s "$SHOAL_CERTIFICATES_DIR/sha1-' + tp + '.key"'))]
    )
    assert server.wait_job_tasks("cj")["k"].execution_info.exit_code == 0
