"""Rotations in time: hand-offs on the wall clock across DST, active hours, overrides, gaps."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.oncall.schedule import Shift, gaps, on_call, shifts, to_utc
from tocsin.policy.models import Policy
from tocsin.testing import seed_policy_with

NY = ZoneInfo("America/New_York")
PEOPLE = """
people:
  - {name: alice}
  - {name: bob}
  - {name: carol}
"""


def policy_with(
    handoff: str, start: str = "2026-03-01 09:00", active: str = "", layer: str = "primary"
) -> Policy:
    return seed_policy_with(
        PEOPLE
        + f"""
teams:
  - name: portal
    services: [portal]
    rotations:
      - name: r
        layer: {layer}
        members: [alice, bob, carol]
        handoff: {handoff}
        start: "{start}"
{active}
"""
    )


def local(text: str) -> datetime:
    """An instant written as New York wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=NY).astimezone(UTC)


@dataclass(frozen=True)
class Cover:
    rotation: str
    person: str
    starts_at: datetime
    ends_at: datetime


def handoffs(policy: Policy, start: str, end: str) -> list[str]:
    return [
        s.starts_at.astimezone(NY).strftime("%m-%d %H:%M %Z")
        for s in shifts(policy, "r", local(start), local(end))
    ]


# Wall-clock hand-offs across daylight saving (America/New_York: 2026-03-08 spring forward,
# 2026-11-01 fall back).


def test_daily_handoff_stays_at_nine_across_spring_forward_and_fall_back() -> None:
    policy = policy_with("daily")
    assert handoffs(policy, "2026-03-07 09:00", "2026-03-10 08:00") == [
        "03-07 09:00 EST",
        "03-08 09:00 EDT",
        "03-09 09:00 EDT",
    ]
    spring = shifts(policy, "r", local("2026-03-07 09:00"), local("2026-03-09 09:00"))
    assert [s.ends_at - s.starts_at for s in spring] == [timedelta(hours=23), timedelta(hours=24)]
    fall = shifts(policy, "r", local("2026-10-31 09:00"), local("2026-11-02 09:00"))
    assert [s.ends_at - s.starts_at for s in fall] == [timedelta(hours=25), timedelta(hours=24)]
    assert [s.starts_at.astimezone(NY).hour for s in fall] == [9, 9]


def test_weekly_handoff_keeps_its_weekday_and_hour() -> None:
    policy = policy_with("weekly", start="2026-03-02 09:00")  # a Monday
    found = shifts(policy, "r", local("2026-03-02 09:00"), local("2026-03-23 09:00"))
    assert [(s.person, s.starts_at.astimezone(NY).strftime("%a %H:%M")) for s in found] == [
        ("alice", "Mon 09:00"),
        ("bob", "Mon 09:00"),
        ("carol", "Mon 09:00"),
    ]
    assert found[0].ends_at - found[0].starts_at == timedelta(days=7, hours=-1)


def test_twelve_hour_handoff_keeps_nine_and_twentyone() -> None:
    policy = policy_with("12h", start="2026-03-07 09:00")
    assert handoffs(policy, "2026-03-07 09:00", "2026-03-09 09:00") == [
        "03-07 09:00 EST",
        "03-07 21:00 EST",
        "03-08 09:00 EDT",
        "03-08 21:00 EDT",
    ]
    policy = policy_with("12h", start="2026-10-31 09:00")
    assert handoffs(policy, "2026-10-31 21:00", "2026-11-01 22:00") == [
        "10-31 21:00 EDT",
        "11-01 09:00 EST",
        "11-01 21:00 EST",
    ]


def test_a_skipped_handoff_time_happens_when_the_clocks_jump() -> None:
    policy = policy_with("daily", start="2026-03-06 02:30")
    found = shifts(policy, "r", local("2026-03-07 03:00"), local("2026-03-09 03:00"))
    assert [s.starts_at.astimezone(NY).strftime("%d %H:%M %Z") for s in found] == [
        "07 03:00 EST",
        "08 03:00 EDT",  # 02:30 does not exist that night: the hand-off is at the jump
        "09 02:30 EDT",
    ]
    assert to_utc(datetime(2026, 3, 8, 2, 30), NY) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_a_repeated_handoff_time_is_its_first_occurrence() -> None:
    policy = policy_with("daily", start="2026-10-30 01:30")
    found = shifts(policy, "r", local("2026-10-31 12:00"), local("2026-11-02 00:00"))
    assert found[1].starts_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not EST
    assert found[1].starts_at.astimezone(NY).strftime("%H:%M %Z") == "01:30 EDT"


def test_members_take_turns_in_order() -> None:
    policy = policy_with("daily", start="2026-03-01 09:00")
    at = [local(f"2026-03-0{d} 10:00") for d in range(1, 6)]
    assert [on_call(policy, "r", t, ()) for t in at] == ["alice", "bob", "carol", "alice", "bob"]
    assert on_call(policy, "r", local("2026-03-02 08:59"), ()) == "alice"


def test_nobody_before_the_start() -> None:
    policy = policy_with("daily", start="2026-03-01 09:00")
    assert on_call(policy, "r", local("2026-03-01 08:59"), ()) is None
    assert shifts(policy, "r", local("2026-02-27 00:00"), local("2026-03-01 12:00"))[0].starts_at == local(
        "2026-03-01 09:00"
    )


ACTIVE = """        active:
          from: "09:00"
          to: "17:00"
          days: [mon, tue, wed, thu, fri]"""
NIGHTS = """        active: {from: "20:00", to: "08:00", days: [fri]}"""


