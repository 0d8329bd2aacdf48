"""The append-only, hash-chained incident timeline."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.incidents.models import Incident, TimelineEvent

GENESIS = "0" * 64


class EventKind(StrEnum):
    declared = "declared"
    status_change = "status_change"
    severity_change = "severity_change"
    role_change = "role_change"
    note = "note"
    hypothesis = "hypothesis"
    command = "command"
    assignment = "assignment"
    action = "action"
    update = "update"
    alert = "alert"
    page = "page"  # a person paged (team assembly, escalation step, manual)
    escalation = "escalation"  # a chain started, advanced, skipped a step or ran out
    notification = "notification"  # a message delivered, or finally failed
    status_update = "status_update"  # a public status-page update was posted
    reminder = "reminder"  # an update, status page or meeting reminder; a timer that fired late


def event_hash(
    incident_id: int, seq: int, kind: str, actor: str, at: datetime, data: dict[str, Any], prev: str
) -> str:
    body = {
        "incident": incident_id,
        "seq": seq,
        "kind": kind,
        "actor": actor,
        "at": at.isoformat(timespec="microseconds"),
        "data": data,
        "prev": prev,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def append(
    session: AsyncSession, incident: Incident, kind: EventKind, actor: str, at: datetime, data: dict[str, Any]
) -> TimelineEvent:
    """Add an event after the incident's chain head; the caller holds the incident row."""
    seq = incident.last_seq + 1
    digest = event_hash(incident.id, seq, kind.value, actor, at, data, incident.last_hash)
    event = TimelineEvent(
        incident_id=incident.id,
        seq=seq,
        kind=kind.value,
        actor=actor,
        at=at,
        data=data,
        prev_hash=incident.last_hash,
        hash=digest,
    )
    session.add(event)
    incident.last_seq, incident.last_hash = seq, digest
    return event


async def events(
    session: AsyncSession, incident_id: int, after: int = 0, limit: int = 1000
) -> list[TimelineEvent]:
    query = (
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id, TimelineEvent.seq > after)
        .order_by(TimelineEvent.seq)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def verify(session: AsyncSession, incident: Incident) -> tuple[bool, int, str]:
    """Recompute the chain: (intact, events checked, what is wrong if not)."""
    prev, expected_seq, checked = GENESIS, 1, 0
    rows = await session.scalars(
        select(TimelineEvent).where(TimelineEvent.incident_id == incident.id).order_by(TimelineEvent.seq)
    )
    for event in rows:
        if event.seq != expected_seq:
            return False, checked, f"event {expected_seq} is missing"
        if event.prev_hash != prev:
            return False, checked, f"event {event.seq} does not follow event {event.seq - 1}"
        digest = event_hash(incident.id, event.seq, event.kind, event.actor, event.at, event.data, prev)
        if digest != event.hash:
            return False, checked, f"event {event.seq} was altered"
        prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    if checked != incident.last_seq or prev != incident.last_hash:
        return False, checked, f"the chain ends at event {checked}, the incident expects {incident.last_seq}"
    return True, checked, "intact"
