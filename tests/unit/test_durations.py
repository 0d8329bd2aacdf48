from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocsin.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1w 2d 3h 4m 5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("24h", timedelta(days=1)),
        ("90m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (" 15m ", timedelta(minutes=15)),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "3O m",
        "",
        " ",
        "15",
        "-5m",
        "+5m",
        "1.5h",
        "m",
        "15 m",
        "15M",
        "1h1h",
        "30m1h",
        "1y",
        "\u0661\u0665m",
        "15m!",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert str(raised.value) == f'"{text}" is not a duration'


def test_overflow_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("99999999999999w")


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=24), "1d"),
        (timedelta(hours=48), "2d"),
        (timedelta(weeks=1), "1w"),
        (timedelta(days=8, seconds=1), "1w1d1s"),
    ],
)
def test_formats_canonically(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


@pytest.mark.parametrize("duration", [timedelta(seconds=-1), timedelta(milliseconds=1500)])
def test_format_rejects_what_it_cannot_spell(duration: timedelta) -> None:
    with pytest.raises(ValueError):
        format_duration(duration)


@given(st.integers(min_value=0, max_value=10**10).map(lambda seconds: timedelta(seconds=seconds)))
def test_format_then_parse_round_trips(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


@given(st.text(alphabet="0123456789wdhms -", max_size=12))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except ValueError as error:
        assert str(error) == f'"{text}" is not a duration'
    else:
        assert duration >= timedelta(0)
        assert parse_duration(format_duration(duration)) == duration
