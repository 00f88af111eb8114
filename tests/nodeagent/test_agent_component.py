"""A real agent (in-process) against a fake control plane on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from pathlib import Path

import grpc
import pytest

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.exitcodes import TERMINATED_EXIT_CODE
from shoal.nodeagent import process
from shoal.v1 import common_pb2
from tests.nodeagent.conftest import assignment, start_tasks
from tests.tlshelp import node_channel

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING
COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
SUCCESS = common_pb2.TASK_EXECUTION_RESULT_SUCCESS
FAILURE = common_pb2.TASK_EXECUTION_RESULT_FAILURE


async def test_register_start_task_and_task_outcomes(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    plane.welcome = agent_pb2.Welcome(
        node_id="node-7",
        pool_id="pool1",
        heartbeat_interval_seconds=30,
        run_start_task=True,
        start_task=common_pb2.StartTask(
            command_line="sh -c 'echo started > $SHOAL_NODE_SHARED_DIR/started; echo $AZ_BATCH_NODE_ID'",
            environment_settings=[common_pb2.EnvironmentSetting(name="FOO", value="bar")],
        ),
    )
    storage = plane_server.storage
    storage.put("inputs", "data/a.txt", b"A")
    storage.put("inputs", "data/sub/b.txt", b"B")
    storage.create("outputs")
    agent, _ = await run_agent(node_cert="node-7")
    node = tmp_path / "node"

    reg = (await plane.wait_for(lambda: plane.registers))[0]
    assert reg.node_id == "node-7"  # as its certificate names it
    assert reg.ip_address == "127.0.0.1"
    assert reg.node_service_port > 0
    assert reg.cores > 0 and reg.memory_bytes > 0
    assert reg.root_directory == str(node)
    assert reg.boot_id and not reg.start_task_succeeded

    done = await plane.wait_for(
        lambda: [r for r in plane.start_reports() if r.state == common_pb2.START_TASK_STATE_COMPLETED]
    )
    assert plane.start_reports()[0].state == common_pb2.START_TASK_STATE_RUNNING
    assert done[0].result == SUCCESS and done[0].exit_code == 0
    assert (node / "shared" / "started").read_text() == "started\n"
    assert (node / "startup" / "stdout.txt").read_text() == "node-7\n"
    assert (node / "volatile" / "node-id").read_text().strip() == "node-7"
    assert agent.node_id == "node-7"

    ok = assignment(
        "t-ok",
        "sh -c 'cat data/a.txt data/sub/b.txt > out.txt; echo $SHOAL_TASK_ID $AZ_BATCH_JOB_ID $SHOAL_TASK_ATTEMPT $MY'",
        resource_files=[common_pb2.ResourceFile(storage_container_name="inputs", blob_prefix="data/")],
        environment_settings=[common_pb2.EnvironmentSetting(name="MY", value="v")],
        output_files=[
            common_pb2.OutputFile(file_pattern="out.txt", container_name="outputs", path="results/out.txt"),
            common_pb2.OutputFile(file_pattern="../std*.txt", container_name="outputs", path="logs"),
            common_pb2.OutputFile(
                file_pattern="out.txt",
                container_name="outputs",
                path="never",
                upload_condition=common_pb2.OUTPUT_FILE_UPLOAD_CONDITION_TASK_FAILURE,
            ),
        ],
    )
    tasks = [
        ok,
        assignment("t-fail", "sh -c 'exit 3'"),
        assignment("t-missing", "no-such-program-xyz --flag"),
        assignment(
            "t-blob",
            "true",
            resource_files=[common_pb2.ResourceFile(storage_container_name="inputs", blob_prefix="nope/")],
        ),
        assignment(
            "t-nocontainer",
            "true",
            resource_files=[common_pb2.ResourceFile(storage_container_name="absent", blob_prefix="x")],
        ),
        assignment("t-wall", "sh -c 'sleep 100 & sleep 100'", max_wall_clock_seconds=0.3),
        assignment("t-sig", "sh -c 'kill -9 $$'"),
        assignment(
            "t-upfail",
            "sh -c 'echo x > o.txt'",
            output_files=[common_pb2.OutputFile(file_pattern="o.txt", container_name="nocontainer", path="o")],
        ),
    ]
    await plane.send(start_tasks(11, *tasks))
    completed = {}
    for t in tasks:
        completed[t.attempt.task_id] = await plane.wait_event(t.attempt.task_id, COMPLETED)
    # Acknowledged once, riding on a report (or in a CommandAck of its own when nothing else went out).
    await plane.wait_for(lambda: [m for m in plane.messages if _acked(m)])
    assert [_acked(m) for m in plane.messages if _acked(m)] == [11]

    running = plane.event("t-ok", RUNNING)
    assert running is not None
    assert running.task_root_directory == str(node / "workitems" / "j1" / "job-1" / "t-ok")
    assert running.start_time.seconds > 0

    c = completed["t-ok"]
    assert c.result == SUCCESS and c.exit_code == 0 and not c.HasField("failure_info"), c
    assert storage.get("outputs", "results/out.txt") == b"AB"
    assert storage.get("outputs", "logs/stdout.txt") == b"t-ok j1 1 v\n"
    assert storage.get("outputs", "logs/stderr.txt") == b""
    assert storage.get("outputs", "never") is None
    task_dir = node / "workitems" / "j1" / "job-1" / "t-ok"
    assert "uploaded" in (task_dir / "fileuploadout.txt").read_text()
    assert agent.runner.retention.deadline("j1", "t-ok") is not None

    c = completed["t-fail"]
    assert c.result == FAILURE and c.exit_code == 3
    assert (c.failure_info.category, c.failure_info.code) == (common_pb2.ERROR_CATEGORY_USER_ERROR, "FailureExitCode")

    c = completed["t-missing"]
    assert not c.HasField("exit_code") and c.failure_info.code == "CommandProgramNotFound"
    assert c.result == FAILURE

    for tid in ("t-blob", "t-nocontainer"):
        c = completed[tid]
        assert not c.HasField("exit_code")
        assert (c.failure_info.category, c.failure_info.code) == (common_pb2.ERROR_CATEGORY_USER_ERROR, "BlobNotFound")

    c = completed["t-wall"]
    assert (c.failure_info.category, c.failure_info.code) == (common_pb2.ERROR_CATEGORY_SERVER_ERROR, "TaskEnded")
    # Batch's code for a task it ended (0xC000013A), not the 143 of the SIGTERM that ended it.
    assert c.exit_code == TERMINATED_EXIT_CODE and c.result == FAILURE

    assert completed["t-sig"].exit_code == 137
    c = completed["t-upfail"]
    assert c.exit_code == 0 and c.result == FAILURE and c.failure_info.code == "FileUploadMiscError"
    assert (node / "workitems" / "j1" / "job-1" / "t-upfail" / "fileuploaderr.txt").read_text()

    # All events were acknowledged by the fake plane.
    await asyncio.wait_for(_until(lambda: len(agent.outbox) == 0), 10)
    ids = [e.event_id for e in plane.events()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # DeleteTaskFiles removes a finished task's directory.
    await plane.send(
        agent_pb2.ServerMessage(
            delete_task_files=agent_pb2.DeleteTaskFiles(command_id=12, job_id="j1", task_ids=["t-fail"])
        )
    )
    await plane.wait_for(lambda: [m for m in plane.messages if m.ack.command_id == 12])
    await asyncio.wait_for(_until(lambda: not (node / "workitems/j1/job-1/t-fail").exists()), 10)
    assert (node / "workitems/j1/job-1/t-ok").exists()


def _acked(msg: agent_pb2.AgentMessage) -> int:
    """The command id `msg` acknowledges (0: none)."""
    return msg.ack.command_id if msg.WhichOneof("body") == "ack" else msg.commands_acked_up_to


async def _until(pred) -> None:
    """Poll a local condition (agent state) until it holds; callers bound it with wait_for."""
    while not pred():
        await asyncio.sleep(0.01)


async def test_reconnect_resends_pending_events(plane_server, run_agent, make_plane) -> None:

    plane = make_plane(auto_ack=False)
    await plane_server.stop()
    await plane_server.start(plane)
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(start_tasks(1, assignment("quick", "true"), assignment("slow", "sleep 30")))
    await plane.wait_event("quick", COMPLETED)
    await plane.wait_event("slow", RUNNING)
    # quick's RUNNING may have been folded into its COMPLETED (held back while only RUNNINGs were due).
    assert len(agent.outbox) in (2, 3)

    # The control plane restarts: the agent re-registers with what is running and pending.
    await plane_server.stop()
    plane2 = make_plane(auto_ack=False)
    await plane_server.start(plane2)
    reg = (await plane2.wait_for(lambda: plane2.registers))[0]
    assert reg.boot_id == plane.registers[0].boot_id
    assert reg.node_id == "node-1"
    assert [(r.task_id, r.attempt) for r in reg.running] == [("slow", 1)]
    kinds = [
        (e.attempt.task_id, e.kind) for e in reg.pending_events if e.kind != RUNNING or e.attempt.task_id != "quick"
    ]
    assert sorted(kinds) == [("quick", COMPLETED), ("slow", RUNNING)]
    assert len(reg.pending_events) == len(agent.outbox)
    last = max(e.event_id for e in reg.pending_events)
    await plane2.send(agent_pb2.ServerMessage(events_ack=agent_pb2.EventsAck(up_to_event_id=last)))
    await asyncio.wait_for(_until(lambda: len(agent.outbox) == 0), 10)

    # KillTasks: the attempt is killed and still reports COMPLETED (on the new stream).
    await plane2.send(
        agent_pb2.ServerMessage(
            kill_tasks=agent_pb2.KillTasks(
                command_id=2, attempts=[agent_pb2.AttemptRef(job_id="j1", task_id="slow", attempt=1)]
            )
        )
    )
    c = await plane2.wait_for(
        lambda: [
            e
            for m in plane2.messages
            if m.WhichOneof("body") == "task_events"
            for e in m.task_events.events
            if e.attempt.task_id == "slow" and e.kind == COMPLETED
        ]
    )
    assert c[0].failure_info.code == "TaskEnded"
    assert c[0].exit_code == TERMINATED_EXIT_CODE

    # Restart again: only the unacknowledged COMPLETED is pending, nothing runs.
    await plane_server.stop()
    plane3 = make_plane()
    await plane_server.start(plane3)
    reg = (await plane3.wait_for(lambda: plane3.registers))[0]
    assert not reg.running
    assert [(e.attempt.task_id, e.kind) for e in reg.pending_events] == [("slow", COMPLETED)]


async def test_shutdown_kills_tasks_and_exits(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, task = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(start_tasks(1, assignment("s", "sh -c 'sleep 100 & sleep 100'")))
    await plane.wait_event("s", RUNNING)
    running_json = tmp_path / "node" / "volatile" / "running.json"
    await asyncio.wait_for(_until(lambda: running_json.exists() and "j1/s/1" in running_json.read_text()), 10)
    pgid = next(iter(agent.running_file.load().values()))
    assert process.group_alive(pgid)
    await plane.send(agent_pb2.ServerMessage(shutdown=agent_pb2.Shutdown(reason="pool deleted")))
    assert await asyncio.wait_for(task, 15) == 0
    # Killed members that were reparented are reaped by init a moment later.
    await asyncio.wait_for(_until(lambda: not process.group_alive(pgid)), 10)
    assert agent.running_file.load() == {}


async def test_orphan_timeout_exits(plane_server, run_agent) -> None:
    await plane_server.stop()
    _agent, task = await run_agent(orphan_timeout=0.5)
    assert await asyncio.wait_for(task, 15) == 3


async def test_node_service_files(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    agent, _ = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    port = plane.registers[0].node_service_port
    cmd = "sh -c 'echo one; sleep 0.3; echo two; sleep 0.3; echo three'"
    await plane.send(start_tasks(1, assignment("f", cmd)))
    await plane.wait_event("f", RUNNING)
    async with node_channel(f"127.0.0.1:{port}") as ch:
        stub = agent_pb2_grpc.NodeServiceStub(ch)
        await asyncio.wait_for(_until(lambda: agent.runner.is_task_active("j1", "f")), 5)
        await asyncio.wait_for(_until(lambda: (tmp_path / "node/workitems/j1/job-1/f/stdout.txt").exists()), 5)
        chunks = [
            c
            async for c in stub.ReadFile(
                agent_pb2.ReadFileRequest(
                    scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="f", path="stdout.txt", follow=True
                )
            )
        ]
        assert b"".join(c.data for c in chunks) == b"one\ntwo\nthree\n"
        assert chunks[0].offset == 0
        await plane.wait_event("f", COMPLETED)

        tail = [
            c
            async for c in stub.ReadFile(
                agent_pb2.ReadFileRequest(
                    scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="f", path="stdout.txt", offset=4
                )
            )
        ]
        assert b"".join(c.data for c in tail) == b"two\nthree\n" and tail[0].offset == 4

        listing = await stub.ListFiles(
            agent_pb2.ListFilesRequest(scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="f", recursive=True)
        )
        paths = {f.path: f for f in listing.files}
        assert {"stdout.txt", "stderr.txt", "wd"} <= set(paths)
        assert paths["wd"].is_directory and paths["stdout.txt"].size == len(b"one\ntwo\nthree\n")

        node_listing = await stub.ListFiles(
            agent_pb2.ListFilesRequest(scope=agent_pb2.FILE_SCOPE_NODE, path="workitems/j1/job-1/f")
        )
        assert "workitems/j1/job-1/f/stdout.txt" in {f.path for f in node_listing.files}

        for bad in ("../x", "/etc/passwd", "wd/../../.."):
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.ListFiles(
                    agent_pb2.ListFilesRequest(scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="f", path=bad)
                )
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            async for _ in stub.ReadFile(agent_pb2.ReadFileRequest(scope=agent_pb2.FILE_SCOPE_NODE, path="nope.txt")):
                pass
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            async for _ in stub.ReadFile(
                agent_pb2.ReadFileRequest(scope=agent_pb2.FILE_SCOPE_NODE, path="../etc/passwd")
            ):
                pass
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@contextlib.contextmanager
def held_http_file(body: bytes):
    """An http server on loopback whose one file is sent only once `release` is set: (url, release)."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(10)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tool.sh", release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


