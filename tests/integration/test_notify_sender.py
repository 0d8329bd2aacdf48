"""The outbox sender with a recording channel: retries, give-up, leases, threads, racing senders."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tocsin.db.engine import Database
from tocsin.incidents import service as incidents
from tocsin.incidents import timeline
from tocsin.incidents.schemas import IncidentCreate
from tocsin.notify import service
from tocsin.notify.channels.base import Channel, DeliveryError, Unconfigured
from tocsin.notify.channels.console import ConsoleChannel
from tocsin.notify.models import OutboxMessage
from tocsin.notify.sender import Sender, backoff
from tocsin.policy.loader import default_policy
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer


class Recording:
    """A channel that records what it sends and fails while `failing` holds an error."""

    name = "console"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any] | None]] = []
        self.failing: DeliveryError | None = None

    async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
        if self.failing is not None:
            raise self.failing
        self.sent.append((message.idempotency_key, message.payload["text"], previous))
        return {"ts": str(len(self.sent)), "channel": "C1"}


def sender(db: Database, clock: FakeClock, channel: Channel, **kwargs: Any) -> Sender:
    return Sender(db, clock, {"console": channel, "slack": channel}, jitter=lambda: 0.0, **kwargs)


async def declare(db: Database, clock: FakeClock) -> int:
    async with db.transaction() as session:
        incident = await incidents.declare(
            session, clock, default_policy(), "ada", IncidentCreate(title="Checkout down", severity="P1")
        )
        return incident.id


async def queue(db: Database, clock: FakeClock, key: str, **fields: Any) -> None:
    message: dict[str, Any] = {
        "channel": "console",
        "target": "log",
        "kind": "page",
        "payload": {"text": key},
    }
    message.update(fields)
    async with db.transaction() as session:
        await service.enqueue(session, clock.now(), key=key, **message)


async def notes(db: Database, incident_id: int) -> list[dict[str, Any]]:
    async with db.session() as session:
        events = await timeline.events(session, incident_id)
    return [e.data for e in events if e.kind == "notification"]


async def row(db: Database, key: str) -> OutboxMessage:
    async with db.session() as session:
        found = await service.by_key(session, key)
    assert found is not None
    return found


def test_backoff_doubles_up_to_ten_minutes() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30) == timedelta(minutes=10)
    assert backoff(1, 0.1) == timedelta(seconds=5.5)


async def test_delivers_once_and_notes_the_timeline(db: Database, clock: FakeClock) -> None:
    incident_id = await declare(db, clock)
    channel = Recording()
    await queue(db, clock, "p1", incident_id=incident_id, person="ada")
    out = sender(db, clock, channel)
    assert await out.tick() == 1
    assert await out.tick() == 0
    clock.advance(hours=1)
    assert await out.tick() == 0
    assert channel.sent == [("p1", "p1", None)]
    sent = await row(db, "p1")
    assert (sent.status, sent.attempts, sent.sent_at, sent.result) == (
        "sent",
        1,
        sent.created_at,
        {"ts": "1", "channel": "C1"},
    )
    (note,) = await notes(db, incident_id)
    assert note["status"] == "sent" and note["person"] == "ada" and note["channel"] == "console"


async def test_down_for_an_hour_loses_nothing_and_sends_once(db: Database, clock: FakeClock) -> None:
    incident_id = await declare(db, clock)
    channel = Recording()
    channel.failing = DeliveryError("connection refused", retryable=True)
    for i in range(5):
        await queue(db, clock, f"m{i}", incident_id=incident_id)
    out = sender(db, clock, channel)
    start = clock.now()
    while clock.now() - start < timedelta(hours=1):
        await out.tick()
        clock.advance(seconds=30)
    assert channel.sent == []
    waiting = await row(db, "m0")
    assert waiting.status == "pending" and waiting.last_error == "connection refused" and waiting.attempts > 5
    channel.failing = None
    clock.advance(minutes=10)  # the longest backoff
    assert await out.tick() == 5
    clock.advance(hours=1)
    assert await out.tick() == 0
    assert sorted(key for key, _, _ in channel.sent) == [f"m{i}" for i in range(5)]
    assert [n["status"] for n in await notes(db, incident_id)] == ["sent"] * 5  # retries are not noted


async def test_retry_waits_the_backoff_or_the_receivers_retry_after(db: Database, clock: FakeClock) -> None:
    channel = Recording()
    channel.failing = DeliveryError("busy", retryable=True)
    await queue(db, clock, "b")
    out = sender(db, clock, channel)
    await out.tick()
    assert (await row(db, "b")).next_attempt_at == clock.now() + timedelta(seconds=5)
    clock.advance(seconds=5)
    channel.failing = DeliveryError("rate limited", retryable=True, retry_after=120)
    await out.tick()
    assert (await row(db, "b")).next_attempt_at == clock.now() + timedelta(seconds=120)


async def test_permanent_error_fails_at_once_and_says_why(db: Database, clock: FakeClock) -> None:
    incident_id = await declare(db, clock)
    await queue(db, clock, "s", channel="slack", target="#alerts", incident_id=incident_id)
    out = Sender(db, clock, {"slack": Unconfigured("slack", "TOCSIN_SLACK_TOKEN")})
    await out.tick()
    failed = await row(db, "s")
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.last_error == "slack is not configured (set TOCSIN_SLACK_TOKEN)"
    (note,) = await notes(db, incident_id)
    assert note["status"] == "failed" and note["error"] == failed.last_error


async def test_gives_up_after_the_retry_window(db: Database, clock: FakeClock) -> None:
    incident_id = await declare(db, clock)
    channel = Recording()
    channel.failing = DeliveryError("503 from the gateway", retryable=True)
    await queue(db, clock, "g", incident_id=incident_id)
    out = sender(db, clock, channel, give_up_after=timedelta(hours=2))
    for _ in range(40):
        await out.tick()
        clock.advance(minutes=10)
    failed = await row(db, "g")
    assert failed.status == "failed" and failed.last_error == "503 from the gateway"
    assert [n["status"] for n in await notes(db, incident_id)] == ["failed"]


async def test_a_crashed_senders_claim_is_retried_after_the_lease(db: Database, clock: FakeClock) -> None:
    channel = Recording()
    await queue(db, clock, "c")
    crashed = sender(db, clock, channel)
    assert len(await crashed._claim(10)) == 1  # claimed, then the process died before sending
    survivor = sender(db, clock, channel)
    assert await survivor.tick() == 0  # leased: not sent twice at once
    clock.advance(minutes=2)
    assert await survivor.tick() == 1
    assert [key for key, _, _ in channel.sent] == ["c"]
    assert (await row(db, "c")).attempts == 2


async def test_thread_posts_once_then_updates_that_post(db: Database, clock: FakeClock) -> None:
    channel = Recording()
    out = sender(db, clock, channel)
    thread = {"channel": "slack", "target": "#alerts", "thread": "incident-1"}
    await queue(db, clock, "t1", payload={"text": "1 alert"}, **thread)
    await queue(db, clock, "t2", payload={"text": "2 alerts"}, **thread)  # coalesced: still unsent
    await out.tick()
    await queue(db, clock, "t3", payload={"text": "3 alerts"}, **thread)
    await out.tick()
    assert channel.sent == [
        ("t1", "2 alerts", None),
        ("t3", "3 alerts", {"ts": "1", "channel": "C1"}),
    ]


async def test_payload_coalesced_while_sending_is_sent_again_as_an_update(
    db: Database, clock: FakeClock
) -> None:
    thread = {"channel": "slack", "target": "#alerts", "thread": "incident-2"}

    class Slow(Recording):
        async def send(self, message: OutboxMessage, previous: dict[str, Any] | None) -> dict[str, Any]:
            if not self.sent:  # a newer payload arrives while the first send is in flight
                await queue(db, clock, "u2", payload={"text": "newer"}, **thread)
            return await super().send(message, previous)

    channel = Slow()
    await queue(db, clock, "u1", payload={"text": "first"}, **thread)
    out = sender(db, clock, channel)
    await out.tick()
    await out.tick()
    assert channel.sent == [("u1", "first", None), ("u1", "newer", {"ts": "1", "channel": "C1"})]
    assert (await row(db, "u1")).status == "sent"


async def test_two_senders_race_on_200_messages_each_delivered_once(db: Database, clock: FakeClock) -> None:
    """Two outbox senders, each with its own database engine, as `tocsin serve --workers` runs them."""
    async with db.transaction() as session:
        for i in range(200):
            await service.enqueue(
                session, clock.now(), channel="console", target="log", kind="page", key=f"r{i}",
                payload={"text": f"r{i}"},
            )  # fmt: skip
    channel = Recording()
    other = Database(db.url)  # a second process: its own engine and connections
    try:
        senders = [sender(db, clock, channel), sender(other, clock, channel)]

        async def drain(s: Sender) -> int:
            total = 0
            while (n := await s.tick(limit=7)) > 0:
                total += n
            return total

        counts = await asyncio.gather(*(drain(s) for s in senders))
    finally:
        await other.dispose()
    keys = [key for key, _, _ in channel.sent]
    assert sorted(keys) == sorted(f"r{i}" for i in range(200)) and len(keys) == 200
    assert sum(counts) == 200
    async with db.session() as session:
        assert (await service.totals(session))["sent"] == 200


async def test_console_channel_logs(db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    await queue(db, clock, "log-me", person="ada", payload={"text": "Checkout down: acknowledge?"})
    await Sender(db, clock, {"console": ConsoleChannel()}).tick()
    assert "page to log (ada): Checkout down: acknowledge?" in caplog.text
    assert (await row(db, "log-me")).status == "sent"


async def test_deliveries_api(
    db: Database, clock: FakeClock, rt: Runtime, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    incident_id = await declare(db, clock)
    await queue(db, clock, "d1", incident_id=incident_id, person="ada")
    await queue(db, clock, "d2", channel="slack", target="#alerts", incident_id=incident_id)
    await Sender(db, clock, {"console": ConsoleChannel()}).tick()
    answer = await client.get(
        f"/api/v1/incidents/INC-{incident_id}/deliveries", headers=bearer(tokens["viewer"])
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["counts"] == {"pending": 0, "sent": 1, "failed": 1, "suppressed": 0}
    assert [(i["channel"], i["status"], i["attempts"]) for i in body["items"]] == [
        ("console", "sent", 1),
        ("slack", "failed", 1),
    ]
    assert body["items"][1]["last_error"] == "no channel named 'slack'"
    missing = await client.get("/api/v1/incidents/999/deliveries", headers=bearer(tokens["viewer"]))
    assert missing.status_code == 404
    anonymous = await client.get(f"/api/v1/incidents/{incident_id}/deliveries")
    assert anonymous.status_code == 401
