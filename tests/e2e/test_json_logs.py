"""`--log-format json` end to end: a real `shoal server` and its local agent log JSON lines (every line of
their logs is one JSON object with its timestamp, level, logger and message, and the request's fields),
and after real work with secrets (account keys, a wrong key, a join token, a registry password, a node
user's password, a task's credential) none of them is in any log."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from shoal.client import Client, TaskSpec, Unauthenticated
from shoal.v1 import common_pb2, pool_pb2, task_pb2, task_pb2_grpc
from tests.e2e.harness import ServerProcess
from tests.taskusers import can_make_users

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REGISTRY_PASSWORD = "reg-Pa55w0rd-json-logs"
NODE_USER_PASSWORD = "nu-Pa55w0rd-json-logs"
FIELDS = ("timestamp", "level", "logger", "message")


def _logs(root: Path) -> dict[Path, str]:
    """The server's log and each agent's (its log file and its stdout and stderr)."""
    return {
        p: p.read_text(errors="replace")
        for p in root.rglob("*")
        if p.is_file() and p.name in ("server.log", "agent.log", "agent.out")
    }


def test_json_lines_with_request_fields_and_no_secret(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", extra_args=("--log-format", "json"), env={"SHOAL_LOG_LEVEL": "DEBUG"}
    ).start()
    secrets: dict[str, str] = {"registry password": REGISTRY_PASSWORD}
    try:
        creds = json.loads((server.data_dir / "credentials.json").read_text())
        secrets |= {"admin key": creds["admin_key"], "default key": creds["key"]}
        ca = creds["ca_cert"].encode()
        with Client.connect(server.address, admin=True, ca_cert=ca, timeout=30) as admin:
            admin.accounts.create("teamj")
            new = admin.accounts.regenerate_key("teamj", "primary")
            secrets |= {"secondary": new.secondary, "new primary": new.primary}
        wrong = new.primary[:-6] + "AAAAAA"
        secrets["wrong key"] = wrong
        with (
            Client.connect(server.address, account="teamj", key=wrong, ca_cert=ca, timeout=30) as bad,
            pytest.raises(Unauthenticated),
        ):
            list(bad.pools.list())
        with Client.connect(server.address, account="teamj", key=new.primary, ca_cert=ca, timeout=30) as teamj:
            teamj.pools.create(id="jp", target_nodes=1, task_slots_per_node=2)
            teamj.pools.wait_nodes_idle("jp", count=1, timeout=60)
            teamj.pools.create(id="jj", target_nodes=1, provider="join")
            secrets["join token"] = teamj.pools.join_token("jj", ttl=600).token
            teamj.jobs.create(id="jjob", pool_id="jp")
            teamj.tasks.add_many(
                "jjob", [TaskSpec(id="shows", command_line="/bin/sh -c 'echo $SHOAL_AUTHENTICATION_TOKEN'")]
            )
            done = {t.id: t for t in teamj.tasks.wait("jjob", timeout=90)}
            assert done["shows"].exit_code == 0
            secrets["task credential"] = teamj.tasks.read_file("jjob", "shows", "stdout.txt").decode().strip()
        _registry_password(server)
        server.pools.CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="up", target_nodes=1), request_id="rq-pool-up")
        )
        (node,) = server.wait_nodes("up", 1)
        if can_make_users():
            secrets["node user password"] = NODE_USER_PASSWORD
            server.pools.AddNodeUser(
                pool_pb2.AddNodeUserRequest(
                    parent=node.name, user=pool_pb2.NodeUser(name="jlogs-user", password=NODE_USER_PASSWORD)
                )
            )
            server.pools.DeleteNodeUser(pool_pb2.DeleteNodeUserRequest(name=f"{node.name}/users/jlogs-user"))
    finally:
        server.stop()
    logs = _logs(server.data_dir)
    assert any(p.name == "server.log" for p in logs) and any(p.name == "agent.log" for p in logs), sorted(logs)
    records: list[dict[str, object]] = []
    for path, text in logs.items():
        for what, secret in secrets.items():
            assert secret and secret not in text, f"the {what} is in {path}"
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{path}:{n} is not a JSON line: {line[:200]!r}")
            assert isinstance(record, dict) and all(f in record for f in FIELDS), f"{path}:{n}: {line[:200]}"
            records.append(record)
    # The request's fields: what the server logged while handling a call says which, for which account.
    handled = [r for r in records if r.get("method") == "/shoal.v1.PoolService/CreatePool"]
    assert any(r.get("account") == "teamj" for r in handled), [r["message"] for r in records][:50]
    assert any(r.get("request_id") == "rq-pool-up" and r.get("account") == "default" for r in handled), handled
    # The agent's lines say which node and pool they come from.
    agent = [r for r in records if str(r["logger"]).startswith("shoal.nodeagent") and r.get("pool")]
    assert agent and all(r["pool"] in ("jp", "up") and r.get("node") for r in agent), agent[:5]


def _registry_password(server: ServerProcess) -> None:
    """A pool with a private registry's password, and a task that names one (refused: a task may not)."""
    registry = common_pb2.ContainerRegistry(
        registry_server="registry.example:5000", user_name="shoal", password=REGISTRY_PASSWORD
    )
    config = common_pb2.ContainerConfiguration(
        type=common_pb2.CONTAINER_TYPE_DOCKER_COMPATIBLE, container_registries=[registry]
    )
    # (No node: the password goes no further than the server, sealed.)
    server.pools.CreatePool(
        pool_pb2.CreatePoolRequest(
            pool=pool_pb2.Pool(id="p", target_nodes=0, container_configuration=config), request_id="rq-pool-p"
        )
    )
    server.create_job("rj", "p")
    settings = common_pb2.TaskContainerSettings(image_name="registry.example:5000/x", registry=registry)
    tasks = task_pb2_grpc.TaskServiceStub(server.channel)
    with pytest.raises(grpc.RpcError):
        tasks.AddTasks(
            task_pb2.AddTasksRequest(
                parent="jobs/rj", tasks=[task_pb2.TaskSpec(id="r", command_line="true", container_settings=settings)]
            )
        )