async def test_following_output_waits_for_it_while_resource_files_are_staged(plane_server, run_agent) -> None:
    """RUNNING is reported before the resource files are staged and the command makes stdout.txt:
    following it then waits for the file instead of finding nothing."""
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    port = plane.registers[0].node_service_port
    with held_http_file(b"echo staged\n") as (url, release):
        files = [common_pb2.ResourceFile(http_url=url, file_path="tool.sh")]
        await plane.send(start_tasks(1, assignment("s", "sh tool.sh", resource_files=files)))
        await plane.wait_event("s", RUNNING)
        async with node_channel(f"127.0.0.1:{port}") as ch:
            stub = agent_pb2_grpc.NodeServiceStub(ch)
            request = agent_pb2.ReadFileRequest(
                scope=agent_pb2.FILE_SCOPE_TASK, job_id="j1", task_id="s", path="stdout.txt", follow=True
            )

            async def follow() -> bytes:
                return b"".join([c.data async for c in stub.ReadFile(request)])

            reader = asyncio.create_task(follow())
            await asyncio.sleep(0.3)  # (the file is still being staged: stdout.txt does not exist yet)
            assert not reader.done()
            release.set()
            assert await asyncio.wait_for(reader, 15) == b"staged\n"
    await plane.wait_event("s", COMPLETED)


