"""Multi-instance tasks: two in-process agents, each with its own fake control plane."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.agent import Agent
from shoal.nodeagent.config import AgentConfig
from shoal.v1 import common_pb2
from tests.mpi.exec_client import exec_call
from tests.nodeagent.conftest import PlaneServer
from tests.tlshelp import give_node_identity

RUNNING = agent_pb2.TASK_EVENT_KIND_RUNNING
COORDINATED = agent_pb2.TASK_EVENT_KIND_COORDINATED
COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED
IPS = ["127.0.1.1", "127.0.1.2"]
SECRET = "gang-secret"


@pytest.fixture
async def two_nodes(tmp_path: Path):
    planes: list[PlaneServer] = []
    agents: list[tuple[Agent, asyncio.Task[int]]] = []
    try:
        for i, ip in enumerate(IPS):
            ps = PlaneServer(tmp_path / f"blobs{i}")
            await ps.start()
            planes.append(ps)
            give_node_identity(tmp_path / f"node{i}", "node-1", "pool1")
            agent = Agent(
                AgentConfig(
                    server=ps.address,
                    agent_server=ps.address,
                    node_root=tmp_path / f"node{i}",
                    ip=ip,
                    kill_grace_seconds=0.5,
                )
            )
            agents.append((agent, asyncio.create_task(agent.run())))
        for ps in planes:
            plane = ps.plane
            await plane.wait_for(lambda plane=plane: plane.registers)  # type: ignore[misc]
        yield planes, [a for a, _ in agents]
    finally:
        for agent, task in agents:
            agent.request_stop("test over")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
        for ps in planes:
            await ps.stop()


def _assignments(planes: list[PlaneServer], tmp_path: Path, command: str, coordination: str, **kw):
    # The shim reaches the other nodes' Exec listeners, with the gang's secret.
    ports = [ps.plane.registers[0].exec_port for ps in planes]
    shared = str(tmp_path / "node0" / "workitems" / "j" / "job-1" / "mi")
    out = []
    for i in range(len(planes)):
        a = agent_pb2.TaskAssignment(
            attempt=agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=i),
            command_line=command,
            required_slots=1,
            multi_instance=agent_pb2.MultiInstance(
                instance_index=i,
                number_of_instances=len(planes),
                host_list=IPS,
                agent_addresses=[f"{ip}:{p}" for ip, p in zip(IPS, ports, strict=True)],
                coordination_command_line=coordination,
                common_resource_files=[common_pb2.ResourceFile(storage_container_name="common", blob_prefix="c/")],
                task_shared_dir=shared,
                exec_secret=SECRET,
            ),
            **kw,
        )
        out.append(a)
    return out


async def _send(ps: PlaneServer, msg: agent_pb2.ServerMessage) -> None:
    await ps.plane.send(msg)


async def test_coordination_exec_and_application(two_nodes, tmp_path: Path) -> None:
    planes, _agents = two_nodes
    for ps in planes:
        ps.storage.put("common", "c/common.txt", b"common\n")
    coordination = "sh -c 'echo coord > $SHOAL_TASK_SHARED_DIR/coord-$SHOAL_INSTANCE_INDEX; (sleep 100 &)'"
    command = (
        "sh -c 'cat $SHOAL_TASK_SHARED_DIR/c/common.txt; echo $SHOAL_IS_CURRENT_NODE_MASTER $AZ_BATCH_HOST_LIST; "
        "shoal-mpi-launch 127.0.1.2 echo remote \\$SHOAL_INSTANCE_INDEX \\$SHOAL_IS_CURRENT_NODE_MASTER; echo rc=$?'"
    )
    assignments = _assignments(planes, tmp_path, command, coordination)
    for ps, a in zip(planes, assignments, strict=True):
        await _send(ps, agent_pb2.ServerMessage(start_tasks=agent_pb2.StartTasks(command_id=1, tasks=[a])))
    for i, ps in enumerate(planes):
        ev = await ps.plane.wait_event("mi", COORDINATED)
        assert ev.attempt.instance == i
        running = ps.plane.event("mi", RUNNING)
        assert running is not None and running.attempt.instance == i
    shared = tmp_path / "node0" / "workitems" / "j" / "job-1" / "mi"
    assert (shared / "coord-0").read_text() == (shared / "coord-1").read_text() == "coord\n"
    assert (shared / "c" / "common.txt").read_text() == "common\n"
    # Registering again would list the instance with its index.
    assert planes[1].plane.event("mi", COMPLETED) is None

    # The primary waits for RunApplication.
    await asyncio.sleep(0.1)
    assert planes[0].plane.event("mi", COMPLETED) is None
    ref = agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=0)
    await _send(planes[0], agent_pb2.ServerMessage(run_application=agent_pb2.RunApplication(command_id=2, attempt=ref)))
    done = await planes[0].plane.wait_event("mi", COMPLETED)
    out = (shared / "stdout.txt").read_text()
    assert done.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, (done, out, (shared / "stderr.txt").read_text())
    assert "common\ntrue 127.0.1.1,127.0.1.2\nremote 1 false\nrc=0\n" in out

    # The subtask stays until it is killed.
    assert planes[1].plane.event("mi", COMPLETED) is None
    ref1 = agent_pb2.AttemptRef(job_id="j", task_id="mi", attempt=1, instance=1)
    await _send(planes[1], agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(command_id=3, attempts=[ref1])))
    ended = await planes[1].plane.wait_event("mi", COMPLETED)
    assert ended.failure_info.code == "TaskEnded" and ended.attempt.instance == 1


async def test_failed_coordination_and_exec_refused(two_nodes, tmp_path: Path) -> None:
    planes, _agents = two_nodes
    for ps in planes:
        ps.storage.put("common", "c/x", b"x")
    assignments = _assignments(planes, tmp_path, "true", "sh -c 'exit $SHOAL_INSTANCE_INDEX'")
    for ps, a in zip(planes, assignments, strict=True):
        await _send(ps, agent_pb2.ServerMessage(start_tasks=agent_pb2.StartTasks(command_id=1, tasks=[a])))
    await planes[0].plane.wait_event("mi", COORDINATED)
    failed = await planes[1].plane.wait_event("mi", COMPLETED)
    assert failed.exit_code == 1 and failed.failure_info.code == "FailureExitCode"
    assert planes[1].plane.event("mi", COORDINATED) is None

    port = planes[1].plane.registers[0].exec_port
    hello = {"job_id": "j", "task_id": "mi", "attempt": 1, "argv": ["true"], "secret": SECRET}
    refused = await exec_call(f"{IPS[1]}:{port}", hello)
    assert refused.refusal["code"] == "FAILED_PRECONDITION" and refused.exit_code is None

    # Exec with stdin into the primary, which is still waiting for RunApplication.
    port0 = planes[0].plane.registers[0].exec_port
    hello = {
        "job_id": "j",
        "task_id": "mi",
        "attempt": 1,
        "argv": ["sh", "-c", "cat; echo $EXTRA $SHOAL_TASK_ID >&2; exit 3"],
        "env": {"EXTRA": "e"},
        "secret": SECRET,
    }
    out = await exec_call(f"{IPS[0]}:{port0}", hello, stdin=[b"in1 ", b"in2"])
    assert (out.stdout, out.stderr, out.exit_code) == (b"in1 in2", b"e mi\n", 3)
