"""A rotation's shifts as an iCalendar feed (RFC 5545): one VEVENT per turn, times in UTC."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from tocsin.oncall.schedule import Shift

LINE_OCTETS = 75


def _text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11)."""
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def fold(line: str) -> str:
    """Split a content line into chunks of at most 75 octets, never inside a UTF-8 character."""
    out: list[str] = []
    current, size, limit = "", 0, LINE_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append(current)
            current, size, limit = " ", 1, LINE_OCTETS  # a continuation starts with one space
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


def calendar(name: str, shifts: Iterable[Shift], now: datetime, host: str = "tocsin") -> str:
    """The VCALENDAR text (CRLF line endings) for a rotation's shifts."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Tocsin//On-call//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_text(f'On call: {name}')}",
    ]
    for shift in shifts:
        summary = f"{shift.person} on call ({shift.rotation})"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{shift.rotation}-{_stamp(shift.starts_at)}-{shift.person}@{host}",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART:{_stamp(shift.starts_at)}",
            f"DTEND:{_stamp(shift.ends_at)}",
            f"SUMMARY:{_text(summary)}",
            *([f"DESCRIPTION:{_text('By override.')}"] if shift.override else []),
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)
