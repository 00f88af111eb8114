"""A real agent running container tasks on the node's real engine (podman with runc), against a scripted
control plane: the pool's images pulled at Welcome, a task's output and variables, its user, the wall
clock ending the container, and Batch's failure codes. Skipped, with the reason, where the engine cannot
run here (`tests.containerkit`)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.containers import container_name, node_label
from shoal.v1 import common_pb2, pool_pb2
from tests import containerkit

from .conftest import assignment, start_tasks

pytestmark = pytest.mark.timeout(120)

COMPLETED = agent_pb2.TASK_EVENT_KIND_COMPLETED


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    problem = containerkit.engine_problem()
    if problem:
        pytest.skip(f"no container engine here: {problem}")
    yield containerkit.busybox_image()
    remove_node_containers(tmp_path / "node")


def remove_node_containers(root: Path) -> None:
    """Remove what the test's node left (stopped containers stay until their tasks' retention)."""
    listed = containerkit.podman("ps", "--all", "--quiet", "--filter", f"label={node_label(root)}")
    if listed.stdout.split():
        containerkit.podman("rm", "--force", "--ignore", "--time", "0", *listed.stdout.split())


def _settings(image: str, **kw: object) -> common_pb2.TaskContainerSettings:
    return common_pb2.TaskContainerSettings(image_name=image, **kw)  # type: ignore[arg-type]


def _welcome(config: common_pb2.ContainerConfiguration | None) -> agent_pb2.Welcome:
    w = agent_pb2.Welcome(node_id="node-1", pool_id="pool1", heartbeat_interval_seconds=30)
    if config is not None:
        w.containers.CopyFrom(config)
    return w


async def test_container_tasks_on_a_real_engine(plane_server, run_agent, tmp_path: Path, image: str) -> None:
    plane = plane_server.plane
    plane.welcome = _welcome(common_pb2.ContainerConfiguration(container_image_names=[image]))
    await run_agent()
    reg = (await plane.wait_for(lambda: plane.registers))[0]
    assert "podman" in reg.container_engine
    node = tmp_path / "node"
    script = (
        "echo out-$AZ_BATCH_TASK_ID-$FOO; echo err >&2; id -u > uid.txt; pwd > pwd.txt; "
        "test -d $AZ_BATCH_NODE_SHARED_DIR && echo shared-ok; "
        # Only the task's directories: not the agent's own files.
        "test -e $AZ_BATCH_NODE_ROOT_DIR/volatile/containers || echo no-engine-files; "
        "test -e $AZ_BATCH_NODE_ROOT_DIR/volatile/running.json || echo no-agent-state; "
        "grep NoNewPrivs /proc/self/status > privs.txt; exit 3"
    )
    await plane.send(
        start_tasks(
            1,
            assignment(
                "t1",
                f"sh -c '{script}'",
                environment_settings=[
                    common_pb2.EnvironmentSetting(name="FOO", value="bar"),
                    # The engine runs as root: a task's variables must never reach its own environment.
                    common_pb2.EnvironmentSetting(name="LD_PRELOAD", value="/nonexistent/shoal-test.so"),
                ],
                container=_settings(image),
            ),
        )
    )
    done = await plane.wait_event("t1", COMPLETED, timeout=60)
    assert done.exit_code == 3, done
    assert done.container_info.container_id == container_name(node, "j1", "t1")
    task_dir = node / "workitems/j1/job-1/t1"
    assert (task_dir / "stdout.txt").read_text() == "out-t1-bar\nshared-ok\nno-engine-files\nno-agent-state\n"
    assert (task_dir / "stderr.txt").read_text() == "err\n"  # (no loader's complaint about LD_PRELOAD)
    assert (task_dir / "wd" / "privs.txt").read_text().split() == ["NoNewPrivs:", "1"]
    wd = task_dir / "wd"
    assert (wd / "pwd.txt").read_text().strip() == str(wd)
    # The task's own user inside the container, as outside: its files are its own.
    uid = int((wd / "uid.txt").read_text())
    assert uid == (wd / "uid.txt").stat().st_uid == (task_dir / "stdout.txt").stat().st_uid

    # The wall clock ends the container, not only the engine's client.
    await plane.send(
        start_tasks(2, assignment("t2", "sleep 300", max_wall_clock_seconds=1, container=_settings(image)))
    )
    done = await plane.wait_event("t2", COMPLETED, timeout=60)
    assert done.failure_info.code == "TaskEnded", done
    name = container_name(node, "j1", "t2")
    state = subprocess.run(
        ["podman", "container", "inspect", "--format", "{{.State.Status}}", name],
        capture_output=True,
        text=True,
        env=containerkit.engine_env(),
        timeout=30,
        check=False,
    ).stdout.strip()
    assert state in ("exited", "stopped"), state

    # Batch's codes: a run option that reaches outside, a command not in the image.
    await plane.send(
        start_tasks(
            3,
            assignment("privileged", "true", container=_settings(image, container_run_options="--privileged")),
            assignment("no-command", "no-such-program", container=_settings(image)),
        )
    )
    priv = await plane.wait_event("privileged", COMPLETED, timeout=60)
    assert priv.failure_info.code == "ContainerInvalidSettings", priv
    missing = await plane.wait_event("no-command", COMPLETED, timeout=60)
    assert missing.failure_info.code == "CommandProgramNotFound", missing

    # Retention removes the container with the task's directory.
    await plane.send(
        agent_pb2.ServerMessage(delete_task_files=agent_pb2.DeleteTaskFiles(command_id=4, job_id="j1", task_ids=["t1"]))
    )
    gone = container_name(node, "j1", "t1")

    async def removed() -> bool:
        while True:
            rc = subprocess.run(
                ["podman", "container", "exists", gone], env=containerkit.engine_env(), timeout=30, check=False
            ).returncode
            if rc != 0:
                return True
            await asyncio.sleep(0.1)

    assert await asyncio.wait_for(removed(), 30)


async def test_images_from_a_private_registry(plane_server, run_agent, tmp_path: Path, image: str) -> None:
    """The pool's images come from a registry that wants a password (the pool's); an image missing from it
    is a node error (ContainerInvalidImage), and so are a wrong password and an unreachable registry
    (ContainerInvalidRegistry) for a task's image."""
    if containerkit.registry_problem():
        pytest.skip(f"no registry here: {containerkit.registry_problem()}")
    with containerkit.Registry() as registry:
        pushed = registry.push(image, containerkit.unique_name("agent-bb") + ":1")
        missing = registry.image("shoal-no-such-image:1")
        plane = plane_server.plane
        good = common_pb2.ContainerRegistry(
            registry_server=registry.address, user_name=registry.user, password=registry.password
        )
        plane.welcome = _welcome(
            common_pb2.ContainerConfiguration(container_image_names=[pushed, missing], container_registries=[good])
        )
        await run_agent()

        def errors() -> list[str]:
            return [e.code for m in plane.messages if m.HasField("node_health") for e in m.node_health.errors]

        assert await plane.wait_for(errors, timeout=60) == ["ContainerInvalidImage"]
        # The pulled image runs without a pull of its own; the registry's password never reached a log.
        await plane.send(
            start_tasks(1, assignment("from-registry", "sh -c 'echo pulled'", container=_settings(pushed)))
        )
        done = await plane.wait_event("from-registry", COMPLETED, timeout=60)
        assert done.exit_code == 0, done
        assert (tmp_path / "node/workitems/j1/job-1/from-registry/stdout.txt").read_text() == "pulled\n"

        # A task's image from the same registry under another user (no password known for it), and one from
        # a registry that is not there.
        other = registry.push(image, containerkit.unique_name("agent-bb2") + ":1")
        stranger = common_pb2.ContainerRegistry(registry_server=registry.address, user_name="stranger")
        await plane.send(
            start_tasks(
                2,
                assignment("wrong-user", "true", container=_settings(other, registry=stranger)),
                assignment("no-registry", "true", container=_settings("127.0.0.1:9/shoal-nothing:1")),
            )
        )
        wrong = await plane.wait_event("wrong-user", COMPLETED, timeout=60)
        assert wrong.failure_info.code == "ContainerInvalidRegistry", wrong
        gone = await plane.wait_event("no-registry", COMPLETED, timeout=60)
        assert gone.failure_info.code == "ContainerInvalidRegistry", gone


