"""Certificates end to end (a real `shoal server` and its local agents): a pool's certificates reach its
node before the start task; each kind of task finds those of its visibility in its own `certs/`, the key
its user's alone (mode 0600); the node's store is the agent's; a certificate in use cannot be deleted."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from shoal.v1 import certificate_pb2 as C
from shoal.v1 import certificate_pb2_grpc, common_pb2, identity_pb2, job_pb2, pool_pb2, task_pb2
from tests.certfiles import make_cert, make_pfx
from tests.e2e.harness import ServerProcess, sh
from tests.taskusers import can_make_users, open_dir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ID = identity_pb2
# The start task notes what it found where tasks can read it (the node's shared directory).
START = sh(
    'cd "$AZ_BATCH_CERTIFICATES_DIR" && ls > "$AZ_BATCH_NODE_SHARED_DIR/start-certs.txt" '
    '&& [ "$SHOAL_CERTIFICATES_DIR" = "$AZ_BATCH_NODE_STARTUP_DIR/certs" ]'
)
# A task: its user, its certificate directory's listing, the key's mode and owner, and the key itself.
LOOK = sh(
    'id -u; cd "$SHOAL_CERTIFICATES_DIR" && ls | tr "\\n" " "; echo; '
    'stat -c "%a %u" sha1-{tp}.key; cat sha1-{tp}.key; '
    'if cat "$SHOAL_NODE_ROOT_DIR/certs/sha1-{tp}.key" >/dev/null 2>&1; then echo store-readable; fi'
)
REMOTE = sh('ls "$HOME/certs" | tr "\\n" " "')


def test_certificates_reach_tasks_by_visibility_and_stay_while_in_use() -> None:
    pfx, tp = make_pfx("render-farm", "pw")
    key, _cert, _chain = pkcs12.load_key_and_certificates(pfx, b"pw")
    assert key is not None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _pem, _key, der, remote_tp = make_cert("remote-only")
    with open_dir() as data:
        server = ServerProcess(data / "data").start()
        try:
            assert server.channel is not None
            certs = certificate_pb2_grpc.CertificateServiceStub(server.channel)
            certs.AddCertificate(C.AddCertificateRequest(data=pfx, format=C.CERTIFICATE_FORMAT_PFX, password="pw"))
            certs.AddCertificate(C.AddCertificateRequest(data=der, format=C.CERTIFICATE_FORMAT_CER))
            server.create_pool(
                "p",
                nodes=1,
                slots=2,
                start_task=common_pb2.StartTask(command_line=START, wait_for_success=True),
                user_accounts=[ID.UserAccount(name="render")],
                certificate_references=[
                    C.CertificateReference(
                        thumbprint=tp,
                        visibility=[C.CERTIFICATE_VISIBILITY_START_TASK, C.CERTIFICATE_VISIBILITY_TASK],
                    ),
                    C.CertificateReference(thumbprint=remote_tp, visibility=[C.CERTIFICATE_VISIBILITY_REMOTE_USER]),
                ],
            )
            (node,) = server.wait_nodes("p", 1)
            assert sorted(r.thumbprint for r in node.certificate_references) == sorted([tp, remote_tp])
            isolated = node.task_user_isolation
            assert isolated == can_make_users()
            server.create_job("j", "p")
            server.add(
                "j",
                [
                    task_pb2.TaskSpec(id="look", command_line=LOOK.format(tp=tp)),
                    task_pb2.TaskSpec(
                        id="remote", command_line=REMOTE, user_identity=ID.UserIdentity(user_name="render")
                    ),
                    task_pb2.TaskSpec(id="start", command_line=sh('cat "$AZ_BATCH_NODE_SHARED_DIR/start-certs.txt"')),
                ],
            )
            done = server.wait_job_tasks("j")
            for task_id, task in done.items():
                assert task.execution_info.exit_code == 0, (task_id, server.read_file("j", task_id, "stderr.txt"))
            uid, listing, mode_owner, rest = server.read_file("j", "look", "stdout.txt").decode().split("\n", 3)
            # Only the certificates of TASK visibility, the certificate and its key.
            assert listing.split() == [f"sha1-{tp}.key", f"sha1-{tp}.pem"]
            assert mode_owner == f"600 {uid}"
            assert rest.startswith(key_pem.decode())
            # The node's own store is the agent's: tasks of their own users cannot read it.
            assert ("store-readable" in rest) is not isolated
            assert server.read_file("j", "remote", "stdout.txt").decode().split() == [f"sha1-{remote_tp}.pem"]
            assert server.read_file("j", "start", "stdout.txt").decode().split() == [f"sha1-{tp}.key", f"sha1-{tp}.pem"]
            # In use by the pool and its node: the deletion fails, and says by what.
            failed = certs.DeleteCertificate(C.DeleteCertificateRequest(name=f"certificates/sha1-{tp}"))
            assert failed.state == C.CERTIFICATE_STATE_DELETE_FAILED
            assert {v.name for v in failed.delete_certificate_error.values} == {"pool", "node"}
            server.jobs.DeleteJob(job_pb2.DeleteJobRequest(name="jobs/j"))
            server.pools.DeletePool(pool_pb2.DeletePoolRequest(name="pools/p"))
        finally:
            server.stop()
