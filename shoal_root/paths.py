"""Checks that keep user-supplied paths inside their directory."""

from __future__ import annotations

import contextlib
import os
import shutil
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


def remove_tree(path: Path) -> None:
    """Remove `path`: a file, a link (never what it points to) or a directory and everything under it,
    following no symbolic link (a task may leave links to anywhere: `shutil.rmtree` removes a link, never
    its target). What a task made unreadable or unwritable is made writable to its owner first; what
    still cannot go is left."""

    def retry_writable(_func: object, failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700, follow_symlinks=False)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, onerror=retry_writable)
        else:
            path.unlink()
