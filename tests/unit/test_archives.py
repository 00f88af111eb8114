"""The archive rules shared by the server's activation check and the agents' unpacking (`shoal.archives`)."""

from __future__ import annotations

import io
import os
import random
import stat
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal import archives
from shoal.archives import ArchiveError, Limits

pytestmark = pytest.mark.timeout(60)


#: The default limits but for the size from which the ratio counts (64 MiB): a small bomb is enough.
BOMB_LIMITS = Limits(ratio_floor_bytes=1024 * 1024)


def make_zip(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(
    path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None, mode: str = "w:gz"
) -> Path:
    with tarfile.open(path, mode) as tf:
        for info in members:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
                tf.addfile(info, io.BytesIO(body))
            else:
                tf.addfile(info)
    return path


def tar_info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


# ---- good archives -------------------------------------------------------------------------------------------


def test_zip_unpacks_with_modes_and_links(tmp_path: Path) -> None:
    src = tmp_path / "a.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("bin/", b"")
        info = zipfile.ZipInfo("bin/tool.sh")
        info.external_attr = (stat.S_IFREG | 0o4755) << 16
        zf.writestr(info, b"#!/bin/sh\necho hi\n")
        zf.writestr("data/readme.txt", b"hello")
        link = zipfile.ZipInfo("data/tool")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../bin/tool.sh")
    summary = archives.check(src)
    assert (summary.format, summary.members) == (archives.ZIP, 4)
    dest = tmp_path / "out"
    archives.extract(src, dest)
    assert (dest / "data/readme.txt").read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(dest / "bin/tool.sh").st_mode) == 0o755  # setuid dropped, still executable
    assert stat.S_IMODE(os.stat(dest / "data/readme.txt").st_mode) == 0o644
    assert os.readlink(dest / "data/tool") == "../bin/tool.sh"
    assert (dest / "data/tool").read_bytes().startswith(b"#!/bin/sh")


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_in_every_compression(tmp_path: Path, mode: str) -> None:
    src = make_tar(
        tmp_path / "a.tar",
        [tar_info("./", tarfile.DIRTYPE), tar_info("./x/y.txt"), tar_info("./x/z.txt", tarfile.LNKTYPE, "./x/y.txt")],
        {"./x/y.txt": b"payload"},
        mode,
    )
    assert archives.detect_format(src) == archives.TAR
    dest = tmp_path / "out"
    summary = archives.extract(src, dest)
    assert summary.unpacked_bytes == 2 * len(b"payload")
    assert (dest / "x/z.txt").read_bytes() == b"payload"
    assert os.stat(dest / "x/z.txt").st_ino != os.stat(dest / "x/y.txt").st_ino  # a copy, not a link


def test_format_is_detected_and_a_wrong_claim_refused(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "a.bin", {"f": b"1"})
    assert archives.check(src).format == archives.ZIP
    with pytest.raises(ArchiveError, match="is a zip archive, not tar"):
        archives.check(src, archives.TAR)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an archive at all" * 100)
    with pytest.raises(ArchiveError, match="not a zip or tar"):
        archives.check(junk)


# ---- bad member paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../evil", "a/../../evil", "/etc/passwd", "C:/x", "a\\..\\b", "a/\x00b", "x/" + "y" * 300],
)
def test_member_paths_that_escape_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArchiveError):
        archives.member_path(name)
    if "\x00" in name:
        return  # (a tar name ends at a NUL)
    src = make_tar(tmp_path / "t.tar", [tar_info(name)], {name: b"x"}, "w")
    with pytest.raises(ArchiveError):
        archives.check(src)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError):
        archives.extract(src, dest)
    assert not dest.exists()


