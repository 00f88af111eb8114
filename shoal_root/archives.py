"""Checking and unpacking application package archives (zip, tar; tar compressed with gzip, bzip2 or xz).

One module for both sides: the server checks an archive when its package is activated
(`ActivateApplicationPackage`), and a node agent unpacks it with the same rules
(`shoal.nodeagent.packages`), so what the server accepted unpacks the same everywhere.

The rules (each broken one is an `ArchiveError` naming the member):

- every member's path stays inside the directory it is unpacked to: no absolute path, no drive
  letter, no `..` that climbs above it, no backslash or NUL, no name twice;
- no member is reached through a symbolic link of the archive, and a link's target stays inside
  too, resolved one component at a time (a target that runs through another link is refused, so a
  chain of links cannot climb out);
- a hard link (tar) names a regular file of the archive; devices, FIFOs and other special files are
  refused, and so are encrypted zip members;
- the number of members and their total unpacked size are bounded, and so is the ratio of the
  unpacked size to the archive's (a zip bomb is refused before anything is written).

Pure standard library, no clock, no network: `check` reads the archive, `extract` writes below a
directory it is given and nowhere else.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

ZIP = "zip"
TAR = "tar"
FORMATS = (ZIP, TAR)

#: Unpacking copies this much at a time.
_CHUNK = 1024 * 1024
#: The longest symbolic link target read from a zip member (a link's "data" is its target).
_MAX_LINK_TARGET = 4096


@dataclass(frozen=True)
class Limits:
    """How big an archive may unpack to."""

    #: Members (files, directories, links).
    max_members: int = 200_000
    #: The sum of the members' unpacked sizes.
    max_unpacked_bytes: int = 16 * 1024**3
    #: Unpacked size over archive size, checked once the unpacked size passes `ratio_floor_bytes`:
    #: ordinary archives stay far below it, a zip bomb (deflate reaches about 1000:1) does not.
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 * 1024**2

    def budget(self, archive_bytes: int) -> int:
        """The most bytes an archive of `archive_bytes` may unpack to."""
        by_ratio = max(self.ratio_floor_bytes, int(archive_bytes * self.max_ratio))
        return min(self.max_unpacked_bytes, by_ratio)


DEFAULT_LIMITS = Limits()


class ArchiveError(ValueError):
    """The archive is not one Shoal unpacks: unreadable, of another format, or breaking a rule."""

    def __init__(self, message: str, member: str = "") -> None:
        super().__init__(f"member {member!r}: {message}" if member else message)
        self.member = member
        self.problem = message


@dataclass(frozen=True)
class Summary:
    """What a checked (or unpacked) archive holds."""

    format: str
    members: int
    unpacked_bytes: int


# ---- member paths ---------------------------------------------------------------------------------


def member_path(name: str) -> tuple[str, ...]:
    """The parts of a member's path below the directory it unpacks to (empty for the directory itself,
    e.g. a tar's `./`); ArchiveError when the path would leave it."""
    if not name:
        raise ArchiveError("has an empty name", name)
    if "\x00" in name or "\\" in name:
        raise ArchiveError("has a NUL or backslash in its name", name)
    if name.startswith("/"):
        raise ArchiveError("has an absolute path", name)
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if parts and len(parts[0]) >= 2 and parts[0][1] == ":" and parts[0][0].isalpha():
        raise ArchiveError("starts with a drive letter", name)
    if ".." in parts:
        raise ArchiveError("has a '..' in its path", name)
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        raise ArchiveError("has a path component longer than 255 bytes", name)
    return parts


@dataclass(frozen=True)
class _Member:
    parts: tuple[str, ...]
    kind: str  # "dir", "file", "symlink", "hardlink"
    size: int = 0
    #: symlink: its target as written; hardlink: the parts of the file it names.
    target: str = ""
    link_parts: tuple[str, ...] = ()
    mode: int = 0
    #: The member in the archive (a ZipInfo or a TarInfo).
    ref: object = None

    @property
    def name(self) -> str:
        return "/".join(self.parts)


