"""A client in another language: Node.js with @grpc/grpc-js drives a real server and its agents
(`examples/node/pool_job_tasks.js`) with the account key of the server's credentials file, over TLS
with the cluster CA when that file names one. Skipped, with the reason, where Node.js or its
packages cannot be had."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.channels import credentials
from tests.e2e.harness import ServerProcess
from tests.nodejs import PROTOS, ROOT, RPC_PROTOS, NodeUnavailable, node_binary, node_modules

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCRIPT = ROOT / "examples" / "node" / "pool_job_tasks.js"


def test_node_client_runs_a_pool_a_job_and_tasks(server: ServerProcess) -> None:
    try:
        modules = node_modules()
        node = node_binary()
    except NodeUnavailable as e:
        pytest.skip(str(e))
    creds_file = server.data_dir / "credentials.json"
    done = subprocess.run(
        [node, str(SCRIPT), str(creds_file), str(PROTOS), str(RPC_PROTOS), "np", "nj"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, NODE_PATH=str(modules)),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    # TLS exactly when the server hands out its CA.
    assert report["tls"] == bool(credentials(server.data_dir).get("ca_cert"))
    assert report["pool"] == {"id": "np", "state": "POOL_STATE_ACTIVE"}
    assert report["job"] == {"id": "nj", "state": "JOB_STATE_ACTIVE"}
    assert [a["status"] for a in report["added"]] == ["ADD_TASK_STATUS_SUCCESS"] * 3
    assert report["completed"] == {
        "hello": {"state": "TASK_STATE_COMPLETED", "exit_code": 0},
        "fails": {"state": "TASK_STATE_COMPLETED", "exit_code": 3},
        "env": {"state": "TASK_STATE_COMPLETED", "exit_code": 0},
    }
    task = report["task"]
    assert task["name"] == "jobs/nj/tasks/hello"
    assert (task["state"], task["exit_code"], task["result"]) == (
        "TASK_STATE_COMPLETED",
        0,
        "TASK_EXECUTION_RESULT_SUCCESS",
    )
    assert task["pool_id"] == "np" and task["node_id"] in {n.id for n in server.nodes("np")}
    assert report["stdout"] == "hello from node\n"

    # The server's own view agrees.
    assert server.task("nj", "fails").execution_info.exit_code == 3

    assert report["wrong_key"]["codeName"] == "UNAUTHENTICATED"
    assert report["wrong_key"]["domain"] == "shoal.v1" and report["wrong_key"]["reason"]
    bad = report["bad_request"]
    assert (bad["codeName"], bad["reason"], bad["domain"]) == ("INVALID_ARGUMENT", "INVALID_POOL", "shoal.v1")
    assert any(v["field"] == "pool.id" for v in bad["fieldViolations"]), bad
    assert (report["missing"]["codeName"], report["missing"]["reason"]) == ("NOT_FOUND", "JOB_NOT_FOUND")
    # The key never comes back in an error.
    key = credentials(server.data_dir)["key"]
    assert key not in done.stdout and key not in done.stderr
