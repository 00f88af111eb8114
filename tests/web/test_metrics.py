"""The server's and the agents' Prometheus metrics, scraped from a real in-process server and a real agent
process of a local pool: their names follow Prometheus's conventions, their labels carry no ids, and
their values move as tasks run. The agents are found through the server's service discovery."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import grpc
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shoal.server.app import ShoalServer
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.channels import aio_interceptors, bare_aio_channel, server_channel
from tests.service.conftest import Stubs

pytestmark = pytest.mark.timeout(120)

X = TypeVar("X")
TASKS = 6
#: Families of the standard collectors (the process's CPU and memory, its Python); everything else is Shoal's.
STANDARD_PREFIXES = ("process_", "python_")
#: Label names that would carry an id (one series per job, task or node: unbounded).
ID_LABELS = {"id", "job", "job_id", "task", "task_id", "node", "node_id", "attempt", "name", "request_id"}
#: Words that say a metric is a time or a size: its name must end in the base unit.
TIME_WORDS = ("duration", "latency", "wait", "time", "seconds")
SIZE_WORDS = ("bytes", "memory", "size")
BAD_UNITS = ("milliseconds", "_ms", "micro", "minutes", "hours", "_kb", "_mb", "_gb", "kilobytes", "megabytes")


async def until(probe: Callable[[], Awaitable[X]], pred: Callable[[X], bool], timeout: float = 60.0) -> X:
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()
            if pred(value):
                return value
            await asyncio.sleep(0.05)


def _http(srv: ShoalServer) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cadata=srv.security.ca.cert_pem.decode())
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))


def _admin(srv: ShoalServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {srv.admin_key}"}


async def scrape(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> dict[str, Metric]:
    async with http.get(url, headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels`."""
    name = sample
    for suffix in ("_total", "_count", "_sum", "_bucket", "_info"):
        if name.endswith(suffix) and name.removesuffix(suffix) in families:
            name = name.removesuffix(suffix)
            break
    family = families[name]
    found = [s.value for s in family.samples if s.name == sample and labels.items() <= s.labels.items()]
    assert found, f"no sample {sample}{labels} in {[(s.name, s.labels) for s in family.samples]}"
    return sum(found)


def check_conventions(families: dict[str, Metric], ids: set[str]) -> None:
    """Every family: Shoal's prefix (or a standard collector's), help text, ``_total`` counters, base units,
    and no label that is (or whose values are) an id."""
    assert families
    for name, f in families.items():
        assert name.startswith("shoal_") or name.startswith(STANDARD_PREFIXES), name
        assert f.documentation.strip(), f"{name} has no help text"
        assert name == name.lower() and " " not in name, name
        assert not any(bad in name for bad in BAD_UNITS), f"{name}: not a base unit"
        words = name.split("_")
        if any(w in words for w in TIME_WORDS) and f.type in ("histogram", "summary", "gauge"):
            assert name.endswith("_seconds"), f"{name}: a time in seconds"
        if any(w in words for w in SIZE_WORDS) and f.type == "gauge":
            assert name.endswith("_bytes"), f"{name}: a size in bytes"
        for s in f.samples:
            if f.type == "counter":
                assert s.name.endswith(("_total", "_created")), f"counter sample {s.name} does not end in _total"
            assert not (set(s.labels) & ID_LABELS), f"{s.name} has an id label: {s.labels}"
            for label, v in s.labels.items():
                assert v not in ids, f"{s.name}{{{label}={v!r}}}: an id as a label value"


