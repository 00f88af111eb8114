"""Killing the server or an agent with SIGKILL loses nothing that was accepted."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from shoal.v1 import common_pb2, job_pb2, pool_pb2, task_pb2
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def counts(srv: ServerProcess, job: str) -> job_pb2.TaskCounts:
    return srv.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name=f"jobs/{job}"))


def test_server_sigkill_mid_job_loses_nothing_and_runs_each_task_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log_dir = tmp_path / "ran"
    log_dir.mkdir()
    srv = ServerProcess(data, heartbeat_timeout=8.0).start()
    try:
        srv.create_pool("p", nodes=3, slots=2)
        srv.wait_nodes("p", 3)
        srv.create_job("j", "p")
        n = 300
        # Each task leaves one file per execution (named by task and attempt),
        # so a task that ran twice would leave two.
        specs = [
            task_pb2.TaskSpec(
                id=f"t{i}",
                command_line=f"/bin/sh -c 'sleep 0.05; echo $SHOAL_TASK_ATTEMPT > {log_dir}/t{i}.$SHOAL_TASK_ATTEMPT'",
            )
            for i in range(n)
        ]
        assert all(r.status == task_pb2.ADD_TASK_STATUS_SUCCESS for r in srv.add("j", specs).results)
        wait_for("some tasks to complete", lambda: counts(srv, "j").completed >= 40, timeout=60)
        srv.kill()
        before = len(list(log_dir.iterdir()))
        assert before < n, "the job finished before the server was killed; the test proves nothing"

        srv2 = ServerProcess(data, heartbeat_timeout=8.0, port=srv.port).start()
        srv = srv2
        c = counts(srv, "j")
        assert c.active + c.running + c.completed == n  # every accepted task is still there
        done = srv.wait_job_tasks("j", timeout=150)
        assert len(done) == n
        assert all(t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS for t in done.values())
        assert all(t.execution_info.retry_count == 0 for t in done.values())
        ran = Counter(p.name.split(".")[0] for p in log_dir.iterdir())
        assert set(ran) == {f"t{i}" for i in range(n)}
        assert max(ran.values()) == 1, f"ran more than once: {[k for k, v in ran.items() if v > 1]}"
    finally:
        srv.stop()


def test_agent_sigkill_requeues_its_tasks_and_the_provider_restarts_it(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", heartbeat_timeout=3.0).start()
    try:
        srv.create_pool("p", nodes=2, slots=1)
        srv.wait_nodes("p", 2)
        srv.create_job("j", "p")
        srv.add("j", [task_pb2.TaskSpec(id=f"long{i}", command_line="sleep 4") for i in range(2)])
        running = wait_for(
            "both tasks running",
            lambda: (
                (ts := [srv.task("j", f"long{i}") for i in range(2)])
                and all(t.state == task_pb2.TASK_STATE_RUNNING for t in ts)
                and ts
            ),
        )
        victim = running[0].node_info.node_id
        pids = srv.agent_pids()
        os.kill(pids[victim], signal.SIGKILL)

        wait_for(
            "node to go UNKNOWN",
            lambda: (
                srv.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p/nodes/{victim}")).state
                == pool_pb2.NODE_STATE_UNKNOWN
            ),
            timeout=20,
        )
        done = srv.wait_job_tasks("j", timeout=60)
        moved = done["long0"]
        assert moved.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS
        assert moved.execution_info.requeue_count == 1
        assert moved.execution_info.retry_count == 0
        assert moved.node_info.node_id != victim

        # The provider starts the agent again once the server has given up on the node; the same node
        # root rejoins and reconciles, and the node returns to service.
        wait_for(
            "node to rejoin",
            lambda: (
                srv.pools.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p/nodes/{victim}")).state
                == pool_pb2.NODE_STATE_IDLE
            ),
            timeout=30,
        )
        srv.add("j", [task_pb2.TaskSpec(id=f"after{i}", command_line="/bin/true") for i in range(6)])
        done = srv.wait_job_tasks("j", timeout=60)
        assert all(t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS for t in done.values())
        assert srv.agent_pids()[victim] != pids[victim]
    finally:
        srv.stop()


def test_node_task_counters_survive_a_server_sigkill(tmp_path: Path) -> None:
    """A node's total_tasks_run / total_tasks_succeeded after a SIGKILL are what the task records say
    (attempts that ran there: a retried task ran twice), not what was last written a minute before."""
    data = tmp_path / "data"
    srv = ServerProcess(data, heartbeat_timeout=8.0).start()
    try:
        srv.create_pool("p", nodes=2, slots=2)
        srv.wait_nodes("p", 2)
        srv.create_job("j", "p")
        ok = [task_pb2.TaskSpec(id=f"ok{i}", command_line="/bin/true") for i in range(40)]
        retried = [
            task_pb2.TaskSpec(
                id=f"bad{i}",
                command_line="/bin/sh -c 'exit 3'",
                constraints=common_pb2.TaskConstraints(max_task_retry_count=1),
            )
            for i in range(6)
        ]
        srv.add("j", ok + retried)
        done = srv.wait_job_tasks("j", timeout=90)
        attempts = sum(t.execution_info.retry_count + 1 for t in done.values())
        succeeded = sum(t.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS for t in done.values())
        assert (attempts, succeeded) == (40 + 2 * 6, 40)
        assert all(t.execution_info.requeue_count == 0 for t in done.values())
        # The same node ran every attempt of a task that was not retried: at least those are its.
        own = Counter(t.node_info.node_id for t in done.values() if t.execution_info.retry_count == 0)

        def totals(s: ServerProcess) -> dict[str, tuple[int, int]]:
            return {n.id: (n.total_tasks_run, n.total_tasks_succeeded) for n in s.nodes("p")}

        before = wait_for(
            "the counters to take in every attempt",
            lambda: (c := totals(srv)) and sum(r for r, _ in c.values()) == attempts and c,
            timeout=10,
        )
        assert sum(s for _, s in before.values()) == succeeded
        assert all(before[node][0] >= count for node, count in own.items())
        srv.kill()

        srv = ServerProcess(data, heartbeat_timeout=8.0, port=srv.port).start()
        assert totals(srv) == before
        srv.wait_nodes("p", 2)
        assert totals(srv) == before
    finally:
        srv.stop()


#: Each attempt logs `start`, a `tick` every 0.2 s and `end` to a file of its task outside the task
#: directory, with its attempt, node and pid: an attempt's lines span the time it was alive.
CHAOS_TASK = (
    '/bin/sh -c \'f=$CHAOS_LOG/$SHOAL_TASK_ID; me="$SHOAL_TASK_ATTEMPT $SHOAL_NODE_ID $$"; '
    'echo "start $me $(date +%s.%N)" >> $f; i=0; while [ $i -lt {ticks} ]; do sleep 0.2; '
    'echo "tick $me $(date +%s.%N)" >> $f; i=$((i+1)); done; echo "end $me $(date +%s.%N)" >> $f\''
)


def overlapping_attempts(log: Path) -> int:
    """How many pairs of one task's attempts were alive at the same time (by their logged lines)."""
    spans: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue  # a line cut by the kill
        spans.setdefault(" ".join(parts[1:4]), []).append(float(parts[4]))
    intervals = sorted((min(ts), max(ts)) for ts in spans.values())
    return sum(1 for i, a in enumerate(intervals) for b in intervals[i + 1 :] if b[0] < a[1] and a[0] < b[1])