def _completed_reports(plane) -> list[common_pb2.StartTaskInfo]:
    return [r for r in plane.start_reports() if r.state == common_pb2.START_TASK_STATE_COMPLETED]


async def test_start_task_retries(plane_server, run_agent, make_plane, tmp_path: Path) -> None:
    # Fails twice (exit 5), then succeeds; the counter lives in startup/wd across retries.
    script = "sh -c 'n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; echo try $n; [ $n -ge 3 ] || exit 5'"
    plane = plane_server.plane
    plane.welcome = agent_pb2.Welcome(
        node_id="n",
        heartbeat_interval_seconds=30,
        run_start_task=True,
        start_task=common_pb2.StartTask(command_line=script, max_task_retry_count=3),
    )
    agent, _ = await run_agent()
    info = (await plane.wait_for(lambda: _completed_reports(plane)))[0]
    assert (info.result, info.exit_code, info.retry_count) == (SUCCESS, 0, 2)
    assert (tmp_path / "node/startup/stdout.txt").read_text() == "try 1\ntry 2\ntry 3\n"
    assert agent.start_task_succeeded

    # A reconnect says the start task already succeeded.
    await plane_server.stop()
    plane2 = make_plane()
    await plane_server.start(plane2)
    reg = (await plane2.wait_for(lambda: plane2.registers))[0]
    assert reg.start_task_succeeded


