"""The outbox service: idempotent enqueue, thread coalescing, throttling; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tocsin.core.errors import InvalidInput
from tocsin.db.engine import Database
from tocsin.incidents import service as incidents
from tocsin.incidents import timeline
from tocsin.incidents.schemas import IncidentCreate
from tocsin.notify import service
from tocsin.policy.loader import default_policy
from tocsin.testing import FakeClock


async def declare(db: Database, clock: FakeClock) -> int:
    async with db.transaction() as session:
        incident = await incidents.declare(
            session, clock, default_policy(), "ada", IncidentCreate(title="Checkout down", severity="P1")
        )
        return incident.id


async def test_same_key_twice_keeps_one_row(db: Database, clock: FakeClock) -> None:
    async with db.transaction() as session:
        first = await service.enqueue(
            session, clock.now(), channel="email", target="ada@haus.test", kind="page", key="k1",
            payload={"text": "first"},
        )  # fmt: skip
        again = await service.enqueue(
            session, clock.now(), channel="email", target="ada@haus.test", kind="page", key="k1",
            payload={"text": "second"},
        )  # fmt: skip
        assert again.id == first.id and again.payload == {"text": "first"}
    async with db.transaction() as session:
        later = await service.enqueue(
            session, clock.now(), channel="email", target="ada@haus.test", kind="page", key="k1",
            payload={"text": "third"},
        )  # fmt: skip
    assert later.id == first.id
    assert later.status == "pending" and later.attempts == 0 and later.next_attempt_at == clock.now()


async def test_racing_transactions_keep_one_row(db: Database, clock: FakeClock) -> None:
    async def queue(i: int) -> int:
        async with db.transaction() as session:
            message = await service.enqueue(
                session, clock.now(), channel="console", target="log", kind="page", key="race",
                payload={"text": f"from {i}"},
            )  # fmt: skip
            await asyncio.sleep(0.01)  # keep the transaction open while the others insert
            return message.id

    ids = await asyncio.gather(*(queue(i) for i in range(8)))
    assert len(set(ids)) == 1
    async with db.session() as session:
        assert (await service.totals(session))["pending"] == 1


async def test_pending_message_on_a_thread_takes_the_newer_payload(db: Database, clock: FakeClock) -> None:
    incident_id = await declare(db, clock)
    common = {"channel": "slack", "target": "#alerts", "kind": "announce", "thread": "inc-1"}
    async with db.transaction() as session:
        first = await service.enqueue(
            session, clock.now(), key="a1", payload={"text": "1 alert"}, incident_id=incident_id, **common
        )
        second = await service.enqueue(
            session, clock.now(), key="a2", payload={"text": "2 alerts"}, incident_id=incident_id, **common
        )
    assert second.id == first.id
    async with db.session() as session:
        rows = await service.messages(session, incident_id)
    assert [(r.idempotency_key, r.payload["text"]) for r in rows] == [("a1", "2 alerts")]
    async with db.transaction() as session:
        row = await service.by_key(session, "a1")
        assert row is not None
        row.status, row.sent_at = "sent", clock.now()
    async with db.transaction() as session:  # once the first is sent, the next is a row of its own
        third = await service.enqueue(
            session, clock.now(), key="a3", payload={"text": "3 alerts"}, incident_id=incident_id, **common
        )
    assert third.id != first.id


async def test_throttle_suppresses_and_tells_the_timeline_once_per_window(
    db: Database, clock: FakeClock
) -> None:
    incident_id = await declare(db, clock)
    throttle = (3, timedelta(minutes=10))
    for i in range(6):
        async with db.transaction() as session:
            await service.enqueue(
                session, clock.now(), channel="email", target="ada@haus.test", kind="page",
                key=f"storm-{i}", payload={"text": f"page {i}"}, incident_id=incident_id, person="ada",
                throttle=throttle,
            )  # fmt: skip
        clock.advance(seconds=30)
    async with db.session() as session:
        assert await service.deliveries(session, incident_id) == {
            "pending": 3, "sent": 0, "failed": 0, "suppressed": 3,
        }  # fmt: skip
        notes = [e for e in await timeline.events(session, incident_id) if e.kind == "notification"]
    assert len(notes) == 1
    assert notes[0].data["status"] == "suppressed" and notes[0].data["person"] == "ada"
    clock.advance(minutes=10)  # a new window: sends again, and would note again
    async with db.transaction() as session:
        fresh = await service.enqueue(
            session, clock.now(), channel="email", target="ada@haus.test", kind="page", key="after",
            payload={"text": "later"}, incident_id=incident_id, throttle=throttle,
        )  # fmt: skip
    assert fresh.status == "pending"


async def test_not_before_delays_the_first_attempt(db: Database, clock: FakeClock) -> None:
    async with db.transaction() as session:
        message = await service.enqueue(
            session, clock.now(), channel="console", target="log", kind="reminder", key="later",
            payload={"text": "stand-up"}, not_before=clock.now() + timedelta(minutes=5),
        )  # fmt: skip
    assert message.next_attempt_at == clock.now() + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"channel": "pigeon"}, "channel"),
        ({"payload": {"subject": "no text"}}, "payload.text"),
        ({"key": ""}, "key"),
    ],
)
async def test_bad_messages_are_refused(
    db: Database, clock: FakeClock, fields: dict[str, object], field: str
) -> None:
    message: dict[str, object] = {
        "channel": "email", "target": "a@b.test", "kind": "page", "key": "k", "payload": {"text": "x"},
    }  # fmt: skip
    message.update(fields)
    async with db.transaction() as session:
        with pytest.raises(InvalidInput) as refused:
            await service.enqueue(session, clock.now(), **message)  # type: ignore[arg-type]
    assert refused.value.field == field
