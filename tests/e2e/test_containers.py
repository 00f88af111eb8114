"""Container pools and tasks as a new user meets them with the CLI, on a real `shoal server` with real agents,
the node's real engine (podman with runc) and a real registry on 127.0.0.1 that wants a password:

- a pool whose node pulls its image from the private registry when it joins (the password given on
  standard input, never shown by a read, never in a log);
- a task in the container reading its resource file, writing an output file that is uploaded, seeing its
  variables inside, as its own user;
- the wall clock ending the container;
- an image missing from the registry failing a task with ContainerInvalidImage, and a pool with a wrong
  password putting ContainerInvalidRegistry on its node;
- a task naming an image on a pool without a container configuration refused when it is added;
- a multi-instance task whose instances all run in the image.

Skipped, with the reason, where the engine or the registry cannot run here (`tests.containerkit`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.client import Client
from shoal.nodeagent.containers import node_label
from tests import containerkit
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def shoal(server: ServerProcess, *args: str, ok: bool = True, stdin: str | None = None) -> str:
    """The `shoal` CLI against `server`: its stdout (or, when it should fail, its stderr)."""
    p = subprocess.run(
        [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert (p.returncode == 0) == ok, f"shoal {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout if ok else p.stderr


@pytest.fixture
def registry(server: ServerProcess) -> Iterator[containerkit.Registry]:
    problem = containerkit.registry_problem()
    if problem:
        pytest.skip(f"no container engine or registry here: {problem}")
    with containerkit.Registry() as reg:
        yield reg
    # What the test's nodes left (stopped containers stay until their tasks' retention).
    listed = containerkit.podman("ps", "--all", "--format", "json")
    ids = [
        c["Id"]
        for c in json.loads(listed.stdout or "[]")
        if str((c.get("Labels") or {}).get("shoal.node", ""))
        in {node_label(p).partition("=")[2] for p in (server.data_dir / "nodes").glob("*")}
    ]
    if ids:
        containerkit.podman("rm", "--force", "--ignore", "--time", "0", *ids)


def _node(client: Client, pool_id: str, state: str) -> object:
    return wait_for(
        f"a node of {pool_id} {state}",
        lambda: next((n for n in client.pools.nodes(pool_id) if n.state == state), None),
        timeout=90,
    )


def test_a_container_pool_from_the_cli(
    server: ServerProcess, client: Client, registry: containerkit.Registry, tmp_path: Path
) -> None:
    image = registry.push(containerkit.busybox_image(), containerkit.unique_name("e2e-bb") + ":1")
    shoal(
        server,
        *("pool", "create", "boxes", "--nodes", "1", "--container-image", image),
        *("--container-registry", registry.address, "--registry-user", registry.user, "--registry-password-stdin"),
        stdin=registry.password + "\n",
    )
    node = _node(client, "boxes", "idle")
    assert "podman" in node.container_engine  # type: ignore[attr-defined]
    # Pulled when the node joined, with the pool's password.
    assert containerkit.image_exists(image)
    shown = shoal(server, "pool", "get", "boxes", "-o", "json")
    assert registry.user in shown and registry.password not in shown

    # A task in the container: its resource file in, its output file out, its variables inside.
    data = tmp_path / "in.txt"
    data.write_text("frame data\n")
    shoal(server, "storage", "create", "inputs")
    shoal(server, "storage", "create", "outputs")
    shoal(server, "storage", "upload", "inputs", str(data))
    shoal(server, "job", "create", "render", "--pool", "boxes")
    script = (
        "tr a-z A-Z < in.txt > out.txt; echo $AZ_BATCH_TASK_ID $SHOAL_JOB_ID $FRAME; "
        "test -f /bin/busybox && echo in-image; id -u > uid.txt"
    )
    shoal(
        server,
        *("task", "add", "render", "f1", f"sh -c '{script}'", "--image", image, "--env", "FRAME=7"),
        *("--resource", "inputs", "--output-file", "out.txt:outputs"),
    )
    tasks = server.wait_job_tasks("render", timeout=90)
    f1 = tasks["f1"]
    stderr = server.read_file("render", "f1", "stderr.txt")
    assert f1.execution_info.exit_code == 0, (f1, stderr)
    assert server.read_file("render", "f1", "stdout.txt") == b"f1 render 7\nin-image\n"
    assert f1.execution_info.container_info.container_id.startswith("shoal-")
    out = tmp_path / "got.txt"
    shoal(server, "storage", "download", "outputs", "out.txt", "--to", str(out))
    assert out.read_text() == "FRAME DATA\n"
    # The task's own user inside, as outside: the owner of its files (root where the node root is closed to
    # other users, as here under pytest's directory; the agent tests show a task user's).
    uid = int(server.read_file("render", "f1", "wd/uid.txt"))
    task_dir = next(server.data_dir.glob("nodes/*/workitems/render/job-1/f1"))
    assert uid == (task_dir / "stdout.txt").stat().st_uid == (task_dir / "wd" / "out.txt").stat().st_uid

    # The wall clock ends the container; an image the registry does not have fails the task.
    shoal(server, "task", "add", "render", "slow", "sleep 300", "--image", image, "--max-wall-clock", "2")
    shoal(server, "task", "add", "render", "missing", "true", "--image", registry.image("shoal-nothing:1"))
    tasks = server.wait_job_tasks("render", timeout=90)
    assert tasks["slow"].execution_info.failure_info.code == "TaskEnded"
    assert tasks["missing"].execution_info.failure_info.code == "ContainerInvalidImage"
    running = containerkit.podman(
        "ps", "--quiet", "--filter", f"name={tasks['slow'].execution_info.container_info.container_id}"
    )
    assert running.stdout.strip() == ""  # not running on after its task ended

    # An image on a pool without a container configuration: refused when added.
    shoal(server, "pool", "create", "plain", "--nodes", "0")
    shoal(server, "job", "create", "plainjob", "--pool", "plain")
    refused = shoal(server, "task", "add", "plainjob", "t", "true", "--image", image, ok=False)
    assert "container_settings" in refused

    # A pool with a wrong password: its node says why, and is unusable.
    shoal(
        server,
        *("pool", "create", "locked", "--nodes", "1", "--container-image", image),
        *("--container-registry", registry.address, "--registry-user", registry.user, "--registry-password-stdin"),
        stdin="not-the-password\n",
    )
    containerkit.remove_images([image])  # (so that the node must pull it)
    locked = _node(client, "locked", "unusable")
    assert [e.code for e in locked.errors] == ["ContainerInvalidRegistry"]  # type: ignore[attr-defined]

    # No password reached a log.
    for path in server.data_dir.rglob("*"):
        if path.is_file() and (path.suffix == ".log" or path.name in ("agent.out", "up.log")):
            assert registry.password not in path.read_text(errors="replace"), path


def test_a_multi_instance_task_in_containers(
    server: ServerProcess, client: Client, registry: containerkit.Registry
) -> None:
    image = registry.push(containerkit.busybox_image(), containerkit.unique_name("e2e-mi") + ":1")
    shoal(
        server,
        *("pool", "create", "gang", "--nodes", "2", "--container-image", image, "--inter-node"),
        *("--container-registry", registry.address, "--registry-user", registry.user, "--registry-password-stdin"),
        stdin=registry.password + "\n",
    )
    wait_for("two idle nodes", lambda: len(list(client.pools.nodes("gang", state="idle"))) == 2, timeout=90)
    shoal(server, "job", "create", "mi", "--pool", "gang")
    # Only inside an instance's container is its idle first process mounted at /.shoal-pause.
    inside = "test -x /.shoal-pause"
    coordination = f"sh -c '{inside} && echo coordinated > $AZ_BATCH_TASK_SHARED_DIR/coord-$SHOAL_INSTANCE_INDEX'"
    # The application reaches every instance as an MPI launcher does (ssh-style: one command line each).
    application = (
        f'sh -c \'{inside} && echo primary-in-image; for h in $(echo $AZ_BATCH_HOST_LIST | tr , " "); do '
        f'shoal-mpi-launch $h {inside} "&&" echo in-image-\\$SHOAL_INSTANCE_INDEX; done\''
    )
    shoal(
        server,
        *("task", "add", "mi", "both", application, "--instances", "2", "--image", image),
        *("--coordination-command", coordination),
    )
    tasks = server.wait_job_tasks("mi", timeout=90)
    both = tasks["both"]
    out = server.read_file("mi", "both", "stdout.txt").decode()
    assert both.execution_info.exit_code == 0, (both, out, server.read_file("mi", "both", "stderr.txt"))
    assert out.splitlines() == ["primary-in-image", "in-image-0", "in-image-1"], out
    shared = server.read_file("mi", "both", "coord-0") + server.read_file("mi", "both", "coord-1")
    assert shared == b"coordinated\ncoordinated\n"
