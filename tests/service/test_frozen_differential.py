"""The same random history, run once with tasks changed as their bytes where the control plane can (see
`wire`) and once with every change made through the message: after each step both read the same, send
the same, and every record and row tag agrees with its message.

In-process (a control plane over an in-memory store, sessions without streams, a manual clock), so that
hundreds of histories of adds, placements, reports, requeues, terminations, reactivations, deletions,
reconnections (a new address, events still pending) and restarts run in seconds.

The switch between the two worlds patches classes, which a compiled class (see `shoal.native`)
does not let it do: where the control plane runs compiled, the histories run in a process that
loads it from its sources (the same code; the rest of the suite runs the compiled modules).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from shoal import native
from shoal.agent.v1 import agent_pb2 as A
from shoal.clock import ManualClock
from shoal.server.controllers import scheduler
from shoal.server.controlplane import LIVE_TASK_STATES, ControlPlane
from shoal.server.domain.records import AgentSession, JobRec, NodeRec, PoolRec, TaskRec, task_shape, untag
from shoal.server.lifecycle import kernel
from shoal.server.store.base import Delete, Loaded, Op, Row, Rows, StoredRow
from shoal.v1 import common_pb2, job_pb2, pool_pb2
from shoal.v1 import task_pb2 as T

SUCCESS, FAILURE = common_pb2.TASK_EXECUTION_RESULT_SUCCESS, common_pb2.TASK_EXECUTION_RESULT_FAILURE


class MemStore:
    """Rows in a dict, committed at once."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}

    async def open(self) -> Loaded:
        loaded = Loaded()
        for (table, _), row in self.rows.items():
            loaded.tables[table].append(StoredRow(row.key, row.data, row.parent, row.seq, row.tag))
        for rows in loaded.tables.values():
            rows.sort(key=lambda r: r.seq)
        return loaded

    def submit(self, ops: list[Op]) -> asyncio.Future[None]:
        for op in ops:
            if isinstance(op, Delete):
                gone = [
                    k
                    for k, r in self.rows.items()
                    if k == (op.table, op.key) or (not op.key and r.table == op.table and r.parent == op.parent)
                ]
                for k in gone:
                    del self.rows[k]
            elif isinstance(op, Rows):
                for row in op.rows():
                    self.rows[(row.table, row.key)] = row
            else:
                self.rows[(op.table, op.key)] = op
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def commit(self, ops: list[Op]) -> None:
        await self.submit(ops)


#: Classes can be patched here (the control plane runs from its sources).
PATCHABLE = not native.running_compiled(kernel)


def patch_switch(setattr: Any) -> dict[str, Any]:
    """Patch the classes (with `setattr(target, name, value)`) so that whether a frozen task may be
    changed as bytes follows the switch returned: `on`, and `taken`, how often it was, by new state."""
    switch: dict[str, Any] = {"on": True, "taken": {T.TASK_STATE_PREPARING: 0, T.TASK_STATE_COMPLETED: 0}}
    setattr(TaskRec, "frozen", property(lambda t: t._proto is None and switch["on"]))
    change_frozen = ControlPlane.change_frozen

    def counted(cp: ControlPlane, t: TaskRec, new: int, job: JobRec, change: bytes) -> None:
        switch["taken"][new] += 1
        change_frozen(cp, t, new, job, change)

    setattr(ControlPlane, "change_frozen", counted)
    return switch


@pytest.fixture
def bytes_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """See `patch_switch` (where classes can be patched; else an inert switch)."""
    yield patch_switch(monkeypatch.setattr) if PATCHABLE else {"on": True}


