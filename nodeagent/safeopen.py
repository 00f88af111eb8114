"""Opening paths below a directory without following a symbolic link at any component.

Everything the agent reads, lists or writes on a user's behalf (task files, node
files, output uploads, resource-file destinations) goes through here, because a
task can swap any component of a path for a symlink at any moment: checking the
path first and opening it afterwards (`Path.resolve()`, then `open`) is a race
that a task wins often enough to read `/etc/passwd` through the API.

Two ways, one meaning:

- `openat2(2)` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` (Linux 5.6+) resolves
  the whole path in the kernel, atomically, refusing any symlink and anything
  that would leave the base directory. Called through `ctypes` (Python has no
  binding); a kernel or seccomp filter without it (ENOSYS, EPERM) switches to:
- a walk from the base directory, one component at a time, each opened relative
  to the previous one's descriptor with ``O_NOFOLLOW``.

Either way a symlink anywhere in the path fails with ``ELOOP``, and ``..`` or an
absolute path never gets as far as the kernel (`UnsafePathError`). The base
directory itself is trusted: it is the agent's own (the node root), named by the
agent's configuration.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shoal.paths import UnsafePathError, check_relative_path

__all__ = [
    "NotARegularFile",
    "UnsafePathError",
    "WalkEntry",
    "WalkLimitError",
    "describe_error",
    "lstat_beneath",
    "makedirs_beneath",
    "open_beneath",
    "open_dir",
    "open_regular",
    "openat2_available",
    "split_parent",
    "use_openat2",
    "walk",
]

# <linux/openat2.h>
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
#: openat2's number on the architectures that share the generic syscall table (all 64-bit ones Shoal runs on).
_SYS_OPENAT2 = {"x86_64": 437, "amd64": 437, "aarch64": 437, "arm64": 437, "riscv64": 437, "ppc64le": 437}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Openat2:
    """The openat2 syscall through libc's `syscall(2)`, or None when this machine has no way to it."""

    def __init__(self) -> None:
        self.number = _SYS_OPENAT2.get(platform.machine().lower()) if os.uname().sysname == "Linux" else None
        self._syscall: Callable[..., int] | None = None
        #: None: not tried yet; then whether the kernel answered.
        self.works: bool | None = None if self.number is not None else False

    def __call__(self, dir_fd: int, path: str, flags: int, mode: int) -> int:
        if self._syscall is None:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.syscall
            fn.restype = ctypes.c_long
            self._syscall = fn
        tmpfile = getattr(os, "O_TMPFILE", 0)
        # A mode without O_CREAT or O_TMPFILE is EINVAL (O_TMPFILE includes O_DIRECTORY's bit).
        creates = flags & os.O_CREAT or (tmpfile and flags & tmpfile == tmpfile)
        how = _OpenHow(flags=flags, mode=mode if creates else 0)
        how.resolve = _RESOLVE
        fd = self._syscall(
            ctypes.c_long(self.number or 0),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return int(fd)


_openat2 = _Openat2()


def openat2_available() -> bool:
    """Whether openat2 is used (probed on first use: False before that on a machine without it)."""
    if _openat2.works is None:
        fd = os.open("/", _DIR_FLAGS)
        try:
            _probe(fd)
        finally:
            os.close(fd)
    return bool(_openat2.works)


def _probe(dir_fd: int) -> None:
    try:
        os.close(_openat2(dir_fd, ".", _DIR_FLAGS, 0))
        _openat2.works = True
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            _openat2.works = False  # an old kernel, or a seccomp filter that does not know it
        else:
            raise


def use_openat2(enabled: bool) -> None:
    """Force the walk (False) or openat2 where it works (True); for tests of both ways."""
    _openat2.works = None if enabled and _openat2.number is not None else False


def _components(rel: str) -> list[str]:
    """The checked components of `rel` ('' and '.' mean the base itself: no components)."""
    norm = check_relative_path(rel, allow_empty=True)
    return norm.split("/") if norm else []


def _open_nofollow(name: str, flags: int, mode: int, dir_fd: int) -> int:
    """open(2) of one component with O_NOFOLLOW, answering ELOOP for a symlink as openat2 does.

    (With O_DIRECTORY the kernel answers ENOTDIR for a symlink.)
    """
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except NotADirectoryError:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise


def _walk_open(dir_fd: int, parts: list[str], flags: int, mode: int) -> int:
    """Open `parts` below `dir_fd` one component at a time, never following a symlink."""
    fd = os.dup(dir_fd)
    try:
        for name in parts[:-1]:
            nxt = _open_nofollow(name, _DIR_FLAGS, 0, fd)
            os.close(fd)
            fd = nxt
        return _open_nofollow(parts[-1], flags, mode, fd)
    finally:
        os.close(fd)


def _open_at(dir_fd: int, parts: list[str], flags: int, mode: int) -> int:
    if not parts:
        # The base itself ("." needs neither a walk nor a check).
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=dir_fd)
    if _openat2.works is None:
        _probe(dir_fd)
    if _openat2.works:
        try:
            return _openat2(dir_fd, "/".join(parts), flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except NotADirectoryError:
            # O_DIRECTORY | O_NOFOLLOW on a final symlink is ENOTDIR: say ELOOP, as for any other link.
            if flags & os.O_DIRECTORY and _final_is_symlink(dir_fd, parts):
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts)) from None
            raise
    return _walk_open(dir_fd, parts, flags, mode)