@pytest.mark.parametrize(
    ("links", "ok"),
    [
        ({"a": "b"}, True),
        ({"d/a": "../b"}, True),
        ({"a": "../b"}, False),
        ({"a": "/etc"}, False),
        ({"d/a": "../../b"}, False),
        ({"d/a": "..", "e": "d/a/x"}, False),  # a chain: runs through another link
        ({"d/l1": "..", "l2": "d/l1/.."}, False),  # lexically inside, really outside
    ],
)
def test_symlink_targets(tmp_path: Path, links: dict[str, str], ok: bool) -> None:
    src = make_zip(tmp_path / "l.zip", {"d/f": b"1"}, links)
    if ok:
        archives.check(src)
    else:
        with pytest.raises(ArchiveError, match="symbolic link"):
            archives.check(src)


def test_members_below_a_link_are_refused(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "t.tar", [tar_info("d", tarfile.SYMTYPE, "."), tar_info("d/evil")], {"d/evil": b"x"}, "w")
    with pytest.raises(ArchiveError, match="which is a symlink"):
        archives.check(src)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_are_refused(tmp_path: Path, kind: bytes) -> None:
    src = make_tar(tmp_path / "t.tar", [tar_info("dev", kind)], None, "w")
    with pytest.raises(ArchiveError, match="special file"):
        archives.check(src)


@pytest.mark.parametrize("target", ["../outside", "/etc/passwd", "missing"])
def test_hard_links_name_files_of_the_archive_only(tmp_path: Path, target: str) -> None:
    src = make_tar(tmp_path / "t.tar", [tar_info("f"), tar_info("h", tarfile.LNKTYPE, target)], {"f": b"1"}, "w")
    with pytest.raises(ArchiveError, match="hard link"):
        archives.check(src)


def test_a_name_twice_is_refused(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "t.tar", [tar_info("f"), tar_info("f", tarfile.SYMTYPE, "g")], {"f": b"1"}, "w")
    with pytest.raises(ArchiveError, match="twice"):
        archives.check(src)


# ---- bombs and limits ------------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "bomb.zip"
    zeros = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros", "w", force_zip64=True) as f:
        for _ in range(8):  # 8 MiB of zeros in about 8 KiB (the floor is lowered to keep the test fast)
            f.write(zeros)
    assert src.stat().st_size < 64 * 1024
    with pytest.raises(ArchiveError, match="zip bomb"):
        archives.check(src, limits=BOMB_LIMITS)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="zip bomb"):
        archives.extract(src, dest, limits=BOMB_LIMITS)
    assert not dest.exists()


def test_tar_gz_bomb_is_cut_off(tmp_path: Path) -> None:
    src = tmp_path / "bomb.tgz"
    info = tar_info("zeros")
    info.size = 8 * 1024 * 1024

    class Zeros(io.RawIOBase):
        def __init__(self, n: int) -> None:
            self.left = n

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    with tarfile.open(src, "w:gz") as tf:
        tf.addfile(info, io.BufferedReader(Zeros(info.size)))
    with pytest.raises(ArchiveError, match="zip bomb"):
        archives.check(src, limits=BOMB_LIMITS)


def test_member_count_and_size_limits(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "many.zip", {f"f{i}": b"abc" for i in range(20)})
    with pytest.raises(ArchiveError, match="more than 10 members"):
        archives.check(src, limits=Limits(max_members=10))
    with pytest.raises(ArchiveError, match="more than 50 bytes"):
        archives.check(src, limits=Limits(max_unpacked_bytes=50))
    archives.check(src, limits=Limits(max_members=20, max_unpacked_bytes=60))


def test_damaged_zip_data_is_found(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "a.zip", {"f": b"hello world" * 100})
    raw = bytearray(src.read_bytes())
    i = raw.find(b"PK\x01\x02")  # corrupt a byte of the data before the central directory
    raw[i - 5] ^= 0xFF
    src.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="damaged"):
        archives.check(src)


# ---- properties ---------------------------------------------------------------------------------------------------

