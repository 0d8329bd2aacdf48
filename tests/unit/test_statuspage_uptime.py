"""The uptime bars: time-weighted per local day, maintenance excluded, no data before tracking began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tocsin.statuspage.uptime import days, overall, status_seconds, uptime
from tocsin.statuspage.vocab import ComponentStatus as S

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 15:00 local
MIDNIGHT = datetime(2026, 11, 26, 0, 0, tzinfo=TZ)


def test_status_seconds_splits_an_interval_by_changes() -> None:
    changes = [(MIDNIGHT - timedelta(days=1), S.operational), (MIDNIGHT + timedelta(hours=6), S.major_outage)]
    changes.append((MIDNIGHT + timedelta(hours=7), S.operational))
    spent = status_seconds(changes, MIDNIGHT, MIDNIGHT + timedelta(hours=12))
    assert spent == {S.operational: 11 * 3600.0, S.major_outage: 3600.0}


def test_partial_outage_counts_thirty_percent_and_maintenance_not_at_all() -> None:
    assert uptime({S.operational: 9 * 3600.0, S.major_outage: 3600.0}) == pytest.approx(0.9)
    assert uptime({S.operational: 9 * 3600.0, S.partial_outage: 3600.0}) == pytest.approx(0.97)
    assert uptime({S.operational: 3600.0, S.under_maintenance: 23 * 3600.0}) == 1.0
    assert uptime({S.under_maintenance: 3600.0}) is None
    assert uptime({S.degraded_performance: 3600.0}) == 1.0


def test_ninety_days_oldest_first_with_no_data_before_tracking() -> None:
    tracked = MIDNIGHT - timedelta(days=2)
    changes = [
        (MIDNIGHT - timedelta(days=1, hours=-12), S.major_outage),  # noon yesterday
        (MIDNIGHT - timedelta(days=1, hours=-18), S.operational),  # 18:00 yesterday
        (MIDNIGHT + timedelta(hours=1), S.under_maintenance),
        (MIDNIGHT + timedelta(hours=3), S.operational),
    ]
    bars = days(changes, tracked, NOW, TZ)
    assert len(bars) == 90 and bars[-1].day == MIDNIGHT.date()
    assert all(b.level == "none" and b.uptime is None for b in bars[:-3])
    assert bars[-3].level == "operational" and bars[-3].uptime == 1.0
    yesterday = bars[-2]
    assert yesterday.level == "major_outage" and yesterday.uptime == pytest.approx(18 / 24)
    today = bars[-1]  # 15 hours so far, 2 of them maintenance: 13 counted, all up
    assert today.level == "operational" and today.uptime == 1.0
    assert today.seconds[S.under_maintenance] == 2 * 3600.0
    assert overall(bars) == pytest.approx(1 - 6 / (24 + 24 + 13))


def test_untracked_component_has_no_data() -> None:
    assert {b.level for b in days([], None, NOW, TZ)} == {"none"}


def test_days_follow_the_local_calendar_across_dst() -> None:
    # 2026-11-01 is 25 hours long in New York.
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    start = datetime(2026, 10, 30, 0, 0, tzinfo=TZ)
    bars = days([], start, now, TZ, count=3)
    assert [b.day.isoformat() for b in bars] == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert bars[1].seconds[S.operational] == 25 * 3600.0