async def test_start_preparation_and_release_tasks_in_containers(
    plane_server, run_agent, tmp_path: Path, image: str
) -> None:
    """The start task waits for the pool's images and runs in one; so do a job's preparation and release
    tasks; and KillTasks ends a task's container, not only the engine's client."""
    from .test_agent_job_tasks import PREPARATION, RELEASE, prep, release, until, wait_job_events

    plane = plane_server.plane
    inside = "test -f /bin/busybox && test ! -e /etc/debian_version"
    plane.welcome = _welcome(common_pb2.ContainerConfiguration(container_image_names=[image]))
    plane.welcome.run_start_task = True
    plane.welcome.start_task.CopyFrom(
        common_pb2.StartTask(
            command_line=f"sh -c '{inside} && echo started-in-image'",
            wait_for_success=True,
            container_settings=_settings(image),
        )
    )
    await run_agent()
    node = tmp_path / "node"

    def started() -> common_pb2.StartTaskInfo | None:
        done = [r for r in plane.start_reports() if r.state == common_pb2.START_TASK_STATE_COMPLETED]
        return done[0] if done else None

    info = await plane.wait_for(started, timeout=60)
    assert info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, info
    assert info.container_info.container_id == container_name(node, "", "startup")
    assert (node / "startup" / "stdout.txt").read_text() == "started-in-image\n"

    spec = prep(f"sh -c '{inside} && echo prepared-in-image'", container=_settings(image))
    await plane.send(start_tasks(1, assignment("a", "sleep 300", job_preparation=spec, container=_settings(image))))
    (prepared,) = await wait_job_events(plane, PREPARATION, COMPLETED)
    assert prepared.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, prepared
    name = container_name(node, "j1", "a")

    def running() -> bool:
        return containerkit.podman("ps", "--quiet", "--filter", f"name={name}").stdout.strip() != ""

    await until(running, timeout=60)  # (the engine's word: polled)
    ref = agent_pb2.AttemptRef(job_id="j1", task_id="a", attempt=1)
    await plane.send(agent_pb2.ServerMessage(kill_tasks=agent_pb2.KillTasks(command_id=2, attempts=[ref])))
    killed = await plane.wait_event("a", COMPLETED, timeout=60)
    assert killed.failure_info.code == "TaskEnded"
    assert not running()

    await plane.send(release(3, f"sh -c '{inside} && echo released-in-image'", container=_settings(image)))
    (released,) = await wait_job_events(plane, RELEASE, COMPLETED)
    assert released.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS, released
    out = (node / "workitems/j1/job-1/jobrelease/stdout.txt").read_text()
    assert out == "released-in-image\n"


