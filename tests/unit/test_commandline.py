"""The server's check of a command line agrees with how the agent splits it (shlex, POSIX mode)."""

from __future__ import annotations

import shlex

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shoal.commandline import command_line_problem, split_command_line
from shoal.nodeagent.process import LaunchError, split_command


def _runs(command_line: str) -> bool:
    """Whether the agent would get a program out of `command_line`."""
    try:
        argv = split_command(command_line)
    except LaunchError:
        return False
    return bool(argv[0])


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\r\n\x0b'\"\\ab#$\u00e9\x00")), max_size=16))
@example('echo "hi')
@example("echo 'it''s")
@example("echo a\\")
@example('"" x')
@example("'' \"\"")
def test_check_agrees_with_the_agents_split(command_line: str) -> None:
    assert (command_line_problem(command_line) is None) == _runs(command_line)


def test_messages_name_the_problem() -> None:
    assert "No closing quotation" in (command_line_problem('echo "hi') or "")
    assert "No escaped character" in (command_line_problem("echo a\\") or "")
    assert command_line_problem("a\x00b") == "must not contain a NUL character"
    assert command_line_problem("  ") == "names no program"
    assert command_line_problem("/bin/sh -c 'echo \"$X\" | wc -l'") is None


def test_split_is_shlex_and_refuses_nul() -> None:
    assert split_command_line('a \'b c\' "d\\"e"') == shlex.split('a \'b c\' "d\\"e"')
    try:
        split_command_line("a\x00")
    except ValueError as e:
        assert "NUL" in str(e)
    else:
        raise AssertionError("a NUL was split")


def test_a_long_unbalanced_line_is_checked_in_linear_time() -> None:
    # (Not a speed assertion: a regex that backtracked would not finish within the test's timeout.)
    for line in ['"' + "\\a" * 20_000, "'" * 40_001, '"' * 40_001, ('"\\"' * 15_000)]:
        assert (command_line_problem(line) is None) == _runs(line)
