"""The package's sources laid out as installed (`shoal/...`), for tools that need its real module names.

The repository keeps each subpackage in a folder of its own (pyproject's package-dir: `server/` is
`shoal.server`, `protos/shoal/v1/` is `shoal.v1`, ...). Checked folder by folder, `mypy server`
cannot follow an import of `shoal.server....` and takes what it imports as Any; mypyc needs the
module names too. Both work on a copy laid out as the installed package.

    python scripts/package_tree.py --typecheck    # mypy over the whole package, imports followed
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: mypy's settings, for the copy too: the project's own (its [tool.mypy]). Given with --config-file,
#: since a pyproject.toml in the copy would also be read by the setuptools build mypyc runs there.
MYPY_CONFIG = ROOT / "pyproject.toml"


def package_tree(dest: Path) -> None:
    """Copy the package's sources (.py, .pyi, py.typed) into `dest` as installed."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, src in setup["package-dir"].items():
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for f in (ROOT / src).iterdir():
            if f.is_file() and f.suffix in (".py", ".pyi", ".typed"):
                shutil.copy2(f, target / f.name)


def typecheck() -> int:
    """mypy over the whole package as installed; its exit code."""
    with tempfile.TemporaryDirectory(prefix="shoal-typecheck-") as tmp:
        package_tree(Path(tmp))
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(MYPY_CONFIG), "--no-incremental", "-p", "shoal"],
            cwd=tmp,
        ).returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--typecheck", action="store_true", help="run mypy over the package as installed")
    a = ap.parse_args()
    if a.typecheck:
        return typecheck()
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