def link_problem(link: tuple[str, ...], target: str, symlinks: frozenset[tuple[str, ...]]) -> str | None:
    """Why symbolic link `link` (its path's parts) pointing at `target` could lead outside, or None.

    The target is resolved from the link's directory one component at a time, as the kernel would:
    it may not be absolute, may not climb above the top, and may not run through another symbolic
    link of the archive (whose own target would decide where it leads: refusing is simpler than
    following chains, and no ordinary archive needs it). A last component that is itself a link is
    allowed: that link is checked on its own.
    """
    if not target:
        return "is a symbolic link with an empty target"
    if "\x00" in target:
        return "is a symbolic link whose target has a NUL"
    if target.startswith("/"):
        return f"is a symbolic link to an absolute path ({target!r})"
    stack = list(link[:-1])
    comps = [c for c in target.split("/") if c not in ("", ".")]
    for i, comp in enumerate(comps):
        if comp == "..":
            if not stack:
                return f"is a symbolic link that points outside ({target!r})"
            stack.pop()
            continue
        stack.append(comp)
        if i < len(comps) - 1 and tuple(stack) in symlinks:
            return f"is a symbolic link whose target runs through another link ({target!r})"
    return None


def _too_big(budget: int, archive_bytes: int) -> ArchiveError:
    return ArchiveError(f"the archive unpacks to more than {budget} bytes (from {archive_bytes}): a zip bomb?")


def _validate(members: list[_Member], archive_bytes: int, limits: Limits) -> int:
    """Check the whole listing (paths, links, kinds, counts); the total unpacked size."""
    if len(members) > limits.max_members:
        raise ArchiveError(f"the archive has more than {limits.max_members} members")
    seen: dict[tuple[str, ...], str] = {}
    for m in members:
        if not m.parts:
            continue
        before = seen.get(m.parts)
        if before is not None and not (before == "dir" and m.kind == "dir"):
            raise ArchiveError("appears twice in the archive", m.name)
        seen[m.parts] = m.kind
    symlinks = frozenset(p for p, kind in seen.items() if kind == "symlink")
    file_sizes = {m.parts: m.size for m in members if m.kind == "file"}
    total = 0
    budget = limits.budget(archive_bytes)
    for m in members:
        # Nothing is reached through a link (or below a file).
        for i in range(1, len(m.parts)):
            kind = seen.get(m.parts[:i])
            if kind is not None and kind != "dir":
                raise ArchiveError(f"lies below {'/'.join(m.parts[:i])!r}, which is a {kind}", m.name)
        if m.kind == "symlink":
            problem = link_problem(m.parts, m.target, symlinks)
            if problem:
                raise ArchiveError(problem, m.name)
        elif m.kind == "hardlink":
            if seen.get(m.link_parts) != "file":
                raise ArchiveError("is a hard link to something that is not a file of the archive", m.name)
            total += file_sizes[m.link_parts]  # (unpacked as a copy)
        total += m.size
        if total > budget:
            raise _too_big(budget, archive_bytes)
    return total


# ---- reading the listing ------------------------------------------------------------------------------


def detect_format(path: Path) -> str | None:
    """ZIP or TAR (plain or compressed) from the file's content; None when it is neither."""
    try:
        if zipfile.is_zipfile(path):
            return ZIP
        if tarfile.is_tarfile(path):
            return TAR
    except OSError:
        return None
    return None


