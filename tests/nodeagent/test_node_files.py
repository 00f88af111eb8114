"""The agent's NodeService StatFile, DeleteFile and the follow of a node file, over a real node root.

The service runs in process on a loopback port with its mutual TLS, called as the control plane
calls it (the server role's client certificate). Symlinks point outside the root at files the test
owns (and at /etc/passwd): no answer may describe, return or delete a link's target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal import agenterrors
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.certs.authority import ROLE_PROVIDER
from shoal.nodeagent import safeopen
from shoal.nodeagent.fileops import protected
from shoal.nodeagent.fileservice import NodeFileService
from shoal.nodeagent.layout import NodeLayout
from shoal.v1 import common_pb2
from tests.tlshelp import node_channel, node_service_credentials

pytestmark = pytest.mark.timeout(60)

NODE = agent_pb2.FILE_SCOPE_NODE
TASK = agent_pb2.FILE_SCOPE_TASK


@dataclass
class Agent:
    """A NodeFileService over `layout` and a stub calling it as the control plane."""

    layout: NodeLayout
    stub: agent_pb2_grpc.NodeServiceStub
    address: str
    outside: Path
    #: job/task → the event a running attempt's end sets (absent: the task does not run here).
    running: dict[tuple[str, str], asyncio.Event]

    async def stat(self, path: str, scope: int = NODE, **ids: str) -> common_pb2.NodeFile:
        return await self.stub.StatFile(agent_pb2.StatFileRequest(scope=scope, path=path, **ids), timeout=10)

    async def delete(self, path: str, scope: int = NODE, *, recursive: bool = False, **ids: str) -> None:
        request = agent_pb2.DeleteFileRequest(scope=scope, path=path, recursive=recursive, **ids)
        await self.stub.DeleteFile(request, timeout=10)


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    """Both ways of opening below the root (see shoal.nodeagent.safeopen)."""
    safeopen.use_openat2(request.param == "openat2")
    try:
        yield request.param
    finally:
        safeopen.use_openat2(True)


@pytest.fixture
async def agent(tmp_path: Path, resolver: str) -> AsyncIterator[Agent]:
    layout = NodeLayout(tmp_path / "node")
    layout.create()
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret\n")
    (outside / "dir" / "kept.txt").write_text("kept\n")
    running: dict[tuple[str, str], asyncio.Event] = {}
    server = grpc.aio.server()
    agent_pb2_grpc.add_NodeServiceServicer_to_server(
        NodeFileService(layout, lambda job, task: running.get((job, task))), server
    )
    port = server.add_secure_port("127.0.0.1:0", node_service_credentials())
    await server.start()
    address = f"127.0.0.1:{port}"
    channel = node_channel(address)
    try:
        yield Agent(layout, agent_pb2_grpc.NodeServiceStub(channel), address, outside, running)
    finally:
        await channel.close()
        await server.stop(None)


def reason_of(e: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            assert info.domain == agenterrors.ERROR_DOMAIN
            return e.code(), info.reason
    raise AssertionError(f"no ErrorInfo in {e}")


async def refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call  # type: ignore[misc]
    return reason_of(ei.value)


DENIED_LINK = (grpc.StatusCode.PERMISSION_DENIED, agenterrors.SYMLINK_NOT_FOLLOWED)
PROTECTED = (grpc.StatusCode.PERMISSION_DENIED, agenterrors.FILE_PROTECTED)
BAD_PATH = (grpc.StatusCode.INVALID_ARGUMENT, agenterrors.INVALID_PATH)


# --------------------------------------------------------------------------- stat


async def test_stat_reports_files_directories_and_the_root(agent: Agent) -> None:
    (agent.layout.shared / "a.txt").write_bytes(b"12345")
    os.chmod(agent.layout.shared / "a.txt", 0o640)
    f = await agent.stat("shared/a.txt")
    assert (f.path, f.is_directory, f.size, f.file_mode) == ("shared/a.txt", False, 5, "0640")
    assert f.modify_time.seconds == int(os.stat(agent.layout.shared / "a.txt").st_mtime)
    d = await agent.stat("shared")
    assert (d.path, d.is_directory, d.size) == ("shared", True, 0)
    root = await agent.stat("")
    assert root.is_directory and root.path == ""
    assert await refused(agent.stat("shared/nope")) == (grpc.StatusCode.NOT_FOUND, agenterrors.FILE_NOT_FOUND)


async def test_stat_of_a_task_file_is_relative_to_the_task_directory(agent: Agent) -> None:
    task_dir = agent.layout.task_dir("j", "t")
    (task_dir / "wd").mkdir(parents=True)
    (task_dir / "stdout.txt").write_text("out\n")
    f = await agent.stat("stdout.txt", TASK, job_id="j", task_id="t")
    assert (f.path, f.size) == ("stdout.txt", 4)
    assert (await agent.stat("wd", TASK, job_id="j", task_id="t")).is_directory
    missing = await refused(agent.stat("stdout.txt", TASK, job_id="j", task_id="gone"))
    assert missing == (grpc.StatusCode.NOT_FOUND, agenterrors.TASK_DIRECTORY_NOT_FOUND)
    assert await refused(agent.stat("x", TASK, job_id="j", task_id="../t")) == BAD_PATH


async def test_stat_of_a_link_reports_the_link_never_its_target(agent: Agent) -> None:
    (agent.layout.shared / "passwd").symlink_to("/etc/passwd")
    f = await agent.stat("shared/passwd")
    # The link's own size (the length of its target's name), not /etc/passwd's.
    assert (f.is_directory, f.size) == (False, len("/etc/passwd"))
    assert f.size != os.stat("/etc/passwd").st_size
    (agent.layout.shared / "etc").symlink_to("/etc")
    assert not (await agent.stat("shared/etc")).is_directory
    # Through a link as a middle directory: refused.
    assert await refused(agent.stat("shared/etc/passwd")) == DENIED_LINK


@pytest.mark.parametrize("path", ["..", "../outside/secret.txt", "shared/../../outside", "/etc/passwd", "a\x00b"])
async def test_paths_that_climb_out_are_refused(agent: Agent, path: str) -> None:
    assert await refused(agent.stat(path)) == BAD_PATH
    assert await refused(agent.delete(path, recursive=True)) == BAD_PATH
    assert (agent.outside / "secret.txt").exists()


# --------------------------------------------------------------------------- delete


async def test_delete_a_file_and_a_directory_which_needs_recursive(agent: Agent) -> None:
    shared = agent.layout.shared
    (shared / "f.txt").write_text("x")
    await agent.delete("shared/f.txt")
    assert not (shared / "f.txt").exists()
    (shared / "d" / "e").mkdir(parents=True)
    (shared / "d" / "e" / "g.txt").write_text("g")
    no = await refused(agent.delete("shared/d"))
    assert no == (grpc.StatusCode.FAILED_PRECONDITION, agenterrors.FILE_IS_DIRECTORY)
    assert (shared / "d" / "e" / "g.txt").exists()
    await agent.delete("shared/d", recursive=True)
    assert not (shared / "d").exists()
    gone = await refused(agent.delete("shared/d", recursive=True))
    assert gone == (grpc.StatusCode.NOT_FOUND, agenterrors.FILE_NOT_FOUND)


async def test_deleting_a_link_deletes_the_link_only(agent: Agent) -> None:
    shared = agent.layout.shared
    (shared / "to-file").symlink_to(agent.outside / "secret.txt")
    (shared / "to-dir").symlink_to(agent.outside / "dir")
    (shared / "passwd").symlink_to("/etc/passwd")
    await agent.delete("shared/to-file")
    await agent.delete("shared/to-dir", recursive=True)
    await agent.delete("shared/passwd")
    assert not any(p.is_symlink() for p in shared.iterdir())
    assert (agent.outside / "secret.txt").read_text() == "secret\n"
    assert (agent.outside / "dir" / "kept.txt").read_text() == "kept\n"
    assert os.path.exists("/etc/passwd")


async def test_a_link_in_the_middle_of_a_path_is_never_followed(agent: Agent) -> None:
    (agent.layout.shared / "d").symlink_to(agent.outside)
    assert await refused(agent.delete("shared/d/secret.txt")) == DENIED_LINK
    assert await refused(agent.delete("shared/d/dir", recursive=True)) == DENIED_LINK
    assert (agent.outside / "secret.txt").exists() and (agent.outside / "dir" / "kept.txt").exists()


async def test_a_recursive_delete_removes_links_inside_not_their_targets(agent: Agent) -> None:
    tree = agent.layout.shared / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "escape").symlink_to(agent.outside / "dir")
    (tree / "secret").symlink_to(agent.outside / "secret.txt")
    await agent.delete("shared/tree", recursive=True)
    assert not tree.exists()
    assert (agent.outside / "secret.txt").exists() and (agent.outside / "dir" / "kept.txt").exists()


@pytest.mark.parametrize(
    "path",
    [
        "",
        ".",
        "shared",
        "workitems",
        "startup",
        "volatile/node-id",
        "volatile",
        "workitems/j",
        "workitems/j/job-1",
        "workitems/j/job-1/t",
    ],
)
async def test_the_root_fixed_directories_task_directories_and_agent_state_are_protected(
    agent: Agent, path: str
) -> None:
    agent.layout.task_dir("j", "t").mkdir(parents=True)
    agent.layout.node_id_file.write_text("node-1")
    assert await refused(agent.delete(path, recursive=True)) == PROTECTED
    assert (agent.layout.root / path).exists()


async def test_a_running_tasks_files_may_be_deleted_never_its_directory(agent: Agent) -> None:
    agent.running[("j", "t")] = asyncio.Event()  # the attempt runs
    task_dir = agent.layout.task_dir("j", "t")
    (task_dir / "wd" / "out").mkdir(parents=True)
    (task_dir / "wd" / "out" / "r.dat").write_text("r")
    (task_dir / "stdout.txt").write_text("o")
    ids = {"job_id": "j", "task_id": "t"}
    await agent.delete("stdout.txt", TASK, **ids)
    await agent.delete("wd/out", TASK, recursive=True, **ids)
    assert sorted(p.name for p in task_dir.iterdir()) == ["wd"]
    assert await refused(agent.delete("", TASK, recursive=True, **ids)) == PROTECTED
    assert await refused(agent.delete(".", TASK, recursive=True, **ids)) == PROTECTED
    assert task_dir.is_dir()
    # Through the node scope, a file in a task's directory goes too (its directory does not).
    (task_dir / "wd" / "x").write_text("x")
    await agent.delete("workitems/j/job-1/t/wd/x")
    assert not (task_dir / "wd" / "x").exists()


def test_what_is_protected() -> None:
    assert protected("", "", True) == "the node's root directory"
    assert protected("workitems/j/job-1/t", "", True) == "the task's own directory"
    assert protected("workitems/j/job-1/t", "wd", True) is None
    assert protected("", "workitems/j/job-1/t", True) is not None
    assert protected("", "workitems/j/job-1/stray.txt", False) is None
    assert protected("", "shared/x", True) is None
    assert protected("", "certs/a.pem", False) == "the agent's own state"
    assert protected("", "agent.log", False) is None


async def test_only_the_control_plane_may_stat_or_delete(agent: Agent) -> None:
    (agent.layout.shared / "f").write_text("f")
    async with node_channel(agent.address, role=ROLE_PROVIDER) as ch:
        stub = agent_pb2_grpc.NodeServiceStub(ch)
        denied = (grpc.StatusCode.PERMISSION_DENIED, agenterrors.CALLER_NOT_SERVER)
        assert await refused(stub.StatFile(agent_pb2.StatFileRequest(scope=NODE, path="shared/f"))) == denied
        assert await refused(stub.DeleteFile(agent_pb2.DeleteFileRequest(scope=NODE, path="shared/f"))) == denied
    assert (agent.layout.shared / "f").exists()


# --------------------------------------------------------------------------- follow


def open_descriptors_of(path: Path) -> int:
    """How many descriptors of this process are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


