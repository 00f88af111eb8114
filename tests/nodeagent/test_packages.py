"""The node's package cache (`shoal.nodeagent.packages`): once per node and version, shared by concurrent
deployments, atomic, a new archive of the same version replaces the old, failures named; and the names of
the variables tasks find packages by."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent import packages
from shoal.nodeagent.packages import PackageCache, PackageError

pytestmark = pytest.mark.timeout(30)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class Archives:
    """A stand-in for the control plane's PackageService: archives by (app, version), fetched into a file
    the way the agent's gRPC fetch writes them, each fetch counted; `gate` holds fetches back."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}
        self.fetches = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def put(self, app: str, version: str, data: bytes, *, default: bool = False) -> agent_pb2.PackageDeployment:
        self.data[(app, version)] = data
        return agent_pb2.PackageDeployment(
            application_id=app,
            version=version,
            default_version=default,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            reference=app if default else f"{app}:{version}",
        )

    async def fetch(self, d: agent_pb2.PackageDeployment, dest: Path) -> tuple[str, int]:
        self.fetches += 1
        await self.gate.wait()
        data = self.data[(d.application_id, d.version)]

        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(data), 100):
                yield data[i : i + 100]

        return await packages.write_chunks(chunks(), dest)


def test_variable_names_follow_batch_linux_rules(tmp_path: Path) -> None:
    d = agent_pb2.PackageDeployment(application_id="agent-linux.x64", version="1.1.46.0", default_version=True)
    env = packages.package_vars(d, tmp_path)
    assert env == {
        "SHOAL_APP_PACKAGE_agent_linux_x64_1_1_46_0": str(tmp_path),
        "SHOAL_APP_PACKAGE_agent_linux_x64": str(tmp_path),
    }
    assert packages.dir_name("agent-linux.x64", "1.1.46.0") == "agent-linux.x64#1.1.46.0"
    d.default_version = False
    assert list(packages.package_vars(d, tmp_path)) == ["SHOAL_APP_PACKAGE_agent_linux_x64_1_1_46_0"]


async def test_deployed_once_per_version_and_shared_by_concurrent_tasks(tmp_path: Path) -> None:
    store = Archives()
    d = store.put("blender", "2.7", zip_bytes({"bin/blender": b"#!/bin/sh\n"}))
    cache = PackageCache(tmp_path / "applications", store.fetch)
    store.gate.clear()
    waiting = [asyncio.create_task(cache.ensure_all([d])) for _ in range(5)]
    await asyncio.sleep(0.05)
    store.gate.set()
    envs = await asyncio.gather(*waiting)
    assert store.fetches == 1 and cache.deployed == 1
    path = tmp_path / "applications" / "blender#2.7"
    assert all(e["AZ_BATCH_APP_PACKAGE_blender_2_7"] == str(path) for e in envs)
    assert (path / "bin/blender").read_bytes() == b"#!/bin/sh\n"
    # A new agent process (a restart, a reboot) finds it deployed: nothing is fetched again.
    again = PackageCache(tmp_path / "applications", store.fetch)
    await again.ensure(d)
    assert store.fetches == 1
    # Nothing is left in the agent's work directories.
    assert list((tmp_path / "applications" / ".shoal" / "tmp").iterdir()) == []


async def test_a_new_archive_of_the_same_version_replaces_the_old(tmp_path: Path) -> None:
    store = Archives()
    cache = PackageCache(tmp_path / "applications", store.fetch)
    path = await cache.ensure(store.put("a", "1", zip_bytes({"old.txt": b"1"})))
    path2 = await cache.ensure(store.put("a", "1", zip_bytes({"new.txt": b"2"})))
    assert path == path2 and [p.name for p in path.iterdir()] == ["new.txt"]


async def test_failures_are_named_and_leave_nothing(tmp_path: Path) -> None:
    store = Archives()
    cache = PackageCache(tmp_path / "applications", store.fetch)
    with pytest.raises(PackageError, match="no default version"):
        await cache.ensure(agent_pb2.PackageDeployment(reference="x", error="no default version"))
    bad = store.put("a", "1", zip_bytes({"f": b"1"}))
    bad.sha256 = "0" * 64
    with pytest.raises(PackageError, match="not the one expected"):
        await cache.ensure(bad)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape", b"x")
    with pytest.raises(PackageError, match="cannot be unpacked"):
        await cache.ensure(store.put("a", "2", evil.getvalue()))
    assert not (tmp_path / "escape").exists() and not (tmp_path / "applications" / "a#2").exists()

    async def broken(d: agent_pb2.PackageDeployment, dest: Path) -> tuple[str, int]:
        raise OSError("connection reset")

    with pytest.raises(PackageError, match="could not be fetched: connection reset"):
        await PackageCache(tmp_path / "applications", broken).ensure(store.put("a", "3", b"zz"))
