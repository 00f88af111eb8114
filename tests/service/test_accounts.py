"""Accounts on a real server: keys, refusals, tenancy, quotas, rotation, keys sealed at rest."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shoal.v1 import account_pb2 as A
from shoal.v1 import (
    account_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)
from tests.channels import aio_interceptors, bare_aio_channel, credentials, server_channel
from tests.service.conftest import start_server
from tests.service.test_validation import details


def channel_as(server, account: str, key: str) -> grpc.aio.Channel:
    md = (("shoal-account", account), ("authorization", f"Bearer {key}"))
    return bare_aio_channel(server.address, server.data_dir, interceptors=aio_interceptors(md))


async def refused(call, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == code, e.value
    assert details(e.value)[0] == reason, e.value
    return e.value


async def make_account(server, account_id: str, **quotas: int) -> str:
    """Create an account as the administrator; its primary key."""
    async with server_channel(server, admin=True) as ch:
        admin = account_pb2_grpc.AccountServiceStub(ch)
        await admin.CreateAccount(
            A.CreateAccountRequest(account=A.Account(id=account_id, quotas=A.AccountQuotas(**quotas)))
        )
        keys = await admin.GetAccountKeys(A.GetAccountKeysRequest(name=f"accounts/{account_id}"))
    assert keys.primary and keys.secondary and keys.primary != keys.secondary
    return keys.primary


async def test_calls_without_a_valid_key_are_unauthenticated(server) -> None:
    creds = credentials(server.data_dir)
    async with bare_aio_channel(server.address, server.data_dir) as bare:
        await refused(
            pool_pb2_grpc.PoolServiceStub(bare).ListPools(pool_pb2.ListPoolsRequest()),
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )
        # Health checking stays open; reflection needs a key.
        health = await health_pb2_grpc.HealthStub(bare).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(bare).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in stream:
                pass
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for account, key in (("default", creds["key"][:-4] + "AAAA"), ("nobody", creds["key"]), ("_admin", creds["key"])):
        async with channel_as(server, account, key) as ch:
            err = await refused(
                pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest()),
                grpc.StatusCode.UNAUTHENTICATED,
                "UNAUTHENTICATED",
            )
            assert key not in (err.details() or "")
    for admin in (False, True):
        async with server_channel(server, admin=admin) as ch:
            stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            names = [s.name async for r in stream for s in r.list_services_response.service]
            assert "shoal.v1.AccountService" in names


async def test_keys_allow_only_their_own_kind_of_action(server) -> None:
    async with server_channel(server, admin=True) as ch:
        await refused(
            pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest()),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
    async with server_channel(server) as ch:
        await refused(
            account_pb2_grpc.AccountServiceStub(ch).ListAccounts(A.ListAccountsRequest()),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )


async def test_an_account_sees_and_touches_only_its_own(server) -> None:
    key = await make_account(server, "teamb")
    async with channel_as(server, "teamb", key) as b, server_channel(server) as a:
        b_pools, a_pools = pool_pb2_grpc.PoolServiceStub(b), pool_pb2_grpc.PoolServiceStub(a)
        b_jobs, a_jobs = job_pb2_grpc.JobServiceStub(b), job_pb2_grpc.JobServiceStub(a)
        a_tasks = task_pb2_grpc.TaskServiceStub(a)
        made = await b_pools.CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="pb", target_nodes=0, provider="join"))
        )
        assert made.account == "teamb"
        await b_jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="jb", pool_id="pb")))
        await a_pools.CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="pa", target_nodes=0, provider="join"))
        )
        # Another account's resources answer exactly as missing ones do.
        other = await refused(
            a_pools.GetPool(pool_pb2.GetPoolRequest(name="pools/pb")), grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND"
        )
        missing = await refused(
            a_pools.GetPool(pool_pb2.GetPoolRequest(name="pools/zz")), grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND"
        )
        assert other.details() == missing.details().replace("zz", "pb")
        await refused(a_jobs.GetJob(job_pb2.GetJobRequest(name="jobs/jb")), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
        await refused(
            a_tasks.AddTask(
                task_pb2.AddTaskRequest(parent="jobs/jb", task=task_pb2.TaskSpec(id="t", command_line="x"))
            ),
            grpc.StatusCode.NOT_FOUND,
            "JOB_NOT_FOUND",
        )
        await refused(
            a_tasks.GetTask(task_pb2.GetTaskRequest(name="jobs/jb/tasks/t")), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND"
        )
        await refused(
            a_pools.DeletePool(pool_pb2.DeletePoolRequest(name="pools/pb")), grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND"
        )
        await refused(
            a_pools.ListNodes(pool_pb2.ListNodesRequest(parent="pools/pb")), grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND"
        )
        # A job may not be put on another account's pool, at create or by an update.
        await refused(
            a_jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="ja", pool_id="pb"))),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        await a_jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="ja", pool_id="pa")))
        await refused(
            a_jobs.UpdateJob(
                job_pb2.UpdateJobRequest(
                    job=job_pb2.Job(name="jobs/ja", pool_id="pb"), update_mask={"paths": ["pool_id"]}
                )
            ),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        assert [p.id for p in (await a_pools.ListPools(pool_pb2.ListPoolsRequest())).pools] == ["pa"]
        assert [p.id for p in (await b_pools.ListPools(pool_pb2.ListPoolsRequest())).pools] == ["pb"]
        assert [j.id for j in (await a_jobs.ListJobs(job_pb2.ListJobsRequest())).jobs] == ["ja"]
        # Storage: the same container name is two containers.
        a_store, b_store = storage_pb2_grpc.StorageServiceStub(a), storage_pb2_grpc.StorageServiceStub(b)
        await b_store.CreateContainer(storage_pb2.CreateContainerRequest(id="inputs"))
        assert not (await a_store.ListContainers(storage_pb2.ListContainersRequest())).containers
        await a_store.CreateContainer(storage_pb2.CreateContainerRequest(id="inputs"))
        # Ids stay unique across the cluster.
        await refused(
            a_pools.CreatePool(
                pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="pb", target_nodes=0, provider="join"))
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            "POOL_EXISTS",
        )


async def test_quotas_refuse_growth_with_resource_exhausted(server) -> None:
    key = await make_account(server, "small", max_pools=1, max_nodes=2, max_active_jobs=1)
    async with channel_as(server, "small", key) as ch:
        pools, jobs = pool_pb2_grpc.PoolServiceStub(ch), job_pb2_grpc.JobServiceStub(ch)
        await refused(
            pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=3, provider="join"))),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "NODE_QUOTA_REACHED",
        )
        await pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="p", target_nodes=1, provider="join")))
        await refused(
            pools.CreatePool(pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="q", target_nodes=0, provider="join"))),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "POOL_QUOTA_REACHED",
        )
        await refused(
            pools.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=3)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "NODE_QUOTA_REACHED",
        )
        await jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j1", pool_id="p")))
        await refused(
            jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j2", pool_id="p"))),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "ACTIVE_JOB_QUOTA_REACHED",
        )
        # A completed job no longer counts.
        await jobs.TerminateJob(job_pb2.TerminateJobRequest(name="jobs/j1"))
        await jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j2", pool_id="p")))
        assert [p.id for p in (await pools.ListPools(pool_pb2.ListPoolsRequest())).pools] == ["p"]


async def test_a_key_rotates_while_the_other_works_and_keys_survive_a_restart_sealed(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server(tmp_path / "data")
    try:
        await make_account(server, "rot")
        async with server_channel(server, admin=True) as ch:
            admin = account_pb2_grpc.AccountServiceStub(ch)
            before = await admin.GetAccountKeys(A.GetAccountKeysRequest(name="accounts/rot"))
            after = await admin.RegenerateAccountKey(
                A.RegenerateAccountKeyRequest(name="accounts/rot", key_name=A.ACCOUNT_KEY_NAME_PRIMARY)
            )
        assert after.primary != before.primary and after.secondary == before.secondary
        for key, ok in ((before.primary, False), (before.secondary, True), (after.primary, True)):
            async with channel_as(server, "rot", key) as ch:
                call = pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest())
                if ok:
                    await call
                else:
                    await refused(call, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    finally:
        await server.stop()
    admin_key = credentials(tmp_path / "data")["admin_key"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("shoal.db*"))
    for secret in (after.primary, after.secondary, admin_key):
        assert secret.encode() not in stored, "a key is stored in the clear"
        assert secret not in caplog.text, "a key was logged"
    again = await start_server(tmp_path / "data")
    try:
        async with channel_as(again, "rot", after.secondary) as ch:
            await pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest())
        assert credentials(tmp_path / "data")["admin_key"] == admin_key
    finally:
        await again.stop()
    assert (tmp_path / "data" / "credentials.json").stat().st_mode & 0o777 == 0o600


async def test_an_account_holding_something_is_not_deleted(server) -> None:
    key = await make_account(server, "gone")
    async with channel_as(server, "gone", key) as ch:
        await pool_pb2_grpc.PoolServiceStub(ch).CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="pg", target_nodes=0, provider="join"))
        )
    async with server_channel(server, admin=True) as ch:
        admin = account_pb2_grpc.AccountServiceStub(ch)
        await refused(
            admin.DeleteAccount(A.DeleteAccountRequest(name="accounts/gone")),
            grpc.StatusCode.FAILED_PRECONDITION,
            "ACCOUNT_NOT_EMPTY",
        )
        async with channel_as(server, "gone", key) as mine:
            await pool_pb2_grpc.PoolServiceStub(mine).DeletePool(pool_pb2.DeletePoolRequest(name="pools/pg"))
        # (The pool goes once its deletion is applied.)
        while "pg" in server.cp.pools:
            await server.cp.flush()
        await admin.DeleteAccount(A.DeleteAccountRequest(name="accounts/gone"))
        await refused(
            admin.GetAccount(A.GetAccountRequest(name="accounts/gone")), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"
        )
        await refused(
            admin.CreateAccount(A.CreateAccountRequest(account=A.Account(id="Bad_Name"))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ACCOUNT",
        )
    async with channel_as(server, "gone", key) as ch:
        await refused(
            pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest()),
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )


async def test_a_task_credential_acts_for_its_node_account_only_while_the_node_is_in_the_pool(server) -> None:
    registry = server.accounts
    assert registry is not None
    await make_account(server, "other")
    async with server_channel(server) as ch:
        await pool_pb2_grpc.PoolServiceStub(ch).CreatePool(
            pool_pb2.CreatePoolRequest(pool=pool_pb2.Pool(id="pt", target_nodes=0, provider="join"))
        )
    from tests.service.scripted_agent import ScriptedAgent

    agent = ScriptedAgent(server, "pt", "127.0.2.77")
    await agent.connect()
    node_id = agent.node_id
    credential = registry.task_credential("default", "pt", node_id)
    async with channel_as(server, "default", credential) as ch:
        assert [
            p.id for p in (await pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest())).pools
        ] == ["pt"]
        await refused(
            account_pb2_grpc.AccountServiceStub(ch).ListAccounts(A.ListAccountsRequest()),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
    # Not another account's, not forged, not for a node that is not in the pool.
    forged = credential[:-3] + ("AAA" if not credential.endswith("AAA") else "BBB")
    for account, secret in (
        ("other", credential),
        ("default", forged),
        ("default", registry.task_credential("default", "pt", "nosuchnode")),
    ):
        async with channel_as(server, account, secret) as ch:
            await refused(
                pool_pb2_grpc.PoolServiceStub(ch).ListPools(pool_pb2.ListPoolsRequest()),
                grpc.StatusCode.UNAUTHENTICATED,
                "UNAUTHENTICATED",
            )
    await agent.close()
