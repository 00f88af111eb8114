"""A 100,000-task DAG dispatched by one server to 1,000 simulated nodes, against independent tasks.

    python -m bench.dependencies dag [--quick] [--nodes 1000] [--tasks 100000] [--rounds 3]
                                     [--chain 100000] [--profile] [--no-record]

One real `python -m shoal.server` process and the simulated agents of
bench/simagent.py (one asyncio loop in this process, every task completed at
once). `--rounds` rounds, each of two jobs on the same nodes, in the order
independent, DAG, then DAG, independent, and so on (so that neither always runs
on a server holding more tasks):

- independent: `--tasks` tasks without dependencies in a job without them;
- DAG: as many tasks in a job with `uses_task_dependencies`: chains (200 of
  100), a fan-out (one root, 10,000 tasks depending on it by id), a fan-in
  (10,000 integer-named tasks and one task depending on the range of them) and
  range layers (layers of 10,000 integer-named tasks, each depending on a
  range of 10 of the layer before, the first on the fan-in's integers), the
  remaining tasks.

Both are added in the same two AddTasks calls (about 90,000 then 10,000 tasks):
the DAG's first call holds the dependents, before their parents where it can
(each chain from its end, the fan-out's dependents and the fan-in's task
without their parents, the range layers from the last); the second the
fan-out's root and the fan-in's integers. Dispatch rate as bench/simulated.py
measures it: first StartTasks -> the server counting the last task COMPLETED
(GetJobTaskCounts, polled). The figure is DAG / independent, per round and its
median.

Checked after every run: each task completed exactly once and succeeded
(GetJobTaskCounts; one StartTasks per task at the fleet); for the DAG, that
no task started before the tasks it depends on completed: at the fleet, the
StartTasks of each task arrived after the reports of all its parents were
handed to gRPC (`OrderJournal`), and in the server's records (ListTasks) its
start time is not before their end times.

Then the cost of the cycle check, in a job of a pool without nodes holding a
chain of `--chain` tasks k0 <- k1 <- ... (k0 depending on tasks x0..x4 not
added yet): the latency of one-task AddTasks calls, without dependencies, with
a dependency on the chain's last task (nothing waits for the new task: nothing
to walk), of a task x_j that the chain's head waits for and that depends on a
task outside the chain (accepted after a walk of the whole chain), and of x0
depending on the chain's last task (a cycle through the whole chain: refused).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.common import (
    BenchServer,
    Profiler,
    Report,
    fmt,
    median,
    pct,
    print_lines,
    profile_markdown,
    record,
    should_record,
    wait_for,
)
from bench.simagent import OrderJournal, SimFleet
from bench.simulated import check_added, own_cpu_seconds
from shoal.v1 import job_pb2, task_pb2

T = task_pb2
#: Integer ids of the range layers: layer k is RANGE_BASE + k * LAYER_STRIDE + i.
RANGE_BASE = 1_000_000
LAYER_STRIDE = 100_000
MAX_CALL = 100_000
SUCCESS = 1  # TASK_EXECUTION_RESULT_SUCCESS


@dataclass(frozen=True)
class Workload:
    """Tasks to add, in AddTasks calls, and what each depends on."""

    #: The AddTasks calls, in order.
    calls: list[list[task_pb2.TaskSpec]]
    #: Task id -> the ids of the tasks it depends on (ranges spelled out); absent: none.
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: (part, tasks, how) rows describing it.
    parts: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.calls)

    @property
    def first_ready_call(self) -> int:
        """The first call that adds a task depending on nothing: the first StartTasks follows it."""
        return next(k for k, call in enumerate(self.calls) if any(not s.HasField("depends_on") for s in call))


def _spec(task_id: str, ids: Iterable[str] = (), ranges: Iterable[tuple[int, int]] = ()) -> task_pb2.TaskSpec:
    ids, ranges = list(ids), list(ranges)
    if not ids and not ranges:
        return T.TaskSpec(id=task_id, command_line="/bin/true")
    return T.TaskSpec(
        id=task_id,
        command_line="/bin/true",
        depends_on=T.TaskDependencies(task_ids=ids, task_id_ranges=[T.TaskIdRange(start=s, end=e) for s, e in ranges]),
    )


def _split(specs: list[task_pb2.TaskSpec]) -> list[list[task_pb2.TaskSpec]]:
    return [specs[i : i + MAX_CALL] for i in range(0, len(specs), MAX_CALL)]


def build_dag(total: int, chains: int, chain_len: int, fan: int, window: int = 10) -> Workload:
    """Chains, a fan-out, a fan-in and range layers: `total` tasks in all (see the module's docstring)."""
    if fan >= LAYER_STRIDE or fan < 1:
        raise ValueError(f"fan must be in 1..{LAYER_STRIDE - 1}")
    first: list[task_pb2.TaskSpec] = []
    second: list[task_pb2.TaskSpec] = []
    parents: dict[str, tuple[str, ...]] = {}
    parts: list[tuple[str, int, str]] = []
    # Chains, each listed from its end: every dependent is added before its parent (in the same call).
    for j in range(chains):
        for i in reversed(range(chain_len)):
            tid = f"c{j}-{i}"
            if i:
                parents[tid] = (f"c{j}-{i - 1}",)
            first.append(_spec(tid, parents.get(tid, ())))
    parts.append(
        ("chains", chains * chain_len, f"{chains} chains of {chain_len}, each task depending on the one before")
    )
    # Fan-out: the dependents now, their root in the second call.
    for i in range(fan):
        parents[f"fo-{i}"] = ("fo-root",)
        first.append(_spec(f"fo-{i}", ["fo-root"]))
    second.append(_spec("fo-root"))
    parts.append(("fan-out", fan + 1, f"1 root, {fan:,} tasks depending on it by id (root added in the second call)"))
    # Fan-in: one task depending on the range of the integer-named tasks 0..fan-1 (added in the second call).
    parents["fi-sink"] = tuple(str(i) for i in range(fan))
    first.append(_spec("fi-sink", ranges=[(0, fan - 1)]))
    second.extend(_spec(str(i)) for i in range(fan))
    parts.append(("fan-in", fan + 1, f"{fan:,} integer-named tasks 0..{fan - 1}, 1 task depending on their range"))
    # Range layers: task i of layer k depends on [i, i + window - 1] of the layer before (the first: of 0..fan-1).
    left = total - (chains * chain_len + 2 * fan + 2)
    if left < 0:
        raise ValueError(f"{total} tasks are too few for these chains and fans")
    layers: list[list[task_pb2.TaskSpec]] = []
    prev_lo, prev_width = 0, fan
    k = 0
    while left > 0:
        width = min(fan, left)
        lo = RANGE_BASE + k * LAYER_STRIDE
        layer = []
        for i in range(width):
            end = min(i + window - 1, prev_width - 1)
            a, b = prev_lo + min(i, prev_width - 1), prev_lo + end
            parents[str(lo + i)] = tuple(str(v) for v in range(a, b + 1))
            layer.append(_spec(str(lo + i), ranges=[(a, b)]))
        layers.append(layer)
        left -= width
        prev_lo, prev_width = lo, width
        k += 1
    for layer in reversed(layers):  # the last layer first: dependents before their parents
        first.extend(layer)
    n_ranges = sum(len(x) for x in layers)
    parts.append(
        (
            "range layers",
            n_ranges,
            f"{len(layers)} layers of up to {fan:,} integer-named tasks, each depending on a range of {window} "
            "of the layer before (the first: of the fan-in's integers); added from the last layer",
        )
    )
    return Workload(_split(first) + _split(second), parents, parts)


def independent(sizes: list[int], prefix: str = "i") -> Workload:
    """Tasks without dependencies, in AddTasks calls of `sizes`."""
    calls = []
    n = 0
    for k in sizes:
        calls.append([_spec(f"{prefix}{n + i}") for i in range(k)])
        n += k
    return Workload(calls, {}, [("independent", n, "no dependencies, in a job without them")])


@dataclass
class Phase:
    """One run of a workload."""

    kind: str
    tasks: int
    #: first StartTasks -> last COMPLETED counted at the server.
    seconds: float
    add_seconds: list[float]
    #: The server's CPU seconds in the AddTasks calls before the first StartTasks, and in the window.
    add_cpu: float
    server_cpu: float
    #: The server's main thread (the event loop) in the window.
    main_cpu: float
    sim_cpu: float
    #: When each task's StartTasks arrived, in seconds into the window.
    started_at: dict[str, float]
    problems: list[str]
    #: py-spy of the server during the first AddTasks call, and during the rest (with a profile dir).
    profiles: list[Profiler] = field(default_factory=list)


def arrival_times(journal: OrderJournal, assign_times: list[tuple[float, int]], t0: float) -> dict[str, float]:
    """Each task's StartTasks arrival, in seconds after `t0`: the journal holds the tasks in order of arrival,
    the fleet's statistics the time and size of each StartTasks, in the same order."""
    out: dict[str, float] = {}
    it = iter(journal.arrived)
    for at, k in assign_times:
        for _ in range(k):
            tid = next(it, None)
            if tid is None:
                return out
            out[tid] = at - t0
    return out


def run_phase(
    server: BenchServer,
    fleet: SimFleet,
    journal: OrderJournal,
    *,
    job_id: str,
    pool_id: str,
    work: Workload,
    uses_dependencies: bool,
    timeout: float,
    check_records: bool,
    profile_dir: Path | None = None,
) -> Phase:
    """Add `work` to a new job `job_id` and wait until all of it completed; with `profile_dir`, py-spy the
    server during the first AddTasks call and, apart, during the rest."""
    n = work.size
    server.jobs.CreateJob(
        job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id=pool_id, uses_task_dependencies=uses_dependencies)),
        timeout=60,
    )
    journal.reset()
    fleet.stats.reset_dispatch()
    time.sleep(0.5)
    cpu0 = server.cpu_seconds()
    adds = []
    window_cpu: tuple[float, float, float] | None = None
    profs: list[Profiler] = []
    if profile_dir is not None:
        profs.append(Profiler(server.pid, profile_dir / f"{job_id}-add.pyspy.txt"))
    for k, call in enumerate(work.calls):
        t0 = time.monotonic()
        check_added(server.add(job_id, call, timeout=900), len(call))
        adds.append(time.monotonic() - t0)
        if profile_dir is not None and len(profs) == 1:
            profs[0].stop()
            profs.append(Profiler(server.pid, profile_dir / f"{job_id}-window.pyspy.txt"))
        if k == work.first_ready_call:
            wait_for("first StartTasks", lambda: fleet.stats.first_assign, timeout=timeout, every=0.001)
            window_cpu = (server.cpu_seconds(), server.thread_cpu_seconds().get("main", 0.0), own_cpu_seconds())
    assert window_cpu is not None
    cpu1, main0, sim0 = window_cpu
    problems: list[str] = []
    try:
        wait_for(f"{n} tasks completed", lambda: server.counts(job_id).completed >= n, timeout=timeout, every=0.05)
    except TimeoutError:
        problems.append(f"only {server.counts(job_id).completed:,} of {n:,} completed after {timeout:.0f} s")
    t_end = time.monotonic()
    cpu = server.cpu_seconds() - cpu1
    main = server.thread_cpu_seconds().get("main", 0.0) - main0
    sim = own_cpu_seconds() - sim0
    for prof in profs:
        prof.stop()
    st = fleet.stats
    seconds = t_end - st.first_assign
    started_at = arrival_times(journal, st.assign_times, st.first_assign)
    problems += check_phase(server, journal, job_id, work, check_records)
    return Phase(job_id, n, seconds, adds, cpu1 - cpu0, cpu, main, sim, started_at, problems, profs)


