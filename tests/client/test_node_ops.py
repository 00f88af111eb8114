"""Node operations in the client and the CLI: scheduling state, disable options, node counts.

Type conversions are checked on protos; the client methods and the CLI against the fake API on a real
in-process gRPC server (tests/client/fake_server.py), which only records and answers.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from shoal.client import (
    Cancelled,
    Client,
    DeadlineExceeded,
    DisableNodeSchedulingOption,
    FailedPrecondition,
    InvalidArgument,
    Node,
    NodeCounts,
    NodeState,
    PoolNodeCounts,
    SchedulingState,
)
from shoal.client.node_types import disable_node_scheduling_option_to_proto
from shoal.v1 import pool_pb2

from .fake_server import FakeServer

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- types


def test_node_from_proto_reads_the_node_operation_fields() -> None:
    msg = pool_pb2.Node(
        name="pools/p/nodes/n1",
        id="n1",
        pool_id="p",
        state=pool_pb2.NODE_STATE_OFFLINE,
        scheduling_state=pool_pb2.SCHEDULING_STATE_DISABLED,
        is_dedicated=True,
        running_tasks_count=3,
        agent_version="0.9.1",
    )
    msg.allocation_time.FromDatetime(datetime(2025, 1, 2, 3, 4, 5))
    msg.last_boot_time.FromDatetime(datetime(2025, 1, 2, 3, 5, 0))
    node = Node.from_proto(msg)
    assert node.state == NodeState.OFFLINE
    assert node.scheduling_state is SchedulingState.DISABLED
    assert node.scheduling_state == "disabled"
    assert node.is_dedicated is True
    assert node.running_tasks_count == 3
    assert node.agent_version == "0.9.1"
    assert node.allocation_time == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert node.last_boot_time == datetime(2025, 1, 2, 3, 5, 0, tzinfo=UTC)


def test_node_scheduling_unspecified_reads_as_enabled_and_times_unset_as_none() -> None:
    node = Node.from_proto(pool_pb2.Node(id="n1", state=pool_pb2.NODE_STATE_IDLE))
    assert node.scheduling_state is SchedulingState.ENABLED
    assert node.allocation_time is None and node.last_boot_time is None
    assert node.running_tasks_count == 0 and node.agent_version == ""
    enabled = Node.from_proto(pool_pb2.Node(id="n1", scheduling_state=pool_pb2.SCHEDULING_STATE_ENABLED))
    assert enabled.scheduling_state is SchedulingState.ENABLED


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("requeue", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE),
        ("REQUEUE", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE),
        ("terminate", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE),
        ("taskcompletion", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION),
        ("task_completion", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION),
        ("TaskCompletion", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION),
        ("task-completion", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION),
        (DisableNodeSchedulingOption.TERMINATE, pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE),
    ],
)
def test_disable_option_spellings(given: str, expected: int) -> None:
    assert disable_node_scheduling_option_to_proto(given) == expected


def test_unknown_disable_option_is_a_field_violation() -> None:
    with pytest.raises(InvalidArgument) as e:
        disable_node_scheduling_option_to_proto("retaineddata")
    assert e.value.reason == "INVALID_OPTION"
    assert e.value.field_violations[0][0] == "option"
    assert "taskcompletion" in e.value.field_violations[0][1]


def test_node_counts_from_proto_and_by_state_in_batch_order() -> None:
    msg = pool_pb2.PoolNodeCounts(
        pool_id="p",
        dedicated=pool_pb2.NodeCounts(offline=1, idle=2, waiting_for_start_task=1, leaving_pool=1, total=5),
        low_priority=pool_pb2.NodeCounts(),
    )
    counts = PoolNodeCounts.from_proto(msg)
    assert counts.pool_id == "p"
    assert counts.dedicated == NodeCounts(offline=1, idle=2, waiting_for_start_task=1, leaving_pool=1, total=5)
    assert list(counts.dedicated.by_state().items()) == [
        ("waitingforstarttask", 1),
        ("idle", 2),
        ("leavingpool", 1),
        ("offline", 1),
    ]
    # The keys are NodeState values.
    assert all(NodeState(k) for k in counts.dedicated.by_state())
    assert counts.low_priority.total == 0 and counts.low_priority.by_state() == {}


# --------------------------------------------------------------------------- client


def test_disable_and_enable_through_the_client(fake: FakeServer, client: Client) -> None:
    client.pools.create(id="p", target_nodes=2)
    node = client.pools.disable_node_scheduling("p", "node-1", option="task_completion")
    assert node.scheduling_state is SchedulingState.DISABLED
    assert node.state == NodeState.OFFLINE
    sent = fake.state.disable_node_requests[-1]
    assert sent.name == "pools/p/nodes/node-1"
    assert sent.option == pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION
    # The default is REQUEUE, sent explicitly.
    client.pools.disable_node_scheduling("p", "node-2")
    assert fake.state.disable_node_requests[-1].option == pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE
    with pytest.raises(FailedPrecondition) as e:
        client.pools.disable_node_scheduling("p", "node-1")
    assert e.value.reason == "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE"
    node = client.pools.enable_node_scheduling("p", "node-1")
    assert node.scheduling_state is SchedulingState.ENABLED and node.state == NodeState.IDLE
    with pytest.raises(FailedPrecondition) as e:
        client.pools.enable_node_scheduling("p", "node-1")
    assert e.value.reason == "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE"


def test_bad_option_is_refused_before_any_call(fake: FakeServer, client: Client) -> None:
    client.pools.create(id="p", target_nodes=1)
    with pytest.raises(InvalidArgument):
        client.pools.disable_node_scheduling("p", "node-1", option="later")
    assert fake.state.disable_node_requests == []


def test_node_counts_follows_pages(fake: FakeServer, client: Client) -> None:
    client.pools.create(id="a", target_nodes=2)
    client.pools.create(id="b", target_nodes=1)
    client.pools.disable_node_scheduling("a", "node-2")
    counts = {c.pool_id: c for c in client.pools.node_counts()}
    assert set(counts) == {"a", "b"}
    assert counts["a"].dedicated.by_state() == {"idle": 1, "offline": 1}
    assert counts["a"].dedicated.total == 2
    assert counts["b"].dedicated == NodeCounts(idle=1, total=1)


def test_wait_node_state(fake: FakeServer, client: Client) -> None:
    client.pools.create(id="p", target_nodes=1)
    assert client.pools.wait_node_state("p", "node-1", "idle", timeout=5).state == NodeState.IDLE
    # Any of several states, spelled as the proto spells them.
    node = client.pools.wait_node_state("p", "node-1", ["offline", "IDLE"], timeout=5)
    assert node.state == NodeState.IDLE
    with pytest.raises(DeadlineExceeded) as e:
        client.pools.wait_node_state("p", "node-1", NodeState.OFFLINE, timeout=0.3, poll_interval=0.05)
    assert e.value.reason == "WAIT_TIMEOUT" and "idle" in e.value.message
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        client.pools.wait_node_state("p", "node-1", "offline", cancel=cancel)
    with pytest.raises(InvalidArgument):
        client.pools.wait_node_state("p", "node-1", "sleepy", timeout=1)


# --------------------------------------------------------------------------- CLI


def test_cli_disable_enable_and_scheduling_in_listings(fake: FakeServer, run) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "2")
    r = run("node", "disable", "p", "node-1", "--option", "terminate", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["scheduling_state"] == "disabled"
    assert fake.state.disable_node_requests[-1].option == pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TERMINATE
    r = run("node", "list", "p")
    assert r.exit_code == 0 and "scheduling" in r.output and "disabled" in r.output and "enabled" in r.output
    r = run("node", "get", "p", "node-1")
    assert "scheduling_state" in r.output and "disabled" in r.output
    r = run("pool", "nodes", "p", "--state", "offline", "-o", "json")
    assert [(n["id"], n["scheduling_state"]) for n in json.loads(r.output)] == [("node-1", "disabled")]
    r = run("node", "disable", "p", "node-1")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: FAILED_PRECONDITION NODE_ALREADY_IN_TARGET_SCHEDULING_STATE: ")
    r = run("node", "enable", "p", "node-1")
    assert r.exit_code == 0 and "node scheduling enabled" in r.output and "idle" in r.output
    r = run("node", "enable", "p", "node-1")
    assert r.exit_code == 1 and "NODE_ALREADY_IN_TARGET_SCHEDULING_STATE" in r.stderr


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        (None, pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE),
        ("requeue", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_REQUEUE),
        ("taskcompletion", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION),
        ("task_completion", pool_pb2.DISABLE_NODE_SCHEDULING_OPTION_TASK_COMPLETION),
    ],
)
def test_cli_disable_options(fake: FakeServer, run, spelling: str | None, expected: int) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    args = ["node", "disable", "p", "node-1"] + (["--option", spelling] if spelling else [])
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert fake.state.disable_node_requests[-1].option == expected


def test_cli_disable_rejects_unknown_option_and_waits_for_offline(fake: FakeServer, run) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "p", "--nodes", "1")
    r = run("node", "disable", "p", "node-1", "--option", "retaineddata")
    assert r.exit_code == 2 and "retaineddata" in r.output
    assert fake.state.disable_node_requests == []
    r = run("node", "disable", "p", "node-1", "--wait", "5", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["state"] == "offline"


def test_cli_pool_counts_table_has_a_column_per_state_in_use(fake: FakeServer, run) -> None:  # type: ignore[no-untyped-def]
    run("pool", "create", "a", "--nodes", "3")
    run("pool", "create", "b", "--nodes", "1")
    run("node", "disable", "a", "node-3")
    r = run("pool", "counts")
    assert r.exit_code == 0, r.output
    header = next(line for line in r.output.splitlines() if "pool" in line and "total" in line)
    assert header.split() == ["pool", "idle", "offline", "total"]
    rows = {cells[0]: cells[1:] for line in r.output.splitlines() if (cells := line.split())[0] in ("a", "b")}
    assert rows == {"a": ["2", "1", "3"], "b": ["1", "0", "1"]}
    assert "low-priority" not in r.output
    r = run("pool", "counts", "-o", "json")
    data = {c["pool_id"]: c for c in json.loads(r.output)}
    assert data["a"]["dedicated"]["offline"] == 1 and data["a"]["dedicated"]["total"] == 3
    assert data["b"]["low_priority"]["total"] == 0


def test_cli_node_commands_document_every_option(run) -> None:  # type: ignore[no-untyped-def]
    r = run("node", "disable", "--help")
    assert r.exit_code == 0
    for word in ("--option", "requeue", "terminate", "taskcompletion", "--wait", "offline", "--output"):
        assert word in r.output
    r = run("node", "--help")
    for verb in ("disable", "enable", "files", "get", "list"):
        assert verb in r.output
    assert "counts" in run("pool", "--help").output
