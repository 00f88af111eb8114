"""The compiled core: the control plane's hottest modules, compiled to C by mypyc where the machine can.

The modules in `MODULES` are plain, type-checked Python. `scripts/build_native.py` (run by
`make native`, `make install`) compiles them with mypyc into ``build/native/`` beside a
manifest with the SHA-256 of the sources they were compiled from and of each built file, and
puts a build in place only once a fresh process has loaded all of it. `enable()`, called when
`shoal` is first imported, puts a finder in front of the import system that loads those
extension modules instead of the sources, all of them or none, and only when:

- a build is there and it succeeded, every built file as it was when it was tried,
- it was built for this interpreter (the extension suffix),
- every source the compiled modules were built from is byte for byte the same: theirs, and
  those of the modules they import (`SOURCE_DIRS`), whose types and constants mypyc may
  have built into them (a module edited since the build would otherwise run as its old
  self; and the compiled modules call each other's classes directly, so one of them cannot
  be swapped back to its source alone),
- and ``SHOAL_NATIVE`` is not ``0``.

Otherwise every module runs from its source: the same code, slower (about 1.7 times the
instructions per task).
`status()` says which and why; the server logs it at start, the benchmarks record it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

#: Compiled, in this order of import: the per-task path of the control plane (placing, reports,
#: records and their bytes, the scheduler's applier). Anything else stays interpreted.
MODULES = (
    "shoal.server.domain.wire",
    "shoal.server.domain.records",
    "shoal.server.scheduling.plan",
    "shoal.server.scheduling.dependencies",
    "shoal.server.scheduling.exit_options",
    "shoal.server.lifecycle.kernel",
    "shoal.server.lifecycle.pools",
    "shoal.server.lifecycle.nodes",
    "shoal.server.lifecycle.jobs",
    "shoal.server.lifecycle.tasks",
    "shoal.server.lifecycle.attempts",
    "shoal.server.lifecycle.gangs",
    "shoal.server.lifecycle.completion",
    "shoal.server.lifecycle.dependencies",
    "shoal.server.lifecycle.jobmanager",
    "shoal.server.lifecycle.jobprep",
    "shoal.server.lifecycle.accounting",
    "shoal.server.scheduling.usage",
    "shoal.server.controlplane",
    "shoal.server.controllers.scheduler",
)
#: The source trees, from the repository's root, that a build depends on: the compiled modules and
#: everything of Shoal's they import (the server, the package's root, the generated messages).
SOURCE_DIRS = ("server", "shoal_root", "protos")
SOURCE_SUFFIXES = (".py", ".pyi")
#: Where `scripts/build_native.py` puts its output, from the repository's root.
BUILD_DIR = Path("build") / "native"
MANIFEST = "manifest.json"
#: The environment variable that turns the compiled core off ("0").
ENV = "SHOAL_NATIVE"


def repo_root() -> Path:
    """The source tree this package runs from (an editable install: the repository)."""
    return Path(__file__).resolve().parent.parent


def file_digest(path: Path) -> str:
    """The SHA-256 of one file (a built one as the manifest records it, or a source)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_digest(root: Path) -> str:
    """The SHA-256 of every source a build depends on (`SOURCE_DIRS`): names and contents, in order."""
    digest = hashlib.sha256()
    files = sorted(p for d in SOURCE_DIRS for p in (root / d).rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file())
    for p in files:
        digest.update(f"{p.relative_to(root)}\0{file_digest(p)}\0".encode())
    return digest.hexdigest()


@dataclass
class Status:
    """Whether the compiled core is in use, and why (or why not)."""

    active: bool
    reason: str
    #: Module name -> the extension file loaded for it (when active).
    files: dict[str, Path] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for a log or a benchmark's notes."""
        if self.active:
            return f"compiled core in use (mypyc): {len(MODULES)} modules from {BUILD_DIR}"
        return f"compiled core not in use: {self.reason}; the control plane runs from its sources"


def check(root: Path | None = None, environ: Mapping[str, str] | None = None, build: Path | None = None) -> Status:
    """Decide, without importing anything, whether the build under `root` (or in `build`) may be used.

    Never raises: whatever is wrong with a build makes it unused, with the reason.
    """
    root = repo_root() if root is None else root
    env = os.environ if environ is None else environ
    if env.get(ENV, "1") == "0":
        return Status(False, f"{ENV}=0")
    try:
        return _check(root, root / BUILD_DIR if build is None else build)
    except Exception as e:  # a build or a tree in an unexpected state: the sources run
        return Status(False, f"the build could not be checked: {e!r}")


def _check(root: Path, build: Path) -> Status:
    try:
        manifest = json.loads((build / MANIFEST).read_text())
    except FileNotFoundError:
        return Status(False, f"not built (no {BUILD_DIR / MANIFEST}; `make native` builds it)")
    except (OSError, ValueError) as e:
        return Status(False, f"unreadable manifest: {e}")
    if not isinstance(manifest, dict):
        return Status(False, "unreadable manifest: not an object")
    if manifest.get("error"):
        return Status(False, f"the last build failed: {manifest['error']}")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if manifest.get("suffix") != suffix:
        return Status(False, f"built for {manifest.get('suffix')!r}, this interpreter loads {suffix!r}")
    modules: dict[str, str] = manifest.get("modules", {})
    if sorted(modules) != sorted(MODULES):
        return Status(False, "built for another set of modules")
    if manifest.get("sources") != source_digest(root):
        return Status(False, "the sources changed since the build (`make native` builds them again)")
    built: dict[str, str] = {**modules, **manifest.get("libraries", {})}
    digests: dict[str, str] = manifest.get("files", {})
    if sorted(digests) != sorted(built.values()):
        return Status(False, "the manifest does not list every built file")
    # Each built file as it was when the build loaded them all (a truncated or replaced file would
    # fail to import half-way, with some modules already loaded compiled).
    for rel in built.values():
        if not (build / rel).is_file():
            return Status(False, f"{build / rel} is missing")
        if file_digest(build / rel) != digests[rel]:
            return Status(False, f"{rel} changed since the build")
    return Status(True, "", {name: build / rel for name, rel in built.items()})


class _Finder:
    """Finds the compiled modules (and mypyc's shared library for them) in the build directory.

    Installed whenever `shoal` is imported; it decides (`check`) at the first import of one of
    `MODULES`, so that processes which never load the control plane (agents, clients) pay nothing.
    """

    def __init__(self, status: Status | None = None) -> None:
        self.status = status

    def decide(self) -> Status:
        if self.status is None:
            self.status = check()
        return self.status

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.status is None:
            if fullname not in MODULES:
                return None
            self.decide()
        assert self.status is not None
        file = self.status.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, file)


_finder: _Finder | None = None


def enable() -> None:
    """Put the compiled modules' finder in front of the import system (once per process)."""
    global _finder
    if _finder is None:
        _finder = _Finder()
        sys.meta_path.insert(0, _finder)  # type: ignore[arg-type]


def install_finder(status: Status) -> None:
    """Load the compiled modules `status` names from now on (for a probe of a build not yet in place)."""
    sys.meta_path.insert(0, _Finder(status))  # type: ignore[arg-type]


def status() -> Status:
    """Whether this process loads (or would load) the compiled modules, and why."""
    enable()
    assert _finder is not None
    return _finder.decide()


def running_compiled(module: ModuleType) -> bool:
    """Whether `module` was loaded from a compiled extension rather than its source."""
    return not str(getattr(module, "__file__", "")).endswith(".py")