def early_starts(journal: OrderJournal, parents: dict[str, tuple[str, ...]]) -> list[str]:
    """The tasks whose StartTasks arrived before the report of a parent's completion had been sent
    ("child before parent"), one parent each; a parent never reported counts as not sent."""
    arrived, reported = journal.arrived, journal.reported
    out = []
    for child, ps in parents.items():
        at = arrived.get(child)
        if at is None:
            continue
        for p in ps:
            if reported.get(p, 1 << 62) > at:
                out.append(f"{child} before {p}")
                break
    return out


def check_phase(server: BenchServer, journal: OrderJournal, job_id: str, work: Workload, records: bool) -> list[str]:
    """What went wrong: a task not completed once and successfully, or started before a parent completed."""
    n = work.size
    out: list[str] = []
    c = server.counts(job_id)
    if (c.completed, c.succeeded, c.failed, c.active, c.running) != (n, n, 0, 0, 0):
        out.append(
            f"{job_id}: GetJobTaskCounts completed {c.completed}, succeeded {c.succeeded}, failed {c.failed}, "
            f"active {c.active}, running {c.running}, of {n}"
        )
    if journal.repeats:
        out.append(f"{job_id}: {len(journal.repeats)} tasks started more than once: {journal.repeats[:5]}")
    if len(journal.arrived) != n:
        out.append(f"{job_id}: the fleet was told to start {len(journal.arrived)} distinct tasks of {n}")
    early = early_starts(journal, work.parents)
    if early:
        out.append(f"{job_id}: {len(early)} tasks started before a parent's completion was sent: {early[:5]}")
    if records and work.parents:
        out += check_records(server, job_id, work)
    return out


