"""Durations as people write them in policy files: ``30s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

# Largest unit first: parts must come in this order, each at most once, so every duration has
# exactly one spelling per set of parts and "1m1m" or "30m1h" are rejected as likely typos.
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(
    r"\s*(?:(?P<w>\d+)w\s*)?(?:(?P<d>\d+)d\s*)?(?:(?P<h>\d+)h\s*)?(?:(?P<m>\d+)m\s*)?(?:(?P<s>\d+)s\s*)?",
    re.ASCII,
)


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``15m``, ``1h30m`` or ``1h 30m``; raise ValueError otherwise."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f'"{text}" is not a duration')
    seconds = sum(int(count) * _UNIT_SECONDS[unit] for unit, count in match.groupdict().items() if count)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f'"{text}" is not a duration') from None


def format_duration(duration: timedelta) -> str:
    """Format a non-negative whole-second duration in its shortest canonical form, e.g. ``1h30m``."""
    if duration < timedelta(0) or duration.microseconds:
        raise ValueError(f"{duration!r} is not a non-negative whole number of seconds")
    remaining = duration.days * 86400 + duration.seconds
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
