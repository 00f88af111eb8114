"""Shared pieces of the benchmark instruments: the machine, the server process, tables, RESULTS.md."""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import psutil

from shoal import native
from shoal.agentidentity import AgentIdentity
from shoal.client.credentials import authenticated, from_file
from shoal.server.security import provider_identity_from
from shoal.v1 import job_pb2, job_pb2_grpc, pool_pb2, pool_pb2_grpc, task_pb2, task_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
#: The peers' scripts (Slurm and others) beside the repository: `../shared/peers`, wherever the clone is.
PEERS = REPO.parent / "shared" / "peers"
#: Set to 1 (the smoke tests do) and no instrument writes bench/RESULTS.md.
NO_RECORD_ENV = "SHOAL_BENCH_NO_RECORD"
MAX_MSG = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MSG),
    ("grpc.max_send_message_length", MAX_MSG),
]

X = TypeVar("X")


# ---------------------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, Python version, kernel."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server", "nodeagent", "client", "protos"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def repo_relative(path: str | Path) -> str:
    """`path` as written from the repository's root when it lies inside it (a clone can be anywhere)."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    # Not resolved: the venv's python is a symlink out of the repository, and is named by its place in it.
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def command_line() -> str:
    """The command that reproduces this run, from the repository's root, with no absolute path of the clone."""
    mod = sys.argv[0]
    name = Path(mod).stem
    if Path(mod).resolve().parent == REPO / "bench":
        return " ".join([".venv/bin/python", "-m", f"bench.{name}", *map(shlex.quote, sys.argv[1:])])
    return " ".join(shlex.quote(repo_relative(a) if a.startswith("/") else a) for a in [sys.executable, *sys.argv])


# ---------------------------------------------------------------------------- numbers


def pct(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt(x: float, digits: int = 1) -> str:
    if x != x:  # nan
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


# ---------------------------------------------------------------------------- tables and RESULTS.md


@dataclass
class Report:
    """A titled table plus notes; printed to the terminal and optionally appended to RESULTS.md."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_md: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def note(self, text: str) -> None:
        self.notes.append(text)

    def print(self) -> None:
        try:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=self.title)
            for c in self.columns:
                table.add_column(c)
            for r in self.rows:
                table.add_row(*r)
            console = Console(width=160)
            console.print(table)
            for n in self.notes:
                console.print(f"  - {n}", markup=False, highlight=False)
        except ImportError:  # pragma: no cover
            print(self.title)
            print(" | ".join(self.columns))
            for r in self.rows:
                print(" | ".join(r))
            for n in self.notes:
                print(f"  - {n}")
        sys.stdout.flush()

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        if self.extra_md:
            lines.append("")
            lines += self.extra_md
        return "\n".join(lines)


def should_record(quick: bool, no_record: bool) -> bool:
    """Only full runs record, never when SHOAL_BENCH_NO_RECORD=1 or --no-record."""
    return not quick and not no_record and os.environ.get(NO_RECORD_ENV, "") not in ("1", "true", "yes")


def section(name: str, reports: list[Report], started: float) -> str:
    """One dated section of bench/RESULTS.md; paths in it are relative to the repository's root."""
    m = machine()
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"\n## {name} — {now}, commit {git_head()}\n",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Python {m['python']}, Linux {m['kernel']}",
        f"- reproduce, from the repository's root: `{command_line()}`",
        f"- control plane: {native.status().describe()}",
        f"- load average (1/5/15 min) at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"(other sessions share this machine; figures are noisy when it is above ~1)",
        f"- wall time of the run: {time.monotonic() - started:.0f} s\n",
    ]
    for r in reports:
        parts.append(f"### {r.title}\n")
        parts.append(r.markdown() + "\n")
    return "\n".join(parts)


def record(name: str, reports: list[Report], started: float) -> None:
    """Append one dated section to bench/RESULTS.md."""
    text = section(name, reports, started)
    if not RESULTS.exists():
        RESULTS.write_text("# Shoal benchmark results\n\nEach section is appended by one run of a `bench/` command.\n")
    with RESULTS.open("a") as f:
        f.write(text)
    print(f"recorded in {RESULTS}")


