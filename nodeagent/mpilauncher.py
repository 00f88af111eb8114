"""The fast `shoal-mpi-launch`, put by the agent first on an MPI instance's PATH.

The shim starts once per MPI proxy, so its start-up is the launch's overhead. Two forms, the first that
can be had (`write_launcher`):

1. compiled: `mpi/shim.c`, the same program in C (a few ms with TLS, against ~35 ms for Python and
   `import ssl`), built once per machine into the cache directory (`cbuild`) where a C compiler and
   OpenSSL's headers are found (Debian: `libssl-dev`), and copied (or hard-linked) into the directory;
2. the shim's module (`shoal.mpi.shim`, standard library only) under a ``#!<its python> -IS`` line.

`SHOAL_MPI_SHIM=python` in the agent's environment chooses the second (to compare the two, or where
the compiled one misbehaves). Either goes into a directory of the node root that comes first on an MPI instance's PATH
(`envvars.multi_instance_env`); the installed console script remains for everything else.

    python -m shoal.nodeagent.mpilauncher     # build the compiled shim now (`make install` does)
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import shoal.mpi
from shoal.mpi.launch import SHIM_NAME
from shoal.mpi.shim import launcher_script
from shoal.nodeagent.cbuild import build_program

log = logging.getLogger(__name__)

#: The agent's choice of shim: "python" for the Python one; anything else, the compiled one where built.
SHIM_CHOICE_ENV = "SHOAL_MPI_SHIM"
#: The compiled shim's source, shipped in the package beside shim.py.
SHIM_SOURCE = Path(shoal.mpi.__file__).parent / "shim.c"
SHIM_LIBS = ("-lssl", "-lcrypto")


def _shim_works(program: Path) -> bool:
    """It runs, and answers a host that is not the task's as the shim does (no network needed)."""
    done = subprocess.run(
        [str(program), "-x", "probe-host", "true"],
        env={"SHOAL_MPI_AGENTS": ""},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 255 and b"probe-host is not a node of this task" in done.stderr


def build_shim(directory: Path | None = None) -> Path | None:
    """The compiled shim in the cache directory, built if missing; None where it cannot be (logged).
    Blocking (a first build takes seconds): call it in a thread."""
    try:
        source = SHIM_SOURCE.read_text(encoding="utf-8")
    except OSError as e:
        log.info("%s: no C source (%s); MPI uses the Python shim", SHIM_NAME, e)
        return None
    return build_program(SHIM_NAME, source, works=_shim_works, libs=SHIM_LIBS, directory=directory)


def write_launcher(directory: Path, python: str = sys.executable, *, compiled: bool | None = None) -> Path | None:
    """Put `directory/shoal-mpi-launch` in place (replacing it whole): the compiled shim where it can be
    built (`compiled`; None: unless `SHOAL_MPI_SHIM=python`), else the Python one run by `python`. The
    directory, or None (logged) where neither can be written (the console script then serves).
    Blocking: call it in a thread."""
    if compiled is None:
        compiled = os.environ.get(SHIM_CHOICE_ENV, "") != "python"
    program = build_shim() if compiled else None
    script = None if program is not None else launcher_script(python)
    if program is None and script is None:
        log.info("%s: the interpreter's path cannot be a #! line; MPI uses the installed shim", SHIM_NAME)
        return None
    tmp = directory / f".{SHIM_NAME}.{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        if program is not None:
            _link_or_copy(program, tmp)
        else:
            assert script is not None
            tmp.write_text(script, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(directory / SHIM_NAME)
    except OSError as e:
        log.warning("cannot write %s into %s (%s); MPI uses the installed shim", SHIM_NAME, directory, e)
        return None
    log.info("MPI proxies start through %s (%s)", directory / SHIM_NAME, program or "Python")
    return directory


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where both are on one file system (the binary is a few MB), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    built = build_shim()
    if built is None:
        print(f"{SHIM_NAME}: not compiled (it needs a C compiler and OpenSSL's headers, Debian's libssl-dev);")
        print("MPI tasks use the Python shim, slower to start")
    else:
        print(f"{SHIM_NAME}: {built}")