_parts = st.sampled_from(["a", "b", "..", ".", "", "c.d", "/"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.lists(_parts, min_size=1, max_size=5).map("/".join), min_size=1, max_size=4))
def test_nothing_is_ever_written_outside(tmp_path: Path, names: list[str]) -> None:
    """Whatever member names an archive has, unpacking writes below its directory or refuses."""
    work = Path(os.path.realpath(tempfile.mkdtemp(dir=tmp_path)))
    src = work / "x.tar"
    with tarfile.open(src, "w") as tf:
        for name in names:
            info = tarfile.TarInfo(name or "x")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"1"))
    dest = work / "sub" / "out"
    dest.parent.mkdir()
    try:
        archives.extract(src, dest)
    except ArchiveError:
        assert not dest.exists()
    outside = [p for p in work.rglob("*") if p not in (src, dest.parent) and dest not in (p, *p.parents)]
    assert outside == []


@settings(max_examples=200, deadline=None)
@given(
    link=st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3),
    target=st.lists(st.sampled_from(["a", "b", "..", "."]), min_size=1, max_size=5).map("/".join),
    other=st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3),
    other_target=st.lists(st.sampled_from(["a", "b", "..", "."]), min_size=1, max_size=5).map("/".join),
)
def test_accepted_link_chains_resolve_inside(link: list[str], target: str, other: list[str], other_target: str) -> None:
    """Two links (a chain, perhaps): when both are accepted, following them from a root never leaves it."""
    links = {tuple(link): target, tuple(other): other_target}
    if len(links) < 2 or tuple(link[:-1]) in links or tuple(other[:-1]) in links:
        return
    symlinks = frozenset(links)
    if any(archives.link_problem(p, t, symlinks) for p, t in links.items()):
        return
    # Resolve each link as the kernel would, following the other link wherever the path meets it.
    for start in links:
        stack = list(start[:-1])
        todo = [c for c in links[start].split("/") if c not in ("", ".")]
        hops = 0
        while todo and hops < 40:
            comp = todo.pop(0)
            if comp == "..":
                assert stack, f"{start} -> {links[start]} climbs out"
                stack.pop()
                continue
            stack.append(comp)
            if tuple(stack) in links:
                hops += 1
                t = links[tuple(stack)]
                stack.pop()
                todo = [c for c in t.split("/") if c not in ("", ".")] + todo


def test_encrypted_zip_members_are_refused(tmp_path: Path) -> None:
    """zipfile cannot read them without a password (a RuntimeError): refused as an ArchiveError, by the
    server's check and the agents' unpacking alike."""
    src = make_zip(tmp_path / "a.zip", {"f": b"secret" * 10})
    raw = bytearray(src.read_bytes())
    # Set the "encrypted" bit of the member's general purpose flags, in its local and central headers.
    raw[raw.find(b"PK\x03\x04") + 6] |= 0x1
    raw[raw.find(b"PK\x01\x02") + 8] |= 0x1
    src.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="encrypted"):
        archives.check(src)
    with pytest.raises(ArchiveError, match="encrypted"):
        archives.extract(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_damaged_compressed_data_is_refused_not_raised_as_a_codec_error(tmp_path: Path) -> None:
    """Data zlib or lzma cannot decode: an ArchiveError, not zlib.error or LZMAError (neither an OSError
    nor a ValueError), which the server would answer as an internal error."""
    src = make_zip(tmp_path / "a.zip", {"f": b"hello world" * 100})
    raw = bytearray(src.read_bytes())
    start = raw.find(b"PK\x03\x04")
    name_len, extra_len = struct.unpack_from("<HH", raw, start + 26)
    raw[start + 30 + name_len + extra_len] = 0xFF  # a deflate block of the reserved type 3
    src.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="damaged"):
        archives.check(src)
    with pytest.raises(ArchiveError, match="damaged"):
        archives.extract(src, tmp_path / "out-zip")
    body = random.Random(7).randbytes(256 * 1024)
    xz = make_tar(tmp_path / "a.tar.xz", [tar_info("f")], {"f": body}, mode="w:xz")
    raw = bytearray(xz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    xz.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="damaged"):
        archives.check(xz)
    with pytest.raises(ArchiveError, match="damaged"):
        archives.extract(xz, tmp_path / "out-xz")