class World:
    """One control plane and what it sent."""

    def __init__(self, as_bytes: bool, switch: dict[str, Any]) -> None:
        self.as_bytes = as_bytes
        self.switch = switch
        self.clock = ManualClock()
        self.store = MemStore()
        self.cp = ControlPlane(self.store, self.clock, dispatch_ahead=0)  # type: ignore[arg-type]
        self.event_id = 0

    def __enter__(self) -> World:
        self.switch["on"] = self.as_bytes
        return self

    def __exit__(self, *exc: object) -> None:
        self.switch["on"] = True

    async def seed(self) -> None:
        cp = self.cp
        pool = PoolRec(
            "p", pool_pb2.Pool(id="p", task_slots_per_node=2, state=pool_pb2.POOL_STATE_ACTIVE, provider="join")
        )
        cp.pools["p"] = pool
        cp.mark("pools", "p", pool)
        for i in range(2):
            node = pool_pb2.Node(
                id=f"N{i}",
                pool_id="p",
                ip_address=f"10.0.0.{i}",
                task_slots=2,
                state=pool_pb2.NODE_STATE_IDLE,
                root_directory="/r",
            )
            n = cp.nodes[f"n{i}"] = pool.nodes[f"n{i}"] = NodeRec(f"n{i}", node)
            cp.mark("nodes", n.key, n)
        job = JobRec(
            "j",
            1,
            job_pb2.Job(
                id="j",
                pool_id="p",
                state=job_pb2.JOB_STATE_ACTIVE,
                constraints=job_pb2.JobConstraints(max_task_retry_count=1),
            ),
        )
        cp.jobs["j"] = job
        cp.mark("jobs", "j", job)
        self.connect()
        await cp.flush()

    def connect(self) -> None:
        for n in self.cp.nodes.values():
            n.session = AgentSession(n.key, "b")
            n.session.send(A.ServerMessage(welcome=A.Welcome(node_id=n.proto.id)))
            n.session.drain()

    async def restart(self) -> None:
        self.cp = ControlPlane(self.store, self.clock, dispatch_ahead=0)  # type: ignore[arg-type]
        await self.cp.load()
        self.connect()

    def sent(self) -> list[tuple[str, bytes]]:
        out = []
        for key in sorted(self.cp.nodes):
            session = self.cp.nodes[key].session
            for m in session.drain() if session is not None else []:
                if m is not None:
                    m.ClearField("events_acked_up_to")
                    out.append((key, m.SerializeToString(deterministic=True)))
        return out

    def check(self, where: str) -> None:
        """Each record and row tag agrees with its message; the job's counts with its tasks."""
        for job in self.cp.jobs.values():
            counts: dict[int, int] = {}
            succeeded = failed = 0
            for key, t in job.tasks.items():
                m = t.read()
                assert (t.attempt, t.state) == (m.attempt, m.state), (where, key)
                assert t.shape() == task_shape(m.spec), (where, key)
                counts[t.state] = counts.get(t.state, 0) + 1
                if t.state == T.TASK_STATE_COMPLETED:
                    assert t.result == m.execution_info.result, (where, key)
                    succeeded += t.result == SUCCESS
                    failed += t.result != SUCCESS
            assert {k: v for k, v in job.counts.items() if v} == counts, where
            assert (job.succeeded, job.failed) == (succeeded, failed), where
        for (table, key), row in self.store.rows.items():
            if table == "tasks":
                m = T.Task.FromString(row.data)
                state, result, attempt = untag(row.tag)
                assert (state, attempt) == (m.state, m.attempt), (where, key)
                if state == T.TASK_STATE_COMPLETED:
                    assert result == m.execution_info.result, (where, key)


def stamp(rng: random.Random) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(
        seconds=rng.choice([0, 1, 1_800_000_000 + rng.randrange(100)]), nanos=rng.choice([0, 5, 999_999_999])
    )


OPS = ["add", "add", "place", "place", "event", "event", "event", "requeue", "terminate", "reactivate", "touch"]
OPS += ["restart", "advance", "delete", "attach", "attach"]


