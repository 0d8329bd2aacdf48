"""The 90-day uptime bars: time-weighted from a component's status history, maintenance excluded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tocsin.statuspage.vocab import ComponentStatus, worst

# How much of an outage's time counts as downtime (degraded performance is slow, not down).
DOWN_WEIGHT = {
    ComponentStatus.major_outage: 1.0,
    ComponentStatus.partial_outage: 0.3,
}


@dataclass(frozen=True)
class Day:
    day: date
    level: str  # a ComponentStatus value, or "none" when there is no data for the day
    uptime: float | None  # 0..1 of the day's time outside maintenance; None without data
    seconds: dict[ComponentStatus, float]

    @property
    def label(self) -> str:
        return "no data" if self.uptime is None else f"{self.uptime * 100:.2f}% uptime"


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # In UTC: aware datetimes sharing one tzinfo subtract as wall-clock times, which is wrong across DST.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def status_seconds(
    changes: list[tuple[datetime, ComponentStatus]], start: datetime, end: datetime
) -> dict[ComponentStatus, float]:
    """Seconds spent in each status within [start, end), given the status changes in time order."""
    out: dict[ComponentStatus, float] = {}
    status: ComponentStatus | None = None
    cursor = start
    for at, new in changes:
        if at <= start:
            status = new
            continue
        if at >= end:
            break
        if status is not None and at > cursor:
            out[status] = out.get(status, 0.0) + (at - cursor).total_seconds()
        status, cursor = new, max(cursor, at)
    if status is not None and end > cursor:
        out[status] = out.get(status, 0.0) + (end - cursor).total_seconds()
    return out


def uptime(seconds: dict[ComponentStatus, float]) -> float | None:
    """Share of the non-maintenance time that was up; None when there was no such time."""
    counted = sum(s for status, s in seconds.items() if status is not ComponentStatus.under_maintenance)
    if counted <= 0:
        return None
    down = sum(seconds.get(status, 0.0) * weight for status, weight in DOWN_WEIGHT.items())
    return max(0.0, 1.0 - down / counted)


def days(
    changes: list[tuple[datetime, ComponentStatus]],
    tracked_since: datetime | None,
    now: datetime,
    tz: ZoneInfo,
    count: int = 90,
) -> list[Day]:
    """The last `count` local days, oldest first, each with its uptime and worst status."""
    today = now.astimezone(tz).date()
    history = list(changes)
    if tracked_since is not None:
        # Before its first recorded change a tracked component was operational.
        history.insert(0, (tracked_since, ComponentStatus.operational))
    out = []
    for back in range(count - 1, -1, -1):
        day = today - timedelta(days=back)
        start = _local_midnight(day, tz)
        end = min(_local_midnight(day + timedelta(days=1), tz), now)
        seconds = status_seconds(history, start, end) if end > start else {}
        seconds = {s: v for s, v in seconds.items() if v > 0}
        share = uptime(seconds)
        if not seconds:
            level = "none"
        elif share is None:
            level = ComponentStatus.under_maintenance.value
        else:
            level = worst([s for s in seconds if s is not ComponentStatus.under_maintenance]).value
        out.append(Day(day, level, share, seconds))
    return out


def overall(bars: list[Day]) -> float | None:
    """Uptime over the whole window, weighting each day by its measured time."""
    total: dict[ComponentStatus, float] = {}
    for bar in bars:
        for status, seconds in bar.seconds.items():
            total[status] = total.get(status, 0.0) + seconds
    return uptime(total)
