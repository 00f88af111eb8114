"""StorageService on a real in-process grpc.aio server over loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoal.server.storage import BlobStore, BlobWriter, add_storage_service
from shoal.server.storage.service import SHA256_METADATA_KEY, SIZE_METADATA_KEY
from shoal.v1 import storage_pb2, storage_pb2_grpc

MiB = 1024 * 1024


class ObservedStore(BlobStore):
    """A BlobStore that tells the test when an upload wrote data or was aborted (no sleeping)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loop = asyncio.get_running_loop()
        self.wrote = asyncio.Event()
        self.aborted = asyncio.Event()

    def open_writer(self, container: str, name: str) -> BlobWriter:
        writer = super().open_writer(container, name)
        write, abort = writer.write, writer.abort

        def observed_write(data: bytes) -> None:
            write(data)
            self.loop.call_soon_threadsafe(self.wrote.set)

        def observed_abort() -> None:
            abort()
            self.loop.call_soon_threadsafe(self.aborted.set)

        writer.write = observed_write  # type: ignore[method-assign]
        writer.abort = observed_abort  # type: ignore[method-assign]
        return writer


@dataclass
class Env:
    store: ObservedStore
    stub: storage_pb2_grpc.StorageServiceStub
    channel: grpc.aio.Channel


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = ObservedStore(tmp_path / "blobs")
    server = grpc.aio.server()
    add_storage_service(server, store)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Env(store, storage_pb2_grpc.StorageServiceStub(channel), channel)
    finally:
        await channel.close(None)
        await server.stop(None)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def _requests(container: str, name: str, chunks: Iterable[bytes]) -> list[storage_pb2.UploadBlobRequest]:
    msgs = [storage_pb2.UploadBlobRequest(container=container, blob_name=name)]
    msgs += [storage_pb2.UploadBlobRequest(data=c) for c in chunks]
    msgs.append(storage_pb2.UploadBlobRequest(finish=True))
    return msgs


async def _upload(stub, container: str, name: str, chunks: Iterable[bytes]) -> storage_pb2.Blob:
    async def gen() -> AsyncIterator[storage_pb2.UploadBlobRequest]:
        for m in _requests(container, name, chunks):
            yield m

    return await stub.UploadBlob(gen())


async def _download(stub, container: str, name: str) -> list[bytes]:
    return [
        c.data async for c in stub.DownloadBlob(storage_pb2.DownloadBlobRequest(container=container, blob_name=name))
    ]


async def expect_error(awaitable, code: grpc.StatusCode, reason: str, fields: list[str] | None = None):
    """Await `awaitable`, which must fail with `code`, ErrorInfo `reason` and BadRequest `fields`."""
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await awaitable
    err = ei.value
    assert err.code() == code, err
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    infos, bad = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            bad.append(br)
    assert [i.reason for i in infos] == [reason]
    assert infos[0].domain == "shoal.v1"
    if fields is not None:
        assert [v.field for b in bad for v in b.field_violations] == fields
    return err


async def _collect(call) -> None:
    async for _ in call:
        pass


# ----------------------------------------------------------------- containers


async def test_containers(env: Env) -> None:
    c = await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="inputs"))
    assert (c.name, c.id) == ("containers/inputs", "inputs")
    assert c.creation_time.seconds > 0
    again = await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="inputs", exist_ok=True))
    assert again == c
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="outputs"))
    listed = await env.stub.ListContainers(storage_pb2.ListContainersRequest())
    assert [x.id for x in listed.containers] == ["inputs", "outputs"]
    assert listed.containers[0] == c
    await env.stub.DeleteContainer(storage_pb2.DeleteContainerRequest(id="inputs"))
    listed = await env.stub.ListContainers(storage_pb2.ListContainersRequest())
    assert [x.id for x in listed.containers] == ["outputs"]