@pytest.mark.timeout(120)
def test_agent_chaos_never_runs_two_attempts_of_a_task_at_once(tmp_path: Path) -> None:
    """SIGKILL agents again and again (each restarted by the provider once the server has given up on it
    and requeued its tasks) while tasks keep coming, so that a requeued task starts again at once: every task
    completes, and no two attempts of a task are ever alive at the same time, because a dead
    agent's watchdog ends its tasks at once."""
    import random
    import time

    rng = random.Random(12)
    logs = tmp_path / "chaos"
    logs.mkdir()
    heartbeat_timeout = 1.5
    srv = ServerProcess(tmp_path / "data", heartbeat_timeout=heartbeat_timeout).start()
    try:
        srv.create_pool("p", nodes=4, slots=4)
        srv.wait_nodes("p", 4)
        srv.create_job(
            "j", "p", common_environment_settings=[common_pb2.EnvironmentSetting(name="CHAOS_LOG", value=str(logs))]
        )
        # One task every 0.4 s, each 2 to 5 s long: the pool is never full, so a requeued task runs again
        # as soon as the server gives up on its node, while the first attempt (if it lives on) still runs.
        n = 60
        specs = [
            task_pb2.TaskSpec(id=f"c{i}", command_line=CHAOS_TASK.format(ticks=10 + rng.randrange(16)))
            for i in range(n)
        ]
        kills = 0
        added = 0
        start = time.monotonic()
        next_kill = start + 2.0
        while added < n:
            now = time.monotonic()
            if now >= start + 0.4 * added:
                assert srv.add("j", [specs[added]]).results[0].status == task_pb2.ADD_TASK_STATUS_SUCCESS
                added += 1
            if now >= next_kill:
                # (The provider starts a killed agent again a while after the server has given up on it.)
                pids = srv.agent_pids()
                if len(pids) > 2:
                    os.kill(pids[rng.choice(sorted(pids))], signal.SIGKILL)
                    kills += 1
                next_kill = now + 1.0 + rng.random()
            time.sleep(0.02)
        done = srv.wait_job_tasks("j", timeout=90)
        assert len(done) == n
        failed = {
            t: d.execution_info.failure_info.code
            for t, d in done.items()
            if d.execution_info.result != common_pb2.TASK_EXECUTION_RESULT_SUCCESS
        }
        assert failed == {}
        requeued = sum(1 for d in done.values() if d.execution_info.requeue_count > 0)
        overlaps = {t: k for t in done if (k := overlapping_attempts(logs / t))}
        print(
            f"\nagent chaos: {n} tasks, {kills} agent SIGKILLs, {requeued} tasks requeued, "
            f"{len(overlaps)} tasks with two attempts alive at once"
        )
        assert kills >= 8
        assert requeued > 0, "no task was requeued: the test proves nothing"
        assert overlaps == {}, f"{len(overlaps)} of {n} tasks had two attempts alive at once: {overlaps}"
    finally:
        srv.stop()
