"""Compile the control plane's hottest modules with mypyc into build/native/ (see shoal/native.py).

    python scripts/build_native.py [--check]

The sources are copied into a temporary tree laid out as the installed package (`shoal/...`,
from pyproject's package-dir), where mypyc type-checks and compiles `native.MODULES`; the
extension modules, mypyc's shared library for them and a manifest (with the SHA-256 of the sources)
are then put in place of the previous build at once. A failed build leaves a manifest that
says why, so that the sources run (and `make` does not try again until a source changes).
`--check` prints whether the current build is in use, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "shoal_root"))
import native  # noqa: E402  (shoal_root/native.py, without importing the package and its finder)
from package_tree import package_tree  # noqa: E402


def build() -> dict[str, object]:
    """Compile; return the manifest of the result (raises CalledProcessError on failure)."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    # (Taken before copying: a source changed during the build makes the build stale, not wrong.)
    sources = native.source_digest(ROOT)
    with tempfile.TemporaryDirectory(prefix="shoal-native-") as tmp:
        tree = Path(tmp)
        package_tree(tree)
        copies = {name: tree.joinpath(*name.split(".")).with_suffix(".py") for name in native.MODULES}
        cmd = [sys.executable, "-m", "mypyc", *(str(p.relative_to(tree)) for p in copies.values())]
        proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise RuntimeError(f"mypyc failed ({proc.returncode}):\n{tail}")
        staging = ROOT / "build" / "native.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
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
    return {
        "suffix": suffix,
        "python": sys.version.split()[0],
        "mypyc": _mypy_version(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": sources,
        "modules": modules,
        "libraries": libraries,
    }


def _mypy_version() -> str:
    from mypy.version import __version__

    return __version__


def install(manifest: dict[str, object]) -> None:
    """Put the staged build (or, on failure, only its manifest) in place of the previous one."""
    final = ROOT / native.BUILD_DIR
    staging = ROOT / "build" / "native.new"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / native.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="say whether the current build is in use")
    a = ap.parse_args()
    if a.check:
        st = native.check(ROOT)
        print(st.describe())
        return 0 if st.active else 1
    t0 = time.monotonic()
    try:
        manifest = build()
    except Exception as e:  # any failure: record it, and the sources run
        install({"error": str(e).splitlines()[0], "detail": str(e)})
        print(f"build_native: the compiled core was not built; the server runs from its sources.\n{e}", file=sys.stderr)
        return 1
    install(manifest)
    took = time.monotonic() - t0
    print(f"build_native: {len(native.MODULES)} modules compiled in {took:.0f} s -> {native.BUILD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
