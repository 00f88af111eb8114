"""Small C programs of the agent, compiled once per machine into a cache directory.

Two programs: `launch-as` (`launcher`, root only) and the compiled `shoal-mpi-launch` (`mpilauncher`).
Each is built where a C compiler is found, into `/var/cache/shoal` for root, `~/.cache/shoal` for
anyone else (or `$SHOAL_CACHE_DIR`), under a name with a digest of its source and build line, so that
a changed source builds anew and an unchanged one is built once per machine. A program that others
may execute must be its builder's alone: the directory and the file are owned by the agent's user and
writable by nobody else, or they are not used. A build that fails (no compiler, no headers, a probe
that fails) returns None, and the caller falls back to what it did before.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

#: Every build's flags (optimised, stripped); with the libraries, part of the program's digest.
BUILD_FLAGS: tuple[str, ...] = ("-O2", "-s")
#: Link statically first (no dynamic loading at each exec: a few ms for libcrypto), else dynamically.
LINK_MODES: tuple[tuple[str, ...], ...] = (("-static",), ())


def cache_dir() -> Path:
    """Where compiled programs are kept: `$SHOAL_CACHE_DIR`, else root's `/var/cache/shoal` or the user's."""
    if "SHOAL_CACHE_DIR" in os.environ:
        return Path(os.environ["SHOAL_CACHE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/cache/shoal")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shoal"


def owned_safely(path: Path, *, directory: bool) -> bool:
    """Owned by this process's user and writable by nobody else: a program run by us (or by task users
    for us) must not be replaceable by another user."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind_ok = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    return kind_ok and st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def build_program(
    name: str,
    source: str,
    *,
    works: Callable[[Path], bool],
    libs: Sequence[str] = (),
    directory: Path | None = None,
) -> Path | None:
    """`name` compiled from the C `source` (linked with `libs`), built if missing; None where it cannot be
    (no compiler, a compile error, an unsafe directory, `works` says no). Blocking: call it in a thread.
    Concurrent builders of one program (agents starting together) wait for the first one's result."""
    directory = directory or cache_dir()
    digest = hashlib.sha256("\0".join([source, *BUILD_FLAGS, *libs]).encode()).hexdigest()[:12]
    program = directory / f"{name}-{digest}"
    if owned_safely(program, directory=False) and owned_safely(directory, directory=True):
        return program
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not owned_safely(directory, directory=True):
            log.warning("not building %s in %s: it is not this user's alone", name, directory)
            return None
        lock_fd = os.open(directory / f".{name}.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if owned_safely(program, directory=False):  # built by another agent while we waited
                return program
            return _compile(cc, name, source, libs, directory, program, works)
        finally:
            os.close(lock_fd)
    except (OSError, subprocess.SubprocessError) as e:
        log.info("%s could not be built in %s: %s", name, directory, e)
        return None


def _compile(
    cc: str, name: str, source: str, libs: Sequence[str], directory: Path, program: Path, works: Callable[[Path], bool]
) -> Path | None:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        src = Path(tmp) / f"{name}.c"
        src.write_text(source)
        out = Path(tmp) / name
        for mode in LINK_MODES:
            cmd = [cc, *BUILD_FLAGS, *mode, "-o", str(out), str(src), *libs]
            done = subprocess.run(cmd, capture_output=True, check=False, timeout=120)
            if done.returncode == 0:
                os.chmod(out, 0o755)
                if works(out):
                    break
        else:
            log.info("%s did not compile or work: %s", name, done.stderr.decode(errors="replace")[-500:])
            return None
        os.replace(out, program)
    return program