async def test_a_node_without_an_engine(plane_server, run_agent, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container pool's node whose agent finds no engine says so (no engine in Register, a
    ContainerMiscError node error), so no container task lands there; a plain pool's node does not care."""
    monkeypatch.setenv("SHOAL_CONTAINER_ENGINE", "none")
    plane = plane_server.plane
    plane.welcome = _welcome(common_pb2.ContainerConfiguration(container_image_names=["busybox"]))
    await run_agent()
    reg = (await plane.wait_for(lambda: plane.registers))[0]
    assert reg.container_engine == ""

    def errors() -> list[pool_pb2.NodeError]:
        return [e for m in plane.messages if m.HasField("node_health") for e in m.node_health.errors]

    (error,) = await plane.wait_for(errors, timeout=30)
    assert error.code == "ContainerMiscError" and "SHOAL_CONTAINER_ENGINE=none" in error.message


def test_the_watchdog_ends_a_nodes_running_containers(tmp_path: Path, image: str) -> None:
    """An agent that dies cannot end its containers (they live in the engine's cgroups): its watchdog does."""
    from shoal.nodeagent.watchdog import kill_containers

    root = tmp_path / "node"
    conf = root / "volatile" / "containers" / "containers.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(containerkit.containers_conf().read_text())
    name = containerkit.unique_name("shoal-watchdog")
    started = containerkit.podman(
        *("run", "--detach", "--network", "none", "--name", name, "--label", node_label(root), image, "sleep", "300"),
        check=True,
    )
    assert started.returncode == 0
    assert kill_containers(root) == 1
    state = containerkit.podman("container", "inspect", "--format", "{{.State.Status}}", name).stdout.strip()
    assert state in ("exited", "stopped")
    containerkit.podman("rm", "--force", "--ignore", "--time", "0", name)
