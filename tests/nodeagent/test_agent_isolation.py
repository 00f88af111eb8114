"""A task cannot reach past its directory through the agent: output patterns and file reads."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.v1 import common_pb2
from tests.nodeagent.conftest import assignment, start_tasks
from tests.tlshelp import node_channel

COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
COMPLETION = common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_COMPLETION
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS


def heartbeats(plane) -> int:
    return sum(1 for m in plane.messages if m.WhichOneof("body") == "heartbeat")


def outputs(pattern: str, path: str = "") -> list[common_pb2.OutputFile]:
    return [common_pb2.OutputFile(file_pattern=pattern, container_name="out", path=path, upload_condition=COMPLETION)]


@pytest.mark.timeout(60)
async def test_an_output_pattern_through_a_link_to_root_neither_freezes_the_agent_nor_leaves(
    plane_server, run_agent
) -> None:
    """`ln -s / r` with `**/*` on completion: the agent keeps its heartbeats, the task completes and
    only what is inside the task's directory is uploaded."""
    plane = plane_server.plane
    plane.welcome.heartbeat_interval_seconds = 0.1
    plane_server.storage.create("out")
    await run_agent()
    await plane.wait_for(lambda: heartbeats(plane) >= 2)
    cmd = "/bin/sh -c 'ln -s / r && echo mine > mine.txt'"
    await plane.send(start_tasks(1, assignment("escape", cmd, output_files=outputs("**/*", "res"))))
    done = await plane.wait_event("escape", COMPLETED, timeout=20)
    assert done.result == SUCCESS, done.failure_info
    before = heartbeats(plane)
    await plane.wait_for(lambda: heartbeats(plane) >= before + 3, timeout=10)
    blobs = sorted(
        p.relative_to(plane_server.storage.root / "out").as_posix()
        for p in (plane_server.storage.root / "out").rglob("*")
        if p.is_file()
    )
    assert blobs == ["res/mine.txt"]


@pytest.mark.timeout(60)
async def test_an_output_pattern_past_its_bounds_fails_the_upload_and_nothing_else(plane_server, run_agent) -> None:
    plane = plane_server.plane
    plane_server.storage.create("out")
    await run_agent()
    deep = "/".join(["d"] * 70)
    cmd = f"/bin/sh -c 'mkdir -p {deep} && echo x > {deep}/x.txt && echo kept > kept.txt'"
    files = outputs("**/*.txt", "all") + outputs("kept.txt", "kept.txt")
    await plane.send(start_tasks(1, assignment("deep", cmd, output_files=files)))
    done = await plane.wait_event("deep", COMPLETED, timeout=20)
    assert done.exit_code == 0
    assert done.failure_info.code == "FileUploadMiscError"
    assert "nested more than 64 deep" in done.failure_info.message
    assert plane_server.storage.get("out", "kept.txt") == b"kept\n"
    assert plane_server.storage.get("out", "all/kept.txt") is None


@pytest.mark.timeout(60)
async def test_reads_never_follow_a_link_swapped_in_while_reading(plane_server, run_agent) -> None:
    """A task swaps `wd/race` between a file and a link to /etc/passwd; reads get the file or a
    clear refusal, never /etc/passwd, and never an error the agent did not mean."""
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    port = plane.registers[0].node_service_port
    swap = (
        "/bin/sh -c 'while :; do echo safe > f.tmp; mv -f f.tmp race; ln -s /etc/passwd l.tmp; "
        "mv -f l.tmp race; rm -f race; ln -s /etc/passwd race; done'"
    )
    await plane.send(start_tasks(1, assignment("race", swap)))
    seen: dict[str, int] = {}
    leaked = 0
    unexpected: list[str] = []
    async with node_channel(f"127.0.0.1:{port}") as ch:
        stub = agent_pb2_grpc.NodeServiceStub(ch)
        request = agent_pb2.ReadFileRequest(
            scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="race", path="wd/race"
        )
        for _ in range(400):
            try:
                data = b"".join([c.data async for c in stub.ReadFile(request)])
            except grpc.aio.AioRpcError as e:
                seen[e.code().name] = seen.get(e.code().name, 0) + 1
                if e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                    unexpected.append(f"{e.code().name} {e.details()}")
            else:
                leaked += b"root:" in data
                if data not in (b"", b"safe\n") and b"root:" not in data:
                    unexpected.append(f"read {data[:40]!r}")
                seen["read"] = seen.get("read", 0) + 1
            try:
                listing = await stub.ListFiles(
                    agent_pb2.ListFilesRequest(scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="race", path="wd")
                )
                leaked += any(f.size > 100 for f in listing.files)
            except grpc.aio.AioRpcError as e:
                unexpected.append(f"ListFiles {e.code().name} {e.details()}")
            await asyncio.sleep(0)
    assert leaked == 0, f"/etc/passwd came through {leaked} times of 400 ({seen})"
    assert unexpected == [], unexpected[:5]
    assert seen.get("PERMISSION_DENIED", 0) > 0, seen  # the race was on
    await plane.send(
        agent_pb2.ServerMessage(
            kill_tasks=agent_pb2.KillTasks(
                command_id=2, attempts=[agent_pb2.AttemptRef(job_id="j1", task_id="race", attempt=1)]
            )
        )
    )
    await plane.wait_event("race", COMPLETED, timeout=20)
