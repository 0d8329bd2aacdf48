"""Business days and hours in a team's time zone, for deadlines such as "next business day"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} is a naive datetime; pass a timezone-aware (UTC) instant")


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days (0=Mon) and hours in one time zone, minus holidays."""

    tz: ZoneInfo
    opens: time
    closes: time
    days: frozenset[int]
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError(f"business days must be a non-empty set of 0 (Mon) to 6 (Sun), not {self.days}")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("opening and closing times are local wall-clock times; give them no tzinfo")
        if self.opens >= self.closes:
            raise ValueError(f"business hours must open before they close: {self.opens}-{self.closes}")

    def is_business_day(self, d: date) -> bool:
        """Whether d is a working weekday and not a holiday."""
        return d.weekday() in self.days and d not in self.holidays

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after d."""
        # Terminates: days is non-empty and holidays is finite.
        d += timedelta(days=1)
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d

    def previous_business_day(self, d: date) -> date:
        """The last business day strictly before d."""
        d -= timedelta(days=1)
        while not self.is_business_day(d):
            d -= timedelta(days=1)
        return d

    def local_date(self, at: datetime) -> date:
        """The calendar date of the aware instant at, in this calendar's time zone."""
        _require_aware(at)
        return at.astimezone(self.tz).date()

    def close_of(self, d: date) -> datetime:
        """Closing time on local date d, as an aware UTC instant."""
        # Building the local wall-clock time and converting lets zoneinfo pick that day's offset (DST).
        return datetime.combine(d, self.closes, tzinfo=self.tz).astimezone(UTC)

    def close_of_next_business_day(self, at: datetime) -> datetime:
        """Closing time of the first business day after at's local date, in UTC."""
        return self.close_of(self.next_business_day(self.local_date(at)))

    def add_business_days(self, at: datetime, n: int) -> datetime:
        """The same local wall-clock time n business days after (n < 0: before) at's local date, in UTC."""
        _require_aware(at)
        if n == 0:
            return at.astimezone(UTC)
        local = at.astimezone(self.tz)
        d = local.date()
        for _ in range(abs(n)):
            d = self.next_business_day(d) if n > 0 else self.previous_business_day(d)
        return datetime.combine(d, local.time(), tzinfo=self.tz).astimezone(UTC)
