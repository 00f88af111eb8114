"""Storage is per account end to end: an account's tasks stage its resource files and upload their outputs
into its own containers (the agents reach storage with their node's credential), and another account sees
none of it, though its containers have the same names."""

from __future__ import annotations

import json

import pytest

from shoal.client import Client, OutputFileSpec, ResourceFileSpec, TaskSpec
from tests.e2e.harness import ServerProcess

pytestmark = pytest.mark.timeout(150)


def test_an_accounts_tasks_use_its_own_containers(server: ServerProcess) -> None:
    creds = json.loads((server.data_dir / "credentials.json").read_text())
    ca = creds["ca_cert"].encode()
    with Client.connect(server.address, admin=True, ca_cert=ca, timeout=30) as admin:
        admin.accounts.create("teamy")
        key = admin.accounts.keys("teamy").primary
    with (
        Client.connect(server.address, account="teamy", key=key, ca_cert=ca, timeout=30) as teamy,
        Client.connect(server.address, ca_cert=ca, timeout=30) as default,
    ):
        default.storage.upload_bytes("inputs", "data.txt", b"the default account's\n")
        teamy.storage.upload_bytes("inputs", "data.txt", b"teamy's own\n")
        teamy.storage.create_container("outs")  # (outputs go to containers that exist, as in Batch)
        teamy.pools.create(id="yp", target_nodes=1, task_slots_per_node=1)
        teamy.jobs.create(id="yjob", pool_id="yp")
        teamy.tasks.add(
            "yjob",
            TaskSpec(
                id="copy",
                command_line="/bin/sh -c 'cat data.txt > out.txt'",
                resource_files=[ResourceFileSpec(storage_container="inputs", file_path=".")],
                output_files=[OutputFileSpec(file_pattern="out.txt", container="outs", path="out.txt")],
            ),
        )
        (done,) = list(teamy.tasks.wait("yjob", timeout=90))
        assert done.exit_code == 0 and done.result == "success", done.failure
        assert teamy.storage.download_bytes("outs", "out.txt") == b"teamy's own\n"
        assert "outs" not in {c.id for c in default.storage.list_containers()}
        assert default.storage.download_bytes("inputs", "data.txt") == b"the default account's\n"
