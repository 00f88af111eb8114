"""An auto pool as a new user meets it with the CLI, on a real server with real agents: `shoal job create
--auto-pool-...` makes a pool whose node runs the job's task, and the pool goes when the job completes; a
pool that cannot be made shows as the job's scheduling error in `shoal job get`; and a server SIGKILL
between a job's creation and its end does not keep its pool from going."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.client import Client
from tests.e2e.harness import ServerProcess, wait_for
from tests.e2e.test_dependencies_and_job_control import shoal

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_an_auto_pool_appears_runs_the_task_and_goes(server: ServerProcess, client: Client, tmp_path: Path) -> None:
    created = json.loads(
        shoal(
            server,
            *("job", "create", "frames", "--auto-pool-nodes", "1", "--auto-pool-prefix", "render-"),
            *("--on-all-tasks-complete", "terminatejob", "-o", "json"),
        )
    )
    (job,) = created
    pool_id = job["pool_id"]
    assert pool_id.startswith("render-frames-") and job["execution_pool_id"] == pool_id
    assert client.pools.get(pool_id).auto_pool_owner == "jobs/frames"
    out = tmp_path / "frame-1"
    shoal(server, "task", "add", "frames", "f1", f"/bin/sh -c 'echo rendered > {out}'")
    done = wait_for("job completed", lambda: (j := client.jobs.get("frames")).state == "completed" and j, timeout=40)
    assert done.terminate_reason == "AllTasksComplete"
    assert client.tasks.get("frames", "f1").exit_code == 0
    assert out.read_text() == "rendered\n"
    wait_for("the auto pool gone", lambda: not list(client.pools.list()), timeout=30)
    assert pool_id in shoal(server, "job", "get", "frames")

    # A pool that cannot be made: the job is made, completed, and says why.
    spec = tmp_path / "pool.json"
    spec.write_text(json.dumps({"enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = = 1;"}))
    shoal(server, "job", "create", "broken", "--auto-pool-json", str(spec))
    shown = shoal(server, "job", "get", "broken")
    assert "InvalidAutoScaleFormulaInAutoPool" in shown and "completed" in shown
    assert not list(client.pools.list())
    # Made, then the server killed: the pool's owner is on its row, and the job's end still takes it.
    made = json.loads(shoal(server, "job", "create", "survivor", "--auto-pool-nodes", "0", "-o", "json"))[0]
    server.kill()
    server.start()
    assert client.pools.get(made["pool_id"]).auto_pool_owner == "jobs/survivor"
    shoal(server, "job", "terminate", "survivor")
    assert not list(client.pools.list())
    # --pool and an auto pool exclude each other.
    assert "either --pool or" in shoal(
        server, "job", "create", "both", "--pool", "p", "--auto-pool-nodes", "1", ok=False
    )
