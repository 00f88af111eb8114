"""Staging resource files: Batch's names (the blob's full name under the file path), never through a link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.agentidentity import AgentIdentity
from shoal.nodeagent.staging import StagingError, stage_resource_files
from shoal.nodeagent.storage import StorageClient
from shoal.v1 import common_pb2
from tests.nodeagent.conftest import PlaneServer, assignment, start_tasks
from tests.tlshelp import identity_channel, shared_ca

COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS


def _provider(address: str) -> AgentIdentity:
    """A certificate of the tests' CA that the fake control plane's agent port takes."""
    ca = shared_ca()
    cert, key = ca.issue_client_cert("staging-test", role="provider", days=1)
    return AgentIdentity(ca.cert_pem, cert, key, address)


@pytest.fixture
async def storage(plane_server: PlaneServer) -> AsyncIterator[StorageClient]:
    for name in ("mpi/heat.py", "mpi/hello.c", "mpi/sub/x.txt", "other/y.txt"):
        plane_server.storage.put("apps", name, name.encode())
    async with identity_channel(_provider(plane_server.address)) as ch:
        yield StorageClient(ch)


def files_under(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def container(prefix: str, file_path: str) -> common_pb2.ResourceFile:
    return common_pb2.ResourceFile(storage_container_name="apps", blob_prefix=prefix, file_path=file_path)


async def test_the_prefix_selects_blobs_and_each_keeps_its_full_name(storage: StorageClient, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    await stage_resource_files([container("mpi/h", ".")], wd, storage, root=tmp_path)
    assert files_under(wd) == ["mpi/heat.py", "mpi/hello.c"]  # not eat.py, ello.c
    await stage_resource_files([container("mpi/", "in")], wd, storage, root=tmp_path)
    assert files_under(wd / "in") == ["mpi/heat.py", "mpi/hello.c", "mpi/sub/x.txt"]
    await stage_resource_files([container("other/y.txt", "")], wd, storage, root=tmp_path)
    assert (wd / "other" / "y.txt").read_bytes() == b"other/y.txt"
    assert (wd / "mpi" / "heat.py").stat().st_mode & 0o777 == 0o770


async def test_staging_into_a_directory_not_made_yet(storage: StorageClient, tmp_path: Path) -> None:
    """Another instance's shared directory, which its own agent may not have made yet."""
    shared = tmp_path / "other-node" / "workitems" / "j" / "job-1" / "mi"
    await stage_resource_files([container("mpi/heat", ".")], shared, storage, root=tmp_path)
    assert files_under(shared) == ["mpi/heat.py"]


async def test_staging_never_writes_through_a_link(storage: StorageClient, tmp_path: Path) -> None:
    """A link left where a directory or a file goes (a shared directory, a start task's last run)."""
    wd = tmp_path / "wd"
    wd.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (wd / "mpi").symlink_to(outside)
    with pytest.raises(StagingError) as ei:
        await stage_resource_files([container("mpi/h", ".")], wd, storage, root=tmp_path)
    assert ei.value.code == "ResourceFileWriteFailed" and "symbolic link" in ei.value.message
    assert list(outside.iterdir()) == []
    # A link in the file's own place is replaced, and what it pointed at is left alone.
    (wd / "mpi").unlink()
    (wd / "mpi").mkdir()
    victim = outside / "victim"
    victim.write_text("untouched")
    (wd / "mpi" / "heat.py").symlink_to(victim)
    await stage_resource_files([container("mpi/heat", ".")], wd, storage, root=tmp_path)
    assert not (wd / "mpi" / "heat.py").is_symlink()
    assert (wd / "mpi" / "heat.py").read_bytes() == b"mpi/heat.py"
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in (wd / "mpi").iterdir()) == ["heat.py"]  # no temporary file left


@pytest.mark.parametrize("link", ["wd", "task"], ids=["the working directory", "a directory above it"])
async def test_staging_never_writes_through_a_working_directory_that_is_a_link(
    storage: StorageClient, tmp_path: Path, link: str
) -> None:
    """A previous attempt or the start task replaced the working directory (or a directory on the way
    to it from the node root) with a link to another directory: staging refuses, and writes nothing
    there."""
    root = tmp_path / "node"
    task_dir = root / "workitems" / "j" / "job-1" / "t"
    task_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if link == "wd":
        (task_dir / "wd").symlink_to(elsewhere)
    else:
        task_dir.rmdir()
        (elsewhere / "wd").mkdir()
        task_dir.symlink_to(elsewhere)
    for rf in (container("mpi/h", "."), container("mpi/h", "in")):
        with pytest.raises(StagingError) as ei:
            await stage_resource_files([rf], task_dir / "wd", storage, root=root)
        assert ei.value.code == "ResourceFileWriteFailed" and "symbolic link" in ei.value.message
    assert files_under(elsewhere) == []
    assert sorted(p.name for p in elsewhere.rglob("*")) == ([] if link == "wd" else ["wd"])


async def test_a_working_directory_outside_the_node_root_is_refused(storage: StorageClient, tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(StagingError) as ei:
        await stage_resource_files([container("mpi/h", ".")], tmp_path / "wd", storage, root=tmp_path / "root")
    assert ei.value.code == "ResourceFileWriteFailed"
    assert not (tmp_path / "wd").exists()


async def test_start_task_and_task_resource_files_keep_the_blob_names(plane_server, run_agent) -> None:
    plane = plane_server.plane
    plane_server.storage.put("apps", "mpi/heat.py", b"print('heat')\n")
    plane.welcome = agent_pb2.Welcome(
        node_id="n",
        heartbeat_interval_seconds=30,
        run_start_task=True,
        start_task=common_pb2.StartTask(command_line="cat mpi/heat.py", resource_files=[container("mpi/h", ".")]),
    )
    await run_agent()
    info = await plane.wait_for(
        lambda: [r for r in plane.start_reports() if r.state == common_pb2.START_TASK_STATE_COMPLETED]
    )
    assert info[0].result == SUCCESS, info[0].failure_info
    await plane.send(
        start_tasks(1, assignment("t", "cat tools/mpi/heat.py", resource_files=[container("mpi/h", "tools")]))
    )
    done = await plane.wait_event("t", COMPLETED)
    assert done.result == SUCCESS, done.failure_info