async def test_start_task_failure(plane_server, run_agent) -> None:
    plane = plane_server.plane
    plane.welcome = agent_pb2.Welcome(
        node_id="n",
        heartbeat_interval_seconds=30,
        run_start_task=True,
        start_task=common_pb2.StartTask(command_line="sh -c 'exit 4'", max_task_retry_count=1),
    )
    agent, _ = await run_agent()
    info = (await plane.wait_for(lambda: _completed_reports(plane)))[0]
    assert (info.result, info.exit_code, info.retry_count) == (FAILURE, 4, 1)
    assert info.failure_info.code == "FailureExitCode"
    assert info.end_time.seconds >= info.start_time.seconds > 0
    assert not agent.start_task_succeeded


async def test_start_task_missing_blob(plane_server, run_agent) -> None:
    plane = plane_server.plane
    plane.welcome = agent_pb2.Welcome(
        node_id="n",
        heartbeat_interval_seconds=0.05,
        run_start_task=True,
        start_task=common_pb2.StartTask(
            command_line="true",
            resource_files=[common_pb2.ResourceFile(storage_container_name="nothere", blob_prefix="x")],
        ),
    )
    await run_agent()
    info = (await plane.wait_for(lambda: _completed_reports(plane)))[0]
    assert info.result == FAILURE and not info.HasField("exit_code")
    assert info.failure_info.code == "BlobNotFound"
    # Heartbeats flow at the interval the server asked for.
    hbs = await plane.wait_for(lambda: [m.heartbeat for m in plane.messages if m.WhichOneof("body") == "heartbeat"][2:])
    assert hbs[0].memory_used_bytes > 0


