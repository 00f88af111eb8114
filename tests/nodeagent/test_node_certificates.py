"""A node's certificates on disk: the agent's store, and each task's own copies by visibility."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import certificates
from shoal.nodeagent.certificates import NodeCertificates, cert_file, key_file

START, TASK, REMOTE = certificates.START_TASK, certificates.TASK, certificates.REMOTE_USER
A, B = "aa" * 20, "bb" * 20


def _cert(tp: str, *vis: int, key: bytes = b"KEY") -> agent_pb2.NodeCertificate:
    return agent_pb2.NodeCertificate(thumbprint=tp, certificate=b"CERT " + tp.encode(), private_key=key, visibility=vis)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_install_holds_exactly_the_last_set(tmp_path: Path) -> None:
    certs = NodeCertificates(tmp_path)
    certs.install([_cert(A, START, TASK), _cert(B, REMOTE, key=b"")])
    assert sorted(os.listdir(certs.store)) == sorted([cert_file(A), key_file(A), cert_file(B)])
    assert _mode(certs.store) == 0o700 and _mode(certs.store / key_file(A)) == 0o600
    assert certs.thumbprints == [A, B]
    certs.install([_cert(B, TASK)])
    assert sorted(os.listdir(certs.store)) == sorted([cert_file(B), key_file(B)])
    # Not a safe file name: never written.
    certs.install([_cert("../../etc/passwd", TASK)])
    assert os.listdir(certs.store) == [] and certs.thumbprints == []


def test_provide_by_visibility_replacing_whatever_was_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    certs = NodeCertificates(root)
    certs.install([_cert(A, START, TASK), _cert(B, REMOTE)])
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A task left a link named certs: it is replaced, not followed.
    (task_dir / "certs").symlink_to(elsewhere)
    got = certs.provide(task_dir, TASK, None)
    assert got == str(task_dir / "certs")
    assert not (task_dir / "certs").is_symlink() and os.listdir(elsewhere) == []
    assert sorted(os.listdir(got)) == sorted([cert_file(A), key_file(A)])
    assert (Path(got) / cert_file(A)).read_bytes() == b"CERT " + A.encode()
    assert _mode(Path(got) / key_file(A)) == 0o600 and _mode(Path(got) / cert_file(A)) == 0o644
    assert sorted(os.listdir(certs.provide(task_dir, REMOTE, None) or "")) == sorted([cert_file(B), key_file(B)])
    nothing = NodeCertificates(tmp_path / "other")
    assert nothing.provide(task_dir, TASK, None) is None
    assert certificates.certificates_env(None) == {}
    assert certificates.certificates_env(got) == {"SHOAL_CERTIFICATES_DIR": got, "AZ_BATCH_CERTIFICATES_DIR": got}


def test_provide_gives_the_files_to_the_tasks_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        return  # (chown needs root; the e2e test checks ownership under a root agent too)
    certs = NodeCertificates(tmp_path)
    certs.install([_cert(A, TASK)])
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    got = Path(certs.provide(task_dir, TASK, (65534, 65534)) or "")
    for p in (got, got / key_file(A), got / cert_file(A)):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert _mode(got) == 0o700
