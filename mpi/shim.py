"""`shoal-mpi-launch`: the remote-exec shim that MPI launchers call instead of ssh.

Hydra calls it as ``shoal-mpi-launch [-x] [extra args] HOST CMD...`` and Open MPI
as ``shoal-mpi-launch HOST CMD...``. The shim finds the agent of HOST in
``SHOAL_MPI_AGENTS`` and asks it, over gRPC (``NodeService.Exec``), to run CMD
with ``/bin/sh -c`` inside this task's instance on that node: its directories,
environment, process group and wall clock. It relays stdin, stdout and stderr
and exits with the command's status, living exactly as long as the proxy
(Hydra fails with "Launch proxy failed" if the shim exits early).

The agent's Exec listener speaks TLS with the node's certificate: the shim trusts
only the cluster CA (``SHOAL_AGENT_CA_FILE``) and proves it belongs to the
attempt with the attempt's secret (``SHOAL_EXEC_SECRET``), both in the
environment the agent gave the attempt.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.mpi.launch import parse_agent_map
from shoal.tlsconfig import NODE_TLS_NAME

# ssh options that take a value; anything else starting with '-' is a flag.
_SSH_OPTIONS_WITH_VALUE = set("bcDEeFIiJLlmOopQRSWw")


def split_args(argv: list[str]) -> tuple[str, list[str]]:
    """(host, command words) from an ssh-style argument list."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and len(argv[i]) > 1:
        opt = argv[i]
        i += 1
        if len(opt) == 2 and opt[1] in _SSH_OPTIONS_WITH_VALUE:
            i += 1
    if i >= len(argv):
        raise SystemExit("shoal-mpi-launch: no host given")
    host = argv[i]
    if "@" in host:
        host = host.split("@", 1)[1]
    return host, argv[i + 1 :]


def _requests(first: agent_pb2.ExecRequest) -> Iterator[agent_pb2.ExecRequest]:
    yield first
    chunks: queue.Queue[bytes | None] = queue.Queue()

    def pump() -> None:
        try:
            fd = sys.stdin.fileno()
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                chunks.put(data)
        except (OSError, ValueError):
            pass
        chunks.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        data = chunks.get()
        if data is None:
            yield agent_pb2.ExecRequest(stdin_eof=True)
            return
        yield agent_pb2.ExecRequest(stdin=data)


def main(argv: list[str] | None = None) -> int:
    """Run the command on the host's agent; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    host, words = split_args(args)
    agents = parse_agent_map(os.environ.get("SHOAL_MPI_AGENTS", ""))
    address = agents.get(host)
    if address is None:
        print(f"shoal-mpi-launch: {host} is not a node of this task ({sorted(agents)})", file=sys.stderr)
        return 255
    first = agent_pb2.ExecRequest(
        job_id=os.environ.get("SHOAL_JOB_ID", ""),
        task_id=os.environ.get("SHOAL_TASK_ID", ""),
        attempt=int(os.environ.get("SHOAL_TASK_ATTEMPT", "0") or 0),
        argv=["/bin/sh", "-c", " ".join(words)],
        secret=os.environ.get("SHOAL_EXEC_SECRET", ""),
    )
    ca_file = os.environ.get("SHOAL_AGENT_CA_FILE", "")
    try:
        ca = Path(ca_file).read_bytes() if ca_file else b""
    except OSError as e:
        print(f"shoal-mpi-launch: cannot read the cluster CA certificate {ca_file}: {e}", file=sys.stderr)
        return 255
    if not ca:
        print("shoal-mpi-launch: SHOAL_AGENT_CA_FILE is not set: run inside a Shoal task", file=sys.stderr)
        return 255
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    options = [("grpc.ssl_target_name_override", NODE_TLS_NAME), ("grpc.default_authority", NODE_TLS_NAME)]
    with grpc.secure_channel(address, credentials, options=options) as channel:
        stub = agent_pb2_grpc.NodeServiceStub(channel)
        code = 255
        try:
            for resp in stub.Exec(_requests(first)):
                if resp.stdout:
                    sys.stdout.buffer.write(resp.stdout)
                    sys.stdout.buffer.flush()
                if resp.stderr:
                    sys.stderr.buffer.write(resp.stderr)
                    sys.stderr.buffer.flush()
                if resp.HasField("exit_code"):
                    code = resp.exit_code
        except grpc.RpcError as e:
            print(f"shoal-mpi-launch: {host}: {e.code().name}: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 255
    return code


if __name__ == "__main__":
    sys.exit(main())
