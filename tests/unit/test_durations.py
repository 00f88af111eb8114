"""The command line's duration parser (client/durations.py): examples and properties."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.client.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ("0", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(days=7)),
        ("5 minutes", timedelta(minutes=5)),
        ("2D", timedelta(days=2)),
        ("1H30M", timedelta(hours=1, minutes=30)),
        ("  15m ", timedelta(minutes=15)),
        ("01:30:00", timedelta(hours=1, minutes=30)),
        ("0:00:05.5", timedelta(seconds=5.5)),
        ("36:00:00", timedelta(hours=36)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1-02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("pt90s", timedelta(seconds=90)),
        ("P2D", timedelta(days=2)),
        ("P1DT12H", timedelta(days=1, hours=12)),
    ],
)
def test_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not a duration"),
        ("-5m", "negative"),
        ("-5", "not a duration"),
        ("1e3", "not a duration"),
        ("10ms", "not a duration"),
        ("1:30", "ambiguous"),
        ("1:99:00", "below 60"),
        ("1:00:60", "below 60"),
        ("P1M", "months and years"),
        ("P1Y", "months and years"),
        ("PT-1H", "ISO 8601"),
        ("Pfoo", "ISO 8601"),
        ("9" * 40 + "d", "too long"),
        ("P" + "9" * 30 + "D", "too long"),
    ],
)
def test_refusals_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_duration(text)


def test_the_ambiguous_pair_suggests_both_readings() -> None:
    with pytest.raises(ValueError) as e:
        parse_duration("1:30")
    assert "1:30:00" in str(e.value) and "0:01:30" in str(e.value)


def test_format() -> None:
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(seconds=90)) == "1m30s"
    assert format_duration(timedelta(days=1, hours=2, minutes=3, seconds=4.5)) == "1d2h3m4.5s"
    assert format_duration(timedelta(hours=2)) == "2h"
    with pytest.raises(ValueError):
        format_duration(timedelta(seconds=-1))


# Up to about 30 years, in microseconds: the float of total_seconds() keeps them all.
durations = st.integers(min_value=0, max_value=10**15).map(lambda us: timedelta(microseconds=us))


@given(durations)
def test_format_reads_back(d: timedelta) -> None:
    assert abs(parse_duration(format_duration(d)) - d) <= timedelta(microseconds=1)


@given(d=durations)
def test_iso_8601_of_a_timedelta_reads_back(d: timedelta) -> None:
    import isodate

    text = isodate.duration_isoformat(d)
    assert abs(parse_duration(text) - d) <= timedelta(microseconds=1)


clock = st.tuples(
    st.integers(0, 400), st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.sampled_from([".", "-"])
)


@given(clock)
def test_clock_forms(parts: tuple[int, int, int, int, str]) -> None:
    days, hours, minutes, seconds, sep = parts
    expected = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    assert parse_duration(f"{days}{sep}{hours:02}:{minutes:02}:{seconds:02}") == expected
    assert parse_duration(f"{days * 24 + hours}:{minutes:02}:{seconds:02}") == expected


units = st.tuples(st.integers(0, 999), st.integers(0, 99), st.integers(0, 999), st.integers(0, 9999))


@given(units, st.sampled_from(["", " "]), st.booleans())
def test_unit_forms(parts: tuple[int, int, int, int], space: str, upper: bool) -> None:
    days, hours, minutes, seconds = parts
    text = space.join(f"{n}{u}" for n, u in zip(parts, "dhms", strict=True))
    text = text.upper() if upper else text
    assert parse_duration(text) == timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@given(st.integers(0, 10**9), st.integers(0, 999))
def test_bare_numbers_are_seconds(whole: int, millis: int) -> None:
    assert parse_duration(str(whole)) == timedelta(seconds=whole)
    assert abs(parse_duration(f"{whole}.{millis:03}") - timedelta(seconds=whole, milliseconds=millis)) < timedelta(
        microseconds=1
    )


@given(st.text(max_size=40))
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    try:
        d = parse_duration(text)
    except ValueError as e:
        assert str(e)
    else:
        assert d >= timedelta(0)


@given(st.text(alphabet="0123456789dhmswPTDHMS:.- ", max_size=20))
def test_duration_like_text_is_a_duration_or_a_value_error(text: str) -> None:
    try:
        d = parse_duration(text)
    except ValueError as e:
        assert str(e)
    else:
        assert d >= timedelta(0)
