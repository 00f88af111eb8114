"""The agent's metrics endpoint (`--metrics-listen`) on an in-process agent: where it listens is in its
Register, and its figures follow the tasks it runs; the options and their environment variables."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.agent.v1 import agent_pb2
from shoal.nodeagent.__main__ import parse_config
from tests.nodeagent.conftest import assignment, start_tasks

pytestmark = pytest.mark.timeout(60)

BASE = ["--server", "127.0.0.1:5", "--ip", "127.0.1.4"]


async def scrape(address: str) -> dict[str, float]:
    """Every sample, by name and labels (`name{k=v}`), of the agent at `address`."""
    async with aiohttp.ClientSession() as http, http.get(f"http://{address}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return found


async def test_the_agent_serves_its_metrics_and_says_where(plane_server, run_agent) -> None:
    agent, _ = await run_agent(metrics_listen="127.0.0.1:0")
    plane = plane_server.plane
    register = await plane.wait_for(lambda: plane.registers and plane.registers[0])
    assert register.metrics_address == agent.metrics_address
    assert register.metrics_address.startswith("127.0.0.1:") and not register.metrics_address.endswith(":0")
    await plane.send(start_tasks(1, assignment("ok", "/bin/true"), assignment("bad", "/bin/false")))
    await plane.wait_event("ok", agent_pb2.TASK_EVENT_KIND_COMPLETED)
    await plane.wait_event("bad", agent_pb2.TASK_EVENT_KIND_COMPLETED)
    got = await scrape(agent.metrics_address)
    assert got["shoal_agent_assignments_total"] == 2
    assert got["shoal_agent_task_completions_total{result=success}"] == 1
    assert got["shoal_agent_task_completions_total{result=failure}"] == 1
    assert got["shoal_agent_tasks_running"] == 0 and got["shoal_agent_connected"] == 1
    assert got["shoal_agent_sessions_total"] == 1
    assert got["process_resident_memory_bytes"] > 0 and got["shoal_node_memory_bytes"] > 0


async def test_no_listen_address_no_endpoint(plane_server, run_agent) -> None:
    agent, _ = await run_agent()
    plane = plane_server.plane
    register = await plane.wait_for(lambda: plane.registers and plane.registers[0])
    assert register.metrics_address == "" and agent.metrics_address == ""


def test_options_and_their_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = [*BASE, "--node-root", str(tmp_path)]
    monkeypatch.delenv("SHOAL_METRICS_LISTEN", raising=False)
    monkeypatch.delenv("SHOAL_LOG_FORMAT", raising=False)
    cfg, _ = parse_config(args)
    assert (cfg.metrics_listen, cfg.log_format) == ("", "text")
    cfg, _ = parse_config([*args, "--metrics-listen", "0.0.0.0:9465", "--log-format", "json"])
    assert (cfg.metrics_listen, cfg.log_format) == ("0.0.0.0:9465", "json")
    monkeypatch.setenv("SHOAL_METRICS_LISTEN", "127.0.0.1:0")
    monkeypatch.setenv("SHOAL_LOG_FORMAT", "json")
    cfg, _ = parse_config(args)
    assert (cfg.metrics_listen, cfg.log_format) == ("127.0.0.1:0", "json")
    for bad in (["--metrics-listen", "nowhere"], ["--metrics-listen", "h:99999"], ["--log-format", "xml"]):
        with pytest.raises(SystemExit) as e:
            parse_config([*args, *bad])
        assert e.value.code == 2
    monkeypatch.setenv("SHOAL_LOG_FORMAT", "yaml")
    with pytest.raises(SystemExit):
        parse_config(args)
