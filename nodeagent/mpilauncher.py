"""The fast `shoal-mpi-launch`: the shim's module as a `python -IS` program, written by the agent.

The installed console script imports the `shoal` package through site-packages; the launch pays that
once per MPI proxy. The shim needs nothing but the standard library, so the agent writes it out under
a ``#!<its python> -IS`` line into a directory of the node root that comes first on an MPI instance's
PATH (`envvars.multi_instance_env`), and the console script remains for everything else.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from shoal.mpi.launch import SHIM_NAME
from shoal.mpi.shim import launcher_script

log = logging.getLogger(__name__)


def write_launcher(directory: Path, python: str = sys.executable) -> Path | None:
    """Write `directory/shoal-mpi-launch` (replacing it whole); the directory, or None (logged) where
    `python` cannot start a `#!` line or the file cannot be written (the console script then serves)."""
    script = launcher_script(python)
    if script is None:
        log.info("%s: the interpreter's path cannot be a #! line; MPI uses the installed shim", SHIM_NAME)
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{SHIM_NAME}.{os.getpid()}"
        tmp.write_text(script, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(directory / SHIM_NAME)
    except OSError as e:
        log.warning("cannot write %s into %s (%s); MPI uses the installed shim", SHIM_NAME, directory, e)
        return None
    return directory
