"""Containers of blobs kept as plain files under one root directory.

Layout::

    <root>/
      <container>/<blob name>            the blob's bytes, exactly (nested names are nested files)
      .shoal/
        tmp/                             uploads in progress (same file system, so rename is atomic)
        trash/                           deleted containers, removed in the background of a delete
        meta/<container>/container.json  {"creation_time_ns": ...}
        meta/<container>/blobs/<hh>/<sha256(name)>.json
                                         {"name", "size", "sha256", "ino", "mtime_ns"}

A blob becomes visible only when its data file is renamed into place, after the whole
upload was written to a temporary file and fsynced. Its sidecar (size and sha256) is
written first and records the inode and mtime of the data file it describes, so a
sidecar that does not match the data file (a crash between the two renames, two
racing uploads of one name) is recognised, and the digest is recomputed from the data.

Container ids cannot start with '.', so nothing a user names can reach `.shoal/`.
Symbolic links are never followed: a blob path that runs through a link is refused,
and listings skip links. One :class:`BlobStore` owns a root at a time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import grpc

from shoal.clock import Clock, SystemClock
from shoal.paths import UnsafePathError, check_relative_path, safe_join
from shoal.server.api.errors import ApiError, already_exists, failed_precondition, invalid, not_found, shown

CONTAINER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
MAX_BLOB_NAME_CHARS = 1024
MAX_NAME_PART_BYTES = 255
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
READ_CHUNK_SIZE = 1024 * 1024

RESERVED_DIR = ".shoal"

# ErrorInfo reasons raised by this module.
INVALID_CONTAINER_ID = "INVALID_CONTAINER_ID"
INVALID_BLOB_NAME = "INVALID_BLOB_NAME"
INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
CONTAINER_NOT_FOUND = "CONTAINER_NOT_FOUND"
CONTAINER_EXISTS = "CONTAINER_EXISTS"
BLOB_NOT_FOUND = "BLOB_NOT_FOUND"
BLOB_PATH_CONFLICT = "BLOB_PATH_CONFLICT"
STORAGE_FULL = "STORAGE_FULL"


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the store sees it."""

    id: str
    creation_time: datetime


@dataclass(frozen=True)
class BlobInfo:
    """A committed blob: where it lives, how big it is, its digest and when it was written."""

    container: str
    name: str
    size: int
    sha256: str
    modify_time: datetime


@dataclass(frozen=True)
class BlobPage:
    """One page of a blob listing; `next_page_token` is empty on the last page."""

    blobs: list[BlobInfo]
    next_page_token: str


# --------------------------------------------------------------------------- validation


def validate_container_id(container_id: str, field: str = "container") -> str:
    """Return `container_id` or raise INVALID_ARGUMENT INVALID_CONTAINER_ID naming `field`."""
    if not CONTAINER_ID_RE.fullmatch(container_id):
        raise invalid(
            INVALID_CONTAINER_ID,
            [
                (
                    field,
                    f"{shown(container_id)} is not 3..63 lowercase letters, digits and '-' starting with a letter "
                    "or digit",
                )
            ],
        )
    return container_id


