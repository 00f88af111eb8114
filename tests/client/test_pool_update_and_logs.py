"""``pools.update`` and ``pools.upload_node_logs`` in the client, and ``shoal pool update`` / ``shoal node logs``,
against the fake API (tests/client/fake_server.py), which records what they send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoal.client import CertificateReference, Client, InvalidArgument, StartTaskSpec, UploadedNodeLogs
from shoal.client.cli_nodes import parse_when
from shoal.v1 import identity_pb2

from .fake_server import FakeServer

pytestmark = pytest.mark.timeout(60)

THUMB = "ab" * 20


def test_update_sends_a_mask_of_exactly_the_fields_given(client: Client, fake: FakeServer) -> None:
    client.pools.create(id="p", target_nodes=1, start_task=StartTaskSpec(command_line="echo old"))
    p = client.pools.update("p", display_name="render", metadata={"team": "a"})
    request = fake.state.update_pool_requests[-1]
    assert list(request.update_mask.paths) == ["display_name", "metadata"] and request.pool.name == "pools/p"
    assert p.display_name == "render" and p.metadata == {"team": "a"}
    assert p.start_task is not None and p.start_task.command_line == "echo old"

    client.pools.update(
        "p",
        start_task=StartTaskSpec(command_line="echo new"),
        certificates=[CertificateReference(thumbprint=THUMB)],
        target_nodes=3,
        resize_timeout=timedelta(minutes=10),
        etag="e1",
    )
    request = fake.state.update_pool_requests[-1]
    assert list(request.update_mask.paths) == ["start_task", "certificate_references", "target_nodes", "resize_timeout"]
    assert request.pool.start_task.command_line == "echo new" and request.etag == "e1"
    assert request.pool.certificate_references[0].thumbprint == THUMB
    assert request.pool.target_nodes == 3 and request.pool.resize_timeout.seconds == 600

    # Empty values clear; the start task is removed only when asked.
    p = client.pools.update("p", metadata={}, certificates=[], remove_start_task=True)
    assert list(fake.state.update_pool_requests[-1].update_mask.paths) == [
        "metadata",
        "start_task",
        "certificate_references",
    ]
    assert p.start_task is None and p.metadata == {} and p.certificate_references == ()


def test_update_refuses_nothing_or_contradictions_before_sending(client: Client, fake: FakeServer) -> None:
    client.pools.create(id="p")
    with pytest.raises(InvalidArgument):
        client.pools.update("p")
    with pytest.raises(InvalidArgument):
        client.pools.update("p", start_task=StartTaskSpec(command_line="x"), remove_start_task=True)
    assert fake.state.update_pool_requests == []


def test_upload_node_logs(client: Client, fake: FakeServer) -> None:
    client.pools.create(id="p", target_nodes=1)
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    up = client.pools.upload_node_logs("p", "node-1", "logs", start_time=start, end_time=start + timedelta(hours=1))
    assert up == UploadedNodeLogs("logs", "p/node-1/20260301T120000000000Z-0123abcd", 1)
    request = fake.state.upload_logs_requests[-1]
    assert request.name == "pools/p/nodes/node-1" and request.container == "logs"
    assert request.start_time.ToDatetime(UTC) == start
    assert request.end_time.ToDatetime(UTC) == start + timedelta(hours=1)
    client.pools.upload_node_logs("p", "node-1", "logs", start_time=datetime(2026, 3, 1, 10))
    naive = fake.state.upload_logs_requests[-1]
    assert naive.start_time.ToDatetime(UTC) == datetime(2026, 3, 1, 10).astimezone(UTC)
    assert not naive.HasField("end_time")


def test_parse_when() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_when("now", "--start", now) == now
    assert parse_when("90s", "--start", now) == now - timedelta(seconds=90)
    assert parse_when("2h", "--start", now) == now - timedelta(hours=2)
    assert parse_when("1.5d", "--start", now) == now - timedelta(hours=36)
    assert parse_when("2026-02-01T00:00:00+00:00", "--start", now) == datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_when("2026-02-01T00:00", "--start", now) == datetime(2026, 2, 1).astimezone()
    import click

    with pytest.raises(click.BadParameter):
        parse_when("yesterday", "--start", now)


def test_cli_pool_update(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1", "--start-task", "echo old")
    r = run(
        "pool",
        "update",
        "p",
        "--display-name",
        "render",
        "--metadata",
        "team=a",
        "--metadata",
        "tier=b=c",
        "--start-task",
        "echo new",
        "--start-task-env",
        "X=1",
        "--certificate",
        f"{THUMB}:task",
        "--target",
        "2",
        "-o",
        "json",
    )
    assert r.exit_code == 0, r.output
    request = fake.state.update_pool_requests[-1]
    assert list(request.update_mask.paths) == [
        "display_name",
        "metadata",
        "start_task",
        "certificate_references",
        "target_nodes",
    ]
    assert [(m.name, m.value) for m in request.pool.metadata] == [("team", "a"), ("tier", "b=c")]
    assert request.pool.start_task.command_line == "echo new"
    assert [(e.name, e.value) for e in request.pool.start_task.environment_settings] == [("X", "1")]
    assert request.pool.target_nodes == 2
    assert '"display_name": "render"' in r.output
    r = run("pool", "update", "p", "--clear-metadata", "--remove-start-task")
    assert r.exit_code == 0, r.output
    assert list(fake.state.update_pool_requests[-1].update_mask.paths) == ["metadata", "start_task"]
    r = run("pool", "update", "p", "--start-task", "x", "--remove-start-task")
    assert r.exit_code != 0 and "exclude each other" in r.output
    assert "update" in run("pool", "--help").output


def test_cli_pool_create_still_takes_its_start_task(run, fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "pool",
        "create",
        "p",
        "--start-task",
        "echo hi",
        "--start-task-run-as",
        "pool",
        "--start-task-elevation",
        "admin",
    )
    assert r.exit_code == 0, r.output
    st = fake.state.pools["p"].start_task
    assert st.command_line == "echo hi" and st.wait_for_success
    assert st.user_identity.auto_user.elevation_level == identity_pb2.ELEVATION_LEVEL_ADMIN
    r = run("pool", "create", "q", "--start-task-run-as", "pool")
    assert r.exit_code != 0 and "need --start-task" in r.output


def test_cli_node_logs(run, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    r = run("node", "logs", "p", "node-1", "--container", "logs", "--start", "2h", "--download", str(tmp_path / "d"))
    assert r.exit_code == 0, r.output
    assert "1 file(s) uploaded to logs/p/node-1/20260301T120000000000Z-0123abcd/" in r.output
    got = tmp_path / "d" / "p" / "node-1" / "20260301T120000000000Z-0123abcd" / "agent.log"
    assert got.read_bytes() == b"the agent's log\n"
    request = fake.state.upload_logs_requests[-1]
    ago = datetime.now(UTC) - request.start_time.ToDatetime(UTC)
    assert timedelta(hours=2) - timedelta(minutes=1) < ago < timedelta(hours=2) + timedelta(minutes=1)
    r = run("node", "logs", "p", "node-1", "--container", "logs", "--start", "whenever")
    assert r.exit_code != 0 and "is not a time" in r.output
