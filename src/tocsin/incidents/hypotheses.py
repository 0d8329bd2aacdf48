"""Hypotheses of an incident: proposed, then confirmed or refuted, all kept on its timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.clock import Clock
from tocsin.core.errors import NotFound
from tocsin.core.ids import incident_ref
from tocsin.incidents import schemas
from tocsin.incidents.models import Incident, TimelineEvent
from tocsin.incidents.service import record
from tocsin.incidents.timeline import EventKind


async def _events(session: AsyncSession, incident: Incident) -> list[TimelineEvent]:
    query = (
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident.id, TimelineEvent.kind == EventKind.hypothesis.value)
        .order_by(TimelineEvent.seq)
    )
    return list(await session.scalars(query))


async def propose(
    session: AsyncSession, clock: Clock, incident: Incident, actor: str, text: str
) -> TimelineEvent:
    """Propose a hypothesis; hypotheses are numbered 1, 2, 3 within their incident."""
    proposed = [e for e in await _events(session, incident) if e.data.get("state") == "proposed"]
    data = {"hypothesis": len(proposed) + 1, "text": text, "state": "proposed"}
    return await record(session, clock, incident, EventKind.hypothesis, actor, data)


async def settle(
    session: AsyncSession,
    clock: Clock,
    incident: Incident,
    hypothesis: int,
    result: schemas.HypothesisResult,
    actor: str,
) -> TimelineEvent:
    """Record that a hypothesis was confirmed or refuted, with what showed it."""
    proposed = next(
        (
            e
            for e in await _events(session, incident)
            if e.data.get("hypothesis") == hypothesis and e.data.get("state") == "proposed"
        ),
        None,
    )
    if proposed is None:
        raise NotFound(f"no hypothesis {hypothesis} on {incident_ref(incident.id)}", field="hypothesis")
    data = {
        "hypothesis": hypothesis,
        "text": proposed.data["text"],
        "state": result.state,
        "result": result.result,
    }
    return await record(session, clock, incident, EventKind.hypothesis, actor, data)


async def listing(session: AsyncSession, incident: Incident) -> list[dict[str, Any]]:
    """Each hypothesis with its latest state, and `seq`, the timeline event that proposed it."""
    latest: dict[int, dict[str, Any]] = {}
    for row in await _events(session, incident):
        number = int(row.data["hypothesis"])
        proposed_at = latest[number]["seq"] if number in latest else row.seq
        latest[number] = {**row.data, "seq": proposed_at}
    return list(latest.values())