def check_records(server: BenchServer, job_id: str, work: Workload) -> list[str]:
    """The server's own records (ListTasks): every task COMPLETED once and succeeded, no start before a parent's end."""
    times: dict[str, tuple[float, float]] = {}
    bad: list[str] = []
    token = ""
    while True:
        resp = server.tasks.ListTasks(
            T.ListTasksRequest(parent=f"jobs/{job_id}", page_size=5000, page_token=token), timeout=120
        )
        for t in resp.tasks:
            info = t.execution_info
            if (
                t.state != T.TASK_STATE_COMPLETED
                or info.result != SUCCESS
                or info.retry_count
                or info.requeue_count
                or t.attempt != 1
            ):
                bad.append(
                    f"{t.spec.id} (state {t.state}, result {info.result}, retries {info.retry_count}, "
                    f"requeues {info.requeue_count}, attempt {t.attempt})"
                )
            times[t.spec.id] = (
                info.start_time.seconds + info.start_time.nanos / 1e9,
                info.end_time.seconds + info.end_time.nanos / 1e9,
            )
        token = resp.next_page_token
        if not token:
            break
    out = []
    if len(times) != work.size:
        out.append(f"{job_id}: ListTasks listed {len(times)} tasks of {work.size}")
    if bad:
        out.append(f"{job_id}: {len(bad)} tasks not completed once with success: {bad[:3]}")
    early = [
        f"{child} started at {times[child][0]:.6f}, {p} ended at {times[p][1]:.6f}"
        for child, ps in work.parents.items()
        if child in times
        for p in ps
        if p in times and times[child][0] < times[p][1]
    ]
    if early:
        out.append(f"{job_id}: {len(early)} tasks started before a parent ended (records): {early[:3]}")
    return out