def test_active_hours_restrict_the_rotation() -> None:
    policy = policy_with("weekly", start="2026-03-02 00:00", active=ACTIVE)
    assert on_call(policy, "r", local("2026-03-04 10:00"), ()) == "alice"  # Wednesday
    assert on_call(policy, "r", local("2026-03-04 18:00"), ()) is None
    assert on_call(policy, "r", local("2026-03-07 10:00"), ()) is None  # Saturday
    week = shifts(policy, "r", local("2026-03-02 00:00"), local("2026-03-09 00:00"))
    assert len(week) == 5 and all(s.ends_at - s.starts_at == timedelta(hours=8) for s in week)


def test_active_hours_wrap_past_midnight_on_the_day_they_start() -> None:
    policy = policy_with("weekly", start="2026-03-02 00:00", active=NIGHTS)
    assert on_call(policy, "r", local("2026-03-06 21:00"), ()) == "alice"  # Friday night
    assert on_call(policy, "r", local("2026-03-07 07:59"), ()) == "alice"  # early Saturday: still Friday's
    assert on_call(policy, "r", local("2026-03-07 21:00"), ()) is None  # Saturday night
    assert on_call(policy, "r", local("2026-03-06 07:00"), ()) is None  # early Friday: Thursday's night


def test_an_override_wins_and_splits_the_shift() -> None:
    policy = policy_with("daily", start="2026-03-01 09:00")
    taken = Cover("r", "carol", local("2026-03-01 20:00"), local("2026-03-02 02:00"))
    assert on_call(policy, "r", local("2026-03-01 21:00"), [taken]) == "carol"
    found = shifts(policy, "r", local("2026-03-01 09:00"), local("2026-03-02 09:00"), [taken])
    assert found == [
        Shift("r", "alice", local("2026-03-01 09:00"), local("2026-03-01 20:00")),
        Shift("r", "carol", local("2026-03-01 20:00"), local("2026-03-02 02:00"), override=True),
        Shift("r", "alice", local("2026-03-02 02:00"), local("2026-03-02 09:00")),
    ]


def test_overrides_fill_inactive_hours_and_the_later_one_wins() -> None:
    policy = policy_with("weekly", start="2026-03-02 00:00", active=ACTIVE)
    first = Cover("r", "bob", local("2026-03-07 10:00"), local("2026-03-07 14:00"))
    second = Cover("r", "carol", local("2026-03-07 12:00"), local("2026-03-07 13:00"))
    other = Cover("elsewhere", "bob", local("2026-03-07 00:00"), local("2026-03-08 00:00"))
    found = shifts(policy, "r", local("2026-03-07 00:00"), local("2026-03-08 00:00"), [first, second, other])
    assert [(s.person, s.starts_at.astimezone(NY).hour, s.ends_at.astimezone(NY).hour) for s in found] == [
        ("bob", 10, 12),
        ("carol", 12, 13),
        ("bob", 13, 14),
    ]
    assert all(s.override for s in found)


def test_gaps_of_the_primary_layer() -> None:
    policy = policy_with("weekly", start="2026-03-02 00:00", active=ACTIVE)
    found = gaps(policy, "portal", local("2026-03-02 00:00"), local("2026-03-03 00:00"))
    assert found == [
        (local("2026-03-02 00:00"), local("2026-03-02 09:00")),
        (local("2026-03-02 17:00"), local("2026-03-03 00:00")),
    ]
    cover = Cover("r", "bob", local("2026-03-02 17:00"), local("2026-03-03 09:00"))
    assert gaps(policy, "portal", local("2026-03-02 09:00"), local("2026-03-03 00:00"), [cover]) == []
    assert gaps(policy_with("daily"), "portal", local("2026-03-02 00:00"), local("2026-03-09 00:00")) == []


def test_a_team_without_a_primary_layer_is_all_gap() -> None:
    policy = policy_with("daily", layer="backup")
    start, end = local("2026-03-02 00:00"), local("2026-03-03 00:00")
    assert gaps(policy, "portal", start, end) == [(start, end)]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        on_call(policy_with("daily"), "r", datetime(2026, 3, 2, 10), ())


# Properties: for any hand-off and window, shifts tile time without overlap, hand-offs stay on the
# wall clock, and on_call agrees with shifts.

HANDOFFS = st.sampled_from(["daily", "weekly", "12h", "8h", "3d", "1h"])
INSTANTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)
_POLICIES: dict[str, Policy] = {}


def cached_policy(handoff: str) -> Policy:
    if handoff not in _POLICIES:
        _POLICIES[handoff] = policy_with(handoff, start="2025-06-01 09:00")
    return _POLICIES[handoff]


@settings(max_examples=60, deadline=None)
@given(handoff=HANDOFFS, start=INSTANTS, days=st.integers(min_value=1, max_value=20))
def test_shifts_tile_the_window(handoff: str, start: datetime, days: int) -> None:
    policy = cached_policy(handoff)
    end = start + timedelta(days=days)
    found = shifts(policy, "r", start, end)
    assert found[0].starts_at == start and found[-1].ends_at == end
    for before, after in itertools.pairwise(found):
        assert before.ends_at == after.starts_at
        assert before.person != after.person  # three members: each hand-off changes the person
        local_start = after.starts_at.astimezone(NY)
        if handoff in ("daily", "weekly", "12h", "3d"):
            assert local_start.minute == 0 and local_start.hour in (9, 21)


@settings(max_examples=60, deadline=None)
@given(handoff=HANDOFFS, at=INSTANTS)
def test_on_call_agrees_with_shifts(handoff: str, at: datetime) -> None:
    policy = cached_policy(handoff)
    around = shifts(policy, "r", at - timedelta(days=8), at + timedelta(days=8))
    holder = next(s.person for s in around if s.starts_at <= at < s.ends_at)
    assert on_call(policy, "r", at, ()) == holder
