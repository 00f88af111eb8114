"""Every command, option and argument of `shoal` is explained in its help (a walk over the whole click tree)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from shoal.client.cli import cli


def _commands(cmd: click.Command, path: tuple[str, ...] = ("shoal",)) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(cli))


def _gaps(path: str, cmd: click.Command) -> list[str]:
    gaps = []
    if not (cmd.help or cmd.short_help or "").strip():
        gaps.append(f"{path}: the command has no help")
    for param in cmd.params:
        if isinstance(param, click.Option):
            if not param.hidden and not (param.help or "").strip():
                gaps.append(f"{path} {'/'.join(param.opts)}: no help")
        elif isinstance(param, click.Argument):
            # Arguments have no help of their own in click: the command's help names them (JOB_ID...).
            name = param.human_readable_name
            if name not in (cmd.help or ""):
                gaps.append(f"{path} {name}: the command's help does not name this argument")
    return gaps


def test_the_tree_is_walked_whole() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"shoal task add", "shoal pool create", "shoal node users add", "shoal storage download"} <= names
    assert len(names) > 100


def test_every_command_option_and_argument_has_help() -> None:
    gaps = [gap for path, cmd in COMMANDS for gap in _gaps(path, cmd)]
    assert not gaps, "\n".join(gaps)


@pytest.mark.parametrize("path", [path for path, cmd in COMMANDS if path != "shoal agent"])
def test_help_of_every_command_prints(path: str) -> None:
    # (`shoal agent` hands --help to the agent's own parser.)
    args = path.split()[1:]
    result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