def chain_tail(ph: Phase, chains: int, chain_len: int) -> list[tuple[str, str, str]]:
    """How the chains went in a DAG run: how far they had got when the rest of the DAG had started, and
    how long their links took (a parent's StartTasks to its child's, at the fleet)."""
    at = ph.started_at
    others = [t for tid, t in at.items() if not (tid.startswith("c") and "-" in tid)]
    last_other = max(others, default=0.0)
    last = max(at.values(), default=0.0)
    links: list[tuple[float, float]] = []
    reached: list[int] = []
    for j in range(chains):
        got = 0
        for i in range(chain_len):
            when = at.get(f"c{j}-{i}")
            if when is None:
                break
            got += when <= last_other
            if i:
                links.append((when, when - at[f"c{j}-{i - 1}"]))
        reached.append(got)
    ms = [1000 * x for _, x in links]
    alone = [1000 * x for when, x in links if when > last_other]
    return [
        (
            "the last task outside the chains started at; the last chain task at",
            f"{last_other:.2f}; {last:.2f}",
            "s into the window",
        ),
        (
            "chain tasks started by then (median over the chains)",
            f"{median(reached):.0f} of {chain_len}",
            "",
        ),
        (
            "chain link, a parent's StartTasks -> its child's: p50 / p90 / max over all links; p50 after the "
            "last task outside the chains",
            f"{fmt(pct(ms, 50))} / {fmt(pct(ms, 90))} / {fmt(max(ms, default=float('nan')), 0)}; {fmt(pct(alone, 50))}",
            "ms",
        ),
    ]