async def test_server_and_agent_metrics_follow_the_conventions_and_move(server: ShoalServer) -> None:
    base = server.http_url
    async with _http(server) as http, server_channel(server) as channel:
        stubs = Stubs(channel)
        before = await scrape(http, base + "/metrics", _admin(server))
        await stubs.pools.CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="mp", target_nodes=1, task_slots_per_node=2))
        )
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="mj", pool_id="mp")))
        specs = [task_pb2.TaskSpec(id=f"mt{i}", command_line="/bin/true") for i in range(TASKS)]
        specs.append(task_pb2.TaskSpec(id="mfail", command_line="/bin/false"))
        await stubs.tasks.AddTasks(task_pb2.AddTasksRequest(parent="jobs/mj", tasks=specs))

        async def tasks() -> list[task_pb2.Task]:
            return list((await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/mj"))).tasks)

        done = await until(
            tasks, lambda ts: len(ts) == TASKS + 1 and all(t.state == task_pb2.TASK_STATE_COMPLETED for t in ts)
        )
        node = (await stubs.pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/mp"))).nodes[0]
        assert node.metrics_address.startswith("127.0.0.1:"), node
        # A call refused, and one for something that is not there: counted by code.
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.pools.GetPool(pool_pb2.GetPoolRequest(name="pools/none"))
        # (A pool's id is a label value: pools are few. A job's, a task's or a node's never is.)
        ids = {"mj", node.id, *(t.spec.id for t in done)}

        after = await scrape(http, base + "/metrics", _admin(server))
        check_conventions(after, ids)
        assert value(after, "shoal_tasks_dispatched_total") - value(before, "shoal_tasks_dispatched_total") >= TASKS + 1
        assert value(after, "shoal_task_attempts_ended_total", result="success") >= TASKS
        assert value(after, "shoal_task_attempts_ended_total", result="failure") >= 1
        assert value(after, "shoal_tasks_completed_total") >= TASKS + 1
        assert value(after, "shoal_tasks", pool="mp", state="completed") == TASKS + 1
        assert value(after, "shoal_tasks", pool="mp", state="active") == 0
        assert value(after, "shoal_tasks_queued", pool="mp") == 0
        assert value(after, "shoal_jobs", pool="mp", state="active") == 1
        assert value(after, "shoal_nodes", pool="mp", state="idle") == 1
        assert value(after, "shoal_nodes_connected", pool="mp") == 1
        assert value(after, "shoal_pool_task_slots", pool="mp") == 2
        assert value(after, "shoal_scheduler_pass_duration_seconds_count") > 0
        assert value(after, "shoal_task_queue_wait_seconds_count") >= 1
        assert value(after, "shoal_store_commit_duration_seconds_count") > value(
            before, "shoal_store_commit_duration_seconds_count"
        )
        assert value(after, "shoal_store_commits_total") > 0
        add = {"grpc_service": "shoal.v1.TaskService", "grpc_method": "AddTasks"}
        assert value(after, "shoal_grpc_server_started_total", **add) == 1
        assert value(after, "shoal_grpc_server_handled_total", grpc_code="OK", **add) == 1
        assert value(after, "shoal_grpc_server_handling_seconds_count", **add) == 1
        get = {"grpc_service": "shoal.v1.PoolService", "grpc_method": "GetPool"}
        assert value(after, "shoal_grpc_server_handled_total", grpc_code="NOT_FOUND", **get) == 1
        assert value(after, "process_resident_memory_bytes") > 0
        assert value(after, "process_cpu_seconds_total") > 0
        assert value(after, "shoal_build_info") == 1

        # The agent, found as Prometheus finds it.
        async with http.get(base + "/metrics/targets", headers=_admin(server)) as r:
            assert r.status == 200
            groups = await r.json()
        assert groups == [
            {"targets": [node.metrics_address], "labels": {"pool": "mp", "node": node.id, "account": "default"}}
        ]
        async with aiohttp.ClientSession() as plain:
            agent = await scrape(plain, f"http://{node.metrics_address}/metrics")
        check_conventions(agent, ids)
        assert value(agent, "shoal_agent_task_slots") == 2
        assert value(agent, "shoal_agent_task_starts_total") >= TASKS + 1
        assert value(agent, "shoal_agent_task_completions_total", result="success") == TASKS
        assert value(agent, "shoal_agent_task_completions_total", result="failure") == 1
        assert value(agent, "shoal_agent_assignments_total") == TASKS + 1
        assert value(agent, "shoal_agent_connected") == 1
        assert value(agent, "shoal_agent_tasks_running") == 0
        assert value(agent, "process_resident_memory_bytes") > 0


async def test_a_refused_call_is_counted_by_its_code(server: ShoalServer) -> None:
    wrong = (("shoal-account", "default"), ("authorization", "Bearer not-the-key"))
    async with bare_aio_channel(server.address, server.data_dir, interceptors=aio_interceptors(wrong)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await Stubs(channel).pools.ListPools(pool_pb2.ListPoolsRequest())
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with _http(server) as http:
        families = await scrape(http, server.http_url + "/metrics", _admin(server))
    method = {"grpc_service": "shoal.v1.PoolService", "grpc_method": "ListPools", "grpc_type": "unary"}
    assert value(families, "shoal_grpc_server_handled_total", grpc_code="UNAUTHENTICATED", **method) == 1


async def test_service_discovery_needs_the_administrators_key(server: ShoalServer) -> None:
    url = server.http_url + "/metrics/targets"
    assert server.accounts is not None
    account_key = server.accounts.get("default").primary
    async with _http(server) as http:
        for headers in ({}, {"Authorization": f"Bearer {account_key}"}, {"Authorization": "Bearer nope"}):
            async with http.get(url, headers=headers, allow_redirects=False) as r:
                assert r.status == 401, headers
                assert "Bearer" in r.headers["WWW-Authenticate"]
        async with http.get(url, headers=_admin(server)) as r:
            assert r.status == 200
            assert await r.json() == []


def test_the_convention_check_catches_what_it_should() -> None:
    """The checker itself: each broken convention is found."""
    bad = {
        "latency_ms": "# HELP latency_ms x\n# TYPE latency_ms gauge\nlatency_ms 1\n",
        "shoal_x": '# HELP shoal_x x\n# TYPE shoal_x gauge\nshoal_x{task_id="t1"} 1\n',
        "shoal_y": '# HELP shoal_y x\n# TYPE shoal_y gauge\nshoal_y{pool="secret-job"} 1\n',
        "shoal_wait": "# HELP shoal_wait x\n# TYPE shoal_wait gauge\nshoal_wait 1\n",
        "shoal_mem": "# HELP shoal_memory x\n# TYPE shoal_memory gauge\nshoal_memory 1\n",
    }
    for text in bad.values():
        families: dict[str, Any] = {f.name: f for f in text_string_to_metric_families(text)}
        with pytest.raises(AssertionError):
            check_conventions(families, {"secret-job"})