async def step(world: World, op: str, rng: random.Random) -> None:
    """Apply `op` with choices drawn from `rng` (seeded alike for both worlds)."""
    cp = world.cp
    job = cp.jobs["j"]
    keys = sorted(job.tasks)
    pick = rng.random()
    live = [k for k in keys if job.tasks[k].state in LIVE_TASK_STATES]
    if op == "add":
        spec = T.TaskSpec(id=f"T{rng.randrange(6)}", command_line="x")
        secs, retries = rng.choice([None, 30, 60]), rng.choice([None, 0, 2])
        if secs:
            spec.constraints.max_wall_clock_time.seconds = secs
        if retries is not None:
            spec.constraints.max_task_retry_count = retries
        await cp.add_tasks("j", [spec])
    elif op == "place":
        scheduler.place(cp)
        await cp.flush()
    elif op == "event":
        kind = rng.choice([A.TASK_EVENT_KIND_RUNNING, A.TASK_EVENT_KIND_COMPLETED, A.TASK_EVENT_KIND_COMPLETED])
        time, start = (stamp(rng) if rng.random() < 0.9 else None), (stamp(rng) if rng.random() < 0.5 else None)
        exit_code = rng.choice([None, 0, 1, -1, 137])
        result = rng.choice([SUCCESS, SUCCESS, SUCCESS, FAILURE])
        root, failure = rng.choice(["", "/d/x"]), rng.random() < 0.5
        if not live:
            return
        t = job.tasks[live[int(pick * len(live))]]
        world.event_id += 1
        ref = A.AttemptRef(job_id="j", task_id=t.read().spec.id, attempt=t.attempt)
        ev = A.TaskEvent(event_id=world.event_id, attempt=ref, kind=kind, result=result, task_root_directory=root)
        if time is not None:
            ev.time.CopyFrom(time)
        if start is not None:
            ev.start_time.CopyFrom(start)
        if exit_code is not None:
            ev.exit_code = exit_code
        if failure and result != SUCCESS:
            ev.failure_info.code = "X"
        assert t.node_key is not None
        with cp.one_time():
            cp.attempt_life.apply_events(cp.nodes[t.node_key], [ev])
        await cp.flush()
    elif op == "requeue" and live:
        cp.task_life.requeue(job.tasks[live[int(pick * len(live))]], "x")
        await cp.flush()
    elif op == "terminate":
        waiting = [k for k in keys if job.tasks[k].state != T.TASK_STATE_COMPLETED]
        if waiting:
            await cp.terminate_task("j", waiting[int(pick * len(waiting))])
    elif op == "reactivate":
        failed = [
            k
            for k in keys
            if job.tasks[k].state == T.TASK_STATE_COMPLETED and job.tasks[k].read().execution_info.result == FAILURE
        ]
        if failed:
            await cp.reactivate_task("j", failed[int(pick * len(failed))])
    elif op == "touch" and keys:
        job.tasks[keys[int(pick * len(keys))]].proto.ClearField("etag")  # made live, as a change in place does
    elif op == "delete" and keys:
        await cp.delete_task("j", keys[int(pick * len(keys))])
    elif op == "attach":
        # The node's agent connects again, maybe from a new address, with an event it had not sent, or
        # without one of its attempts.
        node = cp.nodes[f"n{rng.randrange(2)}"]
        drop, address, pending = rng.random() < 0.3, rng.choice(["10.0.0.9", "10.9.9.9"]), rng.random() < 0.5
        result, at = rng.choice([SUCCESS, FAILURE]), stamp(rng)
        running = []
        for jk, tk in list(node.running):
            t = cp.jobs[jk].tasks[tk]
            running.append(
                A.AttemptRef(job_id="j", task_id=t.read().spec.id, attempt=t.attempt, instance=t.instance_on(node.key))
            )
        events = []
        if pending and running:
            world.event_id += 1
            events.append(
                A.TaskEvent(
                    event_id=world.event_id,
                    kind=A.TASK_EVENT_KIND_COMPLETED,
                    attempt=running.pop(0),
                    result=result,
                    time=at,
                    exit_code=0,
                )
            )
        if drop and running:
            running.pop(0)
        reg = A.Register(
            node_id=node.proto.id,
            pool_id="p",
            ip_address=address,
            root_directory="/r",
            boot_id="b2",
            running=running,
            pending_events=events,
        )
        await cp.attach(reg)
    elif op == "restart":
        await world.restart()
    elif op == "advance":
        world.clock.advance(1.5)