async def test_following_a_node_file_yields_appended_bytes_until_cancelled(agent: Agent) -> None:
    log = agent.layout.log_file
    log.write_bytes(b"first line\n")
    call = agent.stub.ReadFile(agent_pb2.ReadFileRequest(scope=NODE, path="agent.log", follow=True))
    first = await asyncio.wait_for(call.read(), 10)
    assert (first.offset, first.data) == (0, b"first line\n")
    for i in range(3):
        line = f"appended {i}\n".encode()
        with log.open("ab") as f:
            f.write(line)
        got = await asyncio.wait_for(call.read(), 10)
        assert got.data == line and got.offset == log.stat().st_size - len(line)
    assert open_descriptors_of(log) == 1  # the service's, while it follows
    call.cancel()
    assert await call.code() == grpc.StatusCode.CANCELLED
    # The service stops following: its descriptor is closed (within its poll interval).
    for _ in range(200):
        if open_descriptors_of(log) == 0:
            break
        await asyncio.sleep(0.01)
    assert open_descriptors_of(log) == 0


async def test_following_a_node_file_from_an_offset_and_refusals(agent: Agent) -> None:
    (agent.layout.shared / "f").write_bytes(b"0123456789")
    call = agent.stub.ReadFile(agent_pb2.ReadFileRequest(scope=NODE, path="shared/f", offset=7, follow=True))
    chunk = await asyncio.wait_for(call.read(), 10)
    assert (chunk.offset, chunk.data) == (7, b"789")
    call.cancel()
    # A node file that is not there is NOT_FOUND at once (nothing would end a wait for it).
    missing = agent.stub.ReadFile(agent_pb2.ReadFileRequest(scope=NODE, path="shared/nope", follow=True))
    assert await refused(missing.read()) == (grpc.StatusCode.NOT_FOUND, agenterrors.FILE_NOT_FOUND)
    (agent.layout.shared / "passwd").symlink_to("/etc/passwd")
    link = agent.stub.ReadFile(agent_pb2.ReadFileRequest(scope=NODE, path="shared/passwd", follow=True))
    assert await refused(link.read()) == DENIED_LINK
