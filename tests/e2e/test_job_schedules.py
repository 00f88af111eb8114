"""Job schedules end to end: a real server (its schedule minimum lowered to seconds, for the test) and
real agents; a schedule of three runs made from the `shoal` CLI, each job's job manager task running on a
node; and a schedule and the job it made surviving a SIGKILL of the server, neither lost nor doubled."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoal.client import Client, JobManagerTask, JobScheduleState, JobState, job_specification
from tests.e2e.harness import ServerProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", extra_args=("--schedule-min-interval", "1")).start()
    try:
        yield srv
    finally:
        srv.stop()


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "shoal.client.cli", "--address", server.address, *args],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done
    return done


def test_a_schedule_of_three_runs_and_a_server_sigkill(server: ServerProcess, client: Client) -> None:
    server.create_pool("p", 1)
    server.wait_nodes("p", 1)

    # A schedule's job, made and running, survives a SIGKILL of the server: not lost, not made twice.
    client.schedules.create(
        id="once",
        job=job_specification(pool_id="p", job_manager_task=JobManagerTask(command_line="sleep 2")),
    )
    wait_for("once:job-1", lambda: [j.id for j in client.schedules.jobs("once")] == ["once:job-1"] or None)
    server.kill()
    server.start()
    client = Client.connect(server.address, timeout=30)
    try:
        assert client.schedules.get("once").recent_job_id == "once:job-1"
        wait_for("once completed", lambda: client.schedules.get("once").state == JobScheduleState.COMPLETED or None)
        (job,) = client.schedules.jobs("once")
        assert job.id == "once:job-1" and job.state == JobState.COMPLETED and job.job_schedule_id == "once"
        assert job.terminate_reason == "JMComplete"

        # Three runs, two seconds apart, from the CLI: due at 0, 2 and 4 s from a start a little ahead (the
        # CLI's own start takes a moment); none after 5 s.
        start = datetime.now(UTC) + timedelta(seconds=3)
        cli(
            server,
            "schedule",
            "create",
            "every",
            "--pool",
            "p",
            "--interval",
            "2s",
            "--do-not-run-until",
            start.isoformat(),
            "--do-not-run-after",
            (start + timedelta(seconds=5)).isoformat(),
            "--job-manager",
            "sh -c 'echo run $SHOAL_JOB_ID'",
        )
        wait_for(
            "every completed",
            lambda: client.schedules.get("every").state == JobScheduleState.COMPLETED or None,
            timeout=60,
        )
        listed = cli(server, "schedule", "jobs", "every", "-o", "json").stdout.decode()
        ids = [j.id for j in client.schedules.jobs("every")]
        assert ids == ["every:job-1", "every:job-2", "every:job-3"], listed
        for job_id in ids:
            assert job_id in listed
            out = server.read_file(job_id, "jobmanager", "stdout.txt")
            assert out == f"run {job_id}\n".encode()
        shown = cli(server, "schedule", "get", "every").stdout.decode()
        assert "completed" in shown and "every:job-3" in shown
        cli(server, "schedule", "delete", "every")
        wait_for("every deleted", lambda: not [s for s in client.schedules.list() if s.id == "every"] or None)
        assert not [j for j in client.jobs.list() if j.job_schedule_id == "every"]
    finally:
        client.close()
