"""A Signal is one alert event in Tocsin's own terms, whatever protocol carried it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

Action = Literal["trigger", "acknowledge", "resolve"]


@dataclass(slots=True)
class Signal:
    action: Action
    dedup_key: str
    summary: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    links: list[dict[str, str]] = field(default_factory=list)
    source: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    group_key: str | None = None  # a grouping the sender already made (Alertmanager's groupKey)


class Outcome(NamedTuple):
    """What ingesting one signal did (a tuple: thousands are made per batch)."""

    dedup_key: str
    result: str  # opened | repeated | acknowledged | resolved | muted | ignored
    alert_id: int | None = None
    incident_id: int | None = None


@dataclass(slots=True)
class Repeat:
    """The re-sends of one open alert in a batch: how many, and the latest expiry they gave."""

    count: int = 0
    ends_at: datetime | None = None

    def seen(self, ends_at: datetime | None) -> None:
        self.count += 1
        self.ends_at = ends_at or self.ends_at


class FormatError(Exception):
    """A payload that does not follow its protocol; `errors` name each problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit identity of a label set (Alertmanager's fingerprints have the same form).

    SHA-256 of each name and value, sorted by name, each followed by a 0xff byte.
    """
    parts = []
    for name in sorted(labels):
        parts.append(name.encode())
        parts.append(labels[name].encode())
    parts.append(b"")
    return hashlib.sha256(b"\xff".join(parts)).hexdigest()[:16]


@dataclass(slots=True)
class NewAlert:
    """An alert about to be inserted: the columns of an `alerts` row, without ORM bookkeeping."""

    integration_id: int
    dedup_key: str
    summary: str
    severity: str
    severity_reason: str
    source: str
    service: str | None
    component: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    details: dict[str, Any]
    links: list[dict[str, str]]
    group_key: str
    starts_at: datetime
    ends_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    status: str = "firing"
    count: int = 1
    muted_by: str | None = None
    incident_id: int | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    id: int | None = None

    def row(self) -> dict[str, Any]:
        """The values to insert."""
        return {name: getattr(self, name) for name in _ROW_FIELDS}

    @classmethod
    def like(cls, row: Any) -> NewAlert:
        """The values of an alert already written (an `alerts` row), to go through grouping again."""
        return cls(**{name: getattr(row, name) for name in _ROW_FIELDS}, id=row.id)


_ROW_FIELDS = [f for f in NewAlert.__dataclass_fields__ if f != "id"]
