"""``shoal dashboard`` prints where the dashboard is from what the server saved, and says plainly when
nothing was saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.client.cli import cli


def test_prints_the_saved_url_and_how_to_sign_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    saved = {
        "address": "127.0.0.1:7420",
        "tls": True,
        "account": "default",
        "key": "k3y",
        "http_url": "https://127.0.0.1:7422",
    }
    (tmp_path / "credentials.json").write_text(json.dumps(saved))
    result = CliRunner().invoke(cli, ["dashboard"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "https://127.0.0.1:7422/"
    assert "k3y" not in result.output
    result = CliRunner().invoke(cli, ["dashboard", "--show-key"])
    assert "k3y" in result.output


def test_without_a_saved_server_it_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["--address", "127.0.0.1:9999", "dashboard"])
    assert result.exit_code == 1
    assert "no dashboard address saved for 127.0.0.1:9999" in result.output
