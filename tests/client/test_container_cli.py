"""The container options of the CLI (`pool create`, `task add`, the start task's image, node listings) and the
client's container types, against the fake API: what they send, and what they refuse before sending."""

from __future__ import annotations

import json

import pytest

from shoal.client import (
    ContainerConfiguration,
    ContainerRegistry,
    ContainerWorkingDirectory,
    InvalidArgument,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    StartTaskSpec,
    TaskContainerSettings,
    TaskSpec,
)
from shoal.v1 import common_pb2

pytestmark = pytest.mark.timeout(60)

C = common_pb2


def test_pool_create_makes_a_container_pool_with_the_password_from_stdin(run, fake) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "pool",
        "create",
        "cp",
        "--nodes",
        "0",
        "--container-image",
        "busybox",
        "--container-image",
        "reg.example:5000/tools:1",
        "--container-registry",
        "reg.example:5000",
        "--registry-user",
        "bot",
        "--registry-password-stdin",
        "--allow-host-run-options",
        input="s3cret-from-stdin\n",
    )
    assert r.exit_code == 0, r.output
    cfg = fake.state.pools["cp"].container_configuration
    assert list(cfg.container_image_names) == ["busybox", "reg.example:5000/tools:1"]
    assert [(x.registry_server, x.user_name, x.password) for x in cfg.container_registries] == [
        ("reg.example:5000", "bot", "s3cret-from-stdin")
    ]
    assert cfg.allow_host_run_options
    assert cfg.type == C.CONTAINER_TYPE_DOCKER_COMPATIBLE


def test_pool_create_without_container_options_makes_a_plain_pool(run, fake) -> None:  # type: ignore[no-untyped-def]
    assert run("pool", "create", "p", "--nodes", "0").exit_code == 0
    assert not fake.state.pools["p"].HasField("container_configuration")


def test_a_registry_password_is_never_taken_from_the_command_line(run, fake) -> None:  # type: ignore[no-untyped-def]
    r = run("pool", "create", "cp", "--container-image", "busybox", "--registry-password", "x")
    assert r.exit_code == 2 and "No such option" in r.output
    r = run("pool", "create", "cp", "--container-image", "busybox", "--registry-password-stdin", input="pw\n")
    assert r.exit_code == 2 and "--registry-password-stdin needs --registry-user" in r.output
    r = run(
        "pool", "create", "cp", "--container-registry", "r.example", "--registry-user", "u",
        "--registry-password-stdin", input="",
    )  # fmt: skip
    assert r.exit_code == 2 and "gave no password" in r.output
    assert "cp" not in fake.state.pools


def test_the_start_task_runs_in_a_container_image(run, fake) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "pool", "create", "cp", "--nodes", "0", "--container-image", "busybox",
        "--start-task", "/bin/true", "--start-task-image", "busybox",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert fake.state.pools["cp"].start_task.container_settings.image_name == "busybox"
    r = run("pool", "create", "p2", "--start-task-image", "busybox")
    assert r.exit_code == 2 and "need --start-task" in r.output


