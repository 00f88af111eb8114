"""A kit for the container tests: podman (with runc) as this machine runs it, images made from local files,
and a real registry on loopback with credentials.

What the machine needs (`make containers` installs it on Debian as root): `podman`, `runc`,
`docker-registry` and a static `/bin/busybox` (`busybox-static`). See
/work/shared/reference/CONTAINERS.md for why runc (cgroups in hybrid mode) and why a containers.conf
without default ulimits.

- :func:`engine_problem` says why containers cannot run here ("" when they can); the fixture
  ``container_engine`` (or :func:`require_engine`) skips a test with that reason.
- :func:`podman` runs podman with the kit's containers.conf (:func:`engine_env`), bounded in time; the
  kit never changes ``os.environ``.
- :func:`busybox_image` makes `localhost/shoal-test-busybox:<tag>` from the machine's static busybox;
  :func:`python_image` adds the machine's Python 3.11; :func:`mpi_image` adds, to that, mpi4py and MPICH
  (Hydra's `mpiexec` and `hydra_pmi_proxy`, `libmpi`) from the test interpreter's `mpi4py` and `mpich`
  wheels (:func:`mpi_problem` says why it cannot be made, e.g. without those wheels).
- :class:`Registry` (fixture ``registry``) runs `docker-registry` on 127.0.0.1 with htpasswd
  credentials; :meth:`Registry.push` puts an image in it.

Every subprocess has a timeout; waits poll for an event (a port answering) up to a deadline.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import functools
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

#: The machine's static busybox (Debian `busybox-static`).
BUSYBOX = Path("/bin/busybox")
#: Repository of the kit's busybox images (`localhost/...`: never looked up in a remote registry).
BUSYBOX_REPOSITORY = "localhost/shoal-test-busybox"
#: The kit's containers.conf: runc (crun refuses cgroups in hybrid mode) and no default ulimits (podman's
#: ask for more than the machine's hard limits).
CONTAINERS_CONF_TEXT = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'
#: Seconds for one podman command that runs, imports or removes something local.
ENGINE_TIMEOUT = 60.0
#: Seconds for a push or a pull (podman retries an unreachable registry three times, about 3 s).
TRANSFER_TIMEOUT = 120.0
#: Seconds for the registry to answer on /v2/ after it starts.
REGISTRY_START_TIMEOUT = 20.0
#: Changed when the image's layout changes, so that an image of an older layout is not reused.
_LAYOUT_VERSION = "1"

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"


# --- the engine -------------------------------------------------------------------------------------------


@functools.cache
def _work_dir() -> Path:
    """This process's own scratch directory (the containers.conf, image tarballs), removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="shoal-containerkit-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def containers_conf() -> Path:
    """The kit's containers.conf (a file of this process's own)."""
    path = _work_dir() / "containers.conf"
    path.write_text(CONTAINERS_CONF_TEXT)
    return path


def engine_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for podman: this process's, with ``CONTAINERS_CONF`` naming the kit's file, and ``extra``."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(containers_conf())
    env.update(extra or {})
    return env


