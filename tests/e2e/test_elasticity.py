"""Elasticity end to end (a real `shoal server`, its local agents, the CLI and the Python client): a pool
sized by a formula of Batch's documentation from its live metrics, dry runs and formula errors from the
CLI, autoscale kept across a server SIGKILL, and a low-priority node preempted from the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.client import Client, TaskSpec
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: Batch's documented example, with the look-back shortened to the samples a test can wait for.
BATCH_EXAMPLE = """
startingNumberOfVMs = 1;
maxNumberofVMs = 2;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(10 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs :
    avg($PendingTasks.GetSample(10 * TimeInterval_Second));
$TargetDedicatedNodes = min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;
"""


def _cli(server: ServerProcess, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@pytest.fixture
def spot_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", extra_args=("--spot-recovery-seconds", "2")).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_batchs_formula_sizes_a_live_pool_and_survives_a_server_sigkill(
    tmp_path: Path, server: ServerProcess, client: Client
) -> None:
    formula = tmp_path / "batch.formula"
    formula.write_text(BATCH_EXAMPLE)
    _cli(server, "pool", "create", "auto", "--autoscale-formula-file", str(formula), "--autoscale-interval", "5")
    # Too few samples at first: one node, as the formula says.
    wait_for("the starting node", lambda: client.pools.get("auto").target_nodes == 1 or None, timeout=30)
    out = _cli(server, "pool", "autoscale", "evaluate", "auto").stdout
    assert "$TargetDedicatedNodes = 1" in out and "startingNumberOfVMs = 1" in out, out
    bad = _cli(server, "pool", "autoscale", "evaluate", "auto", "--formula", "$TargetDedicatedNodes = (1;", ok=False)
    assert bad.returncode != 0 and "Line 1" in bad.stderr + bad.stdout, (bad.stdout, bad.stderr)

    client.jobs.create(id="j", pool_id="auto")
    client.tasks.add_many("j", [TaskSpec(id=f"t{i}", command_line="sleep 2") for i in range(8)])
    # Enough samples of 8 pending tasks: the pool grows to its most.
    wait_for("the pool at 2 nodes", lambda: client.pools.get("auto").current_nodes == 2 or None, timeout=90)
    run = client.pools.get("auto").last_auto_scale_run
    assert run is not None and run.values["maxNumberofVMs"] == "2" and run.error is None

    server.kill()
    server.start()
    pool = client.pools.get("auto")
    assert pool.autoscale is not None and pool.autoscale.formula == BATCH_EXAMPLE
    assert pool.autoscale.evaluation_interval.total_seconds() == 5
    assert pool.last_auto_scale_run is not None
    wait_for("every task done", lambda: client.jobs.task_counts("j").succeeded == 8 or None, timeout=120)
    # Nothing pending any more: once the samples since the restart are enough, their average (0) is the
    # target, and the nodes leave.
    wait_for(
        "no node",
        lambda: ((p := client.pools.get("auto")).target_nodes == 0 and p.current_nodes == 0) or None,
        timeout=90,
    )
    out = _cli(server, "pool", "autoscale", "disable", "auto").stdout
    assert "autoscale disabled" in out
    assert client.pools.get("auto").autoscale is None


def test_a_low_priority_node_preempted_from_the_cli(spot_server: ServerProcess) -> None:
    client = Client.connect(spot_server.address, timeout=30)
    try:
        _cli(spot_server, "pool", "create", "p", "--nodes", "1", "--low-priority-nodes", "1")
        client.pools.wait_nodes_idle("p", count=2, timeout=60)
        low = next(n for n in client.pools.nodes("p") if not n.is_dedicated)
        listing = _cli(spot_server, "node", "list", "p").stdout
        assert "low-priority" in listing and "dedicated" in listing
        client.jobs.create(id="j", pool_id="p")
        client.tasks.add("j", TaskSpec(id="long", command_line="sleep 30"))
        on = wait_for("the task running", lambda: client.tasks.get("j", "long").node_id or None)
        victim = on if on == low.id else None
        out = _cli(spot_server, "node", "preempt", "p", low.id).stdout
        assert "preempted" in out
        if victim is not None:
            t = wait_for("the task requeued", lambda: (t := client.tasks.get("j", "long")).requeue_count and t)
            assert t.retry_count == 0
        counts = {c.pool_id: c for c in client.pools.node_counts()}["p"]
        assert counts.low_priority.preempted + counts.low_priority.creating + counts.low_priority.idle >= 1
        wait_for(
            "the node back",
            lambda: (n := client.pools.node("p", low.id)).state.value in ("idle", "running") and n,
            timeout=60,
        )
        client.jobs.terminate("j")
    finally:
        client.close()
