"""Dashboard sign-ins: a random session id in a cookie stands for an account and its key, kept in memory.

The key never goes back to the browser; a session ends when it is idle for `IDLE_SECONDS`, when its
holder signs out, or when the server restarts (sessions are not stored).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shoal.clock import Clock

#: A session unused this long is forgotten.
IDLE_SECONDS = 8 * 3600.0
#: At most this many sessions at once; the least recently used goes first.
MAX_SESSIONS = 1000


@dataclass
class Session:
    """One signed-in browser: the account and the key its calls carry."""

    account: str
    key: str
    last_used: float


class Sessions:
    """The signed-in browsers of one server."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def open(self, account: str, key: str) -> str:
        """A new session for an account whose key was checked; returns its id (the cookie's value)."""
        self._expire()
        while len(self._by_id) >= MAX_SESSIONS:
            oldest = min(self._by_id, key=lambda sid: self._by_id[sid].last_used)
            del self._by_id[oldest]
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = Session(account, key, self.clock.monotonic())
        return sid

    def get(self, sid: str) -> Session | None:
        """The live session of this id (its idle time restarts), or None."""
        session = self._by_id.get(sid)
        now = self.clock.monotonic()
        if session is None or now - session.last_used > IDLE_SECONDS:
            self._by_id.pop(sid, None)
            return None
        session.last_used = now
        return session

    def close(self, sid: str) -> None:
        """Sign out."""
        self._by_id.pop(sid, None)

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for sid in [s for s, v in self._by_id.items() if now - v.last_used > IDLE_SECONDS]:
            del self._by_id[sid]