def test_task_add_runs_a_task_in_a_container(run, fake) -> None:  # type: ignore[no-untyped-def]
    assert run("pool", "create", "cp", "--nodes", "0", "--container-image", "busybox").exit_code == 0
    assert run("job", "create", "j", "--pool", "cp").exit_code == 0
    r = run(
        "task", "add", "j", "t", "python3 app.py",
        "--image", "reg.example:5000/tools:1",
        "--container-run-options", "--memory 1g --env A=b",
        "--container-workdir", "image",
        "--registry-server", "reg.example:5000",
        "--registry-user", "bot",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    settings = fake.state.tasks["j"]["t"].spec.container_settings
    assert settings == C.TaskContainerSettings(
        image_name="reg.example:5000/tools:1",
        container_run_options="--memory 1g --env A=b",
        registry=C.ContainerRegistry(registry_server="reg.example:5000", user_name="bot"),
        working_directory=C.CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT,
    )
    # Without --image, no container; the container options alone are refused.
    assert run("task", "add", "j", "plain", "x").exit_code == 0
    assert not fake.state.tasks["j"]["plain"].spec.HasField("container_settings")
    r = run("task", "add", "j", "t2", "x", "--container-run-options", "--memory 1g")
    assert r.exit_code == 2 and "need --image" in r.output
    r = run("task", "add", "j", "--json-file", "-", "--image", "busybox", input="{}")
    assert r.exit_code == 2 and "--json-file describes the task" in r.output


def test_every_container_option_has_help(run) -> None:  # type: ignore[no-untyped-def]
    pool_help = run("pool", "create", "--help").output
    for option in (
        "--container-image",
        "--container-registry",
        "--registry-user",
        "--registry-password-stdin",
        "--allow-host-run-options",
        "--start-task-image",
    ):
        assert option in pool_help
    task_help = run("task", "add", "--help").output
    for option in ("--image", "--container-run-options", "--container-workdir", "--registry-server", "--registry-user"):
        assert option in task_help
    from shoal.client.cli import cli

    for name in ("pool", "task"):
        group = cli.commands[name]
        command = group.commands["create" if name == "pool" else "add"]  # type: ignore[attr-defined]
        for param in command.params:
            if any(
                o.startswith(("--container", "--registry", "--image", "--allow-host", "--start-task-image"))
                for o in param.opts
            ):
                assert param.help, param.opts  # type: ignore[attr-defined]


def test_nodes_show_their_container_engine(run, fake) -> None:  # type: ignore[no-untyped-def]
    assert run("pool", "create", "cp", "--nodes", "1", "--container-image", "busybox").exit_code == 0
    fake.state.nodes["cp"][0].container_engine = "podman 4.3.1, runc"
    r = run("node", "list", "cp", "-o", "json")
    assert json.loads(r.output)[0]["container_engine"] == "podman 4.3.1, runc"
    r = run("node", "list", "cp")
    assert "podman" in r.output
    r = run("node", "get", "cp", "node-1")
    assert "podman 4.3.1, runc" in r.output


def test_the_python_client_sends_and_reads_container_types(client, fake) -> None:  # type: ignore[no-untyped-def]
    cfg = ContainerConfiguration(
        container_image_names=["busybox"],
        container_registries=[ContainerRegistry(registry_server="reg.example", user_name="bot", password="pw")],
    )
    pool = client.pools.create(id="cp", container_configuration=cfg)
    assert fake.state.pools["cp"].container_configuration.container_registries[0].password == "pw"
    assert pool.container_configuration is not None
    assert pool.container_configuration.container_image_names == ("busybox",)
    # (The password is no part of a registry's repr.)
    assert "pw" not in repr(cfg.container_registries[0])
    client.jobs.create(id="j", pool_id="cp")
    settings = TaskContainerSettings(image_name="busybox", container_run_options="--cpus 1", working_directory="image")
    task = client.tasks.add("j", TaskSpec(id="t", command_line="x", container_settings=settings))
    assert task.spec.container_settings == TaskContainerSettings(
        image_name="busybox",
        container_run_options="--cpus 1",
        working_directory=ContainerWorkingDirectory.CONTAINER_IMAGE_DEFAULT,
    )
    assert task.container is None


def test_container_types_round_trip_through_their_protos() -> None:
    settings = TaskContainerSettings(
        image_name="reg.example:5000/a:1",
        container_run_options="--memory 1g",
        registry=ContainerRegistry(registry_server="reg.example:5000", user_name="bot"),
    )
    assert TaskContainerSettings.from_proto(settings.to_proto()) == settings
    assert settings.to_proto().working_directory == C.CONTAINER_WORKING_DIRECTORY_TASK_WORKING_DIRECTORY
    cfg = ContainerConfiguration(container_image_names=("a", "b"), type="cri_compatible", allow_host_run_options=True)
    assert cfg.to_proto().type == C.CONTAINER_TYPE_CRI_COMPATIBLE
    assert ContainerConfiguration.from_proto(cfg.to_proto()) == ContainerConfiguration(
        container_image_names=("a", "b"), type="cricompatible", allow_host_run_options=True
    )
    for kind in (JobManagerTask, JobPreparationTask, JobReleaseTask, StartTaskSpec):
        spec = kind(command_line="x", container_settings=settings)  # type: ignore[call-arg]
        msg = spec.to_proto()
        assert msg.container_settings == settings.to_proto()
        assert kind.from_proto(msg).container_settings == settings  # type: ignore[attr-defined]
    spec = TaskSpec.from_dict(
        {
            "id": "t",
            "command_line": "x",
            "container_settings": {
                "image_name": "busybox",
                "working_directory": "CONTAINER_WORKING_DIRECTORY_CONTAINER_IMAGE_DEFAULT",
            },
        }
    )
    assert spec.container_settings == TaskContainerSettings(image_name="busybox", working_directory="image")
    with pytest.raises(InvalidArgument):
        TaskContainerSettings(image_name="x", working_directory="nowhere").to_proto()
