"""Jobs of equal priority share a pool, and no gang starves: the cases of issue 12, item 19.

Scripted agents stand in for the nodes: every task a node is given ends at once (a stream of
short tasks), gang instances included, and the order in which the nodes were given work is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from click.testing import CliRunner

from shoal.agent.v1 import agent_pb2
from shoal.client.cli import cli
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import credentials
from tests.service.scripted_agent import ScriptedAgent

A = agent_pb2
STREAM = 300


class Nodes:
    """Scripted agents that end every task they are given at once, and the order of what they were given."""

    def __init__(self, server, pool_id: str) -> None:
        self.server = server
        self.pool_id = pool_id
        #: (job id, task id, instance) of every assignment, in the order the nodes got them.
        self.starts: list[tuple[str, str, int]] = []
        self.agents: list[ScriptedAgent] = []
        self._drivers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    async def join(self, count: int) -> None:
        for _ in range(count):
            agent = ScriptedAgent(self.server, self.pool_id, f"127.0.3.{len(self.agents) + 1}")
            await agent.connect()
            self.agents.append(agent)

    async def busy(self) -> None:
        """Wait until every node has been given a task (left for `run` to end)."""
        for a in self.agents:
            msg = await a.expect("start_tasks")
            a.inbox.put_nowait(msg)

    def run(self, agent: ScriptedAgent | None = None) -> None:
        """Start ending tasks (on every node, or on `agent`)."""
        for a in [agent] if agent is not None else self.agents:
            self._drivers.append(asyncio.create_task(self._drive(a)))

    async def _drive(self, agent: ScriptedAgent) -> None:
        while True:
            msg = await agent.inbox.get()
            kind = msg.WhichOneof("body")
            if kind == "shutdown":
                await agent.close()
                return
            if kind != "start_tasks":
                continue  # (acknowledgements, kills of gang instances that the primary's end ended)
            for a in msg.start_tasks.tasks:
                self.starts.append((a.attempt.job_id, a.attempt.task_id, a.attempt.instance))
                await agent.event(a.attempt, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.05)
            self._changed.set()

    async def until(self, what: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until `what()` holds, looking again whenever a node is given work."""
        async with asyncio.timeout(timeout):
            while not what():
                self._changed.clear()
                await self._changed.wait()

    def started(self, job_id: str) -> set[str]:
        return {t for j, t, _ in self.starts if j == job_id}

    def first(self, job_id: str, task_id: str) -> int:
        """Where `job_id/task_id` was first given to a node, in `starts`."""
        return next(i for i, (j, t, _) in enumerate(self.starts) if (j, t) == (job_id, task_id))

    def between(self, job_id: str, start: int, end: int) -> int:
        return sum(1 for j, _, _ in self.starts[start:end] if j == job_id)

    async def close(self) -> None:
        for d in self._drivers:
            d.cancel()
        for a in self.agents:
            await a.close()


async def pool_of(server, stubs, n: int) -> Nodes:
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(id="p", target_nodes=n, provider="join", enable_inter_node_communication=True)
        )
    )
    nodes = Nodes(server, "p")
    await nodes.join(n)
    return nodes


async def jobs(stubs, *ids: str) -> None:
    for j in ids:  # (in this order: the first is the oldest)
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=j, pool_id="p")))


async def add(stubs, job_id: str, *specs: task_pb2.TaskSpec) -> None:
    await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=list(specs)))


def ordinary(task_id: str) -> task_pb2.TaskSpec:
    return task_pb2.TaskSpec(id=task_id, command_line="sleep 1")


def gang(task_id: str, n: int) -> task_pb2.TaskSpec:
    return task_pb2.TaskSpec(
        id=task_id,
        command_line="mpiexec app",
        multi_instance_settings=task_pb2.MultiInstanceSettings(number_of_instances=n, coordination_command_line="true"),
    )


def stream(count: int = STREAM) -> list[task_pb2.TaskSpec]:
    return [ordinary(f"s{i}") for i in range(count)]


async def get(stubs, job_id: str, task_id: str) -> task_pb2.Task:
    return await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name=f"jobs/{job_id}/tasks/{task_id}"))


@pytest.mark.parametrize(
    "order",
    [("stream", "mpi", "third"), ("mpi", "stream", "third")],
    ids=["stream-in-the-older-job", "stream-in-the-newer-job"],
)
async def test_a_stream_of_tasks_starves_neither_a_gang_nor_a_third_job(server, stubs, order) -> None:
    """A job's stream of short tasks, in a job older or newer than the gang's, delays neither the gang
    nor an ordinary task of a third job (before: whichever came after the older job waited for all of it)."""
    nodes = await pool_of(server, stubs, 4)
    await jobs(stubs, *order)
    await add(stubs, "stream", *stream())
    await nodes.busy()
    # Each node runs a task of the stream; now come a gang and a task of a third job.
    await add(stubs, "mpi", gang("g", 4))
    await add(stubs, "third", ordinary("t"))
    nodes.run()
    await nodes.until(lambda: len(nodes.started("stream")) == STREAM and "t" in nodes.started("third"))
    placed_gang, placed_third = nodes.first("mpi", "g"), nodes.first("third", "t")
    assert nodes.between("stream", 0, placed_gang) == 4, "the stream took nodes held for the gang"
    assert nodes.between("stream", max(placed_gang, placed_third), len(nodes.starts)) > STREAM // 2
    await nodes.close()


