"""BlobStore: names, containers, atomic uploads, paging and path safety."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from shoal.clock import ManualClock
from shoal.server.api.errors import ApiError
from shoal.server.storage.blobstore import (
    MAX_PAGE_SIZE,
    BlobStore,
    blob_name_problem,
    validate_blob_name,
    validate_container_id,
)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", clock=ManualClock(datetime(2026, 3, 1, tzinfo=UTC)))


@pytest.fixture
def c1(store: BlobStore) -> str:
    store.create_container("cn1")
    return "cn1"


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (files with contents), to prove a failed call changed nothing."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = None if os.path.islink(p) else Path(p).read_bytes()
    return out


def _raises(code: grpc.StatusCode, reason: str, call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as ei:
        call(*args, **kwargs)
    assert ei.value.code == code, ei.value
    assert ei.value.reason == reason, ei.value
    return ei.value


# ----------------------------------------------------------------- names


@pytest.mark.parametrize("cid", ["abc", "a-b", "0ab", "a" * 63, "x1-2-3"])
def test_valid_container_ids(cid: str) -> None:
    assert validate_container_id(cid) == cid


@pytest.mark.parametrize("cid", ["", "ab", "a" * 64, "-ab", "Abc", "a_b", "a.b", "a/b", "../x", ".shoal", "ab ", "é12"])
def test_invalid_container_ids(cid: str) -> None:
    e = _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONTAINER_ID", validate_container_id, cid, "id")
    assert [f for f, _ in e.field_violations] == ["id"]


@pytest.mark.parametrize(
    "name", ["a", "a/b/c.txt", "a.b", ".hidden", "x y/z", "ü/ñ", "/".join(["abc"] * 256), "..a/b.."]
)
def test_valid_blob_names(name: str) -> None:
    assert blob_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../b",
        "a/..",
        "..",
        "a//b",
        "a/",
        "./a",
        "a/./b",
        ".",
        "a\\b",
        "a\x00b",
        "a\nb",
        "a" * 1025,
        "b" * 256,
    ],
)
def test_invalid_blob_names(name: str) -> None:
    e = _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", validate_blob_name, name)
    assert [f for f, _ in e.field_violations] == ["blob_name"]


# ----------------------------------------------------------------- containers


def test_container_lifecycle(store: BlobStore) -> None:
    info = store.create_container("alpha")
    assert info.id == "alpha"
    assert info.creation_time == datetime(2026, 3, 1, tzinfo=UTC)
    store.create_container("beta-1")
    assert [c.id for c in store.list_containers()] == ["alpha", "beta-1"]
    _raises(grpc.StatusCode.ALREADY_EXISTS, "CONTAINER_EXISTS", store.create_container, "alpha")
    assert store.create_container("alpha", exist_ok=True) == info
    store.write("alpha", "x/y", [b"data"])
    store.delete_container("alpha")
    assert [c.id for c in store.list_containers()] == ["beta-1"]
    _raises(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", store.delete_container, "alpha")
    # Re-created empty, with no trace of the old blobs.
    store.create_container("alpha")
    assert store.list_blobs("alpha").blobs == []
    assert not any((store.root / ".shoal" / "trash").iterdir())


def test_list_containers_ignores_other_entries(store: BlobStore, tmp_path: Path) -> None:
    store.create_container("real")
    (store.root / "stray-file").write_text("x")
    (tmp_path / "outside").mkdir()
    (store.root / "linked").symlink_to(tmp_path / "outside")
    (store.root / "Not_A_Container").mkdir()
    assert [c.id for c in store.list_containers()] == ["real"]
    _raises(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", store.write, "linked", "x", [b"1"])
    assert list((tmp_path / "outside").iterdir()) == []


def test_store_survives_reopen(tmp_path: Path) -> None:
    s1 = BlobStore(tmp_path / "b")
    s1.create_container("keep")
    info = s1.write("keep", "d/f.bin", [b"abc", b"def"])
    s2 = BlobStore(tmp_path / "b")
    assert s2.get_container("keep").creation_time == s1.get_container("keep").creation_time
    assert s2.get_blob("keep", "d/f.bin") == info
    assert s2.read("keep", "d/f.bin") == b"abcdef"


# ----------------------------------------------------------------- blobs


def test_write_read_roundtrip(store: BlobStore, c1: str) -> None:
    chunks = [os.urandom(1000) for _ in range(10)]
    data = b"".join(chunks)
    info = store.write(c1, "dir/sub/file.bin", chunks)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.modify_time == datetime(2026, 3, 1, tzinfo=UTC)
    # The data file holds exactly the bytes, at the blob's path.
    assert (store.root / c1 / "dir" / "sub" / "file.bin").read_bytes() == data
    with store.open_blob(c1, "dir/sub/file.bin") as reader:
        assert reader.info == info
        assert b"".join(reader.chunks(333)) == data
    assert store.get_blob(c1, "dir/sub/file.bin") == info


def test_empty_blob_and_overwrite(store: BlobStore, c1: str) -> None:
    assert store.write(c1, "e", []).size == 0
    assert store.read(c1, "e") == b""
    store.write(c1, "e", [b"new"])
    assert store.read(c1, "e") == b"new"
    assert store.get_blob(c1, "e").sha256 == hashlib.sha256(b"new").hexdigest()


def test_missing_container_and_blob(store: BlobStore, c1: str) -> None:
    before = _snapshot(store.root)
    _raises(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", store.write, "nope", "a", [b"x"])
    _raises(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", store.open_writer, "nope", "a")
    _raises(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", store.list_blobs, "nope")
    _raises(grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", store.open_blob, c1, "missing")
    _raises(grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", store.delete_blob, c1, "missing")
    store.write(c1, "d/f", [b"x"])
    before = _snapshot(store.root)
    # A folder is not a blob.
    _raises(grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", store.open_blob, c1, "d")
    _raises(grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", store.delete_blob, c1, "d")
    _raises(grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", store.open_blob, c1, "d/f/g")
    assert _snapshot(store.root) == before
    assert not (store.root / "nope").exists()


def test_path_conflicts(store: BlobStore, c1: str) -> None:
    store.write(c1, "a", [b"file"])
    store.write(c1, "d/x", [b"nested"])
    before = _snapshot(store.root)
    e = _raises(grpc.StatusCode.FAILED_PRECONDITION, "BLOB_PATH_CONFLICT", store.write, c1, "a/b", [b"1"])
    assert "'a'" in e.message
    _raises(grpc.StatusCode.FAILED_PRECONDITION, "BLOB_PATH_CONFLICT", store.write, c1, "a/b/c", [b"1"])
    _raises(grpc.StatusCode.FAILED_PRECONDITION, "BLOB_PATH_CONFLICT", store.write, c1, "d", [b"1"])
    assert _snapshot(store.root) == before
    # Once the folder empties, the name is free for a file.
    store.delete_blob(c1, "d/x")
    assert not (store.root / c1 / "d").exists()
    store.write(c1, "d", [b"now a file"])
    assert store.read(c1, "d") == b"now a file"


def test_conflict_appearing_during_upload_leaves_nothing(store: BlobStore, c1: str) -> None:
    writer = store.open_writer(c1, "p/q/r")
    writer.write(b"payload")
    store.write(c1, "p", [b"i got here first"])
    before = {k: v for k, v in _snapshot(store.root).items() if not k.startswith(".shoal/tmp/upload-")}
    _raises(grpc.StatusCode.FAILED_PRECONDITION, "BLOB_PATH_CONFLICT", writer.commit)
    assert not writer.committed
    assert _snapshot(store.root) == before
    assert list(store.tmp_dir.iterdir()) == []


def test_container_deleted_during_upload(store: BlobStore, c1: str) -> None:
    writer = store.open_writer(c1, "f")
    writer.write(b"x")
    store.delete_container(c1)
    _raises(grpc.StatusCode.NOT_FOUND, "CONTAINER_NOT_FOUND", writer.commit)
    assert list(store.tmp_dir.iterdir()) == []
    assert not (store.root / c1).exists()


def test_delete_blob_prunes_only_empty_folders(store: BlobStore, c1: str) -> None:
    store.write(c1, "a/b/c/one", [b"1"])
    store.write(c1, "a/two", [b"2"])
    store.delete_blob(c1, "a/b/c/one")
    assert not (store.root / c1 / "a" / "b").exists()
    assert (store.root / c1 / "a" / "two").exists()
    store.delete_blob(c1, "a/two")
    assert (store.root / c1).is_dir()
    assert list((store.root / c1).iterdir()) == []
    assert store.list_blobs(c1).blobs == []


# ----------------------------------------------------------------- atomic visibility


def test_upload_invisible_until_commit(store: BlobStore, c1: str) -> None:
    store.write(c1, "f", [b"old"])
    writer = store.open_writer(c1, "f")
    writer.write(b"new " * 1000)
    writer.write(b"tail")
    # Mid-upload: readers see the old blob, listings show the old size, and the new one is absent.
    assert store.read(c1, "f") == b"old"
    assert [b.size for b in store.list_blobs(c1).blobs] == [3]
    w2 = store.open_writer(c1, "g")
    w2.write(b"zzz")
    assert [b.name for b in store.list_blobs(c1).blobs] == ["f"]
    _raises(grpc.StatusCode.NOT_FOUND, "BLOB_NOT_FOUND", store.open_blob, c1, "g")
    assert writer.temp_path.parent == store.tmp_dir
    info = writer.commit()
    assert store.read(c1, "f") == b"new " * 1000 + b"tail"
    assert info.size == 4004
    w2.abort()
    assert list(store.tmp_dir.iterdir()) == []
    assert [b.name for b in store.list_blobs(c1).blobs] == ["f"]


def test_reader_keeps_snapshot_across_overwrite(store: BlobStore, c1: str) -> None:
    store.write(c1, "f", [b"A" * 10])
    with store.open_blob(c1, "f") as reader:
        first = reader.read(4)
        store.write(c1, "f", [b"B" * 20])
        assert first + reader.read(100) == b"A" * 10
    assert store.read(c1, "f") == b"B" * 20


def test_aborted_and_failed_uploads_leave_nothing(store: BlobStore, c1: str) -> None:
    before = _snapshot(store.root)
    with store.open_writer(c1, "x/y/z") as w:
        w.write(b"data")
    # Leaving the context without commit aborts.
    assert _snapshot(store.root) == before

    def chunks():
        yield b"part"
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        store.write(c1, "x/y/z", chunks())
    assert _snapshot(store.root) == before
    w = store.open_writer(c1, "q")
    w.abort()
    w.abort()
    with pytest.raises(RuntimeError):
        w.write(b"late")
    assert _snapshot(store.root) == before


def test_abort_waits_for_running_write(store: BlobStore, c1: str) -> None:
    w = store.open_writer(c1, "big")
    data = os.urandom(8 * 1024 * 1024)
    t = threading.Thread(target=lambda: w.write(data))
    t.start()
    w.abort()
    t.join()
    assert list(store.tmp_dir.iterdir()) == []
    assert store.list_blobs(c1).blobs == []


def test_crash_leftovers_are_cleaned_and_stale_sidecars_ignored(tmp_path: Path) -> None:
    s1 = BlobStore(tmp_path / "b")
    s1.create_container("cn1")
    s1.write("cn1", "f", [b"original"])
    w = s1.open_writer("cn1", "g")
    w.write(b"half")
    # "Crash": the data file is replaced behind the sidecar's back, a temp file stays around.
    (s1.root / "cn1" / "f").write_bytes(b"changed!!")
    s2 = BlobStore(tmp_path / "b")
    assert list(s2.tmp_dir.iterdir()) == []
    info = s2.get_blob("cn1", "f")
    assert info.size == 9
    assert info.sha256 == hashlib.sha256(b"changed!!").hexdigest()
    assert [b.sha256 for b in s2.list_blobs("cn1").blobs] == [info.sha256]
    # The sidecar was rewritten for the file it now describes.
    meta = json.loads(s2._blob_meta_path("cn1", "f").read_text())
    assert (meta["sha256"], meta["size"]) == (info.sha256, 9)
    w.abort()  # the "crashed" process's file handle


# ----------------------------------------------------------------- listing


def test_list_recursive_order_and_prefix(store: BlobStore, c1: str) -> None:
    names = ["a", "a-b", "a.c", "b/x", "b/y/z", "b-c/1", "b.txt", "ba", "c/d/e/f", "é"]
    for n in reversed(names):
        store.write(c1, n, [n.encode()])
    assert [b.name for b in store.list_blobs(c1).blobs] == sorted(names)
    assert [b.name for b in store.list_blobs(c1, prefix="b").blobs] == [
        "b-c/1",
        "b.txt",
        "b/x",
        "b/y/z",
        "ba",
    ]
    assert [b.name for b in store.list_blobs(c1, prefix="b/").blobs] == ["b/x", "b/y/z"]
    assert [b.name for b in store.list_blobs(c1, prefix="b/y").blobs] == ["b/y/z"]
    assert [b.name for b in store.list_blobs(c1, prefix="c/d/e/").blobs] == ["c/d/e/f"]
    assert store.list_blobs(c1, prefix="zzz").blobs == []
    assert store.list_blobs(c1, prefix="../").blobs == []
    blob = store.list_blobs(c1, prefix="b/y/z").blobs[0]
    assert blob.container == c1
    assert blob.size == 5
    assert blob.sha256 == hashlib.sha256(b"b/y/z").hexdigest()


def test_paging_is_stable(store: BlobStore, c1: str) -> None:
    names = sorted(f"d{i % 3}/f{i:03d}" for i in range(25))
    for n in names:
        store.write(c1, n, [b"."])
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = store.list_blobs(c1, page_size=7, page_token=token)
        pages += 1
        seen += [b.name for b in page.blobs]
        if pages == 2:
            # Changes between pages do not repeat or skip what was not changed.
            store.write(c1, "d0/a-first", [b"."])
            store.delete_blob(c1, names[-1])
            store.write(c1, "zz-last", [b"."])
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert seen == [*names[:-1], "zz-last"]
    assert pages == 4
    # An exact multiple ends without an empty trailing page.
    page = store.list_blobs(c1, page_size=26)
    assert len(page.blobs) == 26
    assert page.next_page_token == ""


def test_paging_limits_and_bad_tokens(store: BlobStore, c1: str) -> None:
    for i in range(3):
        store.write(c1, f"f{i}", [b"."])
    assert len(store.list_blobs(c1, page_size=0).blobs) == 3
    assert len(store.list_blobs(c1, page_size=10**6).blobs) == 3
    e = _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE", store.list_blobs, c1, "", -1)
    assert e.field_violations[0][0] == "page_size"
    token = store.list_blobs(c1, page_size=1).next_page_token
    assert token
    for bad in ["garbage", "!!!", "e30=", token + "x"]:
        _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", store.list_blobs, c1, "", 1, bad)
    # A token belongs to its prefix.
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", store.list_blobs, c1, "f", 1, token)


def test_large_listing_caps_page_size(store: BlobStore, c1: str) -> None:
    folder = store.root / c1 / "many"
    folder.mkdir()
    for i in range(MAX_PAGE_SIZE + 10):
        (folder / f"{i:05d}").write_bytes(b"")
    page = store.list_blobs(c1, page_size=MAX_PAGE_SIZE + 1000)
    assert len(page.blobs) == MAX_PAGE_SIZE
    rest = store.list_blobs(c1, page_size=MAX_PAGE_SIZE, page_token=page.next_page_token)
    assert [b.name for b in rest.blobs] == [f"many/{i:05d}" for i in range(MAX_PAGE_SIZE, MAX_PAGE_SIZE + 10)]
    assert rest.next_page_token == ""
    assert sum(1 for _ in store.iter_blobs(c1)) == MAX_PAGE_SIZE + 10


# ----------------------------------------------------------------- traversal and links


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "../cn2/secret", "..", "a/./b"])
def test_traversal_names_are_rejected_everywhere(store: BlobStore, c1: str, name: str) -> None:
    store.create_container("cn2")
    store.write("cn2", "secret", [b"s"])
    before = _snapshot(store.root)
    for call in (
        lambda: store.write(c1, name, [b"evil"]),
        lambda: store.open_writer(c1, name),
        lambda: store.open_blob(c1, name),
        lambda: store.delete_blob(c1, name),
    ):
        _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", call)
    assert _snapshot(store.root) == before


def test_symlink_escapes_are_refused(store: BlobStore, c1: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0")
    store.create_container("cn2")
    store.write("cn2", "secret", [b"s"])
    croot = store.root / c1
    (croot / "esc").symlink_to(outside)
    (croot / "file-link").symlink_to(outside / "passwd")
    (croot / "sibling").symlink_to(store.root / "cn2")
    store.write(c1, "real/ok", [b"ok"])
    (croot / "inner").symlink_to(croot / "real")
    before = _snapshot(tmp_path)
    for name in ["esc/passwd", "esc/new", "sibling/secret", "inner/ok"]:
        _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", store.write, c1, name, [b"x"])
        _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", store.open_blob, c1, name)
        _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", store.delete_blob, c1, name)
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", store.open_blob, c1, "file-link")
    assert _snapshot(tmp_path) == before
    # Links never show up in listings.
    assert [b.name for b in store.list_blobs(c1).blobs] == ["real/ok"]
    # Deleting the container removes the links, not what they point to.
    store.delete_container(c1)
    assert (outside / "passwd").read_text() == "root:x:0:0"
    assert store.read("cn2", "secret") == b"s"


def test_symlink_swapped_in_during_upload(store: BlobStore, c1: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    w = store.open_writer(c1, "d/f")
    w.write(b"x")
    (store.root / c1 / "d").symlink_to(outside)
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_BLOB_NAME", w.commit)
    assert list(outside.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []
