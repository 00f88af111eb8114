"""What the `shoal` CLI prints, against a real `shoal server` and its local agents: tables that fit an
80- or 200-column terminal (the real entry point in a pseudo-terminal of that size, and click's
CliRunner with $COLUMNS), plain aligned text off a terminal, key: value `get`s, the output options
(--no-headers, -o wide|name|json|tsv, --query), `shoal queue`, --watch (from the server's watch stream
and by re-reading), and errors that say each thing once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from shoal.client import Client, TaskSpec
from shoal.client.cli import cli
from tests.e2e.harness import ServerProcess, wait_for
from tests.e2e.ptyrun import PtyProcess, run_in_pty

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DONE = [f"t-done-{i}" for i in range(1, 5)]
LONG = ["t-long-a", "t-long-b"]
WAITING = ["w1", "w2"]
_BOXES = set("│┃━─┏┓┗┛┡┩└┘├┤┼╇╈")
# Values that change between two readings (times, counts, percentages): not words a table could split.
_VOLATILE = re.compile(r"^[\d:./%-]+$|^\d+[dhms](\d+[hms])?$")


class Cluster:
    """The server, a Python client of it, and the arguments that point the CLI at it."""

    def __init__(self, server: ServerProcess, ca: Path) -> None:
        creds = json.loads((server.data_dir / "credentials.json").read_text())
        self.server = server
        self.args = ["--address", server.address, "--key", creds["key"], "--ca-cert", str(ca)]
        ca.write_text(creds["ca_cert"])
        self.client = Client.connect(server.address, key=creds["key"], ca_cert=ca, timeout=30)

    def run(self, *args: str, columns: int | None = None, ok: bool = True):  # type: ignore[no-untyped-def]
        """The CLI through CliRunner (stdout is no terminal), $COLUMNS set when ``columns`` is."""
        env = {"COLUMNS": str(columns)} if columns else {"COLUMNS": None}  # type: ignore[dict-item]
        r = CliRunner().invoke(cli, [*self.args, *args], env=env, catch_exceptions=False)
        if ok:
            assert r.exit_code == 0, (args, r.stdout, r.stderr)
        return r

    def command(self, *args: str) -> list[str]:
        """The real `shoal` entry point with ``args``."""
        script = Path(sys.executable).with_name("shoal")
        head = [str(script)] if script.exists() else [sys.executable, "-m", "shoal.client.cli"]
        return [*head, *self.args, *args]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return {**env, "TERM": "xterm"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cli-output")
    server = ServerProcess(root / "data").start()
    try:
        c = Cluster(server, root / "ca.pem")
        c.client.pools.create(id="p", target_nodes=2, task_slots_per_node=2)
        c.client.pools.create(id="empty", target_nodes=0)
        c.client.jobs.create(id="j", pool_id="p")
        specs = [TaskSpec(id=t, command_line=f"/bin/echo finished {t}") for t in DONE]
        specs += [TaskSpec(id=t, command_line="/bin/sleep 600") for t in LONG]
        c.client.tasks.add_many("j", specs)
        c.client.jobs.create(id="k", pool_id="empty")
        c.client.tasks.add_many("k", [TaskSpec(id=t, command_line="/bin/true") for t in WAITING])

        def settled() -> bool:
            states = {t.id: str(t.state) for t in c.client.tasks.list("j")}
            return all(states[t] == "completed" for t in DONE) and all(states[t] == "running" for t in LONG)

        wait_for("the quick tasks to complete and the long ones to run", settled, timeout=90)
        yield c
        c.client.close()
    finally:
        server.stop()


def _words(text: str) -> set[str]:
    return set(text.split())


def _check_fits(text: str, columns: int, allowed: set[str]) -> None:
    """No line wider than the terminal, no box drawing, and every word one that the unlimited (wide)
    output has whole: a word split across lines would leave pieces that are not. (A path too long for
    a line is cut after a slash: its pieces are joined again first.)"""
    for line in text.splitlines():
        assert cell_len(line) <= columns, f"{cell_len(line)} > {columns}: {line!r}\n{text}"
        assert not (_BOXES & set(line)), line
    joined = re.sub(r"/\n +", "/", text)
    for line in joined.splitlines():
        for word in line.split():
            assert word in allowed or _VOLATILE.match(word), f"{word!r} is not a whole word of:\n{text}"


# --------------------------------------------------------------------------- a real terminal


LIST_COMMANDS = [
    ("task", "list", "j"),
    ("node", "list", "p"),
    ("pool", "list"),
    ("job", "list"),
    ("queue",),
]


@pytest.mark.parametrize("columns", [80, 200])
def test_lists_fit_a_real_terminal(cluster: Cluster, columns: int) -> None:
    shown_columns = {}
    for args in LIST_COMMANDS:
        wide = cluster.run(*args, "-o", "wide").stdout
        code, text = run_in_pty(cluster.command(*args), columns=columns, env=cluster.env())
        assert code == 0, text
        title, header, *rows = text.splitlines()
        allowed = _words(wide) | _words(title)
        _check_fits(text, columns, allowed)
        # The id column is always there; each row is one line.
        assert header.split()[0] in ("id", "job"), text
        assert len(rows) == len(wide.splitlines()) - 1, text
        shown_columns[args] = header.split()
    assert shown_columns[("task", "list", "j")][:2] == ["id", "state"]
    if columns == 200:
        # Room for all: the command line of each task shows.
        assert "command" in shown_columns[("task", "list", "j")]
    else:
        assert "command" not in shown_columns[("task", "list", "j")]


@pytest.mark.parametrize("columns", [80, 200])
def test_get_is_key_value_lines_that_fit(cluster: Cluster, columns: int) -> None:
    unlimited = cluster.run("task", "get", "j", "t-long-a").stdout
    code, text = run_in_pty(cluster.command("task", "get", "j", "t-long-a"), columns=columns, env=cluster.env())
    assert code == 0, text
    _check_fits(text, columns, _words(unlimited) | {"jobs/j/tasks/t-long-a"})
    lines = text.splitlines()
    assert lines[0] == "jobs/j/tasks/t-long-a"  # the title, on a terminal
    assert re.match(r"^id: +t-long-a$", lines[1]), text
    assert re.search(r"^state: +running$", text, re.M) and re.search(r"^spec:$", text, re.M)
    assert re.search(r"^  command_line: +/bin/sleep 600$", text, re.M), text


def test_watch_streams_task_changes_until_ctrl_c(cluster: Cluster) -> None:
    term = PtyProcess(cluster.command("task", "list", "j", "--watch"), columns=80, env=cluster.env())
    try:
        term.read_until("the first listing", lambda t: all(x in t for x in [*DONE, *LONG]))
        before = term.text
        cluster.client.tasks.add("j", TaskSpec(id="t-new", command_line="/bin/echo new"))
        text = term.read_until("t-new's completion", lambda t: re.search(r"^t-new +completed", t, re.M) is not None)
        changes = text[len(before) :].splitlines()
        # One line per change, as the table's rows: the new task waiting (or placed), then completed.
        assert all(line.split()[0] == "t-new" for line in changes if line.strip()), changes
        states = {"active", "preparing", "running", "completed", "success"}
        wide = cluster.run("task", "list", "j", "-o", "wide").stdout
        _check_fits(text, 80, _words(wide) | _words(text.splitlines()[0]) | states)
    finally:
        term.interrupt()
        try:
            code, text = term.finish()
        finally:  # (the module's other tests share the cluster)
            cluster.client.tasks.delete("j", "t-new")
    assert code == 130, text
    assert "Traceback" not in text and text.rstrip().endswith("interrupted")


def test_watch_streams_nodes_that_come_and_go(cluster: Cluster) -> None:
    cluster.client.pools.create(id="grows", target_nodes=0)
    term = PtyProcess(cluster.command("node", "list", "grows", "-w", "-o", "wide"), columns=200, env=cluster.env())
    try:
        # An empty pool: the header (so that the rows to come line up under it), then nothing.
        term.read_until("the header", lambda t: re.search(r"^id +pool +state", t, re.M) is not None)
        cluster.client.pools.resize("grows", 1)
        term.read_until("an idle node", lambda t: re.search(r"^\S+ +grows +idle ", t, re.M) is not None)
        cluster.client.pools.resize("grows", 0)
        text = term.read_until("its removal", lambda t: re.search(r"^\S+ +grows +deleted ", t, re.M) is not None)
        assert all(cell_len(line) <= 200 for line in text.splitlines())
    finally:
        term.interrupt()
        try:
            code, text = term.finish()
        finally:  # (the module's other tests share the cluster)
            cluster.client.pools.delete("grows")
    assert code == 130, text


def test_watch_of_a_listing_without_a_stream_prints_changed_rows(cluster: Cluster) -> None:
    args = ("job", "list", "--watch", "--watch-interval", "0.2")
    term = PtyProcess(cluster.command(*args), columns=80, env=cluster.env())
    try:
        term.read_until("the first listing", lambda t: re.search(r"^k +empty", t, re.M) is not None)
        before = term.text
        cluster.client.jobs.create(id="later", pool_id="p")
        text = term.read_until("the new job", lambda t: re.search(r"^later +p +active", t, re.M) is not None)
        cluster.client.jobs.disable("later")
        text = term.read_until("its change", lambda t: re.search(r"^later +p +disabl", t, re.M) is not None)
        # Only rows that changed: j and k are not printed again.
        assert not re.search(r"^(j|k) ", text[len(before) :], re.M), text
    finally:
        term.interrupt()
        try:
            code, text = term.finish()
        finally:  # (the module's other tests share the cluster)
            cluster.client.jobs.delete("later")
    assert code == 130, text


# --------------------------------------------------------------------------- CliRunner, $COLUMNS


def test_columns_are_chosen_by_width_and_aligned_off_a_terminal(cluster: Cluster) -> None:
    wide = cluster.run("task", "list", "j", "-o", "wide").stdout
    narrow = cluster.run("task", "list", "j", columns=80).stdout
    _check_fits(narrow, 80, _words(wide))
    assert len(narrow.splitlines()[0].split()) < len(wide.splitlines()[0].split())
    # Off a terminal, without $COLUMNS: every column, plain text aligned under the headers, no title.
    plain = cluster.run("task", "list", "j").stdout
    header, *rows = plain.splitlines()
    assert header.split()[:3] == ["id", "state", "result"] and "command" in header
    assert not (_BOXES & set(plain))
    start = header.index("state")
    for row in rows:
        assert row[start - 2 : start] == "  " and row[start] != " ", plain
    assert sorted(r.split()[0] for r in rows) == sorted(DONE + LONG)


def test_output_options(cluster: Cluster) -> None:
    ids = sorted(DONE + LONG)
    assert sorted(cluster.run("task", "list", "j", "-o", "name").stdout.split()) == ids
    no_headers = cluster.run("task", "list", "j", "--no-headers").stdout.splitlines()
    assert sorted(line.split()[0] for line in no_headers) == ids
    data = json.loads(cluster.run("task", "list", "j", "-o", "json").stdout)
    assert sorted(t["id"] for t in data) == ids
    running = json.loads(cluster.run("task", "list", "j", "--query", "[?state=='running'].id").stdout)
    assert sorted(running) == LONG
    tsv = cluster.run("task", "list", "j", "--query", "[?state=='running'].[id, state, node_id]", "-o", "tsv").stdout
    rows = [line.split("\t") for line in tsv.splitlines()]
    assert sorted(r[:2] for r in rows) == [[t, "running"] for t in LONG] and all(r[2] for r in rows)
    assert cluster.run("task", "get", "j", "t-long-a", "--query", "state", "-o", "tsv").stdout == "running\n"
    assert cluster.run("task", "get", "j", "t-long-a", "-o", "name").stdout == "t-long-a\n"
    assert cluster.run("pool", "list", "-o", "name").stdout.split() == ["empty", "p"]
    assert sorted(cluster.run("node", "list", "p", "-o", "name").stdout.split()) == sorted(
        n.id for n in cluster.client.pools.nodes("p")
    )
    # Key: value for a get, nested fields indented, long values wrapped at spaces to $COLUMNS.
    got = cluster.run("pool", "get", "p", columns=80).stdout
    assert re.search(r"^id: +p$", got, re.M) and re.search(r"^task_slots_per_node: +2$", got, re.M)
    assert all(cell_len(line) <= 80 for line in got.splitlines())
    # Bad options change nothing and say why.
    r = cluster.run("task", "list", "j", "--query", "[?", ok=False)
    assert r.exit_code == 2 and "not a JMESPath expression" in r.stderr
    r = cluster.run("pool", "create", "nope", "--query", "id", "-o", "name", ok=False)
    assert r.exit_code == 2 and "--query" in r.stderr
    assert "nope" not in cluster.run("pool", "list", "-o", "name").stdout


def test_queue_shows_what_runs_and_why_the_rest_waits(cluster: Cluster) -> None:
    out = cluster.run("queue", columns=80).stdout
    header, *rows = out.splitlines()
    assert header.split() == ["job", "task", "state", "node", "pool", "time", "reason"]
    cells = {tuple(r.split()[:2]): r.split() for r in rows}
    assert set(cells) == {("j", t) for t in LONG} | {("k", t) for t in WAITING}
    for t in LONG:
        _job, _task, state, node, pool, _time, _reason = cells[("j", t)]
        assert state == "running" and node.startswith(("node", "p")) and pool == "p"
    for t in WAITING:
        assert cells[("k", t)][2:4] == ["active", "-"] and cells[("k", t)][4] == "empty"
        assert cells[("k", t)][-1] == "PoolEmpty"  # (`shoal job counts`' word for it too)
    # Running first, then waiting.
    assert [r.split()[2] for r in rows] == ["running", "running", "active", "active"]
    assert cluster.run("squeue", "--state", "active", "-o", "name").stdout.splitlines() == ["k w1", "k w2"]
    only_p = json.loads(cluster.run("queue", "--pool", "p", "-o", "json").stdout)
    assert sorted(e["task_id"] for e in only_p) == LONG and all(e["seconds"] >= 0 for e in only_p)
    assert cluster.run("queue", "--job", "k", "--query", "[].reason", "-o", "tsv").stdout == "PoolEmpty\nPoolEmpty\n"
    waiting = json.loads(cluster.run("queue", "--job", "k", "-o", "json").stdout)
    assert {(e["reason"], e["stuck"]) for e in waiting} == {("PoolEmpty", True)}
    assert all(e["reason_message"].startswith("pool empty has no nodes and a target of 0") for e in waiting)
    wide = cluster.run("queue", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-4:] == ["priority", "slots", "command", "why"]
    assert sum("`shoal pool resize empty --nodes N`" in line for line in wide) == len(WAITING)


def test_an_error_says_each_thing_once(cluster: Cluster) -> None:
    r = cluster.run("task", "add", "j", "bad id", "/bin/true", ok=False)
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: INVALID_ARGUMENT ")
    # The violation (field and text) is there once, whether the message is it or not.
    assert line.count("task.id") == 1, line
    r = cluster.run("pool", "create", "bad id", "--slots", "999", ok=False)
    line = r.stderr.strip()
    assert line.count("pool.id") == 1 and line.count("pool.task_slots_per_node") == 1, line


def test_piped_output_of_the_real_entry_point_is_plain(cluster: Cluster) -> None:
    proc = subprocess.run(
        cluster.command("task", "list", "j"), capture_output=True, text=True, env=cluster.env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert not (_BOXES & set(proc.stdout)) and "\x1b[" not in proc.stdout
    header = proc.stdout.splitlines()[0]
    assert header.split()[0] == "id" and "command" in header