async def reason_of(watch: grpc.aio.UnaryStreamCall, task_id: str, prefix: str) -> task_pb2.Task:
    """The first message of `task_id` from `watch` whose waiting reason starts with `prefix`."""
    async with asyncio.timeout(10):
        async for resp in watch:
            for t in resp.tasks:
                if t.spec.id == task_id and t.waiting_reason.startswith(prefix):
                    return t
    raise AssertionError(f"the watch ended before {task_id} said {prefix}")


async def end(stubs, agent: ScriptedAgent, assignment: agent_pb2.TaskAssignment) -> None:
    """`agent` reports `assignment` done; back once the server has committed it (and what it placed then)."""
    ref = assignment.attempt
    watch = stubs.tasks.WatchTasks(task_pb2.WatchTasksRequest(parent=f"jobs/{ref.job_id}", task_ids=[ref.task_id]))
    await agent.event(ref, A.TASK_EVENT_KIND_COMPLETED, ran_seconds=0.05)
    async with asyncio.timeout(10):
        async for resp in watch:
            if any(t.state == task_pb2.TASK_STATE_COMPLETED for t in resp.tasks):
                break
    watch.cancel()


async def test_a_gang_the_pool_shrank_under_holds_nothing_says_why_and_runs_once_it_grows(server, stubs) -> None:
    nodes = await pool_of(server, stubs, 4)
    # (The small gang's job is older than the stream's, so only the impossible gang stands in its way.)
    await jobs(stubs, "big", "small", "stream")
    await add(stubs, "stream", *stream())
    first = {a.node_id: (a, await a.expect("start_tasks")) for a in nodes.agents}
    await add(stubs, "big", gang("g", 4))
    t = await get(stubs, "big", "g")
    assert t.state == task_pb2.TASK_STATE_ACTIVE
    assert t.waiting_reason.startswith("NodesHeld: needs 4 nodes at once"), t.waiting_reason
    watch = stubs.tasks.WatchTasks(task_pb2.WatchTasksRequest(parent="jobs/big"))
    # The pool shrinks under the gang: it cannot fit any more, and says so (the watch hears it too).
    await stubs.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=3))
    told = await reason_of(watch, "g", "PoolTooSmall")
    assert told.waiting_reason == (
        "PoolTooSmall: needs 4 nodes at once and pool p has 3 that can take it now;"
        " it holds no nodes and waits in case the pool grows"
    )
    watch.cancel()
    # `shoal task get` shows it (the CLI's client is blocking: it runs beside this loop).
    runner = CliRunner()
    shown = await asyncio.to_thread(
        runner.invoke,
        cli,
        [
            "--address",
            server.address,
            "--key",
            credentials(server.data_dir)["key"],
            "--ca-cert",
            str(server.data_dir / "certs" / "ca.pem"),
            "task",
            "get",
            "big",
            "g",
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert "waiting_reason" in shown.output and "PoolTooSmall: needs 4 nodes" in shown.output
    leaving = {n.proto.id for n in server.cp.pools["p"].nodes.values() if n.state == pool_pb2.NODE_STATE_LEAVING_POOL}
    (gone,) = [first.pop(node_id)[0] for node_id in leaving]
    # A smaller gang comes. The stream's tasks end one node at a time: the first node freed is held for the
    # small gang, which starts on it once a second one frees. (Before: the impossible gang marked the pool
    # as held, holding nothing, so the small gang held nothing either, and the stream took each node freed.)
    await add(stubs, "small", gang("g2", 2))
    (a1, m1), (a2, m2), (a3, m3) = first.values()
    await end(stubs, a1, m1.start_tasks.tasks[0])
    await end(stubs, a2, m2.start_tasks.tasks[0])
    for a in (a1, a2):
        msg = await a.expect("start_tasks")
        assert [(x.attempt.job_id, x.attempt.task_id) for x in msg.start_tasks.tasks] == [("small", "g2")]
        a.inbox.put_nowait(msg)
    a3.inbox.put_nowait(m3)
    # Then the stream runs on, the impossible gang still waiting, ACTIVE, with its reason (in a list too).
    nodes.run()
    await nodes.until(lambda: len(nodes.started("stream")) >= STREAM - 2)
    listed = await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/big"))
    assert [(t.state, t.waiting_reason[:13]) for t in listed.tasks] == [(task_pb2.TASK_STATE_ACTIVE, "PoolTooSmall:")]
    assert "g" not in nodes.started("big")
    # The pool grows again: the node that left is gone (a provider would say so when its agent exits; a
    # joined node's agent just goes), a new one joins, and the gang runs.
    await gone.close()
    for key in [n.key for n in server.cp.pools["p"].nodes.values() if n.proto.id in leaving]:
        await server.cp.node_gone(key)
    await stubs.pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=4))
    await nodes.join(1)
    nodes.run(nodes.agents[-1])
    await nodes.until(lambda: sorted(i for j, _, i in nodes.starts if j == "big") == [0, 1, 2, 3])
    assert (await get(stubs, "big", "g")).waiting_reason == ""
    await nodes.close()