def _zip_members(zf: zipfile.ZipFile, limits: Limits) -> list[_Member]:
    out: list[_Member] = []
    for info in zf.infolist():
        if len(out) >= limits.max_members:
            raise ArchiveError(f"the archive has more than {limits.max_members} members")
        parts = member_path(info.filename)
        if info.flag_bits & 0x1:
            # (zipfile cannot read it without a password: it would raise RuntimeError, not a refusal.)
            raise ArchiveError("is encrypted: a package's members must not be", info.filename)
        mode = info.external_attr >> 16
        kind_bits = stat.S_IFMT(mode)
        if info.is_dir() or kind_bits == stat.S_IFDIR:
            out.append(_Member(parts, "dir", mode=mode, ref=info))
        elif kind_bits == stat.S_IFLNK:
            if info.file_size > _MAX_LINK_TARGET:
                raise ArchiveError("is a symbolic link with a target that is too long", info.filename)
            target = zf.read(info).decode("utf-8", "surrogateescape")
            out.append(_Member(parts, "symlink", target=target, ref=info))
        elif kind_bits in (0, stat.S_IFREG):
            if not parts:
                raise ArchiveError("is a file without a name", info.filename)
            out.append(_Member(parts, "file", size=info.file_size, mode=mode, ref=info))
        else:
            raise ArchiveError("is a special file (device, FIFO or socket)", info.filename)
    return out


def _tar_member(info: tarfile.TarInfo) -> _Member:
    parts = member_path(info.name)
    if info.isdir():
        return _Member(parts, "dir", mode=info.mode, ref=info)
    if info.issym():
        return _Member(parts, "symlink", target=info.linkname, ref=info)
    if info.islnk():
        try:
            link_parts = member_path(info.linkname)
        except ArchiveError as e:
            raise ArchiveError(f"is a hard link to a path outside ({e.problem})", info.name) from e
        return _Member(parts, "hardlink", size=0, link_parts=link_parts, ref=info)
    if info.isreg():
        if not parts:
            raise ArchiveError("is a file without a name", info.name)
        return _Member(parts, "file", size=info.size, mode=info.mode, ref=info)
    raise ArchiveError("is a special file (device, FIFO or socket)", info.name)


def _tar_members(tf: tarfile.TarFile, archive_bytes: int, limits: Limits) -> list[_Member]:
    out: list[_Member] = []
    total = 0
    budget = limits.budget(archive_bytes)
    # Iterated, not `getmembers()`: a bomb (many members, or huge ones in a compressed stream) is cut
    # off as soon as it passes a limit, not after it was all read.
    for info in tf:
        if len(out) >= limits.max_members:
            raise ArchiveError(f"the archive has more than {limits.max_members} members")
        m = _tar_member(info)
        total += m.size
        if total > budget:
            raise _too_big(budget, archive_bytes)
        out.append(m)
    return out


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ArchiveError(f"not a readable tar archive: {e}") from e


def _listing(path: Path, fmt: str, limits: Limits) -> tuple[list[_Member], int]:
    archive_bytes = path.stat().st_size
    try:
        if fmt == ZIP:
            with zipfile.ZipFile(path) as zf:
                members = _zip_members(zf, limits)
        else:
            with _open_tar(path) as tf:
                members = _tar_members(tf, archive_bytes, limits)
    except ArchiveError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        EOFError,
        OSError,
        ValueError,
        # (What zlib and lzma raise on damaged data is neither an OSError nor a ValueError.)
        zlib.error,
        lzma.LZMAError,
    ) as e:
        raise ArchiveError(f"the archive is damaged or not a {fmt} archive: {e}") from e
    return members, archive_bytes


def _format_of(path: Path, fmt: str | None) -> str:
    found = detect_format(path)
    if found is None:
        raise ArchiveError("not a zip or tar archive (tar may be compressed with gzip, bzip2 or xz)")
    if fmt is not None and fmt != found:
        raise ArchiveError(f"the archive is a {found} archive, not {fmt}")
    return found


def check(path: Path, fmt: str | None = None, limits: Limits = DEFAULT_LIMITS, *, verify_data: bool = True) -> Summary:
    """Check the archive at `path` against the rules (see the module); `fmt` None: found from the
    content. With `verify_data`, every member's data is read too (zip CRCs, a truncated tar)."""
    fmt = _format_of(path, fmt)
    members, archive_bytes = _listing(path, fmt, limits)
    total = _validate(members, archive_bytes, limits)
    if verify_data and fmt == ZIP:
        try:
            with zipfile.ZipFile(path) as zf:
                for m in members:
                    if m.kind == "file":
                        with zf.open(m.ref) as src:  # type: ignore[arg-type]
                            while src.read(_CHUNK):
                                pass
        except (
            zipfile.BadZipFile,
            EOFError,
            OSError,
            ValueError,
            NotImplementedError,
            zlib.error,
            lzma.LZMAError,
        ) as e:
            raise ArchiveError(f"the archive's data is damaged: {e}") from e
    return Summary(fmt, len(members), total)


