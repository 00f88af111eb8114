"""UpdatePool on a real server: the field mask, CreatePool's checks, etags, a new target as a resize, a new
start task and certificates reaching only nodes that join afterwards, and the change kept across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from shoal.v1 import certificate_pb2 as C
from shoal.v1 import certificate_pb2_grpc, common_pb2, pool_pb2_grpc
from shoal.v1 import pool_pb2 as P
from tests.certfiles import make_cert
from tests.channels import server_channel
from tests.service.conftest import Stubs, start_server
from tests.service.scripted_agent import ScriptedAgent
from tests.service.test_accounts import channel_as, make_account, refused
from tests.service.test_validation import details

pytestmark = pytest.mark.timeout(90)


def update(pool: P.Pool, *paths: str, etag: str = "") -> P.UpdatePoolRequest:
    return P.UpdatePoolRequest(pool=pool, update_mask=field_mask_pb2.FieldMask(paths=list(paths)), etag=etag)


async def create(stubs: Stubs, **kw: object) -> P.Pool:
    spec = P.Pool(id="p", provider="join", start_task=common_pb2.StartTask(command_line="echo old"), **kw)  # type: ignore[arg-type]
    return await stubs.pools.CreatePool(P.CreatePoolRequest(pool=spec))


async def fields_refused(call: object, reason: str, field: str) -> None:
    err = await refused(call, grpc.StatusCode.INVALID_ARGUMENT, reason)
    fields = [f for f, _ in details(err)[1]]
    assert any(f == field or f.startswith(field + ".") or f.startswith(field + "[") for f in fields), fields


async def test_an_update_changes_the_masked_fields_and_the_etag(server, stubs: Stubs) -> None:
    made = await create(stubs, display_name="old", metadata=[common_pb2.MetadataItem(name="a", value="1")])
    patch = P.Pool(
        name="pools/p",
        display_name="new",
        metadata=[common_pb2.MetadataItem(name="b", value="2")],
        task_slots_per_node=9,  # not in the mask: left as it is
    )
    got = await stubs.pools.UpdatePool(update(patch, "display_name", "metadata", etag=made.etag))
    assert got.display_name == "new" and [(m.name, m.value) for m in got.metadata] == [("b", "2")]
    assert got.task_slots_per_node == 1 and got.start_task.command_line == "echo old"
    assert got.etag and got.etag != made.etag
    assert (await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))).etag == got.etag
    # The etag read before the change no longer matches; the pool is named by its id as well.
    await refused(
        stubs.pools.UpdatePool(update(P.Pool(id="p", display_name="x"), "display_name", etag=made.etag)),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    assert (await stubs.pools.GetPool(P.GetPoolRequest(name="pools/p"))).display_name == "new"


async def test_refusals_name_the_field(server, stubs: Stubs) -> None:
    made = await create(stubs)
    pools = stubs.pools
    p = P.Pool(name="pools/p")
    for path in ("id", "task_slots_per_node", "user_accounts", "state", "etag", "nope", "start_task.command_line"):
        await fields_refused(pools.UpdatePool(update(p, path)), "INVALID_UPDATE_MASK", "update_mask")
    await fields_refused(
        pools.UpdatePool(update(P.Pool(name="pools/p", display_name="x" * 2000), "display_name")),
        "INVALID_POOL",
        "pool.display_name",
    )
    await fields_refused(
        pools.UpdatePool(update(P.Pool(name="pools/p", target_nodes=-1), "target_nodes")),
        "INVALID_POOL",
        "pool.target_nodes",
    )
    bad_start = P.Pool(name="pools/p", start_task=common_pb2.StartTask(command_line='echo "unclosed'))
    await fields_refused(pools.UpdatePool(update(bad_start, "start_task")), "INVALID_POOL", "pool.start_task")
    await fields_refused(
        pools.UpdatePool(update(P.Pool(name="pools/p", resize_timeout={"seconds": 1}), "resize_timeout")),
        "INVALID_POOL",
        "pool.resize_timeout",
    )
    unknown = P.Pool(name="pools/p", certificate_references=[C.CertificateReference(thumbprint="ab" * 20)])
    await fields_refused(
        pools.UpdatePool(update(unknown, "certificate_references")),
        "INVALID_CERTIFICATE_REFERENCE",
        "pool.certificate_references",
    )
    await refused(
        pools.UpdatePool(update(P.Pool(name="pools/nope", display_name="x"), "display_name")),
        grpc.StatusCode.NOT_FOUND,
        "POOL_NOT_FOUND",
    )
    # Nothing was changed by any of them.
    assert (await pools.GetPool(P.GetPoolRequest(name="pools/p"))).etag == made.etag


async def test_another_accounts_pool_is_not_found(server, stubs: Stubs) -> None:
    await create(stubs)
    key = await make_account(server, "other")
    async with channel_as(server, "other", key) as ch:
        await refused(
            pool_pb2_grpc.PoolServiceStub(ch).UpdatePool(
                update(P.Pool(name="pools/p", display_name="x"), "display_name")
            ),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )
        await refused(
            pool_pb2_grpc.PoolServiceStub(ch).UpdatePool(update(P.Pool(id="p", display_name="x"), "display_name")),
            grpc.StatusCode.NOT_FOUND,
            "POOL_NOT_FOUND",
        )


async def test_a_new_target_resizes_as_resize_pool_does(server, stubs: Stubs) -> None:
    await create(stubs, target_nodes=1)
    agent = ScriptedAgent(server, "p", "127.0.2.61")
    await agent.connect()
    await agent.send_start_task_done()
    node = server.cp.node("p", agent.node_id)
    async with asyncio.timeout(10):
        while node.state != P.NODE_STATE_IDLE:
            await asyncio.sleep(0.01)
    got = await stubs.pools.UpdatePool(update(P.Pool(name="pools/p", target_nodes=0), "target_nodes"))
    assert got.target_nodes == 0 and got.allocation_state == P.ALLOCATION_STATE_RESIZING
    assert (await agent.expect("shutdown")).shutdown.reason == "node left the pool"
    # One resize at a time, as ResizePool.
    await refused(
        stubs.pools.UpdatePool(update(P.Pool(name="pools/p", target_nodes=2), "target_nodes")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_RESIZING",
    )
    await agent.close()


async def test_a_new_start_task_and_certificates_reach_only_nodes_that_join_afterwards(
    tmp_path: Path,
) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            stubs = Stubs(ch)
            await create(stubs, target_nodes=1)
            first = ScriptedAgent(server, "p", "127.0.2.62")
            welcome = await first.connect()
            assert welcome.start_task.command_line == "echo old" and not welcome.certificates
            await first.send_start_task_done()
            node = server.cp.node("p", first.node_id)
            async with asyncio.timeout(10):
                while node.state != P.NODE_STATE_IDLE:
                    await asyncio.sleep(0.01)

            _pem, _key, der, thumb = make_cert("pool-update")
            certs = certificate_pb2_grpc.CertificateServiceStub(ch)
            await certs.AddCertificate(C.AddCertificateRequest(data=der, format=C.CERTIFICATE_FORMAT_CER))
            patch = P.Pool(
                name="pools/p",
                start_task=common_pb2.StartTask(command_line="echo new", wait_for_success=True),
                certificate_references=[C.CertificateReference(thumbprint=thumb.upper())],
            )
            updated = await stubs.pools.UpdatePool(update(patch, "start_task", "certificate_references"))
            assert updated.start_task.command_line == "echo new"
            assert [r.thumbprint for r in updated.certificate_references] == [thumb]

            # The running node is left as it is: still idle, nothing sent to it.
            got = await stubs.pools.GetNode(P.GetNodeRequest(name=f"pools/p/nodes/{first.node_id}"))
            assert got.state == P.NODE_STATE_IDLE and not got.certificate_references
            assert all(m.WhichOneof("body") == "events_ack" for m in _drain(first))

            # A node that joins now runs the new start task and installs the certificate...
            second = ScriptedAgent(server, "p", "127.0.2.63")
            welcome = await second.connect()
            assert welcome.start_task.command_line == "echo new"
            assert [c.thumbprint for c in welcome.certificates] == [thumb]
            # ...and so does the first one when its agent comes back without its start task's success
            # (a reboot clears it).
            await first.close()
            again = ScriptedAgent(server, "p", "127.0.2.62")
            welcome = await again.connect(node_id=first.node_id)
            assert welcome.start_task.command_line == "echo new"
            assert [c.thumbprint for c in welcome.certificates] == [thumb]
            await again.close()
            await second.close()
    finally:
        await server.stop(stop_agents=True)

    # Kept across a restart.
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            pool = await Stubs(ch).pools.GetPool(P.GetPoolRequest(name="pools/p"))
        assert pool.start_task.command_line == "echo new"
        assert [r.thumbprint for r in pool.certificate_references] == [thumb]
    finally:
        await server.stop(stop_agents=True)


def _drain(agent: ScriptedAgent) -> list[object]:
    out = []
    while not agent.inbox.empty():
        out.append(agent.inbox.get_nowait())
    return out