def blob_name_problem(name: str) -> str | None:
    """Why `name` is not an acceptable blob name, or None when it is."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_BLOB_NAME_CHARS:
        return f"must be at most {MAX_BLOB_NAME_CHARS} characters"
    try:
        normalised = check_relative_path(name)
    except UnsafePathError as e:
        return str(e)
    if normalised != name:
        return "must be a '/'-separated relative path without empty or '.' parts or a trailing '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "must not contain control characters"
    try:
        parts = [p.encode("utf-8") for p in name.split("/")]
    except UnicodeEncodeError:
        return "must be valid UTF-8"
    if any(len(p) > MAX_NAME_PART_BYTES for p in parts):
        return f"each '/'-separated part must be at most {MAX_NAME_PART_BYTES} bytes"
    return None


def validate_blob_name(name: str, field: str = "blob_name") -> str:
    """Return `name` or raise INVALID_ARGUMENT INVALID_BLOB_NAME naming `field`."""
    problem = blob_name_problem(name)
    if problem is not None:
        raise invalid(INVALID_BLOB_NAME, [(field, f"blob name {shown(name)}: {problem}")])
    return name


def _encode_token(after: str, prefix: str) -> str:
    raw = json.dumps({"a": after, "p": prefix}, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str, prefix: str) -> str:
    bad = invalid(INVALID_PAGE_TOKEN, [("page_token", "is not a token from a previous page of this listing")])
    try:
        data = json.loads(base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True))
    except (ValueError, UnicodeError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or data.get("p") != prefix:
        raise bad
    after: str = data["a"]
    if _encode_token(after, prefix) != token:
        raise bad
    return after


# --------------------------------------------------------------------------- file helpers


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict[str, Any], tmp_dir: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="meta-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(data, separators=(",", ":")).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _datetime_to_ns(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


def _is_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def _full_error() -> ApiError:
    return ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL, "the blob store is out of space")


# --------------------------------------------------------------------------- reader / writer


class BlobReader:
    """An open blob: its :class:`BlobInfo` and its bytes, a consistent snapshot even if it is replaced."""

    def __init__(self, info: BlobInfo, file: BinaryIO) -> None:
        self.info = info
        self._file = file

    def read(self, size: int = READ_CHUNK_SIZE) -> bytes:
        """Up to `size` bytes; b'' at the end."""
        return self._file.read(size)

    def chunks(self, size: int = READ_CHUNK_SIZE) -> Iterator[bytes]:
        """The remaining bytes in chunks of at most `size`."""
        while data := self._file.read(size):
            yield data

    def close(self) -> None:
        """Release the file."""
        self._file.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobWriter:
    """An upload in progress: bytes go to a temporary file; :meth:`commit` makes the blob visible.

    Thread-safe in the sense the servicer needs: :meth:`abort` may be called from another
    thread while a :meth:`write` is running and waits for it; after :meth:`commit` it does nothing.
    Used as a context manager, an exception or a missing commit aborts.
    """

    def __init__(self, store: BlobStore, container: str, name: str) -> None:
        self.container = container
        self.name = name
        self._store = store
        self._lock = threading.Lock()
        self._hash = hashlib.sha256()
        self._size = 0
        self._state = "open"  # open | committed | aborted
        fd, tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self.temp_path = Path(tmp)
        self._file: BinaryIO = os.fdopen(fd, "wb")

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def committed(self) -> bool:
        """Whether :meth:`commit` succeeded."""
        return self._state == "committed"

    def write(self, data: bytes) -> None:
        """Append `data` to the upload."""
        with self._lock:
            if self._state != "open":
                raise RuntimeError(f"upload of {self.container}/{self.name} is {self._state}")
            try:
                self._file.write(data)
            except OSError as e:
                if _is_full(e):
                    raise _full_error() from e
                raise
            self._hash.update(data)
            self._size += len(data)

    def commit(self) -> BlobInfo:
        """Flush, fsync and rename into place; the blob is visible when this returns.

        On any error the upload is aborted and nothing is left behind.
        """
        with self._lock:
            if self._state != "open":
                raise RuntimeError(f"upload of {self.container}/{self.name} is {self._state}")
            try:
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                except OSError as e:
                    if _is_full(e):
                        raise _full_error() from e
                    raise
                self._file.close()
                info = self._store._commit(self)
            except BaseException:
                self._discard()
                raise
            self._state = "committed"
            return info

    def abort(self) -> None:
        """Drop the upload and its temporary file (idempotent; no-op after commit)."""
        with self._lock:
            if self._state == "open":
                self._discard()

    def _discard(self) -> None:
        self._state = "aborted"
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes written so far."""
        return self._hash.hexdigest()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


# --------------------------------------------------------------------------- the store