def timed_add(server: BenchServer, job_id: str, spec: task_pb2.TaskSpec) -> tuple[float, str]:
    """Seconds of one AddTasks call of `spec`, and "" or the reason it was refused."""
    t0 = time.monotonic()
    try:
        resp = server.add(job_id, [spec], timeout=120)
        dt = time.monotonic() - t0
        r = resp.results[0]
        return dt, "" if r.status == T.ADD_TASK_STATUS_SUCCESS else r.error_reason
    except grpc.RpcError as e:
        return time.monotonic() - t0, f"{e.code().name}: {e.details()}"  # type: ignore[attr-defined]


def cycle_check(server: BenchServer, length: int, repeat: int) -> Report:
    """The latency of AddTasks calls that the cycle check has nothing, or a whole chain, to walk."""
    server.create_pool("cyc", 0, 1, provider="join")  # no node ever joins: nothing runs
    server.jobs.CreateJob(
        job_pb2.CreateJobRequest(job=job_pb2.Job(id="cyc", pool_id="cyc", uses_task_dependencies=True)), timeout=60
    )
    heads = [f"x{j}" for j in range(5)]
    chain = [_spec("k0", heads)] + [_spec(f"k{i}", [f"k{i - 1}"]) for i in range(1, length)]
    last = f"k{length - 1}"
    t0 = time.monotonic()
    check_added(server.add("cyc", chain, timeout=900), length)
    chain_s = time.monotonic() - t0
    rows: list[tuple[str, list[float], set[str]]] = []

    def measure(label: str, specs: list[task_pb2.TaskSpec]) -> None:
        times, outcomes = [], set()
        for spec in specs:
            dt, why = timed_add(server, "cyc", spec)
            times.append(dt)
            outcomes.add(why.split(":")[0] + (" (a cycle)" if "cycle" in why else "") if why else "added")
        rows.append((label, times, outcomes))

    measure("one task, no dependencies (baseline)", [_spec(f"b{i}") for i in range(repeat)])
    measure(
        f"one task depending on the chain's last task {last} (nothing to walk)",
        [_spec(f"y{i}", [last]) for i in range(repeat)],
    )
    # Refused before x0 is added below: nothing is added, so it can be repeated.
    measure(
        f"x0 depending on {last}: a cycle through the whole chain (refused)",
        [_spec("x0", [last]) for _ in range(repeat)],
    )
    measure(
        f"x0..x4, which k0 waits for, each depending on a task outside the chain (walk of {length:,}, added)",
        [_spec(h, ["outside"]) for h in heads],
    )
    report = Report(
        f"Cycle check: one-task AddTasks calls into a job holding a chain of {length:,} waiting tasks",
        ["call", "n", "p50 ms", "max ms", "outcome"],
    )
    report.add(f"AddTasks of the {length:,}-task chain (one call)", 1, f"{1000 * chain_s:,.0f}", "", "added")
    for label, times, outcomes in rows:
        ms = [1000 * x for x in times]
        report.add(label, len(ms), fmt(pct(ms, 50), 2), fmt(max(ms), 2), ", ".join(sorted(outcomes)))
    report.note(
        "The check walks back from the new tasks to the tasks (transitively) waiting for them, never the job: "
        "a task nobody waits for costs nothing to check, a task the whole chain waits for costs a walk of the chain. "
        f"The pool has no nodes: the {length:,} tasks stay ACTIVE, waiting."
    )
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dependencies dag", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 nodes, 3,000 tasks, a chain of 2,000, 1 round")
    ap.add_argument("--nodes", type=int, default=0, help="simulated nodes (default 1000, quick 50)")
    ap.add_argument("--tasks", type=int, default=0, help="tasks per run (default 100000, quick 3000)")
    ap.add_argument("--chains", default="", help="COUNTxLENGTH (default 200x100, quick 10x20)")
    ap.add_argument("--fan", type=int, default=0, help="fan-out and fan-in width, and range layers' (default 10000)")
    ap.add_argument("--rounds", type=int, default=0, help="independent/DAG pairs (default 3, quick 1)")
    ap.add_argument("--chain", type=int, default=0, help="the cycle check's chain (default 100000, quick 2000)")
    ap.add_argument("--repeat", type=int, default=20, help="calls per cycle-check measure")
    ap.add_argument(
        "--nodes-per-stream", type=int, default=100, help="simulated nodes per ConnectMany stream (1: Connect)"
    )
    ap.add_argument("--phase-timeout", type=float, default=300)
    ap.add_argument("--no-check-records", action="store_true", help="skip the ListTasks check of the DAG runs")
    ap.add_argument("--profile", action="store_true", help="py-spy the server during the runs")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    a = ap.parse_args(argv)
    nodes = a.nodes or (50 if a.quick else 1000)
    total = a.tasks or (3000 if a.quick else 100_000)
    chains, _, chain_len = (a.chains or ("10x20" if a.quick else "200x100")).partition("x")
    fan = a.fan or (500 if a.quick else 10_000)
    rounds = a.rounds or (1 if a.quick else 3)
    length = a.chain or (2000 if a.quick else 100_000)
    repeat = min(a.repeat, 5) if a.quick else a.repeat
    started = time.monotonic()

    dag = build_dag(total, int(chains), int(chain_len), fan)
    ind = independent([len(c) for c in dag.calls])
    journal = OrderJournal()
    phases: list[tuple[int, Phase]] = []
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-dag-") as tmp:
        root = Path(tmp)
        server = BenchServer(root / "server", heartbeat_interval=60, heartbeat_timeout=3600, orphan_timeout=3600)
        fleet: SimFleet | None = None
        try:
            server.start()
            server.create_pool("dag", 0, 1, provider="join")
            fleet = SimFleet(server.agent_identity(), nodes_per_stream=a.nodes_per_stream, journal=journal)
            attach = fleet.add_nodes("dag", nodes, timeout=max(120.0, nodes / 20))
            print(f"{nodes:,} simulated nodes joined in {attach:.2f} s", flush=True)
            for r in range(rounds):
                for kind in ("ind", "dag") if r % 2 == 0 else ("dag", "ind"):
                    ph = run_phase(
                        server,
                        fleet,
                        journal,
                        job_id=f"{kind}-{r}",
                        pool_id="dag",
                        work=dag if kind == "dag" else ind,
                        uses_dependencies=kind == "dag",
                        timeout=a.phase_timeout,
                        check_records=kind == "dag" and not a.no_check_records,
                        profile_dir=root if a.profile else None,
                    )
                    phases.append((r, ph))
                    print(
                        f"round {r + 1} {kind}: {ph.tasks / ph.seconds:,.0f} tasks/s"
                        + (f"  PROBLEMS: {ph.problems}" if ph.problems else ""),
                        flush=True,
                    )
            fleet.disconnect_all()
            cyc = cycle_check(server, length, repeat)
            if a.profile:
                for kind, what in (("ind", "independent"), ("dag", "DAG")):
                    ps = [ph.profiles for _, ph in phases if ph.kind.startswith(kind)]
                    extra += [*profile_markdown(f"server, the {what} runs' first AddTasks call", [p[0] for p in ps])]
                    extra += ["", *profile_markdown(f"server, the {what} runs' window", [p[1] for p in ps]), ""]
        finally:
            for _, ph in phases:
                for p in ph.profiles:
                    p.stop()
            if fleet is not None:
                fleet.shutdown()
            server.stop()

    report = Report(
        f"Task dependencies with simulated agents: {total:,} tasks on {nodes:,} nodes, DAG against independent",
        ["measure", "value", "unit", "target (issue 13)"],
    )
    for part, count, how in dag.parts:
        report.add(f"DAG: {part} ({how})", f"{count:,}", "tasks", "")
    ratios = []
    problems = []
    for r in range(rounds):
        by = {ph.kind.split("-")[0]: ph for rr, ph in phases if rr == r}
        i, d = by["ind"], by["dag"]
        ri, rd = i.tasks / i.seconds, d.tasks / d.seconds
        ratios.append(rd / ri)
        report.add(f"round {r + 1}: independent, first StartTasks -> last COMPLETED", fmt(ri), "tasks/s", "")
        report.add(f"round {r + 1}: DAG, first StartTasks -> last COMPLETED", fmt(rd), "tasks/s", "")
        report.add(f"round {r + 1}: DAG / independent", f"{rd / ri:.2f}", "", ">= 0.5")
        for ph in (i, d) if r % 2 == 0 else (d, i):
            what = "DAG" if ph is d else "independent"
            report.add(
                f"round {r + 1}: {what}: AddTasks calls (server CPU in them before the first StartTasks)",
                " + ".join(f"{x:.2f}" for x in ph.add_seconds) + f" ({ph.add_cpu:.2f})",
                "s",
                "",
            )
            report.add(
                f"round {r + 1}: {what}: in the window, server CPU per task (main thread) / simulator CPU per task",
                f"{1e6 * ph.server_cpu / ph.tasks:.0f} ({1e6 * ph.main_cpu / ph.tasks:.0f}) / "
                f"{1e6 * ph.sim_cpu / ph.tasks:.0f}",
                "µs",
                "",
            )
            report.add(
                f"round {r + 1}: {what}: server main thread busy in the window",
                f"{100 * ph.main_cpu / ph.seconds:.0f}",
                "%",
                "",
            )
            report.add(
                f"round {r + 1}: {what}: StartTasks of 50% / 90% / all tasks",
                " / ".join(f"{pct(list(ph.started_at.values()), q):.2f}" for q in (50, 90, 100)),
                "s into the window",
                "",
            )
            if ph is d and int(chains) and int(chain_len) > 1:
                for label, value, unit in chain_tail(ph, int(chains), int(chain_len)):
                    report.add(f"round {r + 1}: DAG: {label}", value, unit, "")
            problems += ph.problems
    report.add("DAG / independent, median of the rounds", f"**{median(ratios):.2f}**", "", ">= 0.5")
    report.note(
        f"Simulated agents: {a.nodes_per_stream} nodes per ConnectMany stream"
        if a.nodes_per_stream > 1
        else "Simulated agents: one Connect stream per node, as real agents"
    )
    report.note(
        "Rounds alternate the order (independent then DAG, then DAG then independent); every job stays on the "
        "server, so later runs see more stored tasks. Both workloads are added in the same call sizes "
        f"({' + '.join(f'{len(c):,}' for c in dag.calls)}); the window (first StartTasks -> the server counting the "
        "last COMPLETED, polled every 50 ms) includes the calls after the first."
    )
    if dag.first_ready_call != ind.first_ready_call:
        report.note(
            f"Nothing of the DAG can run before its call {dag.first_ready_call + 1}: its window opens after that "
            f"call, the independent tasks' after call {ind.first_ready_call + 1}, so the calls between are in the "
            "independent window only (this flatters the DAG)."
        )
    report.note(
        "Checked after each run: GetJobTaskCounts (all completed and succeeded, none active or running); one "
        "StartTasks per task at the fleet; DAG: every task's StartTasks arrived after the reports of all its "
        "parents had been handed to gRPC, and (ListTasks) every task COMPLETED at attempt 1 without retry or "
        "requeue, its start time not before its parents' end times. "
        + (f"**PROBLEMS: {'; '.join(problems)}**" if problems else "No problem found.")
    )
    report.note(
        "The DAG's longest path is a chain (plus a few steps): once the rest has run, the chains run alone, below "
        "the fleet's width, one hand-off after another. A released task joins the end of its job's queue (in order "
        "of release), so while thousands of released tasks wait for nodes a chain's next link waits behind them. "
        "Chain link: a parent's StartTasks to its child's at the fleet (the parent completes at once)."
    )
    report.extra_md = extra
    report.print()
    cyc.print()
    print_lines(extra)
    if should_record(a.quick, a.no_record):
        record("Task dependencies, simulated (bench/deps_dag.py)", [report, cyc], started)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