async def test_shutdown_instead_of_welcome(plane_server, run_agent) -> None:
    plane_server.plane.refuse_with_shutdown = True
    _agent, task = await run_agent()
    assert await asyncio.wait_for(task, 15) == 0


async def test_duplicate_start_is_not_rerun(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    a = assignment("once", "sh -c 'echo ran >> $SHOAL_NODE_SHARED_DIR/count'")
    await plane.send(start_tasks(1, a))
    await plane.wait_event("once", COMPLETED)
    await plane.send(start_tasks(2, a, assignment("after", "true")))
    await plane.wait_event("after", COMPLETED)
    assert (tmp_path / "node/shared/count").read_text() == "ran\n"
    # One COMPLETED (its RUNNING may have been folded into it), nothing for the repeat.
    once = [e.kind for e in plane.events() if e.attempt.task_id == "once"]
    assert once.count(COMPLETED) == 1 and len(once) <= 2


async def test_new_attempt_replaces_running_one(plane_server, run_agent) -> None:
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    await plane.send(start_tasks(1, assignment("r", "sleep 100", attempt=1)))
    await plane.wait_event("r", RUNNING, attempt=1)
    await plane.send(start_tasks(2, assignment("r", "sh -c 'echo $SHOAL_TASK_ATTEMPT'", attempt=2)))
    old = await plane.wait_event("r", COMPLETED, attempt=1)
    new = await plane.wait_event("r", COMPLETED, attempt=2)
    assert old.failure_info.code == "TaskEnded"
    assert new.result == SUCCESS and new.exit_code == 0


async def test_kill_with_delete_and_delete_job_files(plane_server, run_agent, tmp_path: Path) -> None:
    plane = plane_server.plane
    await run_agent()
    await plane.wait_for(lambda: plane.registers)
    jobs = tmp_path / "node" / "workitems"
    await plane.send(start_tasks(1, assignment("k", "sleep 100", job_id="j2"), assignment("d", "true", job_id="j3")))
    await plane.wait_event("k", RUNNING)
    await plane.wait_event("d", COMPLETED)
    await asyncio.wait_for(_until(lambda: (jobs / "j2/job-1/k/wd").is_dir()), 10)
    await plane.send(
        agent_pb2.ServerMessage(
            kill_tasks=agent_pb2.KillTasks(
                command_id=2,
                attempts=[agent_pb2.AttemptRef(job_id="j2", task_id="k", attempt=1)],
                delete_files=True,
            )
        )
    )
    c = await plane.wait_event("k", COMPLETED)
    assert c.failure_info.code == "TaskEnded"
    assert not (jobs / "j2").exists()

    assert (jobs / "j3/job-1/d").is_dir()
    await plane.send(agent_pb2.ServerMessage(delete_task_files=agent_pb2.DeleteTaskFiles(command_id=3, job_id="j3")))
    await asyncio.wait_for(_until(lambda: not (jobs / "j3").exists()), 10)
    await plane.send(
        agent_pb2.ServerMessage(delete_task_files=agent_pb2.DeleteTaskFiles(command_id=4, job_id="../etc"))
    )
    await plane.wait_for(lambda: [m for m in plane.messages if m.ack.command_id == 4])


async def test_stop_while_waiting_for_welcome(plane_server, run_agent) -> None:
    plane = plane_server.plane
    plane.silent = True
    agent, task = await run_agent()
    await plane.wait_for(lambda: plane.registers)
    agent.request_stop("test")
    assert await asyncio.wait_for(task, 5) == 0


async def test_reports_wait_while_work_sent_ahead_waits_for_a_slot(plane_server, run_agent) -> None:
    """With attempts waiting on the node, the server has nothing to send it: reports gather until the last starts."""
    plane = plane_server.plane
    plane.welcome.task_slots = 1
    # (Long: on a loaded machine 5 s passed before "b" ended, and the timer sent "a" alone. Reports leave once
    # "c" starts, not at the timer, so the test is no slower for it.)
    await run_agent(busy_report_delay=60.0)
    await plane.wait_for(lambda: plane.registers)
    await plane.send(start_tasks(1, assignment("a", "true"), assignment("b", "sleep 0.3"), assignment("c", "true")))
    await plane.wait_event("c", COMPLETED)
    carrier = next(
        m
        for m in plane.messages
        if m.WhichOneof("body") == "task_events"
        and any(e.attempt.task_id == "a" and e.kind == COMPLETED for e in m.task_events.events)
    )
    # "a" ended at once, but its report left only once "c", the last waiting, started (after "b" ended).
    assert any(e.attempt.task_id == "b" and e.kind == COMPLETED for e in carrier.task_events.events)