def podman(
    *args: str, timeout: float = ENGINE_TIMEOUT, check: bool = False, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with the kit's containers.conf; text output captured. ``check`` raises
    :class:`EngineError` (with podman's stderr) when it fails; a timeout raises ``subprocess.TimeoutExpired``."""
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=engine_env(),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise EngineError(f"podman {args[0] if args else ''} failed ({done.returncode}): {done.stderr.strip()}")
    return done


class EngineError(Exception):
    """A podman command the kit needed failed; the message has podman's stderr."""


def elf_is_static(path: Path) -> bool | None:
    """Whether an ELF executable is statically linked (no program interpreter); None if it is not ELF."""
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                return None
            is64, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
            header = f.read(48 if is64 else 36)
            if is64:
                phoff, phentsize, phnum = (
                    struct.unpack_from(order + "Q", header, 16)[0],
                    *struct.unpack_from(order + "HH", header, 38),
                )
            else:
                phoff, phentsize, phnum = (
                    struct.unpack_from(order + "I", header, 12)[0],
                    *struct.unpack_from(order + "HH", header, 26),
                )
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                (p_type,) = struct.unpack(order + "I", f.read(4))
                if p_type == 3:  # PT_INTERP: a dynamic loader runs it
                    return False
            return True
    except (OSError, struct.error):
        return None


def busybox_problem() -> str:
    """What keeps the kit from making its busybox image ("" when nothing does)."""
    if not BUSYBOX.is_file():
        return f"{BUSYBOX} is missing (Debian: apt-get install busybox-static)"
    static = elf_is_static(BUSYBOX)
    if static is None:
        return f"{BUSYBOX} is not an ELF executable"
    if not static:
        return f"{BUSYBOX} is dynamically linked: an image of it alone cannot run it (Debian: busybox-static)"
    return ""


@functools.cache
def engine_problem() -> str:
    """Why containers cannot run here ("" when podman with runc runs one of the kit's images); once per
    process."""
    if os.geteuid() != 0:
        return "containers run as root here (rootless podman needs subordinate ids this machine does not set up)"
    missing = [b for b in ("podman", "runc") if shutil.which(b) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (make containers)"
    problem = busybox_problem()
    if problem:
        return problem
    try:
        image = busybox_image()
        done = podman("run", "--rm", "--network", "none", image, "sh", "-c", "echo ok")
    except (EngineError, subprocess.TimeoutExpired, OSError) as e:
        return f"podman cannot run a container here: {e}"
    if done.returncode != 0 or done.stdout.strip() != "ok":
        return f"podman cannot run a container here ({done.returncode}): {_last_lines(done.stderr or done.stdout)}"
    return ""


def registry_problem() -> str:
    """Why the kit cannot run a registry here ("" when it can): the engine's problem, or no docker-registry."""
    if shutil.which("docker-registry") is None:
        return "docker-registry is not installed (make containers)"
    return engine_problem()


def require_engine() -> None:
    """Skip the calling test when containers cannot run here."""
    problem = engine_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def container_engine() -> None:
    """Skips the test when podman with runc cannot run a container here."""
    require_engine()


def _last_lines(text: str, n: int = 3) -> str:
    return " / ".join(text.strip().splitlines()[-n:])


def unique_name(prefix: str) -> str:
    """A name of this run's own (image names, container names): ``prefix`` and random hex."""
    return f"{prefix}-{secrets.token_hex(4)}"


# --- images -----------------------------------------------------------------------------------------------


def _busybox_tag() -> str:
    """A tag naming the busybox binary and the image layout, so that equal images share it across runs."""
    digest = hashlib.sha256(BUSYBOX.read_bytes() + _LAYOUT_VERSION.encode()).hexdigest()
    return f"kit-{digest[:12]}"


def _busybox_rootfs_tar(dest: Path) -> None:
    """A root filesystem: /bin/busybox and a link per applet, /etc/passwd and /etc/group (root and nobody),
    /tmp (1777), /root; all owned by root, with fixed times."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()

    def info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        t = tarfile.TarInfo(name)
        t.type, t.mode, t.size, t.linkname = kind, mode, size, link
        t.uid = t.gid = 0
        t.uname = t.gname = "root"
        t.mtime = 0
        return t

    with tarfile.open(dest, "w") as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            tar.addfile(info(d, tarfile.DIRTYPE, mode))
        data = BUSYBOX.read_bytes()
        tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        # Not the applet named busybox: bin/busybox would point at itself.
        for applet in sorted(set(applets) - {"busybox"}):
            if "/" not in applet:
                tar.addfile(info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
            raw = text.encode()
            tar.addfile(info(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))


#: The machine's Python that :func:`python_image` copies (Debian's: its standard library under /usr/lib).
HOST_PYTHON = Path("/usr/bin/python3.11")
PYTHON_REPOSITORY = "localhost/shoal-test-python"
#: Parts of the standard library a task does not need (a third of its size).
_STDLIB_SKIPPED = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"})


def _shared_libraries(paths: Sequence[Path]) -> set[str]:
    """The shared libraries (and the dynamic loader) the executables or modules need, by `ldd`."""
    found: set[str] = set()
    for i in range(0, len(paths), 64):
        out = subprocess.run(["ldd", *map(str, paths[i : i + 64])], capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            words = line.split()
            if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
                found.add(words[words.index("=>") + 1])
            elif words and words[0].startswith("/") and not words[0].endswith(":"):  # not ldd's file headers
                found.add(words[0])
    return found


def python_problem() -> str:
    """What keeps the kit from making its Python image ("" when nothing does)."""
    if not HOST_PYTHON.is_file():
        return f"{HOST_PYTHON} is missing (Debian: apt-get install python3.11)"
    if not (Path("/usr/lib") / HOST_PYTHON.name / "os.py").is_file():
        return f"the standard library of {HOST_PYTHON} is not in /usr/lib/{HOST_PYTHON.name}"
    if shutil.which("ldd") is None:
        return "ldd is missing"
    return busybox_problem()


class _Rootfs:
    """Files added to a root filesystem tarball: each under the path it is asked for (a symbolic link's
    target's content under the link's name), its missing parent directories made first, each path once;
    all owned by root."""

    #: Directories the busybox root filesystem has already.
    _BASE_DIRS = frozenset({"bin", "etc", "tmp", "root"})

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self._dirs: set[str] = set(self._BASE_DIRS)
        self._names: set[str] = set()

    def _parents(self, arcname: str) -> None:
        parent = os.path.dirname(arcname)
        missing: list[str] = []
        while parent and parent not in self._dirs:
            missing.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(missing):
            t = tarfile.TarInfo(d)
            t.type, t.mode, t.mtime = tarfile.DIRTYPE, 0o755, 0
            self.tar.addfile(t)
            self._dirs.add(d)

    def add(self, path: Path | str, arcname: str) -> None:
        """The file at ``path`` (followed, if a link) as ``arcname``, unless that name is in already."""
        if arcname in self._names:
            return
        self._parents(arcname)
        t = self.tar.gettarinfo(os.path.realpath(path), arcname)
        t.uid = t.gid = 0
        t.uname = t.gname = "root"
        with open(os.path.realpath(path), "rb") as f:
            self.tar.addfile(t, f)
        self._names.add(arcname)

    def symlink(self, arcname: str, target: str) -> None:
        """A symbolic link ``arcname`` -> ``target``."""
        if arcname in self._names:
            return
        self._parents(arcname)
        link = tarfile.TarInfo(arcname)
        link.type, link.linkname, link.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(link)
        self._names.add(arcname)

    def add_libraries(self, elf_files: Sequence[Path], *, skip_under: Sequence[Path] = ()) -> None:
        """The shared libraries the ELF files load (by `ldd`), at the paths the loader finds them, but those
        under ``skip_under`` (the image has them at paths of its own)."""
        for lib in sorted(_shared_libraries(elf_files)):
            if not any(Path(lib).is_relative_to(d) for d in skip_under):
                self.add(lib, lib.lstrip("/"))


def _python_rootfs_tar(dest: Path, extra: Callable[[_Rootfs], None] | None = None) -> None:
    """The busybox root filesystem, and the machine's Python: its executable, its standard library and the
    shared libraries they load (files copied under the paths the loader asks for); then ``extra``'s files."""
    _busybox_rootfs_tar(dest)
    stdlib = Path("/usr/lib") / HOST_PYTHON.name
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(stdlib):
        if Path(dirpath) == stdlib:
            dirnames[:] = [d for d in dirnames if d not in _STDLIB_SKIPPED and not d.startswith("site-packages")]
        dirnames[:] = [d for d in dirnames if d != "dist-packages"]
        files += [Path(dirpath) / f for f in filenames]
    modules = [f for f in files if f.suffix == ".so"]
    with tarfile.open(dest, "a") as tar:
        root = _Rootfs(tar)
        root.add(HOST_PYTHON, f"usr/bin/{HOST_PYTHON.name}")
        root.symlink("usr/bin/python3", HOST_PYTHON.name)
        root.add_libraries([HOST_PYTHON, *modules])
        for f in files:
            if not f.is_symlink() or f.exists():
                root.add(f, str(f).lstrip("/"))
        if extra is not None:
            extra(root)


def python_image(tag: str | None = None) -> str:
    """``localhost/shoal-test-python:<tag>``: the busybox image with the machine's Python 3 (``python3``,
    the standard library without its tests and GUI), unless the store has it already. No third-party
    packages (no mpi4py). The default tag names the Python executable and the layout: kept between runs
    (about 60 MB). Raises :class:`EngineError` when it cannot be made."""
    problem = python_problem()
    if problem:
        raise EngineError(problem)
    digest = hashlib.sha256(HOST_PYTHON.read_bytes() + BUSYBOX.read_bytes() + _LAYOUT_VERSION.encode()).hexdigest()
    name = f"{PYTHON_REPOSITORY}:{tag or 'kit-' + digest[:12]}"
    return _imported(name, "python-image", _python_rootfs_tar, path="/usr/bin:/bin", command="/usr/bin/python3")


MPI_REPOSITORY = "localhost/shoal-test-mpi"
#: Where the image's Python finds mpi4py (Debian's python3.11 puts this directory on sys.path when it exists).
MPI_SITE_DIR = f"usr/local/lib/{HOST_PYTHON.name}/dist-packages"
#: Where MPICH's library goes: a directory the loader searches without a cache (mpi4py dlopens
#: `libmpi.so.12` by name; the library finds its own dependencies in `mpich/` beside it, by its RUNPATH).
MPI_LIB_DIR = "usr/lib"
#: The Hydra programs the image has under /usr/local/bin: the launcher and the per-node proxy it starts
#: (from the launcher's own directory) on every host.
HYDRA_PROGRAMS = ("mpiexec", "mpiexec.hydra", "hydra_pmi_proxy")

#: `mpiexec` options that keep ranks' traffic between hosts on loopback: MPICH's UCX netmod (its default)
#: leaves out `lo` and would use the machine's other address; libfabric's tcp provider takes `lo`.
MPI_LOOPBACK_OPTIONS = "-genv MPIR_CVAR_CH4_NETMOD ofi -genv FI_PROVIDER tcp -genv FI_TCP_IFACE lo"


@dataclass(frozen=True)
class _MpiFiles:
    """The files of the `mpich` and `mpi4py` packages this interpreter has, for the image."""

    #: The mpi4py package directory.
    mpi4py: Path
    #: Hydra's programs, by name.
    programs: dict[str, Path]
    #: `libmpi.so.12`, and what it loads from its RUNPATH (`mpich/...`): arcname under MPI_LIB_DIR -> file.
    libraries: dict[str, Path]

    def all_files(self) -> list[Path]:
        """Every file that goes in, in a fixed order (for the image's tag)."""
        package = sorted(p for p in self.mpi4py.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return [
            *package,
            *(self.programs[n] for n in sorted(self.programs)),
            *(self.libraries[n] for n in sorted(self.libraries)),
        ]


def _host_python_ext_suffix() -> str:
    """The file name suffix of the machine Python's extension modules (e.g. `.cpython-311-x86_64-linux-gnu.so`)."""
    done = subprocess.run(
        [str(HOST_PYTHON), "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip()


def _mpi_files() -> tuple[_MpiFiles | None, str]:
    """The MPI files of this interpreter's packages, or why there are none to use."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("mpi4py")
    if spec is None or spec.origin is None:
        return None, "mpi4py is not installed in the test interpreter (pip install mpi4py)"
    mpi4py = Path(spec.origin).parent
    try:
        dist = importlib.metadata.distribution("mpich")
    except importlib.metadata.PackageNotFoundError:
        return None, "the mpich wheel is not installed in the test interpreter (pip install mpich)"
    programs: dict[str, Path] = {}
    libraries: dict[str, Path] = {}
    for entry in dist.files or []:
        path = Path(str(dist.locate_file(entry))).resolve()
        parts = entry.parts
        if len(parts) >= 2 and parts[-2] == "bin" and parts[-1] in HYDRA_PROGRAMS:
            programs[parts[-1]] = path
        elif parts[-1] == "libmpi.so.12":
            libraries["libmpi.so.12"] = path
        elif "mpich" in parts[:-1] and parts[-1].endswith(tuple(f".so{v}" for v in ("", ".0", ".1"))):
            i = len(parts) - 1 - list(reversed(parts[:-1])).index("mpich") - 1
            libraries["/".join(parts[i:])] = path
    missing = [n for n in HYDRA_PROGRAMS if n not in programs] + (
        [] if "libmpi.so.12" in libraries else ["libmpi.so.12"]
    )
    if missing:
        return None, f"the mpich wheel lacks {', '.join(missing)}"
    suffix = _host_python_ext_suffix()
    if not (mpi4py / f"MPI.mpich{suffix}").is_file():
        return None, (
            f"mpi4py has no extension module for MPICH and {HOST_PYTHON} (MPI.mpich{suffix}): "
            "a wheel for another Python version"
        )
    return _MpiFiles(mpi4py=mpi4py, programs=programs, libraries=libraries), ""


def mpi_problem() -> str:
    """What keeps the kit from making its MPI image ("" when nothing does)."""
    problem = python_problem()
    if problem:
        return problem
    return _mpi_files()[1]


def _mpi_rootfs_extra(files: _MpiFiles) -> Callable[[_Rootfs], None]:
    def extra(root: _Rootfs) -> None:
        for f in sorted(p for p in files.mpi4py.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            root.add(f, f"{MPI_SITE_DIR}/mpi4py/{f.relative_to(files.mpi4py)}")
        for name, path in sorted(files.programs.items()):
            root.add(path, f"usr/local/bin/{name}")
        for name, path in sorted(files.libraries.items()):
            root.add(path, f"{MPI_LIB_DIR}/{name}")
        root.symlink(f"{MPI_LIB_DIR}/libmpi.so", "libmpi.so.12")
        # What MPICH's files load from the machine (the C library's parts, ...); not its own libraries,
        # which are in the image at their own paths. A library `ldd` cannot find (an optional fabric's, as
        # InfiniBand's) stays out: MPICH does without it over TCP.
        elf = [*files.programs.values(), *files.libraries.values()]
        venv_dirs = {p.parent for p in files.libraries.values()} | {p.parent for p in files.programs.values()}
        root.add_libraries(elf, skip_under=sorted(venv_dirs))

    return extra


def mpi_image(tag: str | None = None) -> str:
    """``localhost/shoal-test-mpi:<tag>``: the Python image with MPICH and mpi4py, from the `mpich` and
    `mpi4py` packages of the interpreter running the tests: mpi4py in Python's dist-packages, `libmpi.so.12`
    (and its `mpich/` libraries) in /usr/lib, Hydra's `mpiexec`, `mpiexec.hydra` and `hydra_pmi_proxy` in
    /usr/local/bin, and the machine's libraries they load. Unless the store has it already: the default
    tag is a digest of every file that goes in, kept between runs (about 110 MB). Raises
    :class:`EngineError` when it cannot be made (:func:`mpi_problem` says why)."""
    problem = python_problem()
    if problem:
        raise EngineError(problem)
    files, problem = _mpi_files()
    if files is None:
        raise EngineError(problem)
    if tag is None:
        digest = hashlib.sha256(_LAYOUT_VERSION.encode())
        for path in (HOST_PYTHON, BUSYBOX, *files.all_files()):
            digest.update(str(path).encode() + b"\0" + path.read_bytes())
        tag = f"kit-{digest.hexdigest()[:12]}"
    name = f"{MPI_REPOSITORY}:{tag}"
    return _imported(
        name,
        "mpi-image",
        lambda tar: _python_rootfs_tar(tar, _mpi_rootfs_extra(files)),
        path="/usr/local/bin:/usr/bin:/bin",
        command="/usr/bin/python3",
    )


def _imported(name: str, lock: str, make_tar: Callable[[Path], None], *, path: str, command: str) -> str:
    """The image `name`, imported from the root file system `make_tar` writes (with `PATH` and a default
    command) unless the store has it; once per machine at a time (two pytest-xdist workers may ask)."""
    if name in _made_images:
        return name
    with _machine_lock(lock):
        if not image_exists(name):
            tar = _work_dir() / f"{lock}-{secrets.token_hex(4)}.tar"
            try:
                make_tar(tar)
                podman(
                    *("import", "-q", "--change", f"ENV PATH={path}", "--change", f'CMD ["{command}"]'),
                    *(str(tar), name),
                    check=True,
                )
            finally:
                tar.unlink(missing_ok=True)
    _made_images.add(name)
    return name


def image_exists(name: str) -> bool:
    """Whether the engine's store has an image of that name."""
    return podman("image", "exists", name).returncode == 0


@contextlib.contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    """A lock shared by every process of the machine (two pytest-xdist workers making the same image)."""
    path = Path(tempfile.gettempdir()) / f"shoal-containerkit-{name}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_made_images: set[str] = set()


def busybox_image(tag: str | None = None) -> str:
    """``localhost/shoal-test-busybox:<tag>``, made from the machine's static busybox unless the store has
    it already (``PATH=/bin``, a shell, /etc/passwd and /etc/group with root and nobody, /tmp).

    The default tag names the busybox binary and the image's layout: that image is kept between runs
    (2 MB). Raises :class:`EngineError` when it cannot be made."""
    problem = busybox_problem()
    if problem:
        raise EngineError(problem)
    name = f"{BUSYBOX_REPOSITORY}:{tag or _busybox_tag()}"
    return _imported(name, "busybox-image", _busybox_rootfs_tar, path="/bin", command="/bin/sh")


def remove_images(names: Sequence[str], *, force: bool = False) -> None:
    """Remove images by name, best effort (those the store lacks are no error). A name that shares its image
    with another only loses that name; an image a container uses stays unless ``force`` (which removes those
    containers too: other tests' containers may use the kit's images)."""
    if names:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            podman("rmi", "--ignore", *(["--force"] if force else []), *names)


# --- a registry -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    """A `docker-registry` on 127.0.0.1 at a free port, storing in a directory of its own, with one user
    (htpasswd, bcrypt) of random name and password; a context manager (stopped, and the local images
    named after it removed, at its end).

    ``address`` is ``127.0.0.1:PORT``; ``authfile`` a 0600 auth.json with the credentials, for podman's
    ``--authfile`` (kept off command lines)."""

    def __init__(self, root: Path | None = None) -> None:
        self.user = f"u{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(18)
        self._own_root = root is None
        self._root = root
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        """The registry's files: its storage, config, htpasswd, auth.json and log (made at its start)."""
        if self._root is None:
            raise EngineError("the registry has not started (or has stopped)")
        return self._root

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the registry server as image names carry it."""
        return f"127.0.0.1:{self.port}"

    @property
    def authfile(self) -> Path:
        """An auth.json with this registry's credentials (mode 0600)."""
        return self.root / "auth.json"

    @property
    def log(self) -> Path:
        """The registry's own output."""
        return self.root / "registry.log"

    def __enter__(self) -> Registry:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the registry and wait until it answers on /v2/ (401: it asks for credentials)."""
        import bcrypt  # only the registry needs it

        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="shoal-registry-"))
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.root / "htpasswd").write_text(f"{self.user}:{hashed}\n")
        last_error = ""
        # The free port may be taken between the probe and the registry's bind: try another.
        for _attempt in range(3):
            self.port = _free_port()
            self._write_config()
            self._write_authfile()
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(
                    ["docker-registry", "serve", str(self.root / "config.yml")],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=engine_env(),
                )
            last_error = self._wait_up()
            if not last_error:
                return
            self._stop_process()
        raise EngineError(f"the registry did not start: {last_error}")

    def _write_config(self) -> None:
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.address, "secret": secrets.token_hex(16)},
            "auth": {"htpasswd": {"realm": "shoal-test-registry", "path": str(self.root / "htpasswd")}},
        }
        # JSON is YAML.
        (self.root / "config.yml").write_text(json.dumps(config, indent=2))

    def _write_authfile(self) -> None:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        fd = os.open(self.authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {self.address: {"auth": token}}}, f)

    def _wait_up(self) -> str:
        """ "" once /v2/ answers, else why not (the process ended, or the deadline passed)."""
        assert self._process is not None
        deadline = time.monotonic() + REGISTRY_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return f"docker-registry exited ({self._process.returncode}): {_last_lines(self._log_text())}"
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                if status in (200, 401):
                    return ""
            except OSError:
                pass
            finally:
                conn.close()
            # Polling the port: the registry says nothing when it listens.
            time.sleep(0.05)
        return f"no answer on {self.address}/v2/ in {REGISTRY_START_TIMEOUT:.0f} s: {_last_lines(self._log_text())}"

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the registry (its own process only), remove the local images named after it, and its files."""
        self._stop_process()
        if self.port:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                listed = podman(
                    "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={self.address}/*"
                )
                remove_images([n for n in listed.stdout.split() if n.startswith(f"{self.address}/")])
        if self._own_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def image(self, name: str) -> str:
        """The full name of ``name`` (``repo[:tag]``) in this registry."""
        return f"{self.address}/{name}"

    def push(self, local_image: str, name: str) -> str:
        """Push a local image as ``name`` (``repo[:tag]``) with this registry's credentials; its full name."""
        target = self.image(name)
        podman(
            "push",
            "--quiet",
            "--tls-verify=false",
            "--authfile",
            str(self.authfile),
            local_image,
            target,
            timeout=TRANSFER_TIMEOUT,
            check=True,
        )
        return target


@pytest.fixture
def registry() -> Iterator[Registry]:
    """A running :class:`Registry` (skips the test when the engine or docker-registry is missing)."""
    problem = registry_problem()
    if problem:
        pytest.skip(problem)
    with Registry() as reg:
        yield reg
