"""SLA countdowns as the console shows them: how long is left and how urgent that is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

State = Literal["ok", "warn", "breached", "met", "missed", "none"]

# Under this share of its window left, a running deadline is shown as urgent.
WARN_SHARE = 0.25


def short_duration(seconds: float) -> str:
    """`4m 05s`, `3h 12m`, `2d 4h`: two units, the largest first (console.js formats the same way)."""
    s = int(abs(seconds))
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


@dataclass(frozen=True)
class Countdown:
    """One deadline of an incident: when it falls due and where it stands at `now`."""

    key: str
    label: str
    start: datetime
    due: datetime | None
    done: datetime | None
    state: State
    text: str

    @property
    def live(self) -> bool:
        """Still running, so the browser keeps ticking it."""
        return self.state in ("ok", "warn", "breached")

    @property
    def breached(self) -> bool:
        return self.state in ("breached", "missed")


def countdown(
    key: str,
    label: str,
    start: datetime,
    due: datetime | None,
    done: datetime | None,
    now: datetime,
    stop: datetime | None = None,
) -> Countdown:
    """Classify a deadline: met or missed once `done`, else ok, warn (under 25% left) or breached.

    `stop` is when the clock stopped for good (the incident was resolved): a deadline not done by
    then no longer runs; it was missed if it fell due first, else it is no longer needed.
    """
    if due is None:
        return Countdown(key, label, start, None, done, "none", "—")
    if done is not None:
        late = (done - due).total_seconds()
        if late > 0:
            return Countdown(key, label, start, due, done, "missed", f"✕ missed by {short_duration(late)}")
        return Countdown(key, label, start, due, done, "met", "✓ met")
    if stop is not None:
        if stop > due:
            return Countdown(key, label, start, due, None, "missed", "✕ missed")
        return Countdown(key, label, start, due, None, "none", "not needed")
    left = (due - now).total_seconds()
    if left <= 0:
        return Countdown(key, label, start, due, done, "breached", f"✕ overdue {short_duration(left)}")
    window = max((due - start).total_seconds(), 1.0)
    if left < window * WARN_SHARE:
        return Countdown(key, label, start, due, done, "warn", f"⚠ {short_duration(left)} left")
    return Countdown(key, label, start, due, done, "ok", f"{short_duration(left)} left")


def most_urgent(countdowns: list[Countdown]) -> datetime | None:
    """The nearest deadline not yet met (a breached one is the nearest of all)."""
    running = [c.due for c in countdowns if c.live and c.due is not None]
    return min(running) if running else None