# ---------------------------------------------------------------------------- the server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], X | None], timeout: float = 60.0, every: float = 0.02) -> X:
    deadline = time.monotonic() + timeout
    last: X | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class BenchServer:
    """A `python -m shoal.server` child process (so its CPU and memory are measurable on their own)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        heartbeat_interval: float = 1.0,
        heartbeat_timeout: float = 30.0,
        orphan_timeout: float = 60.0,
        port: int | None = None,
        log_level: str = "WARNING",
        dispatch_ahead: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: The server's `--dispatch-ahead` (None: its default).
        self.dispatch_ahead = dispatch_ahead
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        # The agent port (mutual TLS), the same over restarts on this data directory.
        agent_port_file = data_dir / "bench-agent-port"
        if not agent_port_file.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            agent_port_file.write_text(str(free_port()))
        self.agent_address = f"127.0.0.1:{agent_port_file.read_text().strip()}"
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.orphan_timeout = orphan_timeout
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.channel: grpc.Channel | None = None
        self.started_at = 0.0

    def spawn(self) -> None:
        """Start the process without waiting for it to answer."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115
        env = dict(os.environ, SHOAL_LOG_LEVEL=self.log_level)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.server",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                self.address,
                "--agent-listen",
                self.agent_address,
                "--heartbeat-interval",
                str(self.heartbeat_interval),
                "--heartbeat-timeout",
                str(self.heartbeat_timeout),
                "--agent-orphan-timeout",
                str(self.orphan_timeout),
                *([] if self.dispatch_ahead is None else ["--dispatch-ahead", str(self.dispatch_ahead)]),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=REPO,
        )
        log.close()
        self.ps = psutil.Process(self.proc.pid)

    def start(self, timeout: float = 60.0) -> BenchServer:
        self.spawn()
        self.connect(timeout)
        return self

    def connect(self, timeout: float = 60.0) -> None:
        creds = self.data_dir / "credentials.json"
        wait_for("server credentials", lambda: creds.exists() or None, timeout=timeout)
        found = from_file(creds)
        self.channel = authenticated(found.channel(CHANNEL_OPTIONS), found)
        self.pools = pool_pb2_grpc.PoolServiceStub(self.channel)
        self.jobs = job_pb2_grpc.JobServiceStub(self.channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(self.channel)
        wait_for("server to answer", self._answers, timeout=timeout)

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.data_dir / 'server.log'}")
        try:
            self.pools.ListPools(pool_pb2.ListPoolsRequest(), timeout=2)
            return True
        except grpc.RpcError:
            return False

    def agent_identity(self, name: str = "bench-simulated-agents") -> AgentIdentity:
        """A certificate with which simulated agents speak for any node on the agent port (the bench
        owns the server's data directory, and so its CA)."""
        return provider_identity_from(self.data_dir, name, self.agent_address)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def thread_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of the server's threads by name (main, the store's writer, gRPC's own threads...)."""
        assert self.ps is not None
        out: dict[str, float] = {}
        for th in self.ps.threads():
            try:
                name = Path(f"/proc/{self.ps.pid}/task/{th.id}/comm").read_text().strip()
            except OSError:
                continue
            if th.id == self.ps.pid:
                name = "main"
            out[name] = out.get(name, 0.0) + th.user_time + th.system_time
        return out

    def agents_cpu_seconds(self) -> float:
        """CPU of the agent processes (the server's direct children), tasks they spawned excluded."""
        return sum(self.agents_cpu_split()[:2])

    def cpu_split(self) -> tuple[float, float]:
        """The server process's (user, system) CPU seconds."""
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user), float(t.system)

    def agents_cpu_split(self) -> tuple[float, float, float]:
        """The agents' (user, system) CPU seconds, and that of the task processes they reaped."""
        assert self.ps is not None
        user = system = tasks = 0.0
        with contextlib.suppress(psutil.Error):
            for c in self.ps.children(recursive=False):
                with contextlib.suppress(psutil.Error):
                    t = c.cpu_times()
                    user += t.user
                    system += t.system
                    tasks += t.children_user + t.children_system
        return user, system, tasks

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def children_pids(self) -> list[int]:
        assert self.ps is not None
        with contextlib.suppress(psutil.Error):
            return [c.pid for c in self.ps.children(recursive=True)]
        return []

    def kill(self) -> None:
        """SIGKILL the server alone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def stop(self) -> None:
        """Stop the server and every process it started (the local agents and their tasks)."""
        agents = self.children_pids() if self.proc is not None and self.proc.poll() is None else []
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in agents:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    # -- conveniences

    def create_pool(self, pool_id: str, nodes: int, slots: int = 1, provider: str = "") -> pool_pb2.Pool:
        return self.pools.CreatePool(
            pool_pb2.CreatePoolRequest(
                pool=pool_pb2.Pool(id=pool_id, target_nodes=nodes, task_slots_per_node=slots, provider=provider)
            ),
            timeout=60,
        )

    def wait_nodes(self, pool_id: str, count: int, timeout: float = 120) -> None:
        def ready() -> bool:
            ns = self.pools.ListNodes(pool_pb2.ListNodesRequest(parent=f"pools/{pool_id}"), timeout=10).nodes
            return sum(n.state == pool_pb2.NODE_STATE_IDLE for n in ns) >= count

        wait_for(f"{count} idle nodes in {pool_id}", ready, timeout=timeout, every=0.1)

    def create_job(self, job_id: str, pool_id: str) -> job_pb2.Job:
        return self.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=job_id, pool_id=pool_id)), timeout=60)

    def add(self, job_id: str, specs: list[task_pb2.TaskSpec], timeout: float = 600) -> task_pb2.AddTasksResponse:
        return self.tasks.AddTasks(task_pb2.AddTasksRequest(parent=f"jobs/{job_id}", tasks=specs), timeout=timeout)

    def counts(self, job_id: str) -> job_pb2.TaskCounts:
        return self.jobs.GetJobTaskCounts(job_pb2.GetJobTaskCountsRequest(name=f"jobs/{job_id}"), timeout=30)


class Profiler:
    """py-spy attached to a pid, writing raw collapsed stacks (idle threads excluded)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.available = Path(exe).exists()
        self.proc: subprocess.Popen[bytes] | None = None
        if self.available:
            self.proc = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--format", "raw", "-o", str(out), "--rate", str(rate)]
                + (
                    (["--native"] if os.environ.get("SHOAL_BENCH_PROFILE_NATIVE") else [])
                    + (["--gil"] if os.environ.get("SHOAL_BENCH_PROFILE_GIL") else [])
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            keep = os.environ.get("SHOAL_BENCH_PROFILE_DIR")
            if keep and self.out.exists():
                # The run's temporary directory goes with it; keep the raw stacks for a closer look.
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(self.out, Path(keep) / self.out.name)


OWN_CODE = ("server/", "nodeagent/", "bench/", "shoal_root/", "client/")
#: Leaf frames of a thread that waits (py-spy's idle detection misses these): epoll, an idle executor
#: worker, a thread whose target is C code (the gRPC poller) blocked in it.
IDLE_LEAVES = (
    "EpollSelector.select (selectors.py",
    "_worker (concurrent/futures/thread.py:81)",
    "Thread.run (threading.py:982)",
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
)


@dataclass
class ProfileSummary:
    samples: int
    idle: int
    own: list[tuple[str, float]]
    own_code: list[tuple[str, float]]


def summarize(files: list[Path], n: int = 15) -> ProfileSummary:
    """Top frames by own time, and Shoal's own functions by inclusive time, in % of samples."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_s = line.rpartition(" ")
            try:
                count = int(count_s)
            except ValueError:
                continue
            frames = [short_frame(f) for f in stack.split(";") if f]
            if not frames:
                continue
            if frames[-1].startswith(IDLE_LEAVES):
                idle += count
                continue
            total += count
            own[frames[-1]] += count
            for f in {
                f.split(" (")[0] + " (" + f.split(" (", 1)[1].rsplit(":", 1)[0] + ")" for f in frames if "(" in f
            }:
                if any(m in f for m in OWN_CODE) and "__main__" not in f:
                    incl[f] += count
    if total == 0:
        return ProfileSummary(0, idle, [], [])

    def top_of(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, 100.0 * k / total) for f, k in c.most_common(n)]

    return ProfileSummary(total, idle, top_of(own), top_of(incl))


def function_of(frame: str) -> str:
    """`func (server/x.py:12)` -> `func (server/x.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def short_frame(frame: str) -> str:
    """`func (/long/path/shoal/server/x.py:12)` -> `func (server/x.py:12)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in (f"{REPO}/", "/site-packages/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def profile_markdown(label: str, prof: Profiler | list[Profiler], n: int = 15) -> list[str]:
    profs = prof if isinstance(prof, list) else [prof]
    s = summarize([p.out for p in profs], n)
    if not s.samples:
        return [f"Profile ({label}): py-spy not available or no samples."]
    where = ", ".join(f"`{p.out}`" for p in profs)
    lines = [
        f"**Profile: {label}** — py-spy at 100 Hz, {s.samples} busy samples ({s.idle} samples of waiting threads "
        f"left out: epoll, idle executor workers, the gRPC poller thread); raw stacks in {where}.",
        "",
    ]
    lines.append("Top frames by own time (% of busy samples):")
    lines.append("")
    lines += [f"- {p:5.1f}% `{f}`" for f, p in s.own]
    lines.append("")
    lines.append("Shoal functions by inclusive time (% of busy samples):")
    lines.append("")
    lines += [f"- {p:5.1f}% `{f}`" for f, p in s.own_code]
    return lines


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def kill_tree_of(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def file_create_cost_us(directory: Path, count: int = 500) -> float:
    """System CPU (µs) to create one empty file in a fresh directory under `directory`.

    Task runs create files (task directories, stdout/stderr), and what that costs
    depends on the filesystem and the moment: on this kind of machine it swung
    between ~8 µs and 300-500 µs within minutes, in /tmp and elsewhere.
    """
    work = Path(tempfile.mkdtemp(prefix="shoal-fscost-", dir=directory))
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        for i in range(count):
            os.close(os.open(work / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
        return (resource.getrusage(resource.RUSAGE_SELF).ru_stime - before) / count * 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
