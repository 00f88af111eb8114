"""Workflows inside a job on a real server and real agents: task dependencies (a DAG of real processes,
BLOCK and FAIL policies), exit conditions and job actions, job disable / enable, a server SIGKILL in the
middle of a DAG, and the `shoal` CLI as a new user would drive it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from shoal.client import (
    AddTaskResult,
    Client,
    DependencyAction,
    DependencyStatus,
    ExitCodeMapping,
    ExitConditions,
    ExitOptions,
    Job,
    JobAction,
    Task,
    TaskConstraints,
    TaskDependencies,
    TaskSpec,
)
from tests.clitable import parse_table
from tests.e2e.harness import ServerProcess, sh, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def on(*task_ids: str, ranges: Iterable[tuple[int, int]] = ()) -> TaskDependencies:
    return TaskDependencies.of(*task_ids, ranges=ranges)


def up(server: ServerProcess, nodes: int = 2, slots: int = 4) -> None:
    server.create_pool("p", nodes=nodes, slots=slots)
    server.wait_nodes("p", nodes)


def all_added(results: Iterable[AddTaskResult]) -> None:
    failed = [r for r in results if not r.ok]
    assert not failed, failed


def finish(client: Client, job_id: str, timeout: float = 60) -> dict[str, Task]:
    """Follow the job's tasks (WatchTasks) until every one has completed; the tasks as they ended."""
    for _ in client.tasks.wait(job_id, timeout=timeout):
        pass
    return {t.id: t for t in client.tasks.list(job_id)}


def task_when(client: Client, job_id: str, task_id: str, ok: Callable[[Task], bool], what: str) -> Task:
    return wait_for(f"{job_id}/{task_id} {what}", lambda: (t := client.tasks.get(job_id, task_id)) and ok(t) and t)


def job_when(client: Client, job_id: str, state: str, timeout: float = 30) -> Job:
    return wait_for(
        f"job {job_id} {state}", lambda: (j := client.jobs.get(job_id)) and j.state == state and j, timeout=timeout
    )


def running(t: Task) -> bool:
    return t.state == "running"


def completed(t: Task) -> bool:
    return t.state == "completed"


