"""Real `shoal server` and agent processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import grpc
import psutil

from shoal.v1 import job_pb2, job_pb2_grpc, pool_pb2, pool_pb2_grpc, storage_pb2_grpc, task_pb2, task_pb2_grpc
from tests.channels import sync_channel

X = TypeVar("X")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], X | None], timeout: float = 30.0, every: float = 0.05) -> X:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: X | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


class ServerProcess:
    """A `python -m shoal.server` child with its own data directory and port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        heartbeat_timeout: float = 4.0,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: More `shoal server` options (e.g. `--spot-recovery-seconds 2`).
        self.extra_args = extra_args
        #: More environment variables of the server (and its agents), e.g. `SHOAL_LOG_LEVEL`.
        self.env = dict(env or {})
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.heartbeat_timeout = heartbeat_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115
        env = {**os.environ, "SHOAL_LOG_LEVEL": "INFO", **self.env}
        # The agent port, the same over restarts on this data directory (agents that live on reconnect).
        agent_port_file = self.data_dir / "test-agent-port"
        if not agent_port_file.exists():
            agent_port_file.write_text(str(free_port()))
        self.agent_address = f"127.0.0.1:{agent_port_file.read_text().strip()}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.server",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                self.address,
                "--agent-listen",
                self.agent_address,
                "--heartbeat-interval",
                "0.5",
                "--heartbeat-timeout",
                str(self.heartbeat_timeout),
                "--agent-orphan-timeout",
                "30",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        log.close()
        wait_for("credentials", lambda: (self.data_dir / "credentials.json").exists() or None, timeout=30)
        self.channel = sync_channel(self.address, self.data_dir)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.pools = pool_pb2_grpc.PoolServiceStub(self.channel)
        self.jobs = job_pb2_grpc.JobServiceStub(self.channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(self.channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(self.channel)
        wait_for("server to answer", self._answers, timeout=30)
        return self

    def _answers(self) -> bool:
        try:
            self.pools.ListPools(pool_pb2.ListPoolsRequest(), timeout=2)
            return True
        except grpc.RpcError:
            return False

    def kill(self) -> None:
        """SIGKILL the server only (its agents live on)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        if self.channel is not None:
            self.channel.close()

    def agent_pids(self) -> dict[str, int]:
        """node id -> pid of every agent of this server still running."""
        found: dict[int, tuple[str, int]] = {}
        for p in psutil.process_iter(["pid", "ppid", "cmdline"]):
            cmd = p.info["cmdline"] or []
            if "shoal.nodeagent" in cmd and self.address in cmd:
                found[p.info["pid"]] = (cmd[cmd.index("--node-id") + 1], p.info["ppid"])
        # A child the agent is forking (a task between fork and exec) shows the agent's command line.
        return {node: pid for pid, (node, ppid) in found.items() if ppid not in found}

    def stop(self) -> None:
        """Stop the server and every agent it started."""
        pids = self.agent_pids()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        # SIGTERM first: an agent that stops kills its tasks (and their MPI proxies).
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        _, alive = psutil.wait_procs([p for p in map(_proc, pids.values()) if p is not None], timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self.channel is not None:
            self.channel.close()

    # -- conveniences ----------------------------------------------------------------

    def create_pool(self, pool_id: str, nodes: int, slots: int = 1, **kw: object) -> pool_pb2.Pool:
        return self.pools.CreatePool(
            pool_pb2.CreatePoolRequest(
                pool=pool_pb2.Pool(id=pool_id, target_nodes=nodes, task_slots_per_node=slots, **kw)
            )
        )

    def nodes(self, pool_id: str) -> list[pool_pb2.Node]:
        return list(self.pools.ListNodes(pool_pb2.ListNodesRequest(parent=f"pools/{pool_id}")).nodes)

    def wait_nodes(
        self, pool_id: str, count: int, states: Iterable[int] = (pool_pb2.NODE_STATE_IDLE,), timeout: float = 60
    ):
        wanted = set(states)
        return wait_for(
            f"{count} nodes of {pool_id} in {wanted}",
            lambda: (ns := [n for n in self.nodes(pool_id) if n.state in wanted]) and len(ns) >= count and ns,
            timeout=timeout,
        )

    def create_job(self, job_id: str, pool_id: str, **kw: object) -> job_pb2.Job:
        return self.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id=pool_id, **kw)))

    def add(self, job_id: str, specs: list[task_pb2.TaskSpec]) -> task_pb2.AddTasksResponse:
        return self.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=specs), timeout=60)

    def task(self, job_id: str, task_id: str) -> task_pb2.Task:
        return self.tasks.GetTask(task_pb2.GetTaskRequest(name=f"jobs/{job_id}/tasks/{task_id}"))

    def wait_job_tasks(self, job_id: str, timeout: float = 60) -> dict[str, task_pb2.Task]:
        """Follow WatchTasks until every task of the job is COMPLETED; return the final tasks."""
        latest: dict[str, task_pb2.Task] = {}
        stream = self.tasks.WatchTasks(task_pb2.WatchTasksRequest(parent=f"jobs/{job_id}"), timeout=timeout)
        try:
            for msg in stream:
                for t in msg.tasks:
                    latest[t.spec.id] = t
                if (
                    (msg.initial_complete or not msg.initial)
                    and latest
                    and all(t.state == task_pb2.TASK_STATE_COMPLETED for t in latest.values())
                ):
                    return latest
        finally:
            stream.cancel()
        raise AssertionError("watch ended before the job's tasks completed")

    def read_file(self, job_id: str, task_id: str, path: str) -> bytes:
        chunks = self.tasks.ReadTaskFile(
            task_pb2.ReadTaskFileRequest(name=f"jobs/{job_id}/tasks/{task_id}", path=path), timeout=30
        )
        return b"".join(c.data for c in chunks)


def sh(script: str) -> str:
    """A command line running `script` under /bin/sh (which expands the environment); no single quotes in it."""
    assert "'" not in script
    return f"/bin/sh -c '{script}'"
