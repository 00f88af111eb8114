"""The container kit itself (tests/containerkit.py): its images run, its registry takes a push and gives the
image back to the right credentials only, and podman says what the node agent classifies failures by.

Skipped where podman with runc cannot run a container (the reason is the skip's)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests import containerkit as kit

pytestmark = pytest.mark.timeout(120)


def test_static_executables_are_told_from_dynamic_ones() -> None:
    # No engine needed: the ELF check that decides whether the busybox image can be made at all.
    assert kit.elf_is_static(Path(sys.executable).resolve()) is False
    assert kit.elf_is_static(kit.containers_conf()) is None
    if kit.busybox_problem():
        pytest.skip(kit.busybox_problem())
    assert kit.elf_is_static(kit.BUSYBOX) is True


def test_containers_conf_names_runc_without_default_ulimits() -> None:
    text = kit.containers_conf().read_text()
    assert 'runtime = "runc"' in text and "default_ulimits = []" in text
    env = kit.engine_env({"FOO": "1"})
    assert env["CONTAINERS_CONF"] == str(kit.containers_conf()) and env["FOO"] == "1"
    # The kit's own podman calls only: the tests' process environment is left alone.
    assert os.environ.get("CONTAINERS_CONF") != str(kit.containers_conf())


def test_busybox_image_runs_a_shell_as_nobody(container_engine: None, tmp_path) -> None:
    image = kit.busybox_image()
    assert image.startswith(f"{kit.BUSYBOX_REPOSITORY}:")
    assert kit.busybox_image() == image  # made once
    assert kit.image_exists(image)
    tmp_path.chmod(0o777)
    done = kit.podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "65534:65534",
        "-v",
        f"{tmp_path}:{tmp_path}",
        "-w",
        str(tmp_path),
        "-e",
        "FOO=bar",
        image,
        "sh",
        "-c",
        'echo hi; id -un; echo "$FOO" > out; touch /tmp/x; echo "$PATH"',
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hi", "nobody", "/bin"]
    assert (tmp_path / "out").read_text() == "bar\n"
    assert (tmp_path / "out").stat().st_uid == 65534


def test_an_image_of_another_tag_is_made_and_removed(container_engine: None) -> None:
    tag = kit.unique_name("t")
    image = kit.busybox_image(tag)
    try:
        assert image == f"{kit.BUSYBOX_REPOSITORY}:{tag}" and kit.image_exists(image)
    finally:
        kit.remove_images([image])
    assert not kit.image_exists(image)


def test_python_image_runs_the_standard_library(container_engine: None) -> None:
    if kit.python_problem():
        pytest.skip(kit.python_problem())
    image = kit.python_image()
    code = "import json, sqlite3, ssl, ctypes, hashlib, zlib, sys; print(json.dumps(sys.version_info[:2]))"
    done = kit.podman("run", "--rm", "--network", "none", "--user", "65534:65534", image, "python3", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[3, 11]"


def test_mpi_image_runs_mpi4py_ranks_under_hydra(container_engine: None) -> None:
    if kit.mpi_problem():
        pytest.skip(kit.mpi_problem())
    image = kit.mpi_image()
    assert image == kit.mpi_image()  # cached: the same files, the same tag
    code = (
        "from mpi4py import MPI; c = MPI.COMM_WORLD; print('rank', c.Get_rank(), 'sum', c.allreduce(c.Get_rank() + 1))"
    )
    done = kit.podman(
        "run", "--rm", "--network", "none", "--user", "65534:65534", image,
        "mpiexec", "-n", "2", "python3", "-c", code,
        timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["rank 0 sum 3", "rank 1 sum 3"], done.stdout


def test_registry_takes_a_push_and_gives_it_back_to_its_credentials_only(registry: kit.Registry) -> None:
    assert stat.S_IMODE(registry.authfile.stat().st_mode) == 0o600
    repo = kit.unique_name("kit")
    pushed = registry.push(kit.busybox_image(), f"{repo}:1")
    assert pushed == f"{registry.address}/{repo}:1"

    wrong = kit.podman("pull", "--tls-verify=false", "--creds", f"{registry.user}:not-{registry.password}", pushed)
    assert wrong.returncode == 125
    assert "unauthorized: authentication required" in wrong.stderr
    anonymous = kit.podman("pull", "--tls-verify=false", pushed)
    assert anonymous.returncode == 125 and "unauthorized: authentication required" in anonymous.stderr
    assert not kit.image_exists(pushed)

    pulled = kit.podman(
        "pull", "--tls-verify=false", "--creds", f"{registry.user}:{registry.password}", pushed, timeout=60
    )
    assert pulled.returncode == 0, pulled.stderr
    done = kit.podman("run", "--rm", "--network", "none", "--pull=never", pushed, "sh", "-c", "echo pulled")
    assert done.stdout.strip() == "pulled", done.stderr

    missing = kit.podman("pull", "--tls-verify=false", "--authfile", str(registry.authfile), registry.image("nosuch:1"))
    assert missing.returncode == 125 and "manifest unknown" in missing.stderr


def test_registry_removes_what_was_pulled_from_it(container_engine: None) -> None:
    if kit.registry_problem():
        pytest.skip(kit.registry_problem())
    with kit.Registry() as reg:
        pushed = reg.push(kit.busybox_image(), f"{kit.unique_name('gone')}:1")
        kit.podman("pull", "--tls-verify=false", "--authfile", str(reg.authfile), pushed, check=True, timeout=60)
        assert kit.image_exists(pushed)
        root = reg.root
    assert not kit.image_exists(pushed)
    assert not root.exists()
    # The kit's own image stays (it only lost the registry's name).
    assert kit.image_exists(kit.busybox_image())


def test_podman_says_what_failed(container_engine: None) -> None:
    """The texts the node agent classifies failures by (podman 4.3, runc 1.1)."""
    image = kit.busybox_image()
    not_found = kit.podman("run", "--rm", "--network", "none", image, "no-such-command")
    assert not_found.returncode == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in not_found.stderr
    bad_option = kit.podman("create", "--no-such-option", image, "true")
    assert bad_option.returncode == 125 and "Error: unknown flag: --no-such-option" in bad_option.stderr
    failed = kit.podman("run", "--rm", "--network", "none", image, "sh", "-c", "exit 3")
    assert failed.returncode == 3
