"""Application packages on a real server: ApplicationService (create, upload, activate, default versions,
allow_updates, deletes and their refusals, durability across a restart), pool references checked at
CreatePool and UpdatePool, and, with real local agents, packages in tasks' environments (pool and task
references, default versions), a task whose package cannot be deployed (ApplicationPackageError, not
retried), UpdatePool deploying to the nodes, a reimaged node deploying again, and a pool package a node
cannot deploy as a node error."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from shoal.server.app import ShoalServer
from shoal.v1 import application_pb2, application_pb2_grpc, common_pb2, job_pb2, pool_pb2, task_pb2
from tests.channels import server_channel
from tests.service.conftest import Stubs, configured_server, start_server
from tests.service.test_accounts import refused

pytestmark = pytest.mark.timeout(120)

A = application_pb2
P = pool_pb2
T = task_pb2
Ref = common_pb2.ApplicationPackageReference


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


async def upload(apps: application_pb2_grpc.ApplicationServiceStub, name: str, data: bytes) -> A.ApplicationPackage:
    async def stream() -> AsyncIterator[A.UploadApplicationPackageRequest]:
        yield A.UploadApplicationPackageRequest(name=name, data=data[:10])
        yield A.UploadApplicationPackageRequest(data=data[10:], finish=True)

    return await apps.UploadApplicationPackage(stream())


async def publish(
    apps: application_pb2_grpc.ApplicationServiceStub, app: str, version: str, data: bytes, *, default: bool = False
) -> A.ApplicationPackage:
    """Make the application if need be, then a package of it uploaded and activated (the default one)."""
    try:
        await apps.CreateApplication(A.CreateApplicationRequest(application=A.Application(id=app, allow_updates=True)))
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.ALREADY_EXISTS
    await apps.CreateApplicationPackage(
        A.CreateApplicationPackageRequest(parent=f"applications/{app}", version=version)
    )
    name = f"applications/{app}/versions/{version}"
    await upload(apps, name, data)
    pkg = await apps.ActivateApplicationPackage(A.ActivateApplicationPackageRequest(name=name))
    if default:
        await apps.UpdateApplication(
            A.UpdateApplicationRequest(
                application=A.Application(name=f"applications/{app}", default_version=version),
                update_mask=field_mask_pb2.FieldMask(paths=["default_version"]),
            )
        )
    return pkg


async def test_applications_packages_and_their_refusals(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "data")
    try:
        async with server_channel(server) as ch:
            apps = application_pb2_grpc.ApplicationServiceStub(ch)
            pools = Stubs(ch).pools
            app = await apps.CreateApplication(
                A.CreateApplicationRequest(application=A.Application(id="Blender", display_name="Blender"))
            )
            assert (app.name, app.allow_updates, app.etag != "") == ("applications/Blender", False, True)
            await refused(
                apps.CreateApplication(A.CreateApplicationRequest(application=A.Application(id="blender"))),
                grpc.StatusCode.ALREADY_EXISTS,
                "APPLICATION_EXISTS",
            )
            e = await refused(
                apps.CreateApplication(A.CreateApplicationRequest(application=A.Application(id="a/b"))),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_APPLICATION",
            )
            assert "application.id" in str(e.debug_error_string()) or e.details()
            await refused(
                apps.GetApplication(A.GetApplicationRequest(name="applications/nope")),
                grpc.StatusCode.NOT_FOUND,
                "APPLICATION_NOT_FOUND",
            )
            pkg = await apps.CreateApplicationPackage(
                A.CreateApplicationPackageRequest(parent="applications/blender", version="2.7")
            )
            assert pkg.state == A.PACKAGE_STATE_PENDING and pkg.name == "applications/Blender/versions/2.7"
            name = pkg.name
            await refused(
                apps.ActivateApplicationPackage(A.ActivateApplicationPackageRequest(name=name)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "PACKAGE_NOT_UPLOADED",
            )
            # A default version must be ACTIVE; pools cannot reference what does not resolve.
            mask = field_mask_pb2.FieldMask(paths=["default_version"])
            await refused(
                apps.UpdateApplication(
                    A.UpdateApplicationRequest(
                        application=A.Application(id="blender", default_version="2.7"), update_mask=mask
                    )
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
                "INVALID_DEFAULT_VERSION",
            )
            for refs in (
                [Ref(application_id="blender")],
                [Ref(application_id="missing")],
                [Ref(application_id="blender", version="2.7")],
            ):
                await refused(
                    pools.CreatePool(
                        P.CreatePoolRequest(pool=P.Pool(id="p", target_nodes=0, application_package_references=refs))
                    ),
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "INVALID_APPLICATION_PACKAGE_REFERENCES",
                )
            await refused(
                pools.CreatePool(
                    P.CreatePoolRequest(
                        pool=P.Pool(
                            id="p", application_package_references=[Ref(application_id=f"a{i}") for i in range(11)]
                        )
                    )
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_APPLICATION_PACKAGE_REFERENCES",
            )
            # An archive that would escape (or a bomb) is refused, and the package stays PENDING.
            evil = io.BytesIO()
            with zipfile.ZipFile(evil, "w") as zf:
                zf.writestr("../../evil.sh", b"x")
            await upload(apps, name, evil.getvalue())
            await refused(
                apps.ActivateApplicationPackage(A.ActivateApplicationPackageRequest(name=name)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_PACKAGE_ARCHIVE",
            )
            await refused(
                apps.ActivateApplicationPackage(
                    A.ActivateApplicationPackageRequest(name=name, format=A.PACKAGE_FORMAT_TAR)
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_PACKAGE_ARCHIVE",
            )
            assert (
                await apps.GetApplicationPackage(A.GetApplicationPackageRequest(name=name))
            ).state == A.PACKAGE_STATE_PENDING
            data = zip_bytes({"bin/blender": b"#!/bin/sh\necho render\n"})
            up = await upload(apps, name, data)
            assert up.size == len(data) and up.state == A.PACKAGE_STATE_PENDING
            pkg = await apps.ActivateApplicationPackage(A.ActivateApplicationPackageRequest(name=name))
            assert (pkg.state, pkg.format) == (A.PACKAGE_STATE_ACTIVE, A.PACKAGE_FORMAT_ZIP)
            app = await apps.UpdateApplication(
                A.UpdateApplicationRequest(
                    application=A.Application(id="blender", default_version="2.7"), update_mask=mask
                )
            )
            assert app.default_version == "2.7" and list(app.versions) == ["2.7"]
            # allow_updates false: an ACTIVE package is neither uploaded again nor deleted, nor its application.
            await refused(upload(apps, name, data), grpc.StatusCode.FAILED_PRECONDITION, "PACKAGE_UPDATES_NOT_ALLOWED")
            await refused(
                apps.DeleteApplicationPackage(A.DeleteApplicationPackageRequest(name=name)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "PACKAGE_UPDATES_NOT_ALLOWED",
            )
            await refused(
                apps.DeleteApplication(A.DeleteApplicationRequest(name="blender")),
                grpc.StatusCode.FAILED_PRECONDITION,
                "PACKAGE_UPDATES_NOT_ALLOWED",
            )
            await refused(
                apps.UpdateApplication(
                    A.UpdateApplicationRequest(application=A.Application(id="blender"), update_mask=mask, etag="stale")
                ),
                grpc.StatusCode.ABORTED,
                "ETAG_MISMATCH",
            )
            pool = await pools.CreatePool(
                P.CreatePoolRequest(
                    pool=P.Pool(id="p", target_nodes=0, application_package_references=[Ref(application_id="blender")])
                )
            )
            assert [r.application_id for r in pool.application_package_references] == ["blender"]
            await apps.CreateApplicationPackage(A.CreateApplicationPackageRequest(parent="blender", version="3.0"))
        archive_dir = server.data_dir / "applications" / "packages"
        (archive_dir / "left-by-a-crash.archive").write_bytes(b"x")
    finally:
        await server.stop(stop_agents=True)

    # Durable: a new server on the same data finds it all (and removes the archive no package names).
    server = await start_server(tmp_path / "data")
    try:
        assert not (archive_dir / "left-by-a-crash.archive").exists()
        async with server_channel(server) as ch:
            apps = application_pb2_grpc.ApplicationServiceStub(ch)
            app = await apps.GetApplication(A.GetApplicationRequest(name="applications/BLENDER"))
            assert (app.id, app.default_version, list(app.versions)) == ("Blender", "2.7", ["2.7", "3.0"])
            listed = await apps.ListApplicationPackages(A.ListApplicationPackagesRequest(parent="applications/blender"))
            assert [(p.version, p.state) for p in listed.packages] == [
                ("2.7", A.PACKAGE_STATE_ACTIVE),
                ("3.0", A.PACKAGE_STATE_PENDING),
            ]
            await apps.UpdateApplication(
                A.UpdateApplicationRequest(
                    application=A.Application(id="blender", allow_updates=True),
                    update_mask=field_mask_pb2.FieldMask(paths=["allow_updates"]),
                )
            )
            await apps.DeleteApplication(A.DeleteApplicationRequest(name="applications/blender"))
            assert list((await apps.ListApplications(A.ListApplicationsRequest())).applications) == []
            assert list(archive_dir.iterdir()) == []
    finally:
        await server.stop(stop_agents=True)


# ---- with real agents ------------------------------------------------------------------------------------------


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[ShoalServer, Stubs, application_pb2_grpc.ApplicationServiceStub]]:
    async with configured_server(tmp_path / "data", heartbeat_interval=0.2) as srv, server_channel(srv) as ch:
        yield srv, Stubs(ch), application_pb2_grpc.ApplicationServiceStub(ch)


async def until(probe: Callable[[], object], pred: Callable[[object], bool], timeout: float = 45.0) -> object:
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()  # type: ignore[misc]
            if pred(value):
                return value
            await asyncio.sleep(0.05)


async def run_task(stubs: Stubs, task_id: str, command: str, refs: list[Ref] | None = None) -> T.Task:
    """Add a task to job `j` and wait for it to complete."""
    await stubs.tasks.AddTasks(
        T.AddTasksRequest(
            parent="jobs/j",
            tasks=[
                T.TaskSpec(
                    id=task_id,
                    command_line=command,
                    application_package_references=refs or [],
                    constraints=common_pb2.TaskConstraints(max_task_retry_count=3),
                )
            ],
        )
    )
    name = f"jobs/j/tasks/{task_id}"
    task = await until(
        lambda: stubs.tasks.GetTask(T.GetTaskRequest(name=name)),
        lambda t: t.state == T.TASK_STATE_COMPLETED,  # type: ignore[attr-defined]
    )
    assert isinstance(task, T.Task)
    return task


def ok(task: T.Task) -> bool:
    return task.execution_info.result == common_pb2.TASK_EXECUTION_RESULT_SUCCESS


async def nodes(stubs: Stubs) -> list[P.Node]:
    return list((await stubs.pools.ListNodes(P.ListNodesRequest(parent="pools/p"))).nodes)


async def test_packages_reach_tasks_through_pools_tasks_updates_and_reimages(live) -> None:
    _server, stubs, apps = live
    await publish(apps, "tools", "1.0", zip_bytes({"hello.txt": b"hello from tools"}), default=True)
    await publish(apps, "data-set", "2.0", zip_bytes({"d/data.txt": b"42"}), default=True)
    await publish(apps, "data-set", "3.0", zip_bytes({"d/data.txt": b"43"}))
    await stubs.pools.CreatePool(
        P.CreatePoolRequest(
            pool=P.Pool(
                id="p",
                target_nodes=1,
                application_package_references=[Ref(application_id="tools")],
                start_task=common_pb2.StartTask(
                    command_line='/bin/sh -c "cp $AZ_BATCH_APP_PACKAGE_tools/hello.txt $AZ_BATCH_NODE_SHARED_DIR/"',
                    wait_for_success=True,
                ),
            )
        )
    )
    await stubs.jobs.CreateJob(job_pb2.CreateJobRequest(job=job_pb2.Job(id="j", pool_id="p")))
    # A pool package (by its default version) in every task's environment, the start task's too.
    t = await run_task(
        stubs,
        "pool",
        '/bin/sh -c "grep -q hello $AZ_BATCH_APP_PACKAGE_tools/hello.txt && '
        "test $SHOAL_APP_PACKAGE_tools_1_0 = $AZ_BATCH_APP_PACKAGE_tools && "
        'test -f $AZ_BATCH_NODE_SHARED_DIR/hello.txt && test -z \\"$AZ_BATCH_APP_PACKAGE_data_set\\""',
    )
    assert ok(t), t.execution_info
    # A task's own package, by default version and by a version named.
    t = await run_task(
        stubs,
        "own",
        '/bin/sh -c "test $(cat $AZ_BATCH_APP_PACKAGE_data_set/d/data.txt) = 42 && '
        "test $(cat $AZ_BATCH_APP_PACKAGE_data_set_3_0/d/data.txt) = 43 && "
        'case $AZ_BATCH_APP_PACKAGE_data_set_2_0 in */applications/data-set#2.0) true;; *) false;; esac"',
        [Ref(application_id="data-set"), Ref(application_id="DATA-SET", version="3.0")],
    )
    assert ok(t), t.execution_info
    # A job manager task's own packages.
    await stubs.jobs.CreateJob(
        job_pb2.CreateJobRequest(
            job=job_pb2.Job(
                id="jm",
                pool_id="p",
                job_manager_task=job_pb2.JobManagerTask(
                    command_line='/bin/sh -c "test $(cat $AZ_BATCH_APP_PACKAGE_data_set_3_0/d/data.txt) = 43"',
                    application_package_references=[Ref(application_id="data-set", version="3.0")],
                ),
            )
        )
    )
    jm = await until(
        lambda: stubs.tasks.GetTask(T.GetTaskRequest(name="jobs/jm/tasks/jobmanager")),
        lambda t: t.state == T.TASK_STATE_COMPLETED,  # type: ignore[attr-defined]
    )
    assert ok(jm), jm.execution_info  # type: ignore[arg-type,attr-defined]
    # A package that cannot be deployed fails the task at once, not retried.
    for task_id, ref in (
        ("missing", Ref(application_id="missing")),
        ("nover", Ref(application_id="tools", version="9")),
    ):
        t = await run_task(stubs, task_id, "/bin/true", [ref])
        info = t.execution_info
        assert (info.failure_info.code, info.failure_info.category, info.retry_count) == (
            "ApplicationPackageError",
            common_pb2.ERROR_CATEGORY_USER_ERROR,
            0,
        ), info
        assert not info.HasField("exit_code")
    # UpdatePool: every node deploys the pool's new packages at once.
    await stubs.pools.UpdatePool(
        P.UpdatePoolRequest(
            pool=P.Pool(
                name="pools/p",
                application_package_references=[
                    Ref(application_id="tools"),
                    Ref(application_id="data-set", version="3.0"),
                ],
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["application_package_references"]),
        )
    )
    t = await run_task(stubs, "updated", '/bin/sh -c "test $(cat $AZ_BATCH_APP_PACKAGE_data_set_3_0/d/data.txt) = 43"')
    assert ok(t), t.execution_info
    # A reimaged node (its root wiped) deploys the pool's packages again before its start task and tasks.
    (node,) = await nodes(stubs)
    await stubs.pools.ReimageNode(P.ReimageNodeRequest(name=node.name))
    await until(lambda: nodes(stubs), lambda ns: ns and ns[0].state == P.NODE_STATE_REIMAGING, timeout=10)  # type: ignore[union-attr,index]
    await until(lambda: nodes(stubs), lambda ns: ns and ns[0].state == P.NODE_STATE_IDLE)  # type: ignore[union-attr,index]
    t = await run_task(
        stubs,
        "reimaged",
        '/bin/sh -c "grep -q hello $AZ_BATCH_APP_PACKAGE_tools/hello.txt && '
        'test -f $AZ_BATCH_NODE_SHARED_DIR/hello.txt"',
    )
    assert ok(t), t.execution_info
    # A pool package the node cannot deploy (its version gone) is a node error after the node's reboot.
    await apps.DeleteApplicationPackage(A.DeleteApplicationPackageRequest(name="applications/data-set/versions/3.0"))
    await stubs.pools.RebootNode(P.RebootNodeRequest(name=node.name))
    ns = await until(lambda: nodes(stubs), lambda ns: ns and ns[0].state == P.NODE_STATE_UNUSABLE)  # type: ignore[union-attr,index]
    (broken,) = ns  # type: ignore[misc]
    assert [e.code for e in broken.errors] == ["ApplicationPackageError"], broken.errors
    assert "data-set:3.0" in broken.errors[0].message
    # Mended by UpdatePool: the node deploys again and is healthy.
    await stubs.pools.UpdatePool(
        P.UpdatePoolRequest(
            pool=P.Pool(name="pools/p", application_package_references=[Ref(application_id="tools")]),
            update_mask=field_mask_pb2.FieldMask(paths=["application_package_references"]),
        )
    )
    await until(lambda: nodes(stubs), lambda ns: ns and ns[0].state == P.NODE_STATE_IDLE and not ns[0].errors)  # type: ignore[union-attr,index]
