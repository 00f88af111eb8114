"""Shoal demo: an embedded cluster through a real workload (what `make demo` runs).

Starts `shoal up` (a control plane and a local pool of 3 nodes) as a
subprocess, then with the Python client:

1. uploads a generated input directory and a small word-count application to storage;
2. creates a pool `demo` of 2 nodes whose start task leaves a marker in the
   node's shared directory (tasks check it);
3. creates a job and adds ~300 tasks in one `add_many` call: word counts whose
   results go to an `outputs` container, some that fail on purpose (exit 3),
   one that fails on its first attempt and succeeds on retry, and one that
   exceeds a 1 s wall clock;
4. follows completions with a progress bar (`tasks.wait`, a server stream);
5. downloads the outputs, checks every result, prints a summary, reads one
   task's stdout through the API;
6. runs an MPI program (a 2-D heat-diffusion stencil with halo exchange,
   `examples/mpi/heat.py`) as a multi-instance task across two nodes of an
   inter-node pool, with a plain `mpiexec` whose proxies start through the
   node agents, and checks its result against a serial run;
7. cleans up and stops the cluster with SIGINT.

Exits non-zero when anything is not as expected.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoal.client import (
    Client,
    OutputFileSpec,
    ResourceFileSpec,
    ShoalError,
    StartTaskSpec,
    Task,
    TaskSpec,
)

console = Console()

INPUT_FILES = 10
WORDCOUNT_TASKS = 290
FAILING_TASKS = 6
JOB_ID = "wordcount"
INPUTS = "demo-inputs"
OUTPUTS = "outputs"

APP = textwrap.dedent(
    '''\
    """Word count over one input file; the demo's "application"."""
    import json
    import os
    import pathlib
    import sys

    shared = pathlib.Path(os.environ["SHOAL_NODE_SHARED_DIR"])
    if not (shared / "start-task-ran.txt").exists():
        print("the start task did not run on this node", file=sys.stderr)
        sys.exit(4)
    mode = sys.argv[1]
    if mode == "fail":
        print("failing on purpose", file=sys.stderr)
        sys.exit(3)
    if mode == "flaky":
        marker = shared / ("flaky-" + os.environ["SHOAL_TASK_ID"])
        first = os.environ.get("SHOAL_TASK_ATTEMPT", "1") in ("", "0", "1") and not marker.exists()
        marker.write_text("tried")
        if first:
            print("first attempt fails", file=sys.stderr)
            sys.exit(5)
        print("second attempt succeeds")
        sys.exit(0)
    source, target = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    words = source.read_text().split()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"input": source.name, "words": len(words), "distinct": len(set(words))}))
    print(f"{source.name}: {len(words)} words")
    '''
)

# The tasks run on this machine's local nodes: use this interpreter directly (a `python3` found through
# a version-manager shim can cost more to start than the task itself).
PYTHON = shlex.quote(sys.executable)

WORDS = [
    "shoal",
    "batch",
    "pool",
    "node",
    "job",
    "task",
    "start",
    "retry",
    "requeue",
    "storage",
    "blob",
    "output",
    "input",
    "mpi",
    "slot",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_inputs(root: Path) -> dict[str, tuple[int, int]]:
    """Write the input files and return {name: (words, distinct)}."""
    root.mkdir(parents=True)
    expected = {}
    for i in range(INPUT_FILES):
        words = [WORDS[(i * 7 + j * j) % len(WORDS)] for j in range(200 + 37 * i)]
        lines = [" ".join(words[k : k + 12]) for k in range(0, len(words), 12)]
        name = f"chunk-{i:02d}.txt"
        (root / name).write_text("\n".join(lines) + "\n")
        expected[name] = (len(words), len(set(words)))
    return expected


def start_cluster(data_dir: Path, address: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["SHOAL_HOME"] = str(data_dir / "home")  # keep the user's ~/.shoal/server.json untouched
    log = (data_dir / "up.log").open("wb")
    cmd = [
        sys.executable, "-m", "shoal.client.cli", "up",
        "--data-dir", str(data_dir / "cluster"),
        "--listen", address,
        "--nodes", "3",
        "--slots", "2",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_credentials(data_dir: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for `shoal up` to write the credentials file (address and keys, mode 0600) that clients read."""
    home = data_dir / "home"
    deadline = time.monotonic() + timeout
    while not (home / "credentials.json").exists():
        if proc.poll() is not None:
            raise RuntimeError(f"`shoal up` exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"`shoal up` wrote no credentials in {timeout:.0f}s")
        time.sleep(0.1)
    # This process is a client of that cluster: it finds the key where `shoal up` left it.
    os.environ["SHOAL_HOME"] = str(home)


def wait_for_server(client: Client, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"`shoal up` exited with code {proc.returncode}")
        try:
            client.pools.get("local")
            return
        except ShoalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop_cluster(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def build_tasks() -> list[TaskSpec]:
    # A prefix naming one blob stages just that blob; a blob keeps its full name (app/wordcount.py).
    app = ResourceFileSpec.from_container(INPUTS, blob_prefix="app/wordcount.py")
    resources = (app,)
    tasks = []
    for i in range(WORDCOUNT_TASKS):
        chunk = f"chunk-{i % INPUT_FILES:02d}.txt"
        tid = f"wc-{i:03d}"
        tasks.append(
            TaskSpec(
                id=tid,
                command_line=f"{PYTHON} app/wordcount.py count inputs/{chunk} out/{tid}.json",
                resource_files=(
                    app,
                    ResourceFileSpec.from_container(INPUTS, blob_prefix=f"inputs/{chunk}"),
                ),
                output_files=(OutputFileSpec(file_pattern="out/*.json", container=OUTPUTS, path="results/"),),
                max_task_retry_count=0,
            )
        )
    for k in range(FAILING_TASKS):
        tasks.append(
            TaskSpec(
                id=f"fail-{k}",
                command_line=f"{PYTHON} app/wordcount.py fail",
                resource_files=resources,
                output_files=(
                    OutputFileSpec(
                        file_pattern="../stderr.txt",
                        container=OUTPUTS,
                        path=f"logs/fail-{k}.txt",
                        upload_condition="failure",
                    ),
                ),
                max_task_retry_count=0,
            )
        )
    tasks.append(
        TaskSpec(
            id="flaky",
            command_line=f"{PYTHON} app/wordcount.py flaky",
            resource_files=resources,
            max_task_retry_count=2,
        )
    )
    tasks.append(
        TaskSpec(
            id="too-slow",
            command_line=f"{PYTHON} -c 'import time; time.sleep(30)'",
            max_wall_clock_time=timedelta(seconds=1),
            max_task_retry_count=0,
        )
    )
    return tasks


def run(client: Client, work: Path) -> list[str]:
    """The workload; returns the list of problems found (empty when all is well)."""
    problems: list[str] = []
    expected = make_inputs(work / "inputs")
    (work / "app").mkdir()
    (work / "app" / "wordcount.py").write_text(APP)

    client.storage.create_container(INPUTS)
    client.storage.create_container(OUTPUTS)
    uploaded = client.storage.upload_directory(INPUTS, work / "inputs", prefix="inputs/")
    uploaded.append(client.storage.upload_file(INPUTS, work / "app" / "wordcount.py", "app/wordcount.py"))
    console.print(f"uploaded {len(uploaded)} blobs to [bold]{INPUTS}[/]")

    marker = (
        'python3 -c "import os, pathlib; '
        "pathlib.Path(os.environ['SHOAL_NODE_SHARED_DIR'], 'start-task-ran.txt').write_text('ok')\""
    )
    client.pools.create(
        id="demo",
        target_nodes=2,
        task_slots_per_node=2,
        start_task=StartTaskSpec(command_line=marker, wait_for_success=True),
    )
    nodes = client.pools.wait_nodes_idle("demo", count=2, timeout=60)
    console.print(f"pool [bold]demo[/]: {len(nodes)} nodes ready, start task done")

    client.jobs.create(id=JOB_ID, pool_id="demo", max_task_retry_count=0, common_environment={"DEMO": "1"})
    specs = build_tasks()
    started = time.monotonic()
    results = client.tasks.add_many(JOB_ID, specs)
    added = sum(r.ok for r in results)
    console.print(f"added {added} tasks in {time.monotonic() - started:.2f}s")
    if added != len(specs):
        problems.append(f"only {added} of {len(specs)} tasks were added")

    done: dict[str, Task] = {}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"job {JOB_ID}", total=len(specs), ok=0, failed=0)
        for task in client.tasks.wait(JOB_ID, timeout=180):
            done[task.id] = task
            failed = sum(1 for t in done.values() if t.failed)
            progress.update(bar, completed=len(done), ok=len(done) - failed, failed=failed)
    elapsed = time.monotonic() - started

    # ---- check each kind of task
    for i in range(WORDCOUNT_TASKS):
        t = done.get(f"wc-{i:03d}")
        if t is None or not t.succeeded:
            problems.append(f"wc-{i:03d} did not succeed: {t and (t.exit_code, t.failure)}")
    for k in range(FAILING_TASKS):
        t = done.get(f"fail-{k}")
        if t is None or not t.failed or t.exit_code != 3 or not t.failure or t.failure.code != "FailureExitCode":
            problems.append(f"fail-{k} should have failed with exit code 3: {t and (t.exit_code, t.failure)}")
    flaky = done.get("flaky")
    if flaky is None or not flaky.succeeded or flaky.retry_count < 1:
        problems.append(f"flaky should succeed after a retry: {flaky and (flaky.result, flaky.retry_count)}")
    slow = done.get("too-slow")
    if slow is None or not slow.failed or not slow.failure or slow.failure.code != "TaskEnded":
        problems.append(f"too-slow should end with TaskEnded: {slow and slow.failure}")

    # ---- outputs
    out_dir = work / "downloaded"
    paths = client.storage.download_prefix(OUTPUTS, "results/", out_dir)
    wrong = 0
    for i in range(WORDCOUNT_TASKS):
        path = out_dir / "results" / f"wc-{i:03d}.json"
        chunk = f"chunk-{i % INPUT_FILES:02d}.txt"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            wrong += 1
            continue
        if (data["words"], data["distinct"]) != expected[chunk]:
            wrong += 1
    if len(paths) != WORDCOUNT_TASKS or wrong:
        problems.append(f"outputs: {len(paths)} downloaded, {wrong} missing or wrong")
    logs = list(client.storage.list_blobs(OUTPUTS, prefix="logs/"))
    if len(logs) != FAILING_TASKS:
        problems.append(f"expected {FAILING_TASKS} stderr logs of failed tasks, found {len(logs)}")

    # ---- summary
    all_tasks = list(client.tasks.list(JOB_ID))
    by_code = collections.Counter(t.failure.code for t in all_tasks if t.failed and t.failure)
    table = Table(title="demo summary", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("tasks", str(len(all_tasks)))
    table.add_row("succeeded", str(sum(t.succeeded for t in all_tasks)))
    for code, n in sorted(by_code.items()):
        table.add_row(f"failed: {code}", str(n))
    table.add_row("retries", str(sum(t.retry_count for t in all_tasks)))
    table.add_row("requeues", str(sum(t.requeue_count for t in all_tasks)))
    table.add_row("outputs downloaded", str(len(paths)))
    table.add_row("elapsed (add → all done)", f"{elapsed:.1f}s")
    table.add_row("tasks/s", f"{len(all_tasks) / elapsed:.1f}")
    console.print(table)

    stdout = client.tasks.read_file(JOB_ID, "wc-007", "stdout.txt").decode()
    console.print(f"stdout of wc-007 (through the API): [cyan]{stdout.strip()}[/]")
    if "chunk-07.txt" not in stdout:
        problems.append(f"unexpected stdout of wc-007: {stdout!r}")

    problems += run_mpi_step(client)

    # ---- clean up
    client.jobs.delete(JOB_ID)
    client.pools.delete("demo")
    client.pools.delete("local")
    client.storage.delete_container(INPUTS)
    client.storage.delete_container(OUTPUTS)
    return problems


def run_mpi_step(client: Client) -> list[str]:
    """A 4-rank MPI job over two nodes: heat diffusion, checked against a serial run by rank 0."""
    from shoal.client.run import run_mpi

    try:
        import mpi4py  # noqa: F401
    except ImportError:
        console.print("[yellow]mpi4py is not installed: skipping the MPI step[/]")
        return []
    client.pools.create(id="mpi", target_nodes=2, task_slots_per_node=1, enable_inter_node_communication=True)
    client.pools.wait_nodes_idle("mpi", count=2, timeout=60)
    heat = Path(__file__).resolve().parent / "mpi" / "heat.py"
    started = time.monotonic()
    task = run_mpi(
        client,
        pool_id="mpi",
        nodes=2,
        ppn=2,
        program=["python", "heat.py", "--nx", "160", "--ny", "120", "--steps", "300"],
        job_id="mpi-demo",
        task_id="heat",
        files=[heat],
        timeout=120,
    )
    out = client.tasks.read_file("mpi-demo", "heat", "stdout.txt").decode().strip()
    nodes = sorted({s.node_id for s in client.tasks.subtasks("mpi-demo", "heat") if s.node_id})
    console.print(f"MPI task on {', '.join(nodes)} in {time.monotonic() - started:.1f}s: [cyan]{out}[/]")
    problems = []
    if not task.succeeded or "OK" not in out or "4 ranks" not in out:
        problems.append(f"the MPI task did not succeed: {task.failure_code} {task.failure_message} {out!r}")
    if len(nodes) != 2:
        problems.append(f"the MPI task ran on {nodes}, not two nodes")
    client.jobs.delete("mpi-demo")
    client.pools.delete("mpi")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="Where the cluster keeps its state (default: temp)")
    parser.add_argument("--keep", action="store_true", help="Keep the data directory afterwards.")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="shoal-demo-"))
    if args.data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
    address = f"127.0.0.1:{free_port()}"
    console.rule("[bold]Shoal demo")
    console.print(f"starting `shoal up` on {address} (3 nodes x 2 slots), data in {data_dir}")
    overall = time.monotonic()
    proc = start_cluster(data_dir, address)
    problems: list[str] = []
    try:
        wait_for_credentials(data_dir, proc, timeout=60)
        with Client.connect(address, timeout=30) as client:
            wait_for_server(client, proc, timeout=30)
            client.pools.wait_nodes_idle("local", count=3, timeout=60)
            console.print("cluster up: pool [bold]local[/] has 3 idle nodes")
            problems = run(client, data_dir / "work")
    except (ShoalError, RuntimeError, OSError) as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        stop_cluster(proc)
    if proc.returncode not in (0, None):
        problems.append(f"`shoal up` exited with code {proc.returncode}")
    if problems:
        console.print("[bold red]demo FAILED:[/]")
        for p in problems:
            console.print(f"  - {p}")
        log = data_dir / "up.log"
        if log.exists():
            console.print("[dim]last lines of the cluster log:[/]")
            console.print("\n".join(log.read_text(errors="replace").splitlines()[-25:]), markup=False)
        console.print(f"state kept in {data_dir}")
        return 1
    console.print(f"[bold green]demo OK[/] in {time.monotonic() - overall:.1f}s")
    if not args.keep and args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
