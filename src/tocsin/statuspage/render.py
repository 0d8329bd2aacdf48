"""The public page as text: HTML pages, the Atom feed and the JSON documents, all from a Snapshot.

The same Renderer serves the live page (links under /status) and the static export (links under the
export's base path), so the two never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tocsin.statuspage import compat, uptime
from tocsin.statuspage.snapshot import ComponentView, IncidentView, Snapshot
from tocsin.statuspage.vocab import ICONS, LABELS, ComponentStatus

TEMPLATES = Path(__file__).resolve().parents[1] / "web" / "templates"
CSS = Path(__file__).resolve().parents[1] / "web" / "static" / "status.css"
RECENT_DAYS = 14
FEED_ENTRIES = 50
INDICATOR_ICONS = {"none": "✓", "minor": "▲", "major": "◆", "critical": "✕", "maintenance": "⚙"}
IMPACT_LABELS = {
    "none": "No impact",
    "minor": "Minor",
    "major": "Major",
    "critical": "Critical",
    "maintenance": "Maintenance",
}


@dataclass(frozen=True)
class Bar:
    """One day of a component's uptime bar, with what the tooltip says."""

    day: uptime.Day
    level: str
    tip: str
    incidents: list[IncidentView]

    @property
    def notable(self) -> bool:
        return bool(self.incidents) or self.level not in ("operational", "none")


@dataclass(frozen=True)
class Places:
    """Where the page's links point: its own base path and, if any, the live Tocsin's forms."""

    base: str  # "/status" live; "" or a path prefix in the export
    subscribe: str | None  # the subscribe form's action; None hides the form
    report: str | None  # the "report a problem" link
    index: str = ""  # "" live; "/index.html"-style suffix is not needed: exports write dir/index.html


class Renderer:
    """Renders everything public for one policy's time zone."""

    def __init__(self, timezone: str, places: Places) -> None:
        self.tz = ZoneInfo(timezone)
        self.places = places
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html", "atom"], default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(local=self.local, iso=compat.iso, label=self.label, icon=self.icon)
        env.globals.update(
            places=places,
            INDICATOR_ICONS=INDICATOR_ICONS,
            IMPACT_LABELS=IMPACT_LABELS,
            LABELS={s.value: text for s, text in LABELS.items()},
        )
        self.env = env

    def local(self, at: datetime | None, fmt: str = "%b %d, %Y %H:%M %Z") -> str:
        return "" if at is None else at.astimezone(self.tz).strftime(fmt)

    @staticmethod
    def label(status: str) -> str:
        try:
            return LABELS[ComponentStatus(status)]
        except ValueError:
            return status.replace("_", " ").capitalize()

    @staticmethod
    def icon(status: str) -> str:
        try:
            return ICONS[ComponentStatus(status)]
        except ValueError:
            return "•"

    def bars(self, snap: Snapshot, component: ComponentView) -> tuple[list[Bar], float | None]:
        days = uptime.days(snap.changes.get(component.name, []), component.tracked_since, snap.now, self.tz)
        theirs = [i for i in snap.incidents if component.name in i.components]
        out = []
        for day in days:
            start = datetime.combine(day.day, datetime.min.time(), tzinfo=self.tz)
            end = start + timedelta(days=1)
            hits = [i for i in theirs if i.touches(start, end, snap.now)]
            words = [f"{day.day:%b %d, %Y}", day.label]
            if day.level not in ("none", "operational"):
                words.append(self.label(day.level))
            words += [f"{i.key}: {i.name}" for i in hits]
            out.append(Bar(day, day.level, " · ".join(words), hits))
        return out, uptime.overall(days)

    def _context(self, snap: Snapshot) -> dict[str, Any]:
        level, description = snap.indicator
        return {"snap": snap, "level": level, "description": description}

    def page(self, snap: Snapshot) -> str:
        """The status page: overall status, banners, active incidents, components with bars, maintenance."""
        since = snap.now - timedelta(days=RECENT_DAYS)
        recent = [i for i in snap.incidents if not i.unresolved and (i.resolved_at or i.updated_at) >= since]
        components = {c.name: self.bars(snap, c) for c in snap.components}
        return self.env.get_template("statuspage/page.html").render(
            **self._context(snap), recent=recent, bars=components
        )

    def history(self, snap: Snapshot) -> str:
        """Every public incident and maintenance, grouped by month, newest first."""
        months: dict[str, list[IncidentView]] = {}
        items = sorted([*snap.incidents, *snap.maintenances], key=lambda i: i.started_at, reverse=True)
        for item in items:
            months.setdefault(self.local(item.started_at, "%B %Y"), []).append(item)
        return self.env.get_template("statuspage/history.html").render(**self._context(snap), months=months)

    def incident(self, snap: Snapshot, key: str) -> str | None:
        item = next((i for i in [*snap.incidents, *snap.maintenances] if i.key == key), None)
        if item is None:
            return None
        return self.env.get_template("statuspage/incident.html").render(**self._context(snap), item=item)

    def message(self, snap: Snapshot | None, title: str, text: str, **extra: Any) -> str:
        """A small page answering a visitor's form (subscribed, confirmed, unsubscribed, refused)."""
        level, description = snap.indicator if snap else ("none", "")
        return self.env.get_template("statuspage/message.html").render(
            snap=snap, level=level, description=description, title=title, text=text, **extra
        )

    def feed(self, snap: Snapshot, url: str) -> str:
        """Atom: one entry per public update, newest first."""
        entries = [
            (item, update) for item in [*snap.incidents, *snap.maintenances] for update in item.updates
        ]
        entries.sort(key=lambda e: e[1].created_at, reverse=True)
        return self.env.get_template("statuspage/feed.atom").render(
            snap=snap, url=url, entries=entries[:FEED_ENTRIES]
        )

    def documents(self, snap: Snapshot, url: str) -> dict[str, bytes]:
        return {path: orjson.dumps(doc) for path, doc in compat.documents(snap, url).items()}


def stylesheet() -> bytes:
    return CSS.read_bytes()
