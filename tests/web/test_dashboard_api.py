"""The dashboard's JSON reads and live streams on a real in-process server: what an account sees is what its
own client would (another account's pool is not found), the API's refusals come back as HTTP statuses with
their reason, and the watch streams arrive as server-sent events."""

from __future__ import annotations

import asyncio
import json
import ssl

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from shoal.server.app import ShoalServer
from shoal.server.web.history import MetricHistory, flatten
from shoal.v1 import pool_pb2

pytestmark = pytest.mark.timeout(60)


async def _signed_in(srv: ShoalServer, account: str) -> aiohttp.ClientSession:
    assert srv.accounts is not None
    key = (await srv.accounts.ensure(account)).primary
    ctx = ssl.create_default_context(cadata=srv.security.ca.cert_pem.decode())
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(srv.http_url + "/login", data={"account": account, "key": key}) as r:
        assert r.status == 200  # (after the redirect to the page)
    return http


async def test_an_account_sees_its_own_pools_only(server: ShoalServer) -> None:
    await server.cp.create_pool(pool_pb2.Pool(id="mine", target_nodes=0, account="default"), request_id="")
    await server.cp.create_pool(pool_pb2.Pool(id="theirs", target_nodes=0, account="other"), request_id="")
    http = await _signed_in(server, "default")
    async with http:
        async with http.get(server.http_url + "/api/pools") as r:
            body = await r.json()
            assert [p["id"] for p in body["pools"]] == ["mine"]
            assert body["truncated"] is False
        async with http.get(server.http_url + "/api/pools/theirs") as r:
            assert r.status == 404
            assert (await r.json())["reason"] == "POOL_NOT_FOUND"
        async with http.get(server.http_url + "/api/whoami") as r:
            assert (await r.json()) == {"account": "default"}


async def test_refusals_come_back_with_their_status_and_reason(server: ShoalServer) -> None:
    http = await _signed_in(server, "default")
    async with http:
        async with http.get(server.http_url + "/api/jobs/no-such-job") as r:
            assert r.status == 404
            body = await r.json()
            assert body["reason"] == "JOB_NOT_FOUND" and body["error"]
        async with http.get(server.http_url + "/api/jobs/x/tasks?state=sleeping") as r:
            assert r.status == 400


async def test_a_pools_nodes_arrive_as_server_sent_events(server: ShoalServer) -> None:
    await server.cp.create_pool(pool_pb2.Pool(id="p", target_nodes=1, account="default"), request_id="")
    http = await _signed_in(server, "default")
    async with http, http.get(server.http_url + "/api/watch/pools/p/nodes") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        event = ""
        async with asyncio.timeout(30):
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: ") and event == "nodes":
                    nodes = json.loads(line[len("data: ") :])["nodes"]
                    if nodes:
                        assert nodes[0]["pool_id"] == "p"
                        break


def test_history_sums_families_and_keeps_states_apart() -> None:
    registry = CollectorRegistry()
    tasks = Gauge("shoal_tasks", "Tasks by state.", ["state", "pool"], registry=registry)
    tasks.labels("running", "a").set(3)
    tasks.labels("running", "b").set(2)
    tasks.labels("active", "a").set(7)
    done = Counter("shoal_tasks_completed", "Completions.", registry=registry)
    done.inc(5)
    values = flatten(registry.collect())
    assert values["shoal_tasks"] == 12
    assert values["shoal_tasks{state=running}"] == 5
    assert values["shoal_tasks{state=active}"] == 7
    assert values["shoal_tasks_completed_total"] == 5
    assert not any(name.endswith("_created") for name in values)


def test_history_keeps_the_window_only() -> None:
    history = MetricHistory(window_seconds=60, interval_seconds=15)
    for i in range(10):
        history.record(float(i * 15), {"x": float(i)} if i % 2 else {"x": float(i), "y": 1.0})
    data = history.as_json()
    assert data["times"] == [75.0, 90.0, 105.0, 120.0, 135.0]
    assert data["series"] == {"x": [5.0, 6.0, 7.0, 8.0, 9.0], "y": [None, 1.0, None, 1.0, None]}


async def _text_events(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """The (id, text) of a follow stream's text events, until it ends."""
    got: list[tuple[str, str]] = []
    event = ident = ""
    async with asyncio.timeout(30):
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("id: "):
                ident = line[len("id: ") :]
            elif line.startswith("data: ") and event == "text":
                got.append((ident, json.loads(line[len("data: ") :])["text"]))
            elif line.startswith("data: ") and event in ("end", "error"):
                assert event == "end", line
                return got
    return got


async def test_a_followed_output_resumes_where_a_dropped_connection_left_it(server: ShoalServer) -> None:
    from shoal.v1 import job_pb2, task_pb2
    from tests.channels import server_channel
    from tests.service.conftest import Stubs

    await server.cp.create_pool(pool_pb2.Pool(id="p", target_nodes=1, account="default"), request_id="")
    async with server_channel(server) as channel:
        stubs = Stubs(channel)
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
        spec = task_pb2.TaskSpec(id="t", command_line="/bin/sh -c 'printf first-part,second-part'")
        await stubs.tasks.AddTask(task_pb2.AddTaskRequest(parent="jobs/j", task=spec))
        async with asyncio.timeout(40):
            while (await stubs.tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/j/tasks/t"))).state != (
                task_pb2.TASK_STATE_COMPLETED
            ):
                await asyncio.sleep(0.1)
    http = await _signed_in(server, "default")
    url = server.http_url + "/api/follow/jobs/j/tasks/t?path=stdout.txt"
    async with http:
        async with http.get(url) as r:
            whole = await _text_events(r)
        assert "".join(text for _, text in whole) == "first-part,second-part"
        # Each event's id is where the text after it starts, in bytes.
        assert whole[-1][0] == "22"
        # A browser's EventSource that lost its connection comes back with the last id it saw: the text
        # goes on from there, not again from the start.
        async with http.get(url, headers={"Last-Event-ID": "11"}) as r:
            assert "".join(text for _, text in await _text_events(r)) == "second-part"
        async with http.get(url, headers={"Last-Event-ID": "not a number"}) as r:
            assert r.status == 400


async def test_the_pools_page_follows_its_pools_in_one_stream(server: ShoalServer) -> None:
    await server.cp.create_pool(pool_pb2.Pool(id="p", target_nodes=1, account="default"), request_id="")
    await server.cp.create_pool(pool_pb2.Pool(id="theirs", target_nodes=0, account="other"), request_id="")
    http = await _signed_in(server, "default")
    async with http:
        async with http.get(server.http_url + "/api/watch/nodes") as r:
            assert r.status == 400
        async with http.get(server.http_url + "/api/watch/nodes?pool=theirs&pool=p") as r:
            event, refused, seen = "", None, None
            async with asyncio.timeout(30):
                async for raw in r.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: ") and event == "pool_error":
                        refused = json.loads(line[len("data: ") :])
                    elif line.startswith("data: ") and event == "nodes":
                        message = json.loads(line[len("data: ") :])
                        assert message["pool"] == "p"  # (never the other account's)
                        if message["nodes"]:
                            seen = message["nodes"][0]
                    if refused is not None and seen is not None:
                        break
        # Another account's pool is refused as not found, and the account's own goes on.
        assert refused == {"pool": "theirs", "reason": "POOL_NOT_FOUND", "error": refused["error"]}
        assert seen["pool_id"] == "p"