def gone(pid: int) -> bool:
    """The process `pid` has exited (a zombie not yet reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def pid_in(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def assert_after_parents(done: dict[str, Task], parents: dict[str, list[str]]) -> None:
    """Every dependent started (by the server's records) no earlier than each of its parents ended."""
    for child, ps in parents.items():
        start = done[child].start_time
        assert start is not None, child
        for p in ps:
            end = done[p].end_time
            assert end is not None and start >= end, f"{child} started at {start}, before {p} ended at {end}"


# --------------------------------------------------------------------------- 1. a DAG of real processes


def test_dag_of_real_processes_runs_in_dependency_order(server: ServerProcess, client: Client, tmp_path: Path) -> None:
    """A chain, a diamond and a 20 -> 1 range fan-in, each task doing real work in a shared directory that
    the next one checks; dependents added before their parents wait on tasks that do not exist yet."""
    out = tmp_path / "out"
    (out / "parts").mkdir(parents=True)
    up(server)
    client.jobs.create(id="dag", pool_id="p", uses_task_dependencies=True, common_environment={"OUT": str(out)})
    parts = [f"{i:02d}" for i in range(1, 21)]  # "01".."20": a range matches "07" as 7
    dependents = {
        "b": ["a"],
        "c": ["b"],
        "left": ["top"],
        "right": ["top"],
        "bottom": ["left", "right"],
        "merge": parts,
        "final": ["c", "bottom", "merge"],
    }
    # Dependents first: they may name tasks added later.
    all_added(
        client.tasks.add_many(
            "dag",
            [
                TaskSpec(
                    id="merge", command_line=sh("test $(ls $OUT/parts | wc -l) -eq 20"), depends_on=on(ranges=[(1, 20)])
                ),
                TaskSpec(id="c", command_line=sh("echo c >> $OUT/chain"), depends_on=on("b")),
                TaskSpec(
                    id="bottom",
                    command_line=sh("test -f $OUT/left && test -f $OUT/right"),
                    depends_on=on("left", "right"),
                ),
                TaskSpec(
                    id="final",
                    command_line=sh('test "$(cat $OUT/chain)" = "$(printf "a\\nb\\nc")"'),
                    depends_on=on("c", "bottom", "merge"),
                ),
            ],
        )
    )
    merge = client.tasks.get("dag", "merge")
    assert merge.state == "active" and merge.dependency_state is not None
    assert merge.dependency_state.status == DependencyStatus.WAITING
    assert (merge.dependency_state.reason, merge.dependency_state.unsatisfied) == ("NotAdded", 20)
    counts = client.jobs.task_counts("dag")
    assert (counts.active, counts.waiting_on_dependencies, counts.blocked) == (4, 4, 0)

    all_added(
        client.tasks.add_many(
            "dag",
            [
                TaskSpec(id="a", command_line=sh("echo a >> $OUT/chain")),
                TaskSpec(id="b", command_line=sh("echo b >> $OUT/chain"), depends_on=on("a")),
                TaskSpec(id="top", command_line=sh("echo top > $OUT/top")),
                TaskSpec(id="left", command_line=sh("test -f $OUT/top && touch $OUT/left"), depends_on=on("top")),
                TaskSpec(id="right", command_line=sh("test -f $OUT/top && touch $OUT/right"), depends_on=on("top")),
                *(TaskSpec(id=p, command_line=sh("touch $OUT/parts/$SHOAL_TASK_ID")) for p in parts),
            ],
        )
    )
    done = finish(client, "dag")
    assert len(done) == 9 + 20
    assert {t.id: t.result for t in done.values() if not t.succeeded} == {}
    assert (out / "chain").read_text() == "a\nb\nc\n"
    assert sorted(p.name for p in (out / "parts").iterdir()) == parts
    assert_after_parents(done, dependents)
    counts = client.jobs.task_counts("dag")
    assert (counts.succeeded, counts.waiting_on_dependencies, counts.blocked) == (29, 0, 0)


# --------------------------------------------------------------------------- 2. exit conditions and job actions


def test_exit_code_with_job_action_terminate_ends_the_job_and_its_running_tasks(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    up(server)
    client.jobs.create(id="jt", pool_id="p", on_task_failure="performexitoptionsjobaction")
    pid_file = tmp_path / "long.pid"
    client.tasks.add("jt", TaskSpec(id="long", command_line=sh(f"echo $$ > {pid_file}; exec sleep 60")))
    task_when(client, "jt", "long", running, "running")
    pid = wait_for("the long task's pid", lambda: pid_in(pid_file))

    # An exit code mapped to job action NONE fails the task and leaves the job alone.
    tolerated = ExitConditions(
        exit_codes=[ExitCodeMapping(code=4, exit_options=ExitOptions(job_action=JobAction.NONE))]
    )
    client.tasks.add("jt", TaskSpec(id="tolerated", command_line=sh("exit 4"), exit_conditions=tolerated))
    t = task_when(client, "jt", "tolerated", completed, "completed")
    assert (t.result, t.exit_code) == ("failure", 4)
    assert client.jobs.get("jt").state == "active"

    # Exit code 3 terminates the job, but only once the task has failed for good (after its retry).
    fatal = ExitConditions(
        exit_codes=[ExitCodeMapping(code=3, exit_options=ExitOptions(job_action=JobAction.TERMINATE))]
    )
    client.tasks.add("jt", TaskSpec(id="bad", command_line=sh("exit 3"), max_task_retry_count=1, exit_conditions=fatal))
    job = job_when(client, "jt", "completed")
    assert job.terminate_reason == "TaskFailed"
    bad = client.tasks.get("jt", "bad")
    assert (bad.result, bad.exit_code, bad.retry_count) == ("failure", 3, 1)
    long = client.tasks.get("jt", "long")
    assert long.state == "completed" and long.failure_code == "TaskEnded"
    wait_for("the long task's process to be ended", lambda: gone(pid), timeout=20)


def test_exit_code_with_job_action_disable_then_enable_runs_the_rest(server: ServerProcess, client: Client) -> None:
    up(server)
    client.jobs.create(id="jd", pool_id="p", uses_task_dependencies=True, on_task_failure="performexitoptionsjobaction")
    # Exit code 3 disables the job and still satisfies the tasks that depend on it: they are released,
    # but not scheduled while the job is disabled.
    disable = ExitConditions(
        exit_codes=[
            ExitCodeMapping(
                code=3,
                exit_options=ExitOptions(job_action=JobAction.DISABLE, dependency_action=DependencyAction.SATISFY),
            )
        ]
    )
    all_added(
        client.tasks.add_many(
            "jd",
            [
                TaskSpec(id="bad", command_line=sh("exit 3"), exit_conditions=disable),
                TaskSpec(id="next1", command_line="/bin/true", depends_on=on("bad")),
                TaskSpec(id="next2", command_line="/bin/true", depends_on=on("bad")),
            ],
        )
    )
    job = job_when(client, "jd", "disabled")
    assert job.terminate_reason == ""
    bad = client.tasks.get("jd", "bad")
    assert (bad.result, bad.exit_code) == ("failure", 3)
    for tid in ("next1", "next2"):
        t = client.tasks.get("jd", tid)
        assert t.state == "active" and t.start_time is None, t
        assert t.dependency_state is not None and t.dependency_state.status == DependencyStatus.SATISFIED
    counts = client.jobs.task_counts("jd")
    assert (counts.active, counts.waiting_on_dependencies, counts.blocked, counts.failed) == (2, 0, 0, 1)

    assert client.jobs.enable("jd").state == "active"
    done = finish(client, "jd", timeout=30)
    assert done["next1"].succeeded and done["next2"].succeeded
    assert client.jobs.get("jd").state == "active"


# --------------------------------------------------------------------------- 3. BLOCK and FAIL


def test_block_keeps_dependents_until_the_reactivated_parent_succeeds(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    up(server)
    client.jobs.create(id="jb", pool_id="p", uses_task_dependencies=True)  # on_dependency_failure: BLOCK
    marker = tmp_path / "second-run"
    # Fails on its first run, succeeds on the next (the command line of a task cannot change).
    flaky = sh(f"test -f {marker} && exit 0; touch {marker}; exit 1")
    all_added(
        client.tasks.add_many(
            "jb",
            [
                TaskSpec(id="parent", command_line=flaky),
                TaskSpec(id="child", command_line="/bin/true", depends_on=on("parent")),
                TaskSpec(id="grandchild", command_line="/bin/true", depends_on=on("child")),
            ],
        )
    )
    parent = task_when(client, "jb", "parent", completed, "completed")
    assert (parent.result, parent.exit_code) == ("failure", 1)
    child = client.tasks.get("jb", "child")
    assert child.state == "active" and child.dependency_state is not None
    d = child.dependency_state
    assert (d.status, d.task_id, d.reason) == (DependencyStatus.BLOCKED, "parent", "TaskFailed")
    g = client.tasks.get("jb", "grandchild").dependency_state
    assert g is not None and (g.status, g.task_id) == (DependencyStatus.WAITING, "child")
    counts = client.jobs.task_counts("jb")
    assert (counts.active, counts.blocked, counts.waiting_on_dependencies, counts.failed) == (2, 1, 1, 1)

    client.tasks.reactivate("jb", "parent")
    done = finish(client, "jb", timeout=30)
    assert all(t.succeeded for t in done.values()), {t.id: t.failure for t in done.values()}
    assert_after_parents(done, {"child": ["parent"], "grandchild": ["child"]})
    counts = client.jobs.task_counts("jb")
    assert (counts.succeeded, counts.blocked, counts.waiting_on_dependencies) == (3, 0, 0)


def test_fail_completes_dependents_transitively_and_the_job_terminates(server: ServerProcess, client: Client) -> None:
    up(server)
    client.jobs.create(
        id="jf",
        pool_id="p",
        uses_task_dependencies=True,
        on_dependency_failure="fail",
        on_all_tasks_complete="terminatejob",
    )
    all_added(
        client.tasks.add_many(
            "jf",
            [
                TaskSpec(id="parent", command_line=sh("exit 1")),
                TaskSpec(id="ok", command_line="/bin/true"),
                TaskSpec(id="child", command_line="/bin/true", depends_on=on("parent")),
                TaskSpec(id="grandchild", command_line="/bin/true", depends_on=on("child")),
                TaskSpec(id="both", command_line="/bin/true", depends_on=on("ok", "child")),
            ],
        )
    )
    job = job_when(client, "jf", "completed")
    assert job.terminate_reason == "AllTasksComplete"
    tasks = {t.id: t for t in client.tasks.list("jf")}
    assert tasks["ok"].succeeded
    assert (tasks["parent"].failure_code, tasks["parent"].exit_code) == ("FailureExitCode", 1)
    for tid in ("child", "grandchild", "both"):
        t = tasks[tid]
        assert (t.state, t.result, t.failure_code) == ("completed", "failure", "DependencyFailed"), t
        # Never placed: no attempt, no node, no exit code (its start and end times are when it was failed).
        assert (t.attempt, t.node_id, t.exit_code) == (0, "", None), f"{tid} ran"
    counts = client.jobs.task_counts("jf")
    assert (counts.completed, counts.succeeded, counts.failed, counts.blocked) == (5, 1, 4, 0)


# --------------------------------------------------------------------------- 4. durability


def test_server_sigkill_in_the_middle_of_a_dag_runs_each_task_once_in_order(tmp_path: Path) -> None:
    """As `test_faults`: every task runs exactly once (one file per execution, named by attempt), and
    every dependent starts after its parents ended, by the processes' own clocks and by the server's
    records; blocked tasks (a failed parent, a deleted parent) are blocked for the same reason after the
    restart."""
    data = tmp_path / "data"
    log = tmp_path / "ran"
    log.mkdir()
    srv = ServerProcess(data, heartbeat_timeout=8.0).start()
    c = Client.connect(srv.address, timeout=30)
    try:
        up(srv, nodes=3, slots=2)
        c.jobs.create(id="d", pool_id="p", uses_task_dependencies=True, common_environment={"LOG": str(log)})
        step = sh("f=$LOG/$SHOAL_TASK_ID.$SHOAL_TASK_ATTEMPT; date +%s.%N > $f; sleep {s}; date +%s.%N >> $f")
        chain = [f"c{i:02d}" for i in range(30)]
        fan = [str(i) for i in range(100, 120)]
        parents: dict[str, list[str]] = {chain[i]: [chain[i - 1]] for i in range(1, len(chain))}
        parents |= {f: ["root"] for f in fan}
        parents["join"] = [*fan, chain[-1]]
        specs = [TaskSpec(id=chain[0], command_line=step.format(s="0.15"))]
        specs += [
            TaskSpec(id=t, command_line=step.format(s="0.15"), depends_on=on(*ps))
            for t, ps in parents.items()
            if t.startswith("c")
        ]
        specs.append(TaskSpec(id="root", command_line=step.format(s="0.5")))
        specs += [TaskSpec(id=f, command_line=step.format(s="0.3"), depends_on=on("root")) for f in fan]
        specs.append(
            TaskSpec(id="join", command_line=step.format(s="0"), depends_on=on(chain[-1], ranges=[(100, 119)]))
        )
        n = len(specs)
        all_added(c.tasks.add_many("d", specs))

        # Beside it, tasks blocked by a failed parent and by a deleted one.
        c.jobs.create(id="side", pool_id="p", uses_task_dependencies=True)
        all_added(
            c.tasks.add_many(
                "side",
                [
                    TaskSpec(id="doomed", command_line=sh("exit 1")),
                    TaskSpec(id="stuck", command_line="/bin/true", depends_on=on("doomed")),
                    TaskSpec(id="gone", command_line="/bin/true", depends_on=on("doomed")),
                    TaskSpec(id="orphan", command_line="/bin/true", depends_on=on("gone")),
                ],
            )
        )
        task_when(c, "side", "doomed", completed, "completed")
        c.tasks.delete("side", "gone")

        wait_for(
            "part of the DAG to complete while more runs",
            lambda: (k := c.jobs.task_counts("d")).completed >= 12 and k.running >= 1,
            timeout=60,
        )
        killed_at = time.time()
        srv.kill()
        c.close()
        assert len(list(log.iterdir())) < n, "the job finished before the server was killed: the test proves nothing"

        srv = ServerProcess(data, heartbeat_timeout=8.0, port=srv.port).start()
        c = Client.connect(srv.address, timeout=30)
        counts = c.jobs.task_counts("d")
        assert counts.total == n
        last = c.tasks.get("d", chain[-1])
        assert last.state == "active" and last.dependency_state is not None
        assert last.dependency_state.status == DependencyStatus.WAITING
        stuck = c.tasks.get("side", "stuck").dependency_state
        assert stuck is not None and (stuck.status, stuck.task_id, stuck.reason) == ("blocked", "doomed", "TaskFailed")
        orphan = c.tasks.get("side", "orphan").dependency_state
        assert orphan is not None and (orphan.status, orphan.task_id, orphan.reason) == (
            "blocked",
            "gone",
            "TaskDeleted",
        )
        assert c.jobs.task_counts("side").blocked == 2

        done = finish(c, "d", timeout=60)
        assert len(done) == n
        assert {t.id: t.failure for t in done.values() if not t.succeeded} == {}
        assert all(t.retry_count == 0 for t in done.values())
        ran = Counter(p.name.split(".")[0] for p in log.iterdir())
        assert set(ran) == set(done)
        assert max(ran.values()) == 1, f"ran more than once: {[k for k, v in ran.items() if v > 1]}"
        # By the processes' own clocks...
        span = {}
        for p in log.iterdir():
            lines = p.read_text().split()
            assert len(lines) == 2, f"{p.name} did not run to its end: {lines}"
            span[p.name.split(".")[0]] = (float(lines[0]), float(lines[1]))
        for child, ps in parents.items():
            for parent in ps:
                assert span[child][0] >= span[parent][1], f"{child} started before {parent} ended"
        alive = [t for t, (start, end) in span.items() if start < killed_at < end]
        print(f"\nserver SIGKILL mid-DAG: {len(alive)} task(s) ran through the kill: {sorted(alive)}")
        assert alive, "no task ran while the server was down: the test proves nothing"
        # ... and by the server's records.
        assert_after_parents(done, parents)
        counts = c.jobs.task_counts("d")
        assert (counts.completed, counts.succeeded, counts.failed) == (n, n, 0)
        # Each task's execution counted once on the nodes.
        wait_for(
            "the nodes to count each task once",
            lambda: sum(node.total_tasks_run for node in c.pools.nodes("p")) == n + 1,  # + "doomed"
            timeout=20,
        )
    finally:
        c.close()
        srv.stop()


# --------------------------------------------------------------------------- 5. disable and enable


def test_disable_wait_lets_a_running_task_finish_and_requeue_runs_it_again(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    up(server)
    # WAIT: the job stays DISABLING while its running task runs; tasks added meanwhile are not scheduled.
    release = tmp_path / "release"
    client.jobs.create(id="jw", pool_id="p")
    client.tasks.add("jw", TaskSpec(id="slow", command_line=sh(f"while [ ! -f {release} ]; do sleep 0.05; done")))
    task_when(client, "jw", "slow", running, "running")
    assert client.jobs.disable("jw", disable_tasks="wait").state == "disabling"
    client.tasks.add("jw", TaskSpec(id="later", command_line="/bin/true"))
    assert client.jobs.get("jw").state == "disabling"
    assert client.tasks.get("jw", "slow").state == "running"
    release.touch()
    job_when(client, "jw", "disabled")
    assert client.tasks.get("jw", "slow").succeeded
    assert client.tasks.get("jw", "later").state == "active"
    assert client.jobs.enable("jw").state == "active"
    done = finish(client, "jw", timeout=30)
    assert done["later"].succeeded

    # REQUEUE: the running task is ended and goes back to ACTIVE, to run again once the job is enabled.
    marker, pid_file = tmp_path / "requeued", tmp_path / "again.pid"
    client.jobs.create(id="jr", pool_id="p")
    client.tasks.add(
        "jr",
        TaskSpec(
            id="again",
            command_line=sh(f"test -f {marker} && exit 0; touch {marker}; echo $$ > {pid_file}; exec sleep 60"),
        ),
    )
    task_when(client, "jr", "again", running, "running")
    pid = wait_for("its pid", lambda: pid_in(pid_file))
    client.jobs.disable("jr", disable_tasks="requeue")
    job_when(client, "jr", "disabled")
    t = client.tasks.get("jr", "again")
    assert (t.state, t.requeue_count, t.retry_count) == ("active", 1, 0)
    wait_for("the requeued task's process to be ended", lambda: gone(pid), timeout=20)
    assert client.jobs.enable("jr").state == "active"
    done = finish(client, "jr", timeout=30)
    assert done["again"].succeeded and done["again"].requeue_count == 1

    # TERMINATE: the running task is ended and completes, failed.
    client.jobs.create(id="jx", pool_id="p")
    client.tasks.add("jx", TaskSpec(id="ended", command_line="sleep 60"))
    task_when(client, "jx", "ended", running, "running")
    client.jobs.disable("jx", disable_tasks="terminate")
    job_when(client, "jx", "disabled")
    t = client.tasks.get("jx", "ended")
    assert (t.state, t.result, t.failure_code) == ("completed", "failure", "TaskEnded")


# --------------------------------------------------------------------------- update a job and a task


def test_update_max_parallel_tasks_on_all_tasks_complete_and_task_constraints(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    up(server)
    release = tmp_path / "release"
    gated = sh(f"while [ ! -f {release} ]; do sleep 0.05; done")
    client.jobs.create(id="jm", pool_id="p", max_parallel_tasks=1)
    all_added(client.tasks.add_many("jm", [TaskSpec(id=f"g{i}", command_line=gated) for i in range(3)]))
    first = wait_for("one task running", lambda: [t for t in client.tasks.list("jm") if t.state == "running"])
    assert len(first) == 1 and client.jobs.task_counts("jm").running == 1
    lifted = datetime.now(UTC)
    assert client.jobs.update("jm", max_parallel_tasks=-1).max_parallel_tasks == -1
    wait_for("the cap to be lifted", lambda: client.jobs.task_counts("jm").running == 3)
    release.touch()
    done = finish(client, "jm", timeout=30)
    assert all(t.succeeded for t in done.values())
    later = [t for t in done.values() if t.id != first[0].id]
    assert all(t.start_time is not None and t.start_time >= lifted for t in later)
    # As in Batch: a job whose tasks have all completed, once set to terminate then, terminates.
    job = client.jobs.update("jm", on_all_tasks_complete="terminatejob", metadata={"stage": "done"})
    assert (job.state, job.terminate_reason, dict(job.metadata)) == ("completed", "AllTasksComplete", {"stage": "done"})

    # New constraints of tasks not yet running apply to their run: a wall clock, more retries.
    client.jobs.create(id="ju", pool_id="p")
    client.jobs.disable("ju")
    all_added(
        client.tasks.add_many(
            "ju",
            [TaskSpec(id="capped", command_line="sleep 60"), TaskSpec(id="retried", command_line=sh("exit 2"))],
        )
    )
    client.tasks.update("ju", "capped", constraints=TaskConstraints(max_wall_clock_time=timedelta(seconds=1)))
    client.tasks.update("ju", "retried", constraints=TaskConstraints(max_task_retry_count=2))
    client.jobs.enable("ju")
    done = finish(client, "ju", timeout=30)
    capped = done["capped"]
    assert capped.failure_code == "TaskEnded"
    assert capped.start_time and capped.end_time and (capped.end_time - capped.start_time).total_seconds() < 10
    assert (done["retried"].exit_code, done["retried"].retry_count) == (2, 2)


# --------------------------------------------------------------------------- 6. the CLI


def shoal(server: ServerProcess, *args: str, ok: bool = True) -> str:
    """Run the `shoal` CLI against `server`; its stdout (or, when it should fail, its stderr)."""
    p = subprocess.run(
        [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),  # wide enough for every column
    )
    assert (p.returncode == 0) == ok, f"shoal {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout if ok else p.stderr


def test_cli_dependencies_disable_enable_counts_and_json_file(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    up(server, nodes=1, slots=4)
    shoal(server, "job", "create", "cj", "--pool", "p", "--uses-task-dependencies")
    shoal(server, "task", "add", "cj", "parent", "/bin/sh -c 'exit 1'")
    shoal(server, "task", "add", "cj", "child", "/bin/true", "--depends-on", "parent")
    shoal(server, "task", "add", "cj", "later", "/bin/true", "--depends-on", "notyet", "--depends-on-range", "1-3")
    assert "waiting on notyet (NotAdded, 4 left)" in shoal(server, "task", "get", "cj", "later")
    task_when(client, "cj", "parent", completed, "completed")
    assert "blocked by parent (TaskFailed)" in shoal(server, "task", "get", "cj", "child")
    listing = shoal(server, "task", "list", "cj")
    assert "blocked by parent (TaskFailed)" in listing and "waiting on notyet" in listing
    counts = json.loads(shoal(server, "job", "counts", "cj", "-o", "json"))
    assert (counts["active"], counts["blocked"], counts["waiting_on_dependencies"]) == (2, 1, 1)
    (columns,) = parse_table(shoal(server, "job", "counts", "cj"), "active")
    assert (columns["blocked"], columns["waiting on dependencies"], columns["failed"]) == ("1", "1", "1")

    shoal(server, "job", "disable", "cj", "--disable-tasks", "wait")
    assert client.jobs.get("cj").state == "disabled"
    assert "disabled" in shoal(server, "job", "get", "cj")
    shoal(server, "job", "enable", "cj")
    assert client.jobs.get("cj").state == "active"

    # Refused, with the reason, and nothing added: a cycle, a task that fits no node, dependencies on a
    # job without them.
    err = shoal(server, "task", "add", "cj", "notyet", "/bin/true", "--depends-on", "later", ok=False)
    assert "TASK_DEPENDENCY_CYCLE" in err
    err = shoal(server, "task", "add", "cj", "huge", "/bin/true", "--slots", "5", ok=False)
    assert "TASK_CANNOT_FIT" in err
    shoal(server, "job", "create", "plain", "--pool", "p")
    err = shoal(server, "task", "add", "plain", "x", "/bin/true", "--depends-on", "y", ok=False)
    assert "TASK_DEPENDENCIES_NOT_ENABLED" in err
    assert {t.id for t in client.tasks.list("cj")} == {"parent", "child", "later"}
    assert list(client.tasks.list("plain")) == []

    # --json-file in the API's field names: exit code 3 of "2" satisfies its dependents, so "notyet"
    # (which depends on 1..3, by JSON name and by proto name) and then "later" run.
    tasks = [
        {"id": "1", "commandLine": "/bin/true"},
        {
            "id": "2",
            "command_line": "/bin/sh -c 'exit 3'",
            "exitConditions": {
                "exitCodes": [{"code": 3, "exitOptions": {"dependencyAction": "DEPENDENCY_ACTION_SATISFY"}}]
            },
        },
        {"id": "3", "commandLine": "/bin/true"},
        {"id": "notyet", "commandLine": "/bin/true", "dependsOn": {"taskIdRanges": [{"start": "1", "end": "3"}]}},
    ]
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks))
    shoal(server, "task", "add", "cj", "--json-file", str(path))
    for _ in client.tasks.wait("cj", task_ids=["1", "2", "3", "notyet", "later"], timeout=30):
        pass
    t2 = client.tasks.get("cj", "2")
    assert (t2.result, t2.exit_code) == ("failure", 3)
    assert client.tasks.get("cj", "notyet").succeeded and client.tasks.get("cj", "later").succeeded
    assert "blocked by parent (TaskFailed)" in shoal(server, "task", "get", "cj", "child")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "commandLine": "/bin/true", "dependsOn": {"taskIdz": ["1"]}}))
    err = shoal(server, "task", "add", "cj", "--json-file", str(bad), ok=False)
    assert "taskIdz" in err
