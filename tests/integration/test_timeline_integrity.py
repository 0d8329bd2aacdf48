"""Tampering with a stored timeline event is detected by `verify`."""

from __future__ import annotations

import httpx
from sqlalchemy import delete, update

from tocsin.incidents.models import TimelineEvent
from tocsin.runtime import Runtime
from tocsin.testing import bearer


async def _incident_with_notes(client: httpx.AsyncClient, token: str) -> str:
    r = await client.post(
        "/api/v1/incidents", json={"title": "DB timeouts", "severity": "P2"}, headers=bearer(token)
    )
    ref = str(r.json()["id"])
    for text in ("pool exhausted", "raised pool size", "latency back to normal"):
        await client.post(f"/api/v1/incidents/{ref}/notes", json={"text": text}, headers=bearer(token))
    return ref


async def test_altered_event_is_detected(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    ref = await _incident_with_notes(client, tokens["responder"])
    async with rt.db.transaction() as session:
        await session.execute(
            update(TimelineEvent).where(TimelineEvent.seq == 3).values(data={"text": "nothing happened"})
        )
    body = (await client.get(f"/api/v1/incidents/{ref}/verify", headers=bearer(tokens["viewer"]))).json()
    assert body["intact"] is False and body["detail"] == "event 3 was altered" and body["events"] == 2


async def test_deleted_event_is_detected(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    ref = await _incident_with_notes(client, tokens["responder"])
    async with rt.db.transaction() as session:
        await session.execute(delete(TimelineEvent).where(TimelineEvent.seq == 2))
    body = (await client.get(f"/api/v1/incidents/{ref}/verify", headers=bearer(tokens["viewer"]))).json()
    assert body["intact"] is False and body["detail"] == "event 2 is missing"


async def test_truncated_chain_is_detected(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    ref = await _incident_with_notes(client, tokens["responder"])
    async with rt.db.transaction() as session:
        await session.execute(delete(TimelineEvent).where(TimelineEvent.seq == 4))
        await session.execute(delete(TimelineEvent).where(TimelineEvent.seq == 3))
    body = (await client.get(f"/api/v1/incidents/{ref}/verify", headers=bearer(tokens["viewer"]))).json()
    assert body["intact"] is False and "ends at event 2" in body["detail"]
