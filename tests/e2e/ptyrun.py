"""A command in a pseudo-terminal of a given size, as a person's terminal runs it: its output read as it
comes, Ctrl-C sent as the terminal sends it (SIGINT), ANSI styles stripped for the assertions."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping, Sequence

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI escapes and carriage returns (the terminal's ``\\r\\n`` as ``\\n``)."""
    return _ANSI.sub("", text).replace("\r", "")


class PtyProcess:
    """``args`` run with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide."""

    def __init__(self, args: Sequence[str], *, columns: int, rows: int = 50, env: Mapping[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.master = master
        self.raw = b""
        try:
            self.proc = subprocess.Popen(
                list(args),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
                start_new_session=True,
            )
        finally:
            os.close(slave)

    @property
    def text(self) -> str:
        """Everything printed so far, as plain text."""
        return plain(self.raw.decode(errors="replace"))

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout`` seconds; False at the end of the output."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every process on the terminal has closed it
            return False
        self.raw += chunk
        return bool(chunk)

    def read_until(self, what: str, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """Read until ``predicate(text)`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.text):
            if time.monotonic() > deadline or not self._read(min(0.2, max(0.0, deadline - time.monotonic()))):
                if predicate(self.text):
                    break
                raise AssertionError(f"no {what} after {timeout}s; the terminal shows:\n{self.text}")
        return self.text

    def interrupt(self) -> None:
        """Ctrl-C."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Read to the end of the output and wait for the exit; (exit status, plain text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.2):
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        try:
            code = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout}s; the terminal shows:\n{self.text}") from None
        finally:
            with contextlib.suppress(OSError):
                os.close(self.master)
        return code, self.text


def run_in_pty(args: Sequence[str], *, columns: int, env: Mapping[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``args`` to its end in a terminal ``columns`` wide; (exit status, what it printed, plain)."""
    return PtyProcess(args, columns=columns, env=env).finish(timeout)