# ---- unpacking ------------------------------------------------------------------------------------------


def _file_mode(mode: int) -> int:
    # Readable by every user the node's tasks run as; executable where the archive says so. Never
    # setuid, setgid or sticky, never writable by others.
    return 0o755 if mode & 0o111 else 0o644


def _copy(src: BinaryIO, dest: Path, size: int, mode: int) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _file_mode(mode))
    os.fchmod(fd, _file_mode(mode))  # (not narrowed by the umask)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > size:
                raise ArchiveError("holds more data than its header says", dest.name)
            out.write(chunk)


def _inside(dest: Path, parts: tuple[str, ...]) -> Path:
    """The path of a member below `dest`, its parent directories made (none of them a link)."""
    target = dest.joinpath(*parts)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    # (Defence in depth: the listing was checked, and links are made last.)
    real, top = os.path.realpath(parent), os.path.realpath(dest)
    if real != top and not real.startswith(top + os.sep):
        raise ArchiveError("would be written outside", "/".join(parts))
    return target


def _members_in_order(members: list[_Member]) -> Iterator[_Member]:
    """Directories and files first, then hard links, then symbolic links (nothing is ever written
    after a link exists that it could run through)."""
    order = {"dir": 0, "file": 1, "hardlink": 2, "symlink": 3}
    yield from sorted((m for m in members if m.parts), key=lambda m: order[m.kind])


def extract(path: Path, dest: Path, fmt: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Summary:
    """Check the archive (see `check`) and unpack it into `dest`, a directory that must not exist yet
    (made here; on a failure what was unpacked is removed). Returns what it held."""
    fmt = _format_of(path, fmt)
    members, archive_bytes = _listing(path, fmt, limits)
    total = _validate(members, archive_bytes, limits)
    dest.mkdir(mode=0o755)
    try:
        if fmt == ZIP:
            with zipfile.ZipFile(path) as zf:
                _unpack(members, dest, lambda m: zf.open(m.ref))  # type: ignore[arg-type,return-value]
        else:
            with _open_tar(path) as tf:
                _unpack(members, dest, lambda m: _tar_file(tf, m))
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        EOFError,
        ValueError,
        NotImplementedError,
        zlib.error,
        lzma.LZMAError,
    ) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"the archive's data is damaged: {e}") from e
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return Summary(fmt, len(members), total)


def _tar_file(tf: tarfile.TarFile, m: _Member) -> BinaryIO:
    src = tf.extractfile(m.ref)  # type: ignore[arg-type]
    if src is None:
        raise ArchiveError("has no data", m.name)
    return src  # type: ignore[return-value]


def _unpack(members: list[_Member], dest: Path, opener: Callable[[_Member], BinaryIO]) -> None:
    for m in _members_in_order(members):
        target = _inside(dest, m.parts)
        if m.kind == "dir":
            target.mkdir(mode=0o755, exist_ok=True)
            if target.is_symlink() or not target.is_dir():
                raise ArchiveError("is a directory where something else is", m.name)
        elif m.kind == "file":
            with opener(m) as src:
                _copy(src, target, m.size, m.mode)
        elif m.kind == "hardlink":
            source = dest.joinpath(*m.link_parts)
            # A copy rather than a link: the archive's own file stays the only one with its inode.
            with open(source, "rb") as src:
                _copy(src, target, os.path.getsize(source), os.stat(source).st_mode)
        else:
            os.symlink(m.target, target)
    for d in sorted((m for m in members if m.kind == "dir" and m.parts), key=lambda m: -len(m.parts)):
        os.chmod(dest.joinpath(*d.parts), 0o755, follow_symlinks=False)
