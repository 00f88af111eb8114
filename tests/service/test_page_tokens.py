"""Page tokens are opaque and checked: a forged one, or one from another listing, is INVALID_PAGE_TOKEN."""

from __future__ import annotations

import base64

import grpc
import pytest

from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_validation import details


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


FORGED = [
    b64("-1"),  # "LTE=": the offset -1 of the old tokens
    b64("9" * 20),
    b64("12345678901234567890"),
    b64("0"),
    b64("1000"),  # an old token, well formed: this server no longer issues such tokens
    "not base64!",
    "\u00e9t\u00e9",
    "A" * 10_000,
    "AQAAAAAAAAPo" + "A" * 12,  # the right length and version, a wrong check
]


@pytest.fixture
async def listed(server, stubs):
    """Two pools (one with two joined nodes), two jobs of three tasks each."""
    await stubs.pools.CreatePool(
        pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=2, provider="join"))
    )
    agents = [ScriptedAgent(server, "p", f"127.0.3.{i + 1}") for i in range(2)]
    for agent in agents:
        await agent.connect()
    await stubs.pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="q", provider="join")))
    for j in ("j1", "j2"):
        await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id=j, pool_id="q")))
        await stubs.tasks.AddTasks(
            task_pb2.AddTasksRequest(
                parent=f"jobs/{j}", tasks=[task_pb2.TaskSpec(id=f"t{i}", command_line="x") for i in range(3)]
            )
        )
    yield
    for agent in agents:
        await agent.close()


def _calls(stubs):
    return {
        "ListPools": lambda token, size=1: stubs.pools.ListPools(
            pool_pb2.ListPoolsRequest(page_size=size, page_token=token)
        ),
        "ListNodes": lambda token, size=1: stubs.pools.ListNodes(
            pool_pb2.ListNodesRequest(parent="pools/p", page_size=size, page_token=token)
        ),
        "ListJobs": lambda token, size=1: stubs.jobs.ListJobs(
            job_pb2.ListJobsRequest(page_size=size, page_token=token)
        ),
        "ListTasks": lambda token, size=1: stubs.tasks.ListTasks(
            task_pb2.ListTasksRequest(parent="jobs/j1", page_size=size, page_token=token)
        ),
    }


async def _refused(call) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    reason, violations = details(e.value)
    assert reason == "INVALID_PAGE_TOKEN"
    assert [f for f, _ in violations] == ["page_token"]


async def test_forged_tokens_are_invalid_argument_on_every_list(listed, stubs) -> None:
    for name, call in _calls(stubs).items():
        first = await call("")
        assert first.next_page_token, name
        for token in FORGED:
            await _refused(call(token))
        # A real token altered by one character.
        real = first.next_page_token
        altered = real[:5] + ("B" if real[5] != "B" else "C") + real[6:]
        await _refused(call(altered))


async def test_pages_follow_to_the_end(listed, stubs) -> None:
    for name, call in _calls(stubs).items():
        seen, token = [], ""
        while True:
            resp = await call(token)
            items = next(iter(resp.ListFields()))[1] if resp.ListFields() else []
            seen += [x.name for x in items]
            token = resp.next_page_token
            if not token:
                break
        assert len(seen) == len(set(seen)) >= 2, name


async def test_a_token_from_another_listing_is_refused(listed, stubs) -> None:
    jobs_token = (await stubs.jobs.ListJobs(job_pb2.ListJobsRequest(page_size=1))).next_page_token
    j1_token = (await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j1", page_size=1))).next_page_token
    # Another collection.
    await _refused(stubs.pools.ListPools(pool_pb2.ListPoolsRequest(page_size=1, page_token=jobs_token)))
    # Another parent.
    await _refused(stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/j2", page_size=1, page_token=j1_token)))
    # Another filter.
    await _refused(
        stubs.tasks.ListTasks(
            task_pb2.ListTasksRequest(
                parent="jobs/j1", page_size=1, page_token=j1_token, state=task_pb2.TASK_STATE_ACTIVE
            )
        )
    )
    # The same parent spelled in another case is the same listing (ids ignore case).
    resp = await stubs.tasks.ListTasks(task_pb2.ListTasksRequest(parent="jobs/J1", page_size=1, page_token=j1_token))
    assert [t.spec.id for t in resp.tasks] == ["t1"]


async def test_page_size_negative_is_refused_and_huge_is_cut(listed, stubs) -> None:
    for name, call in _calls(stubs).items():
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call("", -1)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert details(e.value) == ("INVALID_PAGE_SIZE", [("page_size", "must not be negative")])
        resp = await call("", 2**31 - 1)
        assert resp.next_page_token == "", name
