"""Shared test settings: keep every test's Shoal files out of the user's home."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SHOAL_HOME", tempfile.mkdtemp(prefix="shoal-test-home-"))