async def test_container_errors_change_nothing(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="inputs"))
    before = _snapshot(env.store.root)
    await expect_error(
        env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="inputs")),
        grpc.StatusCode.ALREADY_EXISTS,
        "CONTAINER_EXISTS",
    )
    for bad in ["", "x", "UPPER", "-lead", "a/b", "../etc", ".shoal", "a" * 64]:
        await expect_error(
            env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id=bad, exist_ok=True)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_CONTAINER_ID",
            ["id"],
        )
        await expect_error(
            env.stub.DeleteContainer(storage_pb2.DeleteContainerRequest(id=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_CONTAINER_ID",
            ["id"],
        )
    await expect_error(
        env.stub.DeleteContainer(storage_pb2.DeleteContainerRequest(id="missing")),
        grpc.StatusCode.NOT_FOUND,
        "CONTAINER_NOT_FOUND",
    )
    assert _snapshot(env.store.root) == before


# ----------------------------------------------------------------- upload / download


async def test_multi_mib_roundtrip(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    payload = os.urandom(5 * MiB + 123)
    chunks = [payload[i : i + 300_000] for i in range(0, len(payload), 300_000)]
    blob = await _upload(env.stub, "data", "runs/1/input.bin", chunks)
    assert blob.container == "data"
    assert blob.name == "runs/1/input.bin"
    assert blob.size == len(payload)
    assert blob.sha256 == hashlib.sha256(payload).hexdigest()
    assert blob.modify_time.seconds > 0

    call = env.stub.DownloadBlob(storage_pb2.DownloadBlobRequest(container="data", blob_name="runs/1/input.bin"))
    md = dict(await call.initial_metadata())
    assert md[SIZE_METADATA_KEY] == str(len(payload))
    assert md[SHA256_METADATA_KEY] == blob.sha256
    got = [c.data async for c in call]
    assert [len(c) for c in got] == [MiB] * 5 + [123]
    assert b"".join(got) == payload
    assert list(env.store.tmp_dir.iterdir()) == []


async def test_upload_names_repeated_or_empty_later(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))

    async def gen() -> AsyncIterator[storage_pb2.UploadBlobRequest]:
        yield storage_pb2.UploadBlobRequest(container="data", blob_name="f.txt", data=b"one ")
        yield storage_pb2.UploadBlobRequest(container="data", blob_name="f.txt", data=b"two ")
        yield storage_pb2.UploadBlobRequest(data=b"three")
        yield storage_pb2.UploadBlobRequest()
        yield storage_pb2.UploadBlobRequest(finish=True)

    blob = await env.stub.UploadBlob(gen())
    assert blob.size == len(b"one two three")
    assert b"".join(await _download(env.stub, "data", "f.txt")) == b"one two three"
    # An empty blob downloads as nothing at all.
    await _upload(env.stub, "data", "empty", [])
    assert b"".join(await _download(env.stub, "data", "empty")) == b""


async def test_upload_errors_change_nothing(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    await _upload(env.stub, "data", "a", [b"file"])
    await _upload(env.stub, "data", "d/x", [b"nested"])
    before = _snapshot(env.store.root)
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    await expect_error(
        _upload(env.stub, "missing", "f", [b"x" * 1000]), grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND"
    )
    for name in ["../x", "/etc/passwd", "a/../../b", "", "d//y", "d/", "x\\y"]:
        await expect_error(_upload(env.stub, "data", name, [b"x"]), invalid, "INVALID_BLOB_NAME", ["blob_name"])
    await expect_error(_upload(env.stub, "BAD", "f", [b"x"]), invalid, "INVALID_CONTAINER_ID", ["container"])
    await expect_error(_upload(env.stub, "", "", [b"x"]), invalid, "INVALID_CONTAINER_ID", ["container", "blob_name"])
    await expect_error(env.stub.UploadBlob(_aiter([])), invalid, "INVALID_CONTAINER_ID", ["container", "blob_name"])
    for name in ["a/b", "d"]:
        err = await expect_error(
            _upload(env.stub, "data", name, [b"x"]), grpc.StatusCode.FAILED_PRECONDITION, "BLOB_PATH_CONFLICT"
        )
        assert "folder" in err.details()

    # A later message naming a different blob aborts the upload after data was written.
    msgs = [
        storage_pb2.UploadBlobRequest(container="data", blob_name="new", data=b"1" * 1000),
        storage_pb2.UploadBlobRequest(blob_name="other", data=b"2"),
    ]
    await expect_error(env.stub.UploadBlob(_aiter(msgs)), invalid, "INVALID_BLOB_NAME", ["blob_name"])
    msgs = [
        storage_pb2.UploadBlobRequest(container="data", blob_name="new", data=b"1"),
        storage_pb2.UploadBlobRequest(container="elsewhere"),
    ]
    await expect_error(env.stub.UploadBlob(_aiter(msgs)), invalid, "INVALID_CONTAINER_ID", ["container"])

    # Only a message with finish set commits: a stream that just ends (what a cancelled
    # client's stream looks like to the server) keeps nothing, nor does one going on after it.
    msgs = [storage_pb2.UploadBlobRequest(container="data", blob_name="new", data=b"1" * 1000)]
    err = await expect_error(env.stub.UploadBlob(_aiter(msgs)), invalid, "UPLOAD_NOT_FINISHED", ["finish"])
    assert "finish" in err.details()
    msgs = [
        storage_pb2.UploadBlobRequest(container="data", blob_name="new", data=b"1", finish=True),
        storage_pb2.UploadBlobRequest(data=b"2"),
    ]
    await expect_error(env.stub.UploadBlob(_aiter(msgs)), invalid, "UPLOAD_AFTER_FINISH", ["finish"])
    assert _snapshot(env.store.root) == before


async def _aiter(items):
    for item in items:
        yield item


async def test_cancelled_upload_leaves_nothing(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    before = _snapshot(env.store.root)
    never = asyncio.Event()

    async def gen() -> AsyncIterator[storage_pb2.UploadBlobRequest]:
        yield storage_pb2.UploadBlobRequest(container="data", blob_name="deep/partial.bin", data=b"x" * MiB)
        await never.wait()

    call = env.stub.UploadBlob(gen())
    await env.store.wrote.wait()
    assert len(list(env.store.tmp_dir.iterdir())) == 1  # the upload is really in progress
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await env.store.aborted.wait()
    assert list(env.store.tmp_dir.iterdir()) == []
    assert _snapshot(env.store.root) == before
    listed = await env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data"))
    assert list(listed.blobs) == []


async def test_concurrent_uploads_of_one_name_stay_consistent(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    payloads = [bytes([i]) * (MiB + i) for i in range(6)]
    blobs = await asyncio.gather(*(_upload(env.stub, "data", "same", [p]) for p in payloads))
    assert sorted(b.sha256 for b in blobs) == sorted(hashlib.sha256(p).hexdigest() for p in payloads)
    data = b"".join(await _download(env.stub, "data", "same"))
    assert data in payloads
    listed = await env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data"))
    assert [(b.name, b.size, b.sha256) for b in listed.blobs] == [("same", len(data), hashlib.sha256(data).hexdigest())]
    assert list(env.store.tmp_dir.iterdir()) == []


async def test_the_agents_uploads_commit_at_every_size(env: Env, tmp_path: Path) -> None:
    """Empty files and files of whole chunks end with a message that sets finish too."""
    from shoal.nodeagent.storage import UPLOAD_CHUNK, StorageClient

    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    client = StorageClient(env.channel)
    for size in (0, 1, UPLOAD_CHUNK, 2 * UPLOAD_CHUNK, 2 * UPLOAD_CHUNK + 1):
        src = tmp_path / f"f{size}"
        src.write_bytes(os.urandom(size))
        blob = await client.upload_blob("data", f"f{size}", src)
        assert blob.size == size
        assert b"".join(await _download(env.stub, "data", f"f{size}")) == src.read_bytes()


async def test_download_and_delete_errors(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    await _upload(env.stub, "data", "d/f", [b"x"])
    before = _snapshot(env.store.root)
    for container, name, code, reason, fields in [
        ("data", "nope", grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", None),
        ("data", "d", grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", None),
        ("nope", "d/f", grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", None),
        ("data", "../data/d/f", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", ["blob_name"]),
        ("data", "/etc/passwd", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", ["blob_name"]),
        ("Data", "d/f", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONTAINER_ID", ["container"]),
    ]:
        req = storage_pb2.DownloadBlobRequest(container=container, blob_name=name)
        await expect_error(_collect(env.stub.DownloadBlob(req)), code, reason, fields)
        dreq = storage_pb2.DeleteBlobRequest(container=container, blob_name=name)
        await expect_error(env.stub.DeleteBlob(dreq), code, reason, fields)
    assert _snapshot(env.store.root) == before
    await env.stub.DeleteBlob(storage_pb2.DeleteBlobRequest(container="data", blob_name="d/f"))
    await expect_error(
        _collect(env.stub.DownloadBlob(storage_pb2.DownloadBlobRequest(container="data", blob_name="d/f"))),
        grpc.StatusCode.NOT_FOUND,
        "BLOB_NOT_FOUND",
    )


async def test_symlink_escape_over_grpc(env: Env, tmp_path: Path) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("hunter2")
    (env.store.root / "data" / "link").symlink_to(tmp_path / "secret")
    for awaitable in (
        _collect(env.stub.DownloadBlob(storage_pb2.DownloadBlobRequest(container="data", blob_name="link/key"))),
        _upload(env.stub, "data", "link/new", [b"x"]),
        env.stub.DeleteBlob(storage_pb2.DeleteBlobRequest(container="data", blob_name="link/key")),
    ):
        await expect_error(awaitable, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", ["blob_name"])
    assert sorted(p.name for p in (tmp_path / "secret").iterdir()) == ["key"]


# ----------------------------------------------------------------- listing


async def test_list_blobs_prefix_and_paging(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    names = [f"logs/{i:02d}.txt" for i in range(12)] + ["logs-old", "other/a", "top"]
    for n in names:
        await _upload(env.stub, "data", n, [n.encode()])

    listed = await env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data"))
    assert [b.name for b in listed.blobs] == sorted(names)
    assert listed.next_page_token == ""
    assert all(b.container == "data" for b in listed.blobs)
    assert listed.blobs[-1].sha256 == hashlib.sha256(b"top").hexdigest()

    got: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await env.stub.ListBlobs(
            storage_pb2.ListBlobsRequest(container="data", prefix="logs/", page_size=5, page_token=token)
        )
        pages += 1
        assert len(page.blobs) <= 5
        got += [b.name for b in page.blobs]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert got == [f"logs/{i:02d}.txt" for i in range(12)]

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(
        env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data", page_token="bogus")),
        invalid,
        "INVALID_PAGE_TOKEN",
        ["page_token"],
    )
    first = await env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data", prefix="logs/", page_size=1))
    await expect_error(
        env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data", page_token=first.next_page_token)),
        invalid,
        "INVALID_PAGE_TOKEN",
        ["page_token"],
    )
    await expect_error(
        env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data", page_size=-1)),
        invalid,
        "INVALID_PAGE_SIZE",
        ["page_size"],
    )
    await expect_error(
        env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="missing")),
        grpc.StatusCode.NOT_FOUND,
        "CONTAINER_NOT_FOUND",
    )
    await expect_error(
        env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="")),
        invalid,
        "INVALID_CONTAINER_ID",
        ["container"],
    )


async def test_delete_container_removes_blobs(env: Env) -> None:
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    await _upload(env.stub, "data", "x/y", [b"1"])
    await env.stub.DeleteContainer(storage_pb2.DeleteContainerRequest(id="data"))
    await expect_error(_upload(env.stub, "data", "x/y", [b"1"]), grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND")
    await env.stub.CreateContainer(storage_pb2.CreateContainerRequest(id="data"))
    listed = await env.stub.ListBlobs(storage_pb2.ListBlobsRequest(container="data"))
    assert list(listed.blobs) == []
