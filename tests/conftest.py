"""Shared test settings: keep every test's Shoal files out of the user's home, and the users that root
agents make for tasks apart from those of other runs (a prefix of this run's own, removed at its end)."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile

import pytest

# The container kit's fixtures (container_engine, registry) for every test directory.
pytest_plugins = ("tests.containerkit",)

# Ctrl-C as at an interactive shell: a suite started in the background (``make test &`` without job control)
# ignores SIGINT, which every child would inherit over exec (the CLI under test would never see its Ctrl-C).
# A handler of our own is reset to the default in each child instead. (Not a preexec_fn in the children: it
# forks with gRPC loaded, whose poller then logs an error into the child's terminal.)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("SHOAL_HOME", tempfile.mkdtemp(prefix="shoal-test-home-"))
os.environ.setdefault("SHOAL_USER_PREFIX", f"st{secrets.token_hex(3)}")


@pytest.fixture(autouse=True)
def _own_shoal_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own ``$SHOAL_HOME``: a server that an earlier test started (and killed) leaves its
    saved credentials under its address, and a later server given the same port would otherwise be
    spoken to with the earlier one's TLS settings and keys."""
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path_factory.mktemp("shoal-home")))


@pytest.fixture(autouse=True)
def _no_inherited_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI fits its tables to ``$COLUMNS``: pytest-xdist's workers inherit ``COLUMNS=80`` and ``LINES=24``
    from execnet, which a single process does not; tests that want a width set it themselves."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the users this run's agents made (root only; any left by a crash carry the run's prefix)."""
    from tests.taskusers import remove_test_users

    remove_test_users(os.environ["SHOAL_USER_PREFIX"])