def _final_is_symlink(dir_fd: int, parts: list[str]) -> bool:
    try:
        parent = _open_at(dir_fd, parts[:-1], _DIR_FLAGS, 0)
    except OSError:
        return False
    try:
        return stat.S_ISLNK(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False
    finally:
        os.close(parent)


def open_beneath(base: str | os.PathLike[str] | int, rel: str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """A descriptor for `rel` below `base` (a directory path or descriptor), no symlink followed.

    Raises UnsafePathError for an absolute path, '..', NUL or backslash; OSError as open(2)
    does, with ELOOP when any component is a symlink. The caller closes the descriptor.
    """
    parts = _components(rel)
    if isinstance(base, int):
        return _open_at(base, parts, flags, mode)
    base_fd = os.open(base, _DIR_FLAGS)
    try:
        return _open_at(base_fd, parts, flags, mode)
    finally:
        os.close(base_fd)


def open_dir(base: str | os.PathLike[str] | int, rel: str) -> int:
    """A descriptor of directory `rel` below `base` (see `open_beneath`)."""
    return open_beneath(base, rel, os.O_RDONLY | os.O_DIRECTORY)


class NotARegularFile(Exception):
    """`open_regular` met a directory, FIFO, socket or device."""


def open_regular(base: str | os.PathLike[str] | int, rel: str) -> int:
    """A read-only descriptor of the regular file `rel` below `base` (see `open_beneath`).

    Opened with O_NONBLOCK, so that a FIFO a task made cannot hang the caller (it is refused
    after fstat, as anything else that is not a regular file: NotARegularFile).
    """
    fd = open_beneath(base, rel, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile("a directory" if stat.S_ISDIR(mode) else "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def split_parent(rel: str) -> tuple[str, str]:
    """`rel` checked and split into its parent and last component ('' for the base itself)."""
    parts = _components(rel)
    if not parts:
        return "", ""
    return "/".join(parts[:-1]), parts[-1]


def lstat_beneath(base: str | os.PathLike[str] | int, rel: str) -> os.stat_result:
    """The stat of `rel` itself (a symlink as a symlink); its parent directories are opened as above."""
    parent, name = split_parent(rel)
    fd = open_dir(base, parent)
    try:
        return os.stat(name or ".", dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def makedirs_beneath(
    base: str | os.PathLike[str] | int, rel: str, mode: int = 0o777, owner: tuple[int, int] | None = None
) -> int:
    """Make directory `rel` and its missing parents below `base`, no symlink followed; its descriptor.
    Those it makes are `owner`'s (uid, gid) when given.

    An existing symlink where a directory should be fails with ELOOP (it is not replaced).
    """
    parts = _components(rel)
    fd = os.dup(base) if isinstance(base, int) else os.open(base, _DIR_FLAGS)
    try:
        for name in parts:
            made = True
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:
                made = False
            nxt = _open_nofollow(name, _DIR_FLAGS, 0, fd)
            os.close(fd)
            fd = nxt
            if made and owner is not None:
                os.fchown(fd, *owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


class WalkLimitError(Exception):
    """A walk went past one of its bounds (entries, depth or time)."""


@dataclass(frozen=True)
class WalkEntry:
    """One entry met by `walk`: its path relative to the walk's top and its lstat."""

    rel: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        """A real directory (a symlink to one is not)."""
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_file(self) -> bool:
        """A regular file (a symlink to one is not)."""
        return stat.S_ISREG(self.st.st_mode)


def walk(
    top_fd: int,
    *,
    descend: Callable[[str], bool] = lambda _rel: True,
    max_entries: int | None = None,
    max_depth: int | None = None,
    deadline: float | None = None,
) -> Iterator[WalkEntry]:
    """Every entry below directory `top_fd`, depth first in name order, never entering a symlink.

    `descend(rel)` says whether to look inside directory `rel`. Raises WalkLimitError past
    `max_entries` entries, below `max_depth` levels, or after `deadline` (time.monotonic()),
    checked while a directory is read too: a directory of millions of entries is not read whole
    first. Entries that vanish while walking are skipped.
    """
    count = 0

    def check_time() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise WalkLimitError("it took too long")

    def read(fd: int) -> list[str]:
        names: list[str] = []
        with os.scandir(fd) as it:
            for e in it:
                names.append(e.name)
                if max_entries is not None and count + len(names) > max_entries:
                    raise WalkLimitError(f"more than {max_entries} entries")
                check_time()
        names.sort()
        return names

    def visit(fd: int, prefix: str, depth: int) -> Iterator[WalkEntry]:
        nonlocal count
        for name in read(fd):
            count += 1
            if max_entries is not None and count > max_entries:
                raise WalkLimitError(f"more than {max_entries} entries")
            check_time()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            rel = f"{prefix}{name}"
            entry = WalkEntry(rel, st)
            yield entry
            if not entry.is_dir or not descend(rel):
                continue
            if max_depth is not None and depth + 1 > max_depth:
                raise WalkLimitError(f"directories nested more than {max_depth} deep")
            try:
                sub = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                continue  # gone, or swapped for a symlink since the stat
            try:
                yield from visit(sub, rel + "/", depth + 1)
            finally:
                os.close(sub)

    yield from visit(top_fd, "", 0)


def describe_error(e: OSError, path: str) -> str:
    """A message for a user about why `path` could not be opened."""
    shown = path or "."
    if e.errno == errno.ELOOP:
        return f"{shown} is or goes through a symbolic link; Shoal does not follow links in node files"
    if e.errno == errno.EXDEV:
        return f"{shown} leaves its directory"
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"{shown} not found"
    return f"{shown}: {e.strerror or e}"
