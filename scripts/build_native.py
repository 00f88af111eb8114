"""Compile the control plane's hottest modules with mypyc into build/native/ (see shoal/native.py).

    python scripts/build_native.py [--check | --if-stale]

The sources are copied into a temporary tree laid out as the installed package (`shoal/...`,
from pyproject's package-dir), where mypyc type-checks and compiles `native.MODULES`; the
extension modules, mypyc's shared library for them and a manifest (with the SHA-256 of the sources)
are then put in place of the previous build at once, once a fresh process has loaded them all. A
failed build leaves a manifest that says why, so that the sources run (and `--if-stale`, what
`make` runs, does not try again until a source changes). `--check` prints whether the current build
is in use, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "shoal_root"))
import native  # noqa: E402  (shoal_root/native.py, without importing the package and its finder)
from package_tree import MYPY_CONFIG, package_tree  # noqa: E402


def build(staging: Path, sources: str) -> None:
    """Compile into `staging` (empty), with its manifest, and try loading it. Raises on any failure."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    with tempfile.TemporaryDirectory(prefix="shoal-native-") as tmp:
        tree = Path(tmp)
        package_tree(tree)
        copies = {name: tree.joinpath(*name.split(".")).with_suffix(".py") for name in native.MODULES}
        compile_ = [str(p.relative_to(tree)) for p in copies.values()]
        cmd = [sys.executable, "-m", "mypyc", "--config-file", str(MYPY_CONFIG), *compile_]
        proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            raise RuntimeError(
                f"mypyc failed ({proc.returncode}): {lines[-1] if lines else ''}\n" + "\n".join(lines[-20:])
            )
        modules: dict[str, str] = {}
        for name, copy in copies.items():
            ext = copy.with_name(copy.stem + suffix)
            rel = ext.relative_to(tree)
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ext, staging / rel)
            modules[name] = str(rel)
        libraries = {}
        for lib in tree.glob(f"*__mypyc{suffix}"):
            shutil.copy2(lib, staging / lib.name)
            libraries[lib.name[: -len(suffix)]] = lib.name
        if not libraries:
            raise RuntimeError("mypyc left no shared library (*__mypyc)")
    files = {rel: native.file_digest(staging / rel) for rel in [*modules.values(), *libraries.values()]}
    manifest = {
        "suffix": suffix,
        "python": sys.version.split()[0],
        "mypyc": _mypy_version(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": sources,
        "modules": modules,
        "libraries": libraries,
        "files": files,
    }
    _write_manifest(staging, manifest)
    _try_loading(staging)


def _write_manifest(build: Path, manifest: Mapping[str, object]) -> None:
    (build / native.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


#: Run in a fresh process by `_try_loading`: argv = shoal_root, the repository, the staged build.
_PROBE = """
import importlib, sys
from collections.abc import Mapping
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import native
st = native.check(root=Path(sys.argv[2]), build=Path(sys.argv[3]), environ={})
assert st.active, st.reason
native.install_finder(st)
for m in native.MODULES:
    assert native.running_compiled(importlib.import_module(m)), m + " did not load compiled"
"""


def _try_loading(staging: Path) -> None:
    """Import every compiled module from `staging` in a fresh process, as the server would; raises if one
    fails. (SHOAL_NATIVE=0 keeps the package's own finder, which looks at the build in place, out of it.)"""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "shoal_root"), str(ROOT), str(staging)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **{native.ENV: "0"}),
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(f"the build did not load: {lines[-1] if lines else proc.returncode}")


def _mypy_version() -> str:
    from mypy.version import __version__

    return __version__


def install(staging: Path) -> None:
    """Put `staging` in place of the current build, the old one moved aside first (a server starting
    meanwhile sees one build or the other, or none and runs from its sources)."""
    final = ROOT / native.BUILD_DIR
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def stale() -> bool:
    """Whether the sources differ from those of the current build (a failed one included)."""
    try:
        manifest = json.loads((ROOT / native.BUILD_DIR / native.MANIFEST).read_text())
        return not isinstance(manifest, dict) or manifest.get("sources") != native.source_digest(ROOT)
    except (OSError, ValueError):
        return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="say whether the current build is in use")
    ap.add_argument(
        "--if-stale", action="store_true", help="build only if the sources changed since the last build (or attempt)"
    )
    a = ap.parse_args()
    if a.check:
        st = native.check(ROOT)
        print(st.describe())
        return 0 if st.active else 1
    build_dir = ROOT / "build"
    build_dir.mkdir(exist_ok=True)
    # One build at a time in this checkout: a second waits, then finds the first's result current.
    with open(build_dir / ".native.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if a.if_stale and not stale():
            print(f"build_native: {native.check(ROOT, environ={}).describe()}")
            return 0
        t0 = time.monotonic()
        # (Taken before copying: a source changed during the build makes the build stale, not wrong.)
        sources = native.source_digest(ROOT)
        staging = Path(tempfile.mkdtemp(prefix="native.", dir=build_dir))
        try:
            build(staging, sources)
        except Exception as e:  # any failure: record it (and the sources it was for), and the sources run
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            reason = str(e).splitlines()[0]
            _write_manifest(staging, {"error": reason, "detail": str(e), "sources": sources})
            install(staging)
            print(
                f"build_native: the compiled core was not built; the server runs from its sources.\n{e}",
                file=sys.stderr,
            )
            return 1
        install(staging)
    took = time.monotonic() - t0
    print(f"build_native: {len(native.MODULES)} modules compiled in {took:.0f} s -> {native.BUILD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
