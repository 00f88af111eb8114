"""``shoal node exec`` and ``shoal node shell``: a command, or an interactive shell, on a node.

Both exit with the remote command's status (128 + the signal that ended it). ``shell`` (and ``exec -t``
from a terminal) puts the local terminal in raw mode, restored on the way out, so that every key, Ctrl-C
included, goes to the node's terminal as a byte; the local window size is sent at the start and again on
each SIGWINCH.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from types import FrameType

import click

from ._nodeexec import ExecSession
from .cli_common import _client, _parse_env

__all__ = ["node_exec", "node_shell"]

READ_SIZE = 4096


def _window_size(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal on `fd`, or (0, 0)."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.lines, size.columns


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """The terminal on `fd` in raw mode (each byte as typed, no echo, no signals) until the block ends."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _resizes(session: ExecSession, fd: int) -> Iterator[None]:
    """Send the local terminal's new size whenever it changes (SIGWINCH), until the block ends."""

    def on_winch(_sig: int, _frame: FrameType | None) -> None:
        session.resize(*_window_size(fd))

    previous = signal.signal(signal.SIGWINCH, on_winch)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def _forward_stdin(session: ExecSession, fd: int, *, eof: bool) -> None:
    """Send what is read from `fd` (in a thread of its own: the read blocks); at its end, with `eof`, the
    command's input ends too."""

    def pump() -> None:
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                if eof:
                    session.close_stdin()
                return
            session.write(data)

    threading.Thread(target=pump, name="shoal-exec-stdin", daemon=True).start()


def _print_output(session: ExecSession) -> None:
    out, err = sys.stdout.fileno(), sys.stderr.fileno()
    for chunk in session:
        data = memoryview(chunk.data)
        fd = err if chunk.stderr else out
        while data:
            data = data[os.write(fd, data) :]


def run_session(session: ExecSession, *, terminal: bool, forward_stdin: bool) -> int:
    """Relay between this process's stdio and `session` until the command ends; its exit status.

    `terminal`: the command has a terminal; when this process's stdin is one too, it is put in raw mode and
    its size changes are sent. `forward_stdin`: this process's stdin goes to the command.
    """
    stdin = sys.stdin.fileno()
    local_tty = terminal and os.isatty(stdin)
    with contextlib.ExitStack() as stack:
        stack.callback(session.cancel)
        if local_tty:
            stack.enter_context(_raw(stdin))
            stack.enter_context(_resizes(session, stdin))
        if forward_stdin:
            # (A raw terminal never ends: Ctrl-D is a byte for the remote terminal to read.)
            _forward_stdin(session, stdin, eof=not local_tty)
        _print_output(session)
    if session.exit_code is None:
        raise click.ClickException("the call ended without the command's exit status")
    return session.exit_code


@click.command("exec")
@click.argument("pool_id")
@click.argument("node_id")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-t", "--tty", "use_tty", is_flag=True, help="Run the command under a pseudo-terminal.")
@click.option("-i", "--stdin", "forward", is_flag=True, help="Pass this terminal's (or pipe's) input to the command.")
@click.option("-e", "--env", "env", multiple=True, metavar="NAME=VALUE", help="An environment variable (repeatable).")
@click.option("--elevated", is_flag=True, help="Run as the pool's administrator (root), not its ordinary user.")
@click.pass_context
def node_exec(
    ctx: click.Context,
    pool_id: str,
    node_id: str,
    command: tuple[str, ...],
    use_tty: bool,
    forward: bool,
    env: tuple[str, ...],
    elevated: bool,
) -> None:
    """Run COMMAND on node NODE_ID of pool POOL_ID: `shoal node exec POOL NODE -- ls -l shared`.

    The command runs in the node's root directory with the node's SHOAL_* variables; the exit status is the
    command's.
    """
    environment = _parse_env(env)
    rows, columns = _window_size(sys.stdin.fileno()) if use_tty else (0, 0)
    if use_tty and "TERM" in os.environ:
        environment.setdefault("TERM", os.environ["TERM"])
    session = _client(ctx).pools.exec_node(
        pool_id,
        node_id,
        list(command),
        tty=use_tty,
        rows=rows,
        columns=columns,
        environment=environment,
        elevated=elevated,
        interactive=forward,
    )
    ctx.exit(run_session(session, terminal=use_tty, forward_stdin=forward))


@click.command("shell")
@click.argument("pool_id")
@click.argument("node_id")
@click.option("--elevated", is_flag=True, help="A shell of the pool's administrator (root), not its ordinary user.")
@click.pass_context
def node_shell(ctx: click.Context, pool_id: str, node_id: str, elevated: bool) -> None:
    """An interactive shell on node NODE_ID of pool POOL_ID (the user's login shell, in the node's root
    directory); `exit` ends it, with its status."""
    stdin = sys.stdin.fileno()
    rows, columns = _window_size(stdin)
    environment = {"TERM": os.environ["TERM"]} if "TERM" in os.environ else {}
    session = _client(ctx).pools.exec_node(
        pool_id,
        node_id,
        tty=True,
        rows=rows,
        columns=columns,
        environment=environment,
        elevated=elevated,
        interactive=True,
    )
    ctx.exit(run_session(session, terminal=True, forward_stdin=True))
