"""Node.js for the tests that drive Shoal from another language: `node` and the npm packages
(`@grpc/grpc-js`, `@grpc/proto-loader`, `protobufjs`) installed once into `.node_modules-cache/`
at the repository's root (ignored by git).

:func:`node_modules` returns that directory, or raises :class:`NodeUnavailable` saying why (no
`node` or `npm`, a Node.js too old, an install that failed), for the test to skip with.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import google.rpc

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".node_modules-cache"
#: What the Node.js client needs, at versions known to work with it.
PACKAGES = ("@grpc/grpc-js@^1.14", "@grpc/proto-loader@^0.8", "protobufjs@^7.5")
#: @grpc/grpc-js supports Node.js 12 and later; older ones cannot run it.
MIN_NODE_MAJOR = 12
INSTALL_TIMEOUT_SECONDS = 300
#: The repository's protos (`shoal/v1/*.proto`) and the google/rpc protos of googleapis-common-protos.
PROTOS = ROOT / "protos"
RPC_PROTOS = Path(google.rpc.__path__[0]).parent.parent


class NodeUnavailable(Exception):
    """Node.js or its packages cannot be had here; the message says why."""


def node_binary() -> str:
    """The path of `node` (a version that runs @grpc/grpc-js), or NodeUnavailable."""
    node = shutil.which("node")
    if node is None:
        raise NodeUnavailable("Node.js is not installed (no `node` on PATH)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        raise NodeUnavailable(f"`node --version` said {version!r}") from None
    if major < MIN_NODE_MAJOR:
        raise NodeUnavailable(f"Node.js {version} is older than {MIN_NODE_MAJOR}")
    return node


def _installed(cache: Path) -> bool:
    return all((cache / "node_modules" / p.rsplit("@", 1)[0] / "package.json").exists() for p in PACKAGES)


def node_modules(cache: Path = CACHE) -> Path:
    """The `node_modules` directory with the packages, installed with npm on first use; or NodeUnavailable."""
    node_binary()
    npm = shutil.which("npm")
    if _installed(cache):
        return cache / "node_modules"
    if npm is None:
        raise NodeUnavailable("npm is not installed, and the Node.js packages are not in .node_modules-cache/")
    cache.mkdir(exist_ok=True)
    # One install at a time (two test processes would both see the cache empty).
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(cache):
            try:
                done = subprocess.run(
                    [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(cache), *PACKAGES],
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT_SECONDS,
                )
            except subprocess.TimeoutExpired:
                raise NodeUnavailable(f"npm install took more than {INSTALL_TIMEOUT_SECONDS} s") from None
            if done.returncode != 0 or not _installed(cache):
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise NodeUnavailable(f"npm install failed ({done.returncode}): {' / '.join(tail)}")
    return cache / "node_modules"
