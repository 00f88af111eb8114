"""Dashboard sessions: idle ones end, and one account signing in again and again cannot push other accounts'
browsers out."""

from __future__ import annotations

from shoal.clock import ManualClock
from shoal.server.web.sessions import IDLE_SECONDS, MAX_SESSIONS, MAX_SESSIONS_PER_ACCOUNT, Sessions


def test_an_idle_session_ends() -> None:
    clock = ManualClock()
    sessions = Sessions(clock)
    sid = sessions.open("a", "key")
    clock.advance(IDLE_SECONDS - 1)
    assert sessions.get(sid) is not None
    clock.advance(IDLE_SECONDS + 1)
    assert sessions.get(sid) is None


def test_one_account_signing_in_often_pushes_out_only_its_own_sessions() -> None:
    clock = ManualClock()
    sessions = Sessions(clock)
    theirs = sessions.open("victim", "key")
    clock.advance(1)
    mine = []
    for _ in range(MAX_SESSIONS + 10):
        mine.append(sessions.open("tenant", "key"))
        clock.advance(0.001)
    assert sessions.get(theirs) is not None
    # The account keeps its latest sessions.
    assert sessions.get(mine[-1]) is not None
    assert sessions.get(mine[0]) is None
    assert sum(sessions.get(sid) is not None for sid in mine) == MAX_SESSIONS_PER_ACCOUNT
