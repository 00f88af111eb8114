"""Checks that keep user-supplied paths inside their directory."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class UnsafePathError(ValueError):
    """A user-supplied path would leave the directory it belongs to."""


def check_relative_path(path: str, *, allow_empty: bool = False) -> str:
    """Return `path` normalised ('/'-separated, no '.' parts) or raise UnsafePathError.

    Rejects absolute paths, '..' components, NUL bytes and backslashes.
    """
    if "\x00" in path or "\\" in path:
        raise UnsafePathError(f"path {path!r} contains a forbidden character")
    if path.startswith("/"):
        raise UnsafePathError(f"path {path!r} must be relative")
    parts = [p for p in PurePosixPath(path).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"path {path!r} may not contain '..'")
    if not parts and not allow_empty:
        raise UnsafePathError("path is empty")
    return "/".join(parts)


def safe_join(root: str | os.PathLike[str], path: str, *, allow_empty: bool = False) -> Path:
    """Join `path` under `root`, refusing anything (including symlinks) that resolves outside it."""
    rel = check_relative_path(path, allow_empty=allow_empty)
    base = Path(root).resolve()
    target = (base / rel).resolve() if rel else base
    if target != base and base not in target.parents:
        raise UnsafePathError(f"path {path!r} resolves outside its directory")
    return target
