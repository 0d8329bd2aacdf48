from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocsin.core.calendar import BusinessCalendar

NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))


def calendar(*holidays: date) -> BusinessCalendar:
    return BusinessCalendar(NEW_YORK, time(9), time(17), WEEKDAYS, frozenset(holidays))


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """An instant given as New York wall-clock time, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def test_business_days() -> None:
    cal = calendar(date(2026, 11, 26))
    assert cal.is_business_day(date(2026, 11, 27))  # Friday
    assert not cal.is_business_day(date(2026, 11, 28))  # Saturday
    assert not cal.is_business_day(date(2026, 11, 26))  # holiday
    assert cal.next_business_day(date(2026, 11, 25)) == date(2026, 11, 27)
    assert cal.next_business_day(date(2026, 11, 27)) == date(2026, 11, 30)
    assert cal.previous_business_day(date(2026, 11, 30)) == date(2026, 11, 27)


def test_friday_close_is_due_monday_close() -> None:
    due = calendar().close_of_next_business_day(local(2026, 11, 27, 17, 0))
    assert due == local(2026, 11, 30, 17, 0)
    assert due == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    assert due.tzinfo is UTC


def test_holiday_monday_moves_it_to_tuesday() -> None:
    due = calendar(date(2026, 11, 30)).close_of_next_business_day(local(2026, 11, 27, 17, 0))
    assert due == local(2026, 12, 1, 17, 0)


@pytest.mark.parametrize("detected", [local(2026, 11, 28, 10, 0), local(2026, 11, 29, 23, 30)])
def test_weekend_is_due_monday_close(detected: datetime) -> None:
    # Sunday 23:30 in New York is already Monday in UTC: the local date is what counts.
    assert calendar().close_of_next_business_day(detected) == local(2026, 11, 30, 17, 0)


def test_fall_back_weekend() -> None:
    # 2026-11-01: clocks go from EDT (UTC-4) to EST (UTC-5).
    cal = calendar()
    friday = datetime(2026, 10, 30, 21, 0, tzinfo=UTC)  # 17:00 EDT
    assert cal.close_of_next_business_day(friday) == datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # 17:00 EST
    ambiguous_sunday = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first of two
    assert cal.close_of_next_business_day(ambiguous_sunday) == datetime(2026, 11, 2, 22, 0, tzinfo=UTC)


def test_spring_forward_weekend() -> None:
    # 2027-03-14: clocks go from EST (UTC-5) to EDT (UTC-4).
    friday = datetime(2027, 3, 12, 22, 0, tzinfo=UTC)  # 17:00 EST
    assert calendar().close_of_next_business_day(friday) == datetime(2027, 3, 15, 21, 0, tzinfo=UTC)


def test_any_aware_timezone_in_utc_out() -> None:
    paris = datetime(2026, 11, 27, 23, 0, tzinfo=ZoneInfo("Europe/Paris"))  # 17:00 in New York
    due = calendar().close_of_next_business_day(paris)
    assert due == local(2026, 11, 30, 17, 0)
    assert due.utcoffset() == timedelta(0)


def test_naive_instants_are_rejected() -> None:
    cal = calendar()
    with pytest.raises(ValueError, match="naive"):
        cal.close_of_next_business_day(datetime(2026, 11, 27, 17, 0))
    with pytest.raises(ValueError, match="naive"):
        cal.add_business_days(datetime(2026, 11, 27, 17, 0), 1)


def test_add_business_days_keeps_the_wall_clock_across_dst() -> None:
    cal = calendar(date(2026, 11, 3))
    friday = local(2026, 10, 30, 10, 0)
    assert cal.add_business_days(friday, 0) == friday
    assert cal.add_business_days(friday, 1) == local(2026, 11, 2, 10, 0)
    assert cal.add_business_days(friday, 2) == local(2026, 11, 4, 10, 0)  # skips the holiday
    assert cal.add_business_days(local(2026, 11, 2, 10, 0), -1) == friday
    assert cal.add_business_days(friday, 1) - friday == timedelta(days=3, hours=1)


def test_invalid_calendars() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        BusinessCalendar(NEW_YORK, time(9), time(17), frozenset(), frozenset())
    with pytest.raises(ValueError, match="non-empty"):
        BusinessCalendar(NEW_YORK, time(9), time(17), frozenset({7}), frozenset())
    with pytest.raises(ValueError, match="open before"):
        BusinessCalendar(NEW_YORK, time(17), time(9), WEEKDAYS, frozenset())


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sets(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), max_size=20),
)
def test_due_is_the_close_of_the_first_business_day_after(at: datetime, holidays: set[date]) -> None:
    cal = calendar(*holidays)
    due = cal.close_of_next_business_day(at)
    due_local = due.astimezone(NEW_YORK)
    detected_on = at.astimezone(NEW_YORK).date()
    assert due.tzinfo is UTC
    assert due_local.time() == time(17)
    assert cal.is_business_day(due_local.date())
    assert due_local.date() > detected_on
    skipped = (detected_on + timedelta(days=n) for n in range(1, (due_local.date() - detected_on).days))
    assert not any(cal.is_business_day(d) for d in skipped)
