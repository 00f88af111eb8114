"""A job's own tasks on a real server and real agents: a job manager written with the Python client that
adds 10,000 tasks and waits for them, job preparation and release tasks (once per node, a failing
preparation sending the job elsewhere), a server SIGKILL in the middle of a job with all of them and a
DAG, and `shoal job prep-status` as a new user would run it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from shoal.client import (
    AddTaskResult,
    Client,
    Job,
    JobManagerTask,
    JobPreparationTask,
    JobReleaseTask,
    PreparationAndReleaseTaskStatus,
    Task,
    TaskDependencies,
    TaskSpec,
)
from tests.clitable import parse_table
from tests.e2e.harness import ServerProcess, sh, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def python(script: Path, *args: str) -> str:
    """A command line running `script` with the tests' own interpreter (whose environment has `shoal`)."""
    return " ".join([sys.executable, str(script), *args])


def up(server: ServerProcess, nodes: int = 2, slots: int = 2) -> list[str]:
    """A pool `p` of idle nodes; their ids."""
    server.create_pool("p", nodes=nodes, slots=slots)
    return sorted(n.id for n in server.wait_nodes("p", nodes))


def all_added(results: list[AddTaskResult]) -> None:
    failed = [r for r in results if not r.ok]
    assert not failed, failed


def job_when(client: Client, job_id: str, state: str, timeout: float = 30) -> Job:
    return wait_for(
        f"job {job_id} {state}", lambda: (j := client.jobs.get(job_id)) and j.state == state and j, timeout=timeout
    )


def finish(client: Client, job_id: str, task_ids: list[str] | None = None, timeout: float = 60) -> dict[str, Task]:
    """Follow the tasks (WatchTasks) until every one has completed; the job's tasks as they ended."""
    for _ in client.tasks.wait(job_id, task_ids=task_ids, timeout=timeout):
        pass
    return {t.id: t for t in client.tasks.list(job_id)}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def prep_status(client: Client, job_id: str) -> dict[str, PreparationAndReleaseTaskStatus]:
    return {s.node_id: s for s in client.jobs.prep_release_status(job_id)}


def task_output(client: Client, job_id: str, task_id: str) -> str:
    """A task's stdout and stderr, for a failure message."""
    out = []
    for name in ("stdout.txt", "stderr.txt"):
        try:
            out.append(client.tasks.read_file(job_id, task_id, name).decode(errors="replace"))
        except Exception as e:  # only for the message
            out.append(f"({name}: {e})")
    return "\n".join(out)


# --------------------------------------------------------------------------- 1. a job manager


#: A job manager written with the Python client: it reaches the server with no configuration (the
#: task's environment has SHOAL_ADDRESS and SHOAL_JOB_ID), adds its job's tasks, waits for them all,
#: and fails unless every one succeeded.
JOB_MANAGER = """\
import os
import sys

import shoal
from shoal.client import TaskSpec

n = int(sys.argv[1])
job = os.environ["SHOAL_JOB_ID"]
ids = [f"t{i:05d}" for i in range(n)]
with shoal.Client.connect() as client:
    results = client.tasks.add_many(job, (TaskSpec(id=t, command_line="/bin/true") for t in ids))
    refused = [r for r in results if not r.ok]
    if refused:
        sys.exit(f"{len(refused)} tasks refused: {refused[:3]}")
    print(f"added {len(results)} tasks to {job}", flush=True)
    failed = [t.id for t in client.tasks.wait(job, task_ids=ids, timeout=float(sys.argv[2])) if not t.succeeded]
    if failed:
        sys.exit(f"{len(failed)} tasks failed: {failed[:5]}")
    print(f"all {n} tasks succeeded", flush=True)
"""