class BlobStore:
    """Containers as directories under `root`, blobs as files inside them.

    Methods are synchronous and do disk I/O; async callers run them with
    :func:`asyncio.to_thread`. Errors are :class:`~shoal.server.api.errors.ApiError`
    with the reasons defined in this module.
    """

    def __init__(self, root: Path, *, clock: Clock | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self._clock: Clock = clock or SystemClock()
        self._reserved = self.root / RESERVED_DIR
        self.tmp_dir = self._reserved / "tmp"
        self._trash = self._reserved / "trash"
        self._meta = self._reserved / "meta"
        # Namespace changes (create/delete, the final renames) are serialised; data is written outside.
        self._lock = threading.RLock()
        for d in (self.tmp_dir, self._trash, self._meta):
            d.mkdir(parents=True, exist_ok=True)
        # Whatever a crash left in tmp/ or trash/ is garbage: one store owns the root.
        for d in (self.tmp_dir, self._trash):
            for entry in d.iterdir():
                self._remove_tree(entry)

    # ---------------------------------------------------------------- paths

    def _container_dir(self, container: str) -> Path:
        validate_container_id(container)
        return self.root / container

    def _container_meta_dir(self, container: str) -> Path:
        return self._meta / container

    def _blob_meta_path(self, container: str, name: str) -> Path:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        return self._meta / container / "blobs" / digest[:2] / f"{digest}.json"

    def _require_container(self, container: str) -> Path:
        """The container's directory, or NOT_FOUND (a link in its place counts as missing)."""
        path = self._container_dir(container)
        try:
            st = path.lstat()
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise not_found(CONTAINER_NOT_FOUND, f"container {container!r} does not exist")
        return path

    def _blob_path(self, container: str, name: str, field: str = "blob_name") -> Path:
        """Where blob `name` lives; refuses names that would leave the container or pass a link."""
        validate_blob_name(name, field)
        base = self._require_container(container)
        lexical = base / name
        try:
            resolved = safe_join(base, name)
        except UnsafePathError as e:
            raise invalid(INVALID_BLOB_NAME, [(field, f"blob name {shown(name)}: {e}")]) from None
        if resolved != lexical:
            raise invalid(INVALID_BLOB_NAME, [(field, f"blob name {shown(name)} runs through a symbolic link")])
        return lexical

    def _check_no_conflict(self, container: str, name: str, path: Path) -> None:
        """Raise FAILED_PRECONDITION when `name` clashes with existing blobs' files or directories."""
        base = self.root / container
        parts = name.split("/")
        current = base
        for i, part in enumerate(parts[:-1]):
            current = current / part
            try:
                st = current.lstat()
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode):
                prefix = "/".join(parts[: i + 1])
                raise failed_precondition(
                    BLOB_PATH_CONFLICT,
                    f"blob {name!r} cannot be created in container {container!r}: "
                    f"blob {prefix!r} exists and a blob name cannot also be a folder",
                )
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise failed_precondition(
                BLOB_PATH_CONFLICT,
                f"blob {name!r} cannot be created in container {container!r}: "
                f"it is a folder of other blobs ({name + '/'!r}...)",
            )

    # ---------------------------------------------------------------- containers

    def create_container(self, container_id: str, exist_ok: bool = False) -> ContainerInfo:
        """Create a container; ALREADY_EXISTS CONTAINER_EXISTS unless `exist_ok`."""
        validate_container_id(container_id, "id")
        path = self.root / container_id
        with self._lock:
            if os.path.lexists(path):
                if exist_ok and path.is_dir() and not path.is_symlink():
                    return self._container_info(container_id)
                raise already_exists(CONTAINER_EXISTS, f"container {container_id!r} already exists")
            meta_dir = self._container_meta_dir(container_id)
            if os.path.lexists(meta_dir):  # left over from a crash during a delete
                self._move_to_trash(meta_dir)
            meta_dir.mkdir()
            created = self._clock.now()
            _write_json_atomic(
                meta_dir / "container.json", {"creation_time_ns": _datetime_to_ns(created)}, self.tmp_dir
            )
            path.mkdir()
            _fsync_dir(self.root)
            return ContainerInfo(id=container_id, creation_time=_ns_to_datetime(_datetime_to_ns(created)))

    def _container_info(self, container_id: str) -> ContainerInfo:
        data = _read_json(self._container_meta_dir(container_id) / "container.json")
        ns = data.get("creation_time_ns") if data else None
        if not isinstance(ns, int):
            ns = (self.root / container_id).stat().st_mtime_ns
        return ContainerInfo(id=container_id, creation_time=_ns_to_datetime(ns))

    def get_container(self, container_id: str) -> ContainerInfo:
        """One container, or NOT_FOUND CONTAINER_NOT_FOUND."""
        self._require_container(container_id)
        return self._container_info(container_id)

    def list_containers(self) -> list[ContainerInfo]:
        """Every container, ordered by id."""
        result = []
        with os.scandir(self.root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if CONTAINER_ID_RE.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    result.append(self._container_info(entry.name))
        return result

    def delete_container(self, container_id: str) -> None:
        """Delete a container and every blob in it; NOT_FOUND CONTAINER_NOT_FOUND if missing."""
        validate_container_id(container_id, "id")
        with self._lock:
            path = self._require_container(container_id)
            trashed = [self._move_to_trash(path)]  # the container is gone from here on
            _fsync_dir(self.root)
            meta_dir = self._container_meta_dir(container_id)
            if os.path.lexists(meta_dir):
                trashed.append(self._move_to_trash(meta_dir))
        for t in trashed:
            self._remove_tree(t)

    def _move_to_trash(self, path: Path) -> Path:
        target = self._trash / uuid.uuid4().hex
        os.rename(path, target)
        return target

    @staticmethod
    def _remove_tree(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ---------------------------------------------------------------- blobs

    def open_writer(self, container: str, name: str) -> BlobWriter:
        """Start an upload of `container`/`name`; checks the container and the name first."""
        path = self._blob_path(container, name)
        self._check_no_conflict(container, name, path)
        return BlobWriter(self, container, name)

    def write(self, container: str, name: str, chunks: Iterable[bytes]) -> BlobInfo:
        """Upload `chunks` as blob `name` (replacing it) and return the committed blob."""
        with self.open_writer(container, name) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def _commit(self, writer: BlobWriter) -> BlobInfo:
        """Rename a fully written, fsynced upload into place (called by :meth:`BlobWriter.commit`)."""
        container, name = writer.container, writer.name
        mtime_ns = _datetime_to_ns(self._clock.now())
        os.utime(writer.temp_path, ns=(mtime_ns, mtime_ns))
        st = os.stat(writer.temp_path)
        sha = writer.sha256
        with self._lock:
            path = self._blob_path(container, name)
            self._check_no_conflict(container, name, path)
            created: list[Path] = []
            try:
                parent = path.parent
                missing = []
                while not parent.exists():
                    missing.append(parent)
                    parent = parent.parent
                for d in reversed(missing):
                    d.mkdir()
                    created.append(d)
                meta_path = self._blob_meta_path(container, name)
                meta_path.parent.mkdir(parents=True, exist_ok=True)
                _write_json_atomic(
                    meta_path,
                    {"name": name, "size": st.st_size, "sha256": sha, "ino": st.st_ino, "mtime_ns": mtime_ns},
                    self.tmp_dir,
                )
                os.rename(writer.temp_path, path)
            except BaseException:
                for d in reversed(created):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                raise
            _fsync_dir(path.parent)
            for d in reversed(created):
                _fsync_dir(d.parent)
        return BlobInfo(
            container=container, name=name, size=st.st_size, sha256=sha, modify_time=_ns_to_datetime(mtime_ns)
        )

    def _info_for(self, container: str, name: str, st: os.stat_result, file: BinaryIO | None = None) -> BlobInfo:
        """Build a BlobInfo from the data file's stat, using the sidecar when it describes this file.

        Without a matching sidecar the digest is computed from an open file (`file`, or the blob
        opened here, whose own stat then wins) and the sidecar is rewritten.
        Raises FileNotFoundError when the blob vanished meanwhile.
        """
        meta_path = self._blob_meta_path(container, name)
        meta = _read_json(meta_path)
        if (
            meta is not None
            and meta.get("name") == name
            and meta.get("ino") == st.st_ino
            and meta.get("size") == st.st_size
            and meta.get("mtime_ns") == st.st_mtime_ns
            and isinstance(meta.get("sha256"), str)
        ):
            sha: str = meta["sha256"]
        elif file is None:
            with self._open_regular(self.root / container / name) as f:
                return self._info_for(container, name, os.fstat(f.fileno()), f)
        else:
            sha = self._hash_file(file)
            with contextlib.suppress(OSError):
                meta_path.parent.mkdir(parents=True, exist_ok=True)
                _write_json_atomic(
                    meta_path,
                    {"name": name, "size": st.st_size, "sha256": sha, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns},
                    self.tmp_dir,
                )
        return BlobInfo(
            container=container,
            name=name,
            size=st.st_size,
            sha256=sha,
            modify_time=_ns_to_datetime(st.st_mtime_ns),
        )

    @staticmethod
    def _open_regular(path: Path) -> BinaryIO:
        """Open a regular file without following links; FileNotFoundError for anything else."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (NotADirectoryError, IsADirectoryError) as e:
            raise FileNotFoundError(str(path)) from e
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise FileNotFoundError(str(path)) from e
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(str(path))
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    @staticmethod
    def _hash_file(file: BinaryIO) -> str:
        h = hashlib.sha256()
        pos = file.tell()
        file.seek(0)
        while data := file.read(READ_CHUNK_SIZE):
            h.update(data)
        file.seek(pos)
        return h.hexdigest()

    def _not_found(self, container: str, name: str) -> ApiError:
        return not_found(BLOB_NOT_FOUND, f"blob {name!r} does not exist in container {container!r}")

    def get_blob(self, container: str, name: str) -> BlobInfo:
        """A blob's info, or NOT_FOUND BLOB_NOT_FOUND / CONTAINER_NOT_FOUND."""
        with self.open_blob(container, name) as reader:
            return reader.info

    def open_blob(self, container: str, name: str) -> BlobReader:
        """Open a blob for chunked reading (the caller closes the reader)."""
        path = self._blob_path(container, name)
        try:
            file = self._open_regular(path)
        except FileNotFoundError:
            raise self._not_found(container, name) from None
        try:
            info = self._info_for(container, name, os.fstat(file.fileno()), file)
        except BaseException:
            file.close()
            raise
        return BlobReader(info, file)

    def read(self, container: str, name: str) -> bytes:
        """A whole blob's bytes (for small blobs and tests)."""
        with self.open_blob(container, name) as reader:
            return b"".join(reader.chunks())

    def delete_blob(self, container: str, name: str) -> None:
        """Delete a blob; NOT_FOUND BLOB_NOT_FOUND if it does not exist. Empty folders go with it."""
        with self._lock:
            path = self._blob_path(container, name)
            try:
                st = path.lstat()
            except (FileNotFoundError, NotADirectoryError):
                raise self._not_found(container, name) from None
            if not stat.S_ISREG(st.st_mode):
                raise self._not_found(container, name)
            path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._blob_meta_path(container, name).unlink()
            base = self.root / container
            parent = path.parent
            while parent != base:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
            _fsync_dir(parent)

    def list_blobs(self, container: str, prefix: str = "", page_size: int = 0, page_token: str = "") -> BlobPage:
        """Blobs whose names start with `prefix`, in name order, `page_size` at a time.

        `page_size` 0 means 1000; larger than 5000 is cut to 5000. The token is the last name
        returned, so pages stay consistent while blobs come and go.
        """
        if page_size < 0:
            raise invalid(INVALID_PAGE_SIZE, [("page_size", "must not be negative")])
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token, prefix) if page_token else None
        base = self._require_container(container)
        found: list[tuple[str, os.stat_result]] = []
        for name, st in self._walk(base, "", prefix, after):
            found.append((name, st))
            if len(found) > size:
                break
        more = len(found) > size
        found = found[:size]
        blobs = []
        for name, st in found:
            try:
                blobs.append(self._info_for(container, name, st))
            except FileNotFoundError:  # deleted while we were listing
                continue
        token = _encode_token(found[-1][0], prefix) if more and found else ""
        return BlobPage(blobs=blobs, next_page_token=token)

    def iter_blobs(self, container: str, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob with `prefix`, in name order, following pages."""
        token = ""
        while True:
            page = self.list_blobs(container, prefix, MAX_PAGE_SIZE, token)
            yield from page.blobs
            if not page.next_page_token:
                return
            token = page.next_page_token

    def _walk(self, directory: Path, rel: str, prefix: str, after: str | None) -> Iterator[tuple[str, os.stat_result]]:
        """Regular files under `directory` in global name order, skipping links and bad names.

        A folder `d` sorts as `d/`, which places its contents exactly where their full names
        sort among their siblings ('-' and '.' sort before '/').
        """
        try:
            with os.scandir(directory) as it:
                entries = []
                for entry in it:
                    name = f"{rel}{entry.name}"
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        entries.append((name + "/", entry, st, True))
                    elif stat.S_ISREG(st.st_mode):
                        entries.append((name, entry, st, False))
        except (FileNotFoundError, NotADirectoryError):
            return
        entries.sort(key=lambda t: t[0])
        for key, entry, st, is_dir in entries:
            if is_dir:
                # Any name below starts with `key`: skip unless it can match the prefix and follow `after`.
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if after is not None and after > key and not after.startswith(key):
                    continue
                yield from self._walk(Path(entry.path), key, prefix, after)
            else:
                if not key.startswith(prefix) or (after is not None and key <= after):
                    continue
                if blob_name_problem(key) is not None:
                    continue
                yield key, st
