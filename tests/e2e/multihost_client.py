"""A user's program on a machine of its own (run by `test_multihost` on a pretend host): it knows only the
server's address, the CA certificate and an account key, from ``$SHOAL_HOME/credentials.json``.

``work POOL`` runs a job of ordinary tasks and an MPI task on the pool, and prints what came of them as
JSON; ``refusals`` tries what must be refused, and prints how each call ended, as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc

from shoal.client import (
    Client,
    MultiInstanceSettings,
    ResourceFileSpec,
    ShoalError,
    TaskSpec,
)
from shoal.client.credentials import resolve
from shoal.v1 import pool_pb2, pool_pb2_grpc

#: Each rank says which host it ran on (Hydra hands every rank the primary's environment, so not its
#: node's SHOAL_NODE_ID; the host's name is the host's own).
MPI_APP = b"""
import getpass, socket
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.Get_rank() + 1)
where = f"host {socket.gethostname()} user {getpass.getuser()}"
print(f"rank {c.Get_rank()} of {c.Get_size()} sum {total} {where}", flush=True)
"""

#: Tasks long enough for the scheduler to put them on both nodes (one slot each).
PLAIN = "/bin/sh -c 'sleep 1; echo node $SHOAL_NODE_ID host $(uname -n) user $(id -un)'"
PLAIN_TASKS = 4
MPI_CMD = "/bin/sh -c 'mpiexec -hosts $SHOAL_HOST_LIST -ppn 1 -n 2 -wdir $SHOAL_TASK_SHARED_DIR python app.py'"


def work(pool_id: str) -> dict[str, Any]:
    """Run the job; what each task did."""
    client = Client.connect(timeout=30)
    nodes = client.pools.wait_nodes_idle(pool_id, count=2, timeout=60)
    client.storage.upload_bytes("mh-apps", "app.py", MPI_APP)
    client.jobs.create(id="mh", pool_id=pool_id)
    specs = [TaskSpec(id=f"t{i}", command_line=PLAIN) for i in range(PLAIN_TASKS)]
    specs.append(
        TaskSpec(
            id="mpi",
            command_line=MPI_CMD,
            multi_instance_settings=MultiInstanceSettings(
                number_of_instances=2,
                coordination_command_line="/bin/true",
                common_resource_files=[ResourceFileSpec.from_container("mh-apps", file_path=".")],
            ),
        )
    )
    client.tasks.add_many("mh", specs)
    done = {t.id: t for t in client.tasks.wait("mh", timeout=90)}
    out: dict[str, Any] = {"nodes": {n.id: n.ip_address for n in nodes}, "tasks": {}}
    for tid, t in done.items():
        out["tasks"][tid] = {
            "exit_code": t.exit_code,
            "result": t.result,
            "node_id": t.node_id,
            "stdout": client.tasks.read_file("mh", tid, "stdout.txt").decode(errors="replace"),
            "stderr": client.tasks.read_file("mh", tid, "stderr.txt").decode(errors="replace"),
            "subtask_nodes": sorted(s.node_id for s in t.subtasks),
            "failure": t.failure.message if t.failure else "",
        }
    client.close()
    return out


def _outcome(call: Any) -> str:
    """The status code name a call ended with ("OK" when it did not fail)."""
    try:
        call()
    except ShoalError as e:
        return e.code.name
    except grpc.RpcError as e:
        return e.code().name  # type: ignore[no-any-return]
    return "OK"


def refusals(agent_address: str) -> dict[str, str]:
    """How each call that must fail failed."""
    creds = resolve()
    out: dict[str, str] = {}
    # The right server, a wrong key.
    wrong = Client.connect(creds.address, account=creds.account, key="not-the-key", timeout=10)
    out["wrong_key"] = _outcome(lambda: list(wrong.pools.list()))
    wrong.close()
    # No key at all (this account's CA, so TLS is fine).
    bare = grpc.secure_channel(creds.address, grpc.ssl_channel_credentials(root_certificates=creds.ca_cert))
    stub = pool_pb2_grpc.PoolServiceStub(bare)
    out["no_key"] = _outcome(lambda: stub.ListPools(pool_pb2.ListPoolsRequest(), timeout=10))
    bare.close()
    # Plaintext to the agent port: not a TLS handshake, nothing is served.
    plain = grpc.insecure_channel(agent_address)
    out["plaintext_agent_port"] = _outcome(
        lambda: pool_pb2_grpc.PoolServiceStub(plain).ListPools(pool_pb2.ListPoolsRequest(), timeout=10)
    )
    plain.close()
    # TLS to the agent port without a node certificate: the handshake fails (mutual TLS).
    tls = grpc.secure_channel(
        agent_address,
        grpc.ssl_channel_credentials(root_certificates=creds.ca_cert),
        options=[("grpc.ssl_target_name_override", "shoal-server")],
    )
    out["agent_port_without_certificate"] = _outcome(
        lambda: pool_pb2_grpc.PoolServiceStub(tls).ListPools(pool_pb2.ListPoolsRequest(), timeout=10)
    )
    tls.close()
    # And the account key works (so the refusals above are about the key and the port, not the network).
    good = Client.connect(timeout=10)
    out["right_key"] = _outcome(lambda: list(good.pools.list()))
    good.close()
    return out


def main(argv: list[str]) -> int:
    if argv[0] == "work":
        print(json.dumps(work(argv[1])), flush=True)
    elif argv[0] == "refusals":
        print(json.dumps(refusals(argv[1])), flush=True)
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