def test_a_job_manager_written_with_the_client_adds_10000_tasks_and_waits_for_them(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    """The issue's end-to-end test. The job manager does not run exclusively, so that it takes one slot of
    the 2 x 4 rather than a whole node; when it exits 0 the job terminates (`JMComplete`)."""
    n = 10_000
    script = tmp_path / "jobmanager.py"
    script.write_text(JOB_MANAGER)
    up(server, nodes=2, slots=4)
    started = time.monotonic()
    client.jobs.create(
        id="big",
        pool_id="p",
        job_manager_task=JobManagerTask(command_line=python(script, str(n), "90"), run_exclusive=False),
    )
    job = job_when(client, "big", "completed", timeout=100)
    elapsed = time.monotonic() - started
    print(f"\njob manager: {n} tasks added and completed in {elapsed:.1f}s")
    jm = client.tasks.get("big", "jobmanager")
    assert jm.job_manager and jm.succeeded, task_output(client, "big", "jobmanager")
    assert job.terminate_reason == "JMComplete"
    assert "all 10000 tasks succeeded" in client.tasks.read_file("big", "jobmanager", "stdout.txt").decode()
    counts = client.jobs.task_counts("big")
    assert (counts.total, counts.completed, counts.succeeded, counts.failed) == (n + 1, n + 1, n + 1, 0)
    tasks = list(client.tasks.list("big"))
    assert len(tasks) == n + 1
    assert [t.id for t in tasks if t.job_manager] == ["jobmanager"]
    assert all(t.succeeded for t in tasks)


# --------------------------------------------------------------------------- 2. preparation and release


def test_preparation_runs_once_per_node_before_its_tasks_and_release_once_when_the_job_ends(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    """The preparation leaves a marker in its working directory that every task checks; the release is held
    on a gate file, so the job is seen TERMINATING until it has run; then the CLI shows both per node."""
    out = tmp_path / "out"
    out.mkdir()
    gate = tmp_path / "release-gate"
    data = server.data_dir
    nodes = up(server, nodes=2, slots=2)
    client.jobs.create(
        id="pj",
        pool_id="p",
        common_environment={"OUT": str(out)},
        job_preparation_task=JobPreparationTask(
            command_line=sh("echo $SHOAL_NODE_ID $(pwd) >> $OUT/prep; echo ok > $AZ_BATCH_JOB_PREP_WORKING_DIR/marker")
        ),
        job_release_task=JobReleaseTask(
            command_line=sh(f"echo $SHOAL_NODE_ID $(pwd) >> $OUT/release; while [ ! -f {gate} ]; do sleep 0.05; done")
        ),
    )
    # Every task checks the marker (and that both names of the directory agree); a short sleep so that
    # the 20 tasks spread over both nodes.
    check = sh(
        "test -f $AZ_BATCH_JOB_PREP_WORKING_DIR/marker && "
        'test "$AZ_BATCH_JOB_PREP_WORKING_DIR" = "$SHOAL_JOB_PREP_WORKING_DIR" && '
        'test "$AZ_BATCH_JOB_PREP_DIR/wd" = "$SHOAL_JOB_PREP_WORKING_DIR" && sleep 0.2'
    )
    all_added(client.tasks.add_many("pj", [TaskSpec(id=f"t{i:02d}", command_line=check) for i in range(20)]))
    done = finish(client, "pj", timeout=60)
    assert {t.id: t.failure for t in done.values() if not t.succeeded} == {}
    ran_on = {t.node_id for t in done.values()}
    assert ran_on == set(nodes), f"the tasks ran only on {ran_on}: the test proves less than it claims"

    # The preparation ran once per node, in <node root>/workitems/<job>/job-1/jobpreparation/wd.
    prep = [line.split() for line in lines(out / "prep")]
    assert Counter(node for node, _ in prep) == Counter(nodes), prep
    for node, cwd in prep:
        assert Path(cwd) == data / "nodes" / node / "workitems" / "pj" / "job-1" / "jobpreparation" / "wd"
    assert lines(out / "release") == []
    status = prep_status(client, "pj")
    assert set(status) == set(nodes)
    for s in status.values():
        assert s.preparation is not None and s.release is None
        assert (s.preparation.state, s.preparation.result, s.preparation.exit_code) == ("completed", "success", 0)

    # Terminated, the job waits for its releases (held on the gate) in TERMINATING...
    client.jobs.terminate("pj")
    wait_for("a release on each node", lambda: len(lines(out / "release")) == len(nodes), timeout=30)
    job = client.jobs.get("pj")
    assert job.state == "terminating", job
    # (Its start reaches the server a moment after the process wrote its line.)
    wait_for(
        "the releases seen running",
        lambda: all(s.release is not None and s.release.state == "running" for s in prep_status(client, "pj").values()),
    )
    assert client.jobs.get("pj").state == "terminating"
    # ... and completes once they have ended.
    gate.touch()
    job = job_when(client, "pj", "completed")
    assert (job.previous_state, job.terminate_reason) == ("terminating", "UserTerminate")
    release = [line.split() for line in lines(out / "release")]
    assert Counter(node for node, _ in release) == Counter(nodes), release
    status = prep_status(client, "pj")
    assert set(status) == set(nodes)
    for node, s in status.items():
        for what, info in (("preparation", s.preparation), ("release", s.release)):
            assert info is not None, f"{node}: no {what}"
            assert (info.state, info.result, info.exit_code, info.failure) == ("completed", "success", 0, None), (
                node,
                what,
                info,
            )
        assert s.preparation is not None and s.release is not None
        assert s.preparation.end_time is not None and s.release.start_time is not None
        assert s.preparation.end_time <= s.release.start_time

    # 5. The CLI, as a new user would run it: a row per node, in a table and as JSON.
    table = shoal(server, "job", "prep-status", "pj")
    rows = {r["node"]: r for r in parse_table(table, "node")}
    assert set(rows) == set(nodes), table
    for columns in rows.values():
        assert (columns["pool"], columns["preparation"], columns["prep exit"]) == ("p", "success", "0"), columns
        assert (columns["release"], columns["release exit"]) == ("success", "0"), columns
    as_json = json.loads(shoal(server, "job", "prep-status", "pj", "-o", "json"))
    assert sorted(r["node_id"] for r in as_json) == nodes, as_json


# --------------------------------------------------------------------------- 3. a failing preparation


def test_a_node_whose_preparation_failed_takes_no_more_of_the_job_and_stays_for_other_jobs(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    """The preparation fails on one node (named in its command line): the job's tasks all run on the other
    node and succeed; the failed node still runs a task of another job (the other node held busy)."""
    nodes = up(server, nodes=2, slots=1)
    bad, good = nodes
    gate = tmp_path / "gate"
    client.jobs.create(
        id="fp",
        pool_id="p",
        job_preparation_task=JobPreparationTask(command_line=sh(f'test "$SHOAL_NODE_ID" != {bad}')),
    )
    all_added(client.tasks.add_many("fp", [TaskSpec(id=f"t{i}", command_line=sh("sleep 0.1")) for i in range(6)]))
    done = finish(client, "fp", timeout=60)
    assert {t.id: t.failure for t in done.values() if not t.succeeded} == {}
    assert {t.node_id for t in done.values()} == {good}
    status = prep_status(client, "fp")
    assert set(status) == {bad, good}, status
    failed, ok = status[bad].preparation, status[good].preparation
    assert failed is not None and ok is not None
    assert (failed.state, failed.result, failed.exit_code) == ("completed", "failure", 1), failed
    assert failed.failure is not None and failed.failure.code == "FailureExitCode", failed
    assert (ok.state, ok.result, ok.exit_code) == ("completed", "success", 0), ok

    # The job still there: a task of it holds the good node; a task of another job runs on the bad one.
    client.tasks.add("fp", TaskSpec(id="hold", command_line=sh(f"while [ ! -f {gate} ]; do sleep 0.05; done")))
    wait_for("the hold task running", lambda: client.tasks.get("fp", "hold").state == "running")
    assert client.tasks.get("fp", "hold").node_id == good
    client.jobs.create(id="other", pool_id="p")
    client.tasks.add("other", TaskSpec(id="x", command_line=sh("echo $SHOAL_NODE_ID")))
    x = finish(client, "other", timeout=30)["x"]
    assert (x.succeeded, x.node_id) == (True, bad), x
    assert client.tasks.read_file("other", "x", "stdout.txt").decode().strip() == bad
    gate.touch()
    assert finish(client, "fp", timeout=30)["hold"].succeeded


# --------------------------------------------------------------------------- 4. durability


#: A job manager that adds the fan-out of the DAG (each task depending on "root"), then waits, through
#: the server's SIGKILL and restart, for the task that joins the DAG; it logs its own run as the steps do.
DAG_JOB_MANAGER = """\
import os
import sys
import time

import shoal
from shoal.client import TaskDependencies, TaskSpec

job, me = os.environ["SHOAL_JOB_ID"], os.environ["SHOAL_TASK_ID"]
log = os.path.join(os.environ["LOG"], f"{me}.{os.environ['SHOAL_TASK_ATTEMPT']}")
with open(log, "a") as f:
    f.write(f"{time.time()}\\n")
after_root = TaskDependencies.of("root")
fan = [TaskSpec(id=str(i), command_line=os.environ["STEP"], depends_on=after_root) for i in range(100, 120)]
with shoal.Client.connect() as client:
    refused = [r for r in client.tasks.add_many(job, fan) if not r.ok]
    if refused:
        sys.exit(f"refused: {refused}")
    for t in client.tasks.wait(job, task_ids=["join"], timeout=float(sys.argv[1])):
        if not t.succeeded:
            sys.exit(f"{t.id} failed: {t.failure}")
with open(log, "a") as f:
    f.write(f"{time.time()}\\n")
"""


def test_server_sigkill_mid_job_with_a_dag_a_job_manager_and_prep_and_release(tmp_path: Path) -> None:
    """SIGKILL the server twice: while the DAG runs (the job manager waiting on it through the restart),
    and while the job is TERMINATING with its releases running. After each restart the job goes on; in
    the end every task (the job manager too) ran exactly once, the preparation once per node, and the
    release once per node."""
    data = tmp_path / "data"
    log, out = tmp_path / "ran", tmp_path / "out"
    log.mkdir()
    out.mkdir()
    gate = tmp_path / "release-gate"
    script = tmp_path / "dag_jobmanager.py"
    script.write_text(DAG_JOB_MANAGER)
    # One file per execution, named by task and attempt, with its start and end times.
    step = sh("f=$LOG/$SHOAL_TASK_ID.$SHOAL_TASK_ATTEMPT; date +%s.%N > $f; sleep {s}; date +%s.%N >> $f")
    chain = [f"c{i:02d}" for i in range(20)]
    fan = [str(i) for i in range(100, 120)]
    n = len(chain) + 1 + len(fan) + 1 + 1  # + root, join, the job manager

    srv = ServerProcess(data, heartbeat_timeout=8.0).start()
    c = Client.connect(srv.address, timeout=30)
    try:
        nodes = up(srv, nodes=2, slots=3)
        c.jobs.create(
            id="d",
            pool_id="p",
            uses_task_dependencies=True,
            on_all_tasks_complete="terminatejob",
            common_environment={"LOG": str(log), "OUT": str(out)},
            job_manager_task=JobManagerTask(
                command_line=python(script, "90"),
                environment={"STEP": step.format(s="0.3")},
                run_exclusive=False,
                kill_job_on_completion=False,
            ),
            job_preparation_task=JobPreparationTask(command_line=sh("echo $SHOAL_NODE_ID >> $OUT/prep")),
            job_release_task=JobReleaseTask(
                command_line=sh(f"echo $SHOAL_NODE_ID >> $OUT/release; while [ ! -f {gate} ]; do sleep 0.05; done")
            ),
        )
        specs = [TaskSpec(id=chain[0], command_line=step.format(s="0.15"))]
        specs += [
            TaskSpec(id=t, command_line=step.format(s="0.15"), depends_on=TaskDependencies.of(p))
            for p, t in itertools.pairwise(chain)
        ]
        specs.append(TaskSpec(id="root", command_line=step.format(s="0.5")))
        specs.append(
            TaskSpec(
                id="join",
                command_line=step.format(s="0"),
                depends_on=TaskDependencies.of(chain[-1], ranges=[(100, 119)]),
            )
        )
        all_added(c.tasks.add_many("d", specs))

        # 1. In the middle of the DAG, the job manager's tasks added and it waiting.
        wait_for(
            "the job manager's tasks added and part of the DAG complete while more runs",
            lambda: (k := c.jobs.task_counts("d")).total == n and k.completed >= 8 and k.running >= 2,
            timeout=60,
        )
        killed_at = time.time()
        srv.kill()
        c.close()
        joined = [p.name for p in log.iterdir() if p.name.startswith("join.")]
        assert not joined, "the DAG finished before the server was killed: the test proves nothing"
        srv = ServerProcess(data, heartbeat_timeout=8.0, port=srv.port).start()
        c = Client.connect(srv.address, timeout=30)
        assert c.jobs.task_counts("d").total == n
        assert c.jobs.get("d").state == "active"

        # 2. The job manager exits once "join" completed, the job's tasks are then all complete: it
        # terminates, and waits in TERMINATING for its releases (held on the gate). Killed again there.
        wait_for("the job terminating", lambda: c.jobs.get("d").state == "terminating", timeout=60)
        wait_for("a release on each node", lambda: len(lines(out / "release")) == len(nodes), timeout=30)
        srv.kill()
        c.close()
        srv = ServerProcess(data, heartbeat_timeout=8.0, port=srv.port).start()
        c = Client.connect(srv.address, timeout=30)
        assert c.jobs.get("d").state == "terminating"
        gate.touch()
        job = job_when(c, "d", "completed", timeout=60)
        assert (job.previous_state, job.terminate_reason) == ("terminating", "AllTasksComplete")

        done = {t.id: t for t in c.tasks.list("d")}
        assert len(done) == n
        assert {t.id: t.failure for t in done.values() if not t.succeeded} == {}
        assert done["jobmanager"].job_manager
        ran = Counter(p.name.rsplit(".", 1)[0] for p in log.iterdir())
        assert set(ran) == set(done)
        assert max(ran.values()) == 1, f"ran more than once: {[k for k, v in ran.items() if v > 1]}"
        for p in log.iterdir():
            assert len(p.read_text().split()) == 2, f"{p.name} did not run to its end"
        spans = {p.name.rsplit(".", 1)[0]: [float(x) for x in p.read_text().split()] for p in log.iterdir()}
        alive = sorted(t for t, (start, end) in spans.items() if start < killed_at < end)
        print(f"\nserver SIGKILL mid-job: {len(alive)} task(s) ran through the first kill: {alive}")
        assert "jobmanager" in alive, "the job manager did not live through the kill: the test proves less"
        for parent, child in itertools.pairwise(chain):
            assert spans[child][0] >= spans[parent][1], f"{child} started before {parent} ended"
        for f in [*fan, "join"]:
            assert spans[f][0] >= spans["root"][1], f"{f} started before root ended"

        # Preparation and release: once on each node that ran the job's tasks.
        ran_on = {t.node_id for t in done.values()}
        assert ran_on == set(nodes), f"the tasks ran only on {ran_on}: the test proves less than it claims"
        assert Counter(lines(out / "prep")) == Counter(nodes), lines(out / "prep")
        assert Counter(lines(out / "release")) == Counter(nodes), lines(out / "release")
        status = prep_status(c, "d")
        assert set(status) == set(nodes)
        for node, s in status.items():
            for what, info in (("preparation", s.preparation), ("release", s.release)):
                assert info is not None, f"{node}: no {what}"
                assert (info.state, info.result, info.exit_code) == ("completed", "success", 0), (node, what, info)
    finally:
        c.close()
        srv.stop()


# --------------------------------------------------------------------------- the CLI


def shoal(server: ServerProcess, *args: str) -> str:
    """Run the `shoal` CLI against `server`; its stdout."""
    p = subprocess.run(
        [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),  # wide enough for every column
    )
    assert p.returncode == 0, f"shoal {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout
