"""Durations as people write them on a command line: ``90``, ``90s``, ``15m``, ``1h30m``, ``2d``,
``01:30:00``, ``1.02:03:04`` (Batch's ``D.HH:MM:SS``), ``1-02:03:04`` (Slurm's) and ``PT1H30M`` (ISO 8601).

Pure: no click here (the CLI's parameter type is in ``cli_params.py``). The unit forms are read by
pytimeparse, ISO 8601 by isodate; only the colon forms, which those read differently from Batch and
Slurm, are matched here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

__all__ = ["DURATION_FORMS", "format_duration", "parse_duration"]

#: What a duration may look like, for help texts and error messages.
DURATION_FORMS: Final = "90 (seconds), 90s, 15m, 1h30m, 2d, HH:MM:SS, D.HH:MM:SS or PT1H30M"

_SECONDS = re.compile(r"\d+(?:\.\d+)?")
# [D. or D-]HH:MM:SS[.fff]: days as .NET's TimeSpan (Batch) or Slurm write them; minutes and seconds < 60.
_CLOCK = re.compile(r"(?:(?P<d>\d+)[.-])?(?P<h>\d+):(?P<m>[0-5]?\d):(?P<s>[0-5]?\d(?:\.\d+)?)")


def parse_duration(text: str) -> timedelta:
    """``text`` as a duration (see :data:`DURATION_FORMS`); ValueError saying what is wrong otherwise.

    A bare number is seconds. ``H:MM`` (two fields) is refused: Batch reads it as hours and minutes,
    Slurm as minutes and seconds. ISO 8601 months and years are refused too (they have no fixed length).
    Negative durations are refused; zero is a duration (callers that need more say so).
    """
    value = text.strip()
    if not value:
        raise ValueError("an empty duration")
    try:
        if _SECONDS.fullmatch(value):
            return timedelta(seconds=float(value))
        if value[0] in "pP":
            return _iso(value)
        if ":" in value:
            return _clock(value)
        return _units(value)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def _iso(value: str) -> timedelta:
    import isodate

    try:
        d = isodate.parse_duration(value.upper())
    except (isodate.ISO8601Error, ValueError):
        raise ValueError(f"{value!r} is not an ISO 8601 duration (PT1H30M, P2D, P1DT12H)") from None
    if not isinstance(d, timedelta):
        raise ValueError(f"{value!r}: months and years have no fixed length; give days (P30D)")
    if d < timedelta(0):
        raise ValueError(f"{value!r} is negative")
    return d


def _clock(value: str) -> timedelta:
    m = _CLOCK.fullmatch(value)
    if m is None:
        pair = re.fullmatch(r"(\d+):(\d+)", value)
        if pair:
            a, b = pair.groups()
            raise ValueError(
                f"{value!r} is ambiguous (hours:minutes or minutes:seconds?): write HH:MM:SS, "
                f"{a}:{b}:00 or 0:{a:0>2}:{b}"
            )
        raise ValueError(f"{value!r} is not HH:MM:SS or D.HH:MM:SS (minutes and seconds below 60)")
    return timedelta(days=int(m["d"] or 0), hours=int(m["h"]), minutes=int(m["m"]), seconds=float(m["s"]))


def _units(value: str) -> timedelta:
    from pytimeparse import parse

    seconds = parse(value.lower())
    if seconds is None:
        raise ValueError(f"{value!r} is not a duration such as {DURATION_FORMS}")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return timedelta(seconds=seconds)


def format_duration(d: timedelta) -> str:
    """``d`` in the unit form :func:`parse_duration` reads back: ``1d2h3m4s``, ``90s``, ``0s``, ``1.5s``."""
    total = d.total_seconds()
    if total < 0:
        raise ValueError("a negative duration")
    whole = int(total)
    fraction = total - whole
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds or fraction or not parts:
        parts.append(f"{seconds + fraction:.6f}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)
