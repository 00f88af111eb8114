"""Node and task files through the public API: ReadNodeFile (with follow), GetNodeFileProperties,
DeleteNodeFile, GetTaskFileProperties and DeleteTaskFile.

A real in-process server, and a joined node (a scripted agent for the agent stream) whose NodeService
is the agent's own over a temporary node root, as in `test_fuzz.ServerUnderFuzz`: the control plane's
own mutual TLS channel reaches it, and what the client sees is what the real agent answered.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.nodeagent.fileservice import NodeFileService
from shoal.nodeagent.layout import NodeLayout
from shoal.server.app import ShoalServer
from shoal.tlsconfig import server_credentials
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import channel_as, make_account, refused

pytestmark = pytest.mark.timeout(90)


@dataclass
class Cluster:
    """The server's stubs, the node's name and root, and the running task's directory."""

    stubs: Stubs
    node: str
    layout: NodeLayout
    task_dir: Path
    #: Set when the task's attempt ends (the agent's `task_done` for jobs/j/tasks/t).
    task_done: asyncio.Event


@pytest.fixture
async def cluster(server: ShoalServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    layout = NodeLayout(tmp_path / "node")
    layout.create()
    done = asyncio.Event()
    node_server = grpc.aio.server()
    agent_pb2_grpc.add_NodeServiceServicer_to_server(
        NodeFileService(layout, lambda job, task: done if (job, task) == ("j", "t") else None), node_server
    )
    ident = server.security.issue_node("files-node", "p")
    port = node_server.add_secure_port(
        "127.0.0.1:0", server_credentials(ident.cert_pem, ident.key_pem, client_ca_pem=ident.ca_pem)
    )
    await node_server.start()
    agent: ScriptedAgent | None = None
    try:
        async with server_channel(server) as channel:
            stubs = Stubs(channel)
            await stubs.pools.CreatePool(
                pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join"))
            )
            agent = ScriptedAgent(server, "p", "127.0.0.1", node_service_port=port)
            node_id = (await agent.connect()).node_id
            await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
            await stubs.tasks.AddTask(
                task_pb2.AddTaskRequest(parent="jobs/j", task=task_pb2.TaskSpec(id="t", command_line="/bin/true"))
            )
            start = await agent.expect("start_tasks")
            await agent.event(start.start_tasks.tasks[0].attempt, agent_pb2.TASK_EVENT_KIND_RUNNING)
            await agent.expect("events_ack")
            task_dir = layout.task_dir("j", "t")
            (task_dir / "wd").mkdir(parents=True)
            (task_dir / "wd" / "out.dat").write_text("result\n")
            (task_dir / "stdout.txt").write_text("out\n")
            yield Cluster(stubs, f"pools/p/nodes/{node_id}", layout, task_dir, done)
    finally:
        if agent is not None:
            await agent.close()
        await node_server.stop(None)


def open_descriptors_of(path: Path) -> int:
    """How many descriptors of this process (the node's service runs in it) are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return count


async def test_node_file_properties_and_refusals_passed_on(cluster: Cluster) -> None:
    pools = cluster.stubs.pools
    cluster.layout.log_file.write_bytes(b"agent started\n")
    f = await pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name=cluster.node, path="agent.log"))
    assert (f.path, f.is_directory, f.size) == ("agent.log", False, 14)
    d = await pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name=cluster.node, path="shared"))
    assert d.is_directory
    await refused(
        pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name=cluster.node, path="shared/nope")),
        grpc.StatusCode.NOT_FOUND,
        "FILE_NOT_FOUND",
    )
    (cluster.layout.shared / "etc").symlink_to("/etc")
    await refused(
        pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name=cluster.node, path="shared/etc/passwd")),
        grpc.StatusCode.PERMISSION_DENIED,
        "SYMLINK_NOT_FOLLOWED",
    )
    await refused(
        pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name="pools/p/nodes/nope", path="")),
        grpc.StatusCode.NOT_FOUND,
        "NODE_NOT_FOUND",
    )


async def test_read_node_file_follows_until_the_caller_cancels(cluster: Cluster) -> None:
    log = cluster.layout.log_file
    log.write_bytes(b"line 1\n")
    whole = cluster.stubs.pools.ReadNodeFile(pool_pb2.ReadNodeFileRequest(name=cluster.node, path="agent.log"))
    assert b"".join([c.data async for c in whole]) == b"line 1\n"
    call = cluster.stubs.pools.ReadNodeFile(
        pool_pb2.ReadNodeFileRequest(name=cluster.node, path="agent.log", offset=5, follow=True)
    )
    first = await asyncio.wait_for(call.read(), 20)
    assert (first.offset, first.data) == (5, b"1\n")
    with log.open("ab") as out:
        out.write(b"line 2\n")
    second = await asyncio.wait_for(call.read(), 20)
    assert (second.offset, second.data) == (7, b"line 2\n")
    call.cancel()
    # The server cancels its call to the agent, and the agent stops following.
    for _ in range(500):
        if open_descriptors_of(log) == 0:
            break
        await asyncio.sleep(0.01)
    assert open_descriptors_of(log) == 0
    await refused(
        cluster.stubs.pools.ReadNodeFile(
            pool_pb2.ReadNodeFileRequest(name=cluster.node, path="agent.log", offset=-1)
        ).read(),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_OFFSET",
    )


async def test_delete_node_files(cluster: Cluster) -> None:
    pools = cluster.stubs.pools
    shared = cluster.layout.shared
    (shared / "dir" / "sub").mkdir(parents=True)
    (shared / "dir" / "sub" / "x").write_text("x")
    (shared / "f.txt").write_text("f")
    outside = cluster.layout.root.parent / "outside.txt"
    outside.write_text("mine")
    (shared / "link").symlink_to(outside)

    def delete(path: str, recursive: bool = False) -> object:
        return pools.DeleteNodeFile(pool_pb2.DeleteNodeFileRequest(name=cluster.node, path=path, recursive=recursive))

    await delete("shared/f.txt")
    await delete("shared/link")
    assert sorted(p.name for p in shared.iterdir()) == ["dir"] and outside.read_text() == "mine"
    await refused(delete("shared/dir"), grpc.StatusCode.FAILED_PRECONDITION, "FILE_IS_DIRECTORY")
    await delete("shared/dir", recursive=True)
    assert list(shared.iterdir()) == []
    await refused(delete("", recursive=True), grpc.StatusCode.PERMISSION_DENIED, "FILE_PROTECTED")
    await refused(delete("workitems/j/job-1/t", recursive=True), grpc.StatusCode.PERMISSION_DENIED, "FILE_PROTECTED")
    await refused(delete("shared/gone"), grpc.StatusCode.NOT_FOUND, "FILE_NOT_FOUND")
    assert cluster.task_dir.is_dir()


async def test_task_file_properties_and_delete_while_the_task_runs(cluster: Cluster) -> None:
    tasks = cluster.stubs.tasks
    name = "jobs/j/tasks/t"
    f = await tasks.GetTaskFileProperties(task_pb2.GetTaskFilePropertiesRequest(name=name, path="stdout.txt"))
    assert (f.path, f.size, f.is_directory) == ("stdout.txt", 4, False)
    assert (await tasks.GetTaskFileProperties(task_pb2.GetTaskFilePropertiesRequest(name=name, path="wd"))).is_directory
    await tasks.DeleteTaskFile(task_pb2.DeleteTaskFileRequest(name=name, path="wd/out.dat"))
    assert not (cluster.task_dir / "wd" / "out.dat").exists()
    await refused(
        tasks.DeleteTaskFile(task_pb2.DeleteTaskFileRequest(name=name, path="wd")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "FILE_IS_DIRECTORY",
    )
    await tasks.DeleteTaskFile(task_pb2.DeleteTaskFileRequest(name=name, path="wd", recursive=True))
    await refused(
        tasks.DeleteTaskFile(task_pb2.DeleteTaskFileRequest(name=name, path="", recursive=True)),
        grpc.StatusCode.PERMISSION_DENIED,
        "FILE_PROTECTED",
    )
    assert sorted(p.name for p in cluster.task_dir.iterdir()) == ["stdout.txt"]
    await refused(
        tasks.GetTaskFileProperties(task_pb2.GetTaskFilePropertiesRequest(name=name, path="wd/out.dat")),
        grpc.StatusCode.NOT_FOUND,
        "FILE_NOT_FOUND",
    )
    await refused(
        tasks.GetTaskFileProperties(task_pb2.GetTaskFilePropertiesRequest(name="jobs/j/tasks/nope", path="")),
        grpc.StatusCode.NOT_FOUND,
        "TASK_NOT_FOUND",
    )


async def test_another_account_reaches_no_file_of_this_one(server: ShoalServer, cluster: Cluster) -> None:
    key = await make_account(server, "other")
    async with channel_as(server, "other", key) as ch:
        other = Stubs(ch)
        await refused(
            other.pools.GetNodeFileProperties(pool_pb2.GetNodeFilePropertiesRequest(name=cluster.node, path="")),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        await refused(
            other.pools.DeleteNodeFile(pool_pb2.DeleteNodeFileRequest(name=cluster.node, path="agent.log")),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        await refused(
            other.pools.ReadNodeFile(pool_pb2.ReadNodeFileRequest(name=cluster.node, path="agent.log")).read(),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        await refused(
            other.tasks.DeleteTaskFile(task_pb2.DeleteTaskFileRequest(name="jobs/j/tasks/t", path="stdout.txt")),
            grpc.StatusCode.NOT_FOUND,
            "JOB_NOT_FOUND",
        )
        await refused(
            other.tasks.GetTaskFileProperties(task_pb2.GetTaskFilePropertiesRequest(name="jobs/j/tasks/t", path="")),
            grpc.StatusCode.NOT_FOUND,
            "JOB_NOT_FOUND",
        )
    assert (cluster.task_dir / "stdout.txt").exists()