async def trace(as_bytes: bool, switch: dict[str, Any], seeds: range) -> list[str]:
    """One world's histories: after each step, a digest of what it sent and of every task as read."""
    out = []
    for seed in seeds:
        w = World(as_bytes, switch)
        with w:
            await w.seed()
        chooser = random.Random(seed)
        for i in range(60):
            op, choices = chooser.choice(OPS), chooser.random()
            with w:
                await step(w, op, random.Random(choices))
                w.check(f"seed {seed} step {i} ({op})")
                digest = hashlib.sha256(repr(w.sent()).encode())
            for key, t in sorted(w.cp.jobs["j"].tasks.items()):
                digest.update(key.encode() + t.read().SerializeToString(deterministic=True))
            out.append(f"seed {seed} step {i} ({op}): {digest.hexdigest()[:20]}")
    return out


@pytest.mark.timeout(120)
async def test_compiled_changes_as_bytes_agree_with_the_sources_changing_the_message() -> None:
    """Where the control plane runs compiled: its histories (as bytes where it can, unpatched) against
    the same histories in a process that runs the sources with every change made through the message."""
    if PATCHABLE:
        pytest.skip("the control plane runs from its sources here: the test below compares both paths in-process")
    env = dict(os.environ, **{native.ENV: "0"})
    cmd = [sys.executable, __file__, "--trace-through-the-message"]
    proc = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = json.loads(proc.stdout)
    got = await trace(True, {"on": True}, range(TRACE_SEEDS))
    assert len(got) == len(expected) == TRACE_SEEDS * 60
    for a, b in zip(got, expected, strict=True):
        assert a == b, f"compiled, as bytes: {a}; from the sources, through the message: {b}"


#: Histories compared across processes by the test above.
TRACE_SEEDS = 100


@pytest.mark.timeout(120)
async def test_changes_as_bytes_and_through_the_message_agree(bytes_paths: dict[str, Any]) -> None:
    if not PATCHABLE:
        name = f"{__file__}::test_changes_as_bytes_and_through_the_message_agree"
        env = dict(os.environ, **{native.ENV: "0"})
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
        proc = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=110)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "1 passed" in proc.stdout, proc.stdout[-2000:]
        return
    for seed in range(200):
        worlds = [World(True, bytes_paths), World(False, bytes_paths)]
        for w in worlds:
            with w:
                await w.seed()
        chooser = random.Random(seed)
        for i in range(60):
            op, choices = chooser.choice(OPS), chooser.random()
            sent = []
            for w in worlds:
                with w:
                    await step(w, op, random.Random(choices))
                    w.check(f"seed {seed} step {i} ({op}), as bytes: {w.as_bytes}")
                    sent.append(w.sent())
            where = f"seed {seed} step {i} ({op})"
            assert sent[0] == sent[1], where
            a, b = (w.cp.jobs["j"].tasks for w in worlds)
            assert sorted(a) == sorted(b), where
            for key in a:
                ma, mb = a[key].read(), b[key].read()
                assert ma == mb, (where, key, str(ma), str(mb))
    taken = bytes_paths["taken"]
    # The histories did go through both changes made as bytes, many times.
    assert taken[T.TASK_STATE_PREPARING] > 200 and taken[T.TASK_STATE_COMPLETED] > 40, taken


if __name__ == "__main__" and sys.argv[1:] == ["--trace-through-the-message"]:
    # (For the test across processes above: run with SHOAL_NATIVE=0, so that classes can be patched.)
    assert PATCHABLE, "the control plane runs compiled here: run with SHOAL_NATIVE=0"
    switch = patch_switch(setattr)
    print(json.dumps(asyncio.run(trace(False, switch, range(TRACE_SEEDS)))))
