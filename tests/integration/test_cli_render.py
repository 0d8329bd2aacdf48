"""The CLI's rendering: countdown colours and wording, durations, time zones, markup safety."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from tocsin.cli import capture, render

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.isoformat()


def test_durations_are_short() -> None:
    assert render.duration(timedelta(seconds=45)) == "45s"
    assert render.duration(timedelta(minutes=5, seconds=59)) == "5m"
    assert render.duration(timedelta(hours=1, minutes=5)) == "1h 05m"
    assert render.duration(timedelta(days=2, hours=3)) == "2d 3h"
    assert render.duration(timedelta(days=7)) == "7d"
    assert render.duration(-timedelta(minutes=5)) == "5m"


def test_countdown_is_green_then_yellow_under_a_quarter_then_red_when_breached() -> None:
    start = iso(NOW - timedelta(minutes=30))  # a 60-minute window
    green = render.countdown(iso(NOW + timedelta(minutes=30)), start, NOW)
    yellow = render.countdown(iso(NOW + timedelta(minutes=14)), iso(NOW - timedelta(minutes=46)), NOW)
    red = render.countdown(iso(NOW - timedelta(minutes=5)), start, NOW)
    assert (green.plain, green.style) == ("30m left", "green")
    assert (yellow.plain, yellow.style) == ("14m left", "yellow")
    assert (red.plain, red.style) == ("breached 5m ago", "bold red")
    assert render.countdown(None, start, NOW).plain == "-"


def incident(**changes: Any) -> dict[str, Any]:
    inc: dict[str, Any] = {
        "id": "INC-7",
        "title": "[bold]not markup[/bold]",
        "severity": "P1",
        "status": "triggered",
        "detected_at": iso(NOW - timedelta(minutes=10)),
        "acknowledged_at": None,
        "resolved_at": None,
        "roles": {"commander": None, "scribe": None, "communications": None, "responders": []},
        "sla": {
            "response_due_at": iso(NOW + timedelta(minutes=20)),
            "resolution_due_at": iso(NOW + timedelta(hours=3, minutes=50)),
            "response_breached": False,
            "resolution_breached": False,
        },
    }
    inc.update(changes)
    return inc


def test_acknowledged_and_resolved_incidents_say_whether_they_met_the_deadline() -> None:
    late = incident(acknowledged_at=iso(NOW), resolved_at=iso(NOW))
    late["sla"].update(response_breached=True, resolution_breached=False)
    assert render.response_cell(late, NOW).plain == "acked late"
    assert render.resolution_cell(late, NOW).plain == "resolved"


def test_table_shows_titles_literally() -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(render.incident_table([incident()], 1, NOW))
    out = console.export_text()
    assert "[bold]not markup[/bold]" in out and "20m left" in out and "3h 50m left" in out and "10m" in out


def test_times_show_in_the_policy_zone_and_unknown_zones_fall_back_to_utc() -> None:
    assert render.local(iso(NOW), render.zone("Europe/Berlin")) == "2026-11-26 16:00 CET"
    assert render.local(iso(NOW), render.zone("Mars/Olympus")) == "2026-11-26 15:00 UTC"
    assert render.local(None, UTC) == "-"


def test_captured_output_is_cleaned_and_capped() -> None:
    assert capture.clean(b"\x1b[1;31mred\x1b[0m\r\nnext\x00\n") == "red\nnext\n"
    big = capture.clean(b"x" * (capture.MAX_OUTPUT + 10))
    assert len(big) == capture.MAX_OUTPUT and big.endswith(
        f"[output truncated: {capture.MAX_OUTPUT + 10} bytes in all]"
    )
