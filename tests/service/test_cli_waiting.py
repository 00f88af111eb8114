"""Work that can never run says so: `shoal job counts` and `shoal task wait` against a real in-process server,
its nodes scripted agents (or none).

The CLI is blocking: each CLI step runs in a thread while the server's loop serves it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shoal.client import cli_waiting
from shoal.client._client import PoolsAPI
from shoal.v1 import common_pb2, pool_pb2, task_pb2
from tests.service.clirun import cli_args, run_on_terminal, runner
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_dependencies import add, run, setup, started, task, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _quick_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    # `task wait` looks at why its tasks wait every WAIT_CHECK_INTERVAL seconds: often here, to see each
    # reason told once however many looks see it.
    monkeypatch.setattr(cli_waiting, "WAIT_CHECK_INTERVAL", 0.2)


def _cli(server: Any, tmp_path: Path) -> Any:
    run_cli = runner(server, tmp_path)

    async def cli(*args: str) -> Any:
        return await asyncio.to_thread(run_cli, *args)

    return cli


async def test_a_job_on_a_pool_with_no_nodes(server: Any, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    assert (await cli("pool", "create", "p", "--nodes", "0", "--provider", "join")).exit_code == 0
    await cli("job", "create", "j", "--pool", "p")
    assert (await cli("task", "add", "j", "t", "true")).exit_code == 0

    r = await cli("job", "counts", "j")
    assert r.exit_code == 0, r.output
    assert "why the 1 active task(s) wait:" in r.output
    assert "all: PoolEmpty: pool p has no nodes and a target of 0: `shoal pool resize p --nodes N`" in r.output
    assert "[stuck" in r.output
    data = json.loads((await cli("job", "counts", "j", "-o", "json")).output)
    assert data["active"] == 1
    assert data["waiting"]["job"] == [
        {
            "code": "PoolEmpty",
            "message": "pool p has no nodes and a target of 0: `shoal pool resize p --nodes N` gives it some",
            "stuck": True,
        }
    ]

    # The wait tells why, once, on stderr, however often it looks; then times out as asked.
    r = await cli("task", "wait", "j", "t", "--timeout", "1.5s", "-q")
    assert r.exit_code == 1 and "DEADLINE_EXCEEDED" in r.stderr
    told = [line for line in r.stderr.splitlines() if line.startswith("waiting: ")]
    assert told == [
        "waiting: t: PoolEmpty: pool p has no nodes and a target of 0: `shoal pool resize p --nodes N` gives it "
        "some  [stuck: runs only if this changes]"
    ]
    r = await cli("job", "wait", "j", "--timeout", "1s", "-q")
    assert [line for line in r.stderr.splitlines() if line.startswith("waiting: ")] == [
        "waiting: PoolEmpty: pool p has no nodes and a target of 0: `shoal pool resize p --nodes N` gives it "
        "some  [stuck: runs only if this changes]"
    ]

    # A disabled job says so first.
    await cli("job", "disable", "j")
    r = await cli("job", "counts", "j")
    assert "all: JobDisabled: job j is disabled: none of its tasks starts until `shoal job enable j`" in r.output


async def test_a_task_blocked_by_a_failed_dependency(server: Any, stubs: Any, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    agent = await setup(server, stubs, uses_task_dependencies=True)
    await add(stubs, task("a"), task("b", "a"), task("c", "b"))
    assert await run(agent, exit_code=1) == "a"
    await wait_for(stubs, "b", lambda t: t.dependency_state.status == task_pb2.DEPENDENCY_STATUS_BLOCKED)

    r = await cli("job", "counts", "j")
    assert r.exit_code == 0, r.output
    assert (
        "  b: DependencyFailed: blocked by a (TaskFailed): it runs only once a is reactivated and succeeds  [stuck"
    ) in r.output
    assert "  c: WaitingOnDependencies: waiting on b" in r.output
    assert "all:" not in r.output  # the pool is fine
    r = await cli("task", "wait", "j", "b", "c", "--timeout", "1s", "-q")
    told = sorted(line for line in r.stderr.splitlines() if line.startswith("waiting: "))
    assert told == [
        "waiting: b: DependencyFailed: blocked by a (TaskFailed): it runs only once a is reactivated and succeeds  "
        "[stuck: runs only if this changes]",
        "waiting: c: WaitingOnDependencies: waiting on b",
    ]
    await agent.close()


async def test_a_pool_whose_nodes_failed_their_start_task(server: Any, stubs: Any, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    pool = pool_pb2.Pool(id="p", target_nodes=1, provider="join", start_task=common_pb2.StartTask(command_line="x"))
    pool.start_task.wait_for_success = True
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool))
    agent = ScriptedAgent(server, "p", "127.0.3.9")
    await agent.connect()
    await agent.send_start_task_done(succeeded=False)
    async with asyncio.timeout(20):
        while (await cli("node", "list", "p", "-o", "json")).output.count("starttaskfailed") < 1:
            await asyncio.sleep(0.05)
    await cli("job", "create", "j", "--pool", "p")
    await cli("task", "add", "j", "t", "true")
    r = await cli("job", "counts", "j")
    assert "all: NoUsableNodes: no node of pool p takes tasks (1 starttaskfailed)" in r.output and "[stuck" in r.output
    await agent.close()


async def test_a_task_too_big_for_a_pool_made_again_smaller(server: Any, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    await cli("pool", "create", "p", "--nodes", "0", "--provider", "join", "--slots", "4")
    await cli("job", "create", "j", "--pool", "p")
    assert (await cli("task", "add", "j", "big", "true", "--slots", "4")).exit_code == 0
    await cli("pool", "delete", "p")
    async with asyncio.timeout(20):
        while (await cli("pool", "get", "p")).exit_code == 0:
            await asyncio.sleep(0.05)
    r = await cli("job", "counts", "j")
    assert "all: PoolNotFound: pool p does not exist" in r.output and "[stuck" in r.output

    await cli("pool", "create", "p", "--nodes", "1", "--provider", "join", "--slots", "2")
    r = await cli("job", "counts", "j")
    assert "all: NodesStarting: pool p has none of its 1 nodes yet" in r.output
    assert (
        "  big: TaskTooBig: it needs 4 slots and the nodes of pool p have 2: it never runs there  [stuck"
    ) in r.output


async def test_counts_of_a_job_with_nothing_waiting_say_nothing_more(server: Any, stubs: Any, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    agent = await setup(server, stubs)
    await add(stubs, task("a"))
    assert await run(agent) == "a"
    await wait_for(stubs, "a", lambda t: t.state == task_pb2.TASK_STATE_COMPLETED)
    r = await cli("job", "counts", "j")
    assert r.exit_code == 0 and "why" not in r.output
    assert json.loads((await cli("job", "counts", "j", "-o", "json")).output)["waiting"] is None
    await agent.close()


async def test_on_a_terminal_the_reason_shows_above_the_bar(server: Any, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    await cli("pool", "create", "p", "--nodes", "0", "--provider", "join")
    await cli("job", "create", "j", "--pool", "p")
    await cli("task", "add", "j", "t", "true")
    r = await asyncio.to_thread(run_on_terminal, [*cli_args(server, tmp_path), "task", "wait", "j", "--timeout", "2"])
    assert r.exit_code == 1
    text = r.output.replace("\n", "")  # (rich wraps the line at the terminal's width)
    assert text.count("waiting: PoolEmpty: pool p has no nodes") == 1
    assert "━" in r.output and "0/1" in r.output and "WAIT_TIMEOUT" in r.output


async def test_queue_and_counts_say_the_same_reasons(
    server: Any, stubs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shoal queue` tells why a task waits in the codes `job counts` uses: a job at its max parallel tasks
    on a pool with room, and a job on a pool with no nodes; each pool's nodes are read once."""
    cli = _cli(server, tmp_path)
    agent = await setup(server, stubs, slots=2, max_parallel_tasks=1)
    await add(stubs, task("a"), task("b"))
    (first,) = await started(agent)  # the job's one task at a time (left to run)
    held = "b" if first.attempt.task_id == "a" else "a"
    await cli("pool", "create", "empty", "--nodes", "0", "--provider", "join")
    await cli("job", "create", "k", "--pool", "empty")
    await cli("task", "add", "k", "w1", "true")
    await cli("task", "add", "k", "w2", "true")

    node_reads: list[str] = []
    nodes = PoolsAPI.nodes

    def counted(self: PoolsAPI, pool_id: str, *args: Any, **kw: Any) -> Any:
        node_reads.append(pool_id)
        return nodes(self, pool_id, *args, **kw)

    monkeypatch.setattr(PoolsAPI, "nodes", counted)
    rows = json.loads((await cli("queue", "-o", "json")).output)
    assert sorted(node_reads) == ["empty", "p"]  # once per pool, not per task
    why = {(r["job_id"], r["task_id"]): (r["state"], r["reason"], r["stuck"]) for r in rows}
    assert why == {
        ("j", first.attempt.task_id): ("preparing", "", False),
        ("j", held): ("active", "JobMaxParallelTasks", False),
        ("k", "w1"): ("active", "PoolEmpty", True),
        ("k", "w2"): ("active", "PoolEmpty", True),
    }
    (row,) = [r for r in rows if r["task_id"] == held]
    assert row["reason_message"] == (
        "job j has 1 task(s) running or preparing and runs at most 1 at once (max_parallel_tasks): "
        "the next starts when fewer run"
    )
    # The same words from `job counts`, and `-o wide` adds what they mean.
    r = await cli("job", "counts", "j")
    assert f"all: JobMaxParallelTasks: {row['reason_message']}" in r.output
    assert "all: PoolEmpty: pool empty has no nodes" in (await cli("job", "counts", "k")).output
    wide = (await cli("queue", "--job", "k", "-o", "wide")).output
    assert wide.splitlines()[0].split()[-1] == "why" and "`shoal pool resize empty --nodes N`" in wide
    assert (await cli("queue", "--query", "[].reason", "-o", "tsv")).output.split() == [
        "JobMaxParallelTasks",  # (the preparing task's empty reason prints as nothing)
        "PoolEmpty",
        "PoolEmpty",
    ]
    await agent.close()
