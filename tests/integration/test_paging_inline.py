"""A process that runs the engine pages inside the incident's own transaction: team assembly fires
before the commit, the page's message is claimed in it and leaves as soon as it commits. If the
process dies before sending, the claim's lease runs out and any sender delivers it, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tocsin.app import build_runtime
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.engine.models import Timer
from tocsin.incidents.timers import ASSEMBLE
from tocsin.notify.jobs import build_channels
from tocsin.notify.models import OutboxMessage
from tocsin.notify.sender import LEASE, Sender
from tocsin.oncall.models import Page
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, running_server, seed_policy_with


class Hook:
    """A webhook receiver that keeps the bodies it got."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.delay = 0.0

    async def receive(self, request: Request) -> Response:
        await asyncio.sleep(self.delay)
        self.bodies.append(orjson.loads(await request.body()))
        return Response(status_code=200)

    async def pages(self, count: int) -> list[dict[str, Any]]:
        """The pages received, once there are `count` of them (waits at most 10 s)."""
        for _ in range(1000):
            found = [b for b in self.bodies if b.get("event") == "page"]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.bodies)} webhook calls, not {count} pages")


@pytest.fixture
def hook() -> Hook:
    return Hook()


@pytest.fixture
def hook_url(hook: Hook) -> Iterator[str]:
    with running_server(Starlette(routes=[Route("/hook", hook.receive, methods=["POST"])])) as base:
        yield f"{base}/hook"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))


@pytest.fixture
async def rt(db: Database, clock: FakeClock, hook_url: str) -> AsyncIterator[Runtime]:
    team = f"""
people:
  - name: ada
    webhook: {hook_url}
    notify: [{{via: webhook, after: 0m}}]
teams:
  - name: portal
    services: [portal]
    rotations:
      - {{name: portal-primary, layer: primary, members: [ada], handoff: weekly, start: "2026-01-05 09:00"}}
"""
    settings = Settings(database_url=db.url, webhook_secret="s3cret", public_url="https://tocsin.example")
    runtime = build_runtime(settings, clock=clock, db=db, policy=seed_policy_with(team))
    yield runtime
    await runtime.stop()


def run_engine_at_commit(rt: Runtime) -> None:
    """What `Runtime.start` installs, without starting the loops (the test drives the clock)."""
    rt.db.before_commit.update(rt.commit_hooks)


async def declare(client: httpx.AsyncClient, token: str) -> int:
    body = {"title": "Checkout is failing", "severity": "P2", "services": ["portal"]}
    r = await client.post("/api/v1/incidents", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return int(str(r.json()["id"]).removeprefix("INC-"))


async def page_messages(rt: Runtime, incident: int) -> list[OutboxMessage]:
    async with rt.db.session() as session:
        query = select(OutboxMessage).where(
            OutboxMessage.incident_id == incident, OutboxMessage.kind == "page"
        )
        return list(await session.scalars(query))


async def test_the_page_commits_with_the_incident_and_leaves_at_once(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], hook: Hook, clock: FakeClock
) -> None:
    run_engine_at_commit(rt)
    incident = await declare(client, tokens["responder"])
    async with (
        rt.db.session() as session
    ):  # no worker has run: assembly happened in the declaring transaction
        pages = list(await session.scalars(select(Page).where(Page.incident_id == incident)))
        timer = await session.scalar(select(Timer).where(Timer.kind == ASSEMBLE))
    assert [(p.person, p.step) for p in pages] == [("ada", "assembly")]
    assert timer is not None and timer.fired_at == clock.now()
    (message,) = await page_messages(rt, incident)
    assert message.attempts == 1 and message.next_attempt_at == clock.now() + LEASE  # claimed in it too
    (received,) = await hook.pages(1)
    assert received["incident"]["id"] == f"INC-{incident}" and received["person"] == "ada"
    for _ in range(500):  # the delivery is recorded after the receiver's answer
        (message,) = await page_messages(rt, incident)
        if message.status == "sent":
            break
        await asyncio.sleep(0.01)
    assert message.status == "sent" and message.sent_at == clock.now()


async def test_a_page_claimed_by_a_process_that_died_is_sent_once_after_the_lease(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], hook: Hook, clock: FakeClock
) -> None:
    run_engine_at_commit(rt)
    sender = rt.commit_hooks["outbox"].__self__  # type: ignore[attr-defined]
    assert isinstance(sender, Sender)
    sender._start = lambda claimed: None  # the process dies between the commit and the send
    incident = await declare(client, tokens["responder"])
    (message,) = await page_messages(rt, incident)
    assert message.status == "pending" and message.attempts == 1
    other = Sender(rt.db, clock, build_channels(rt.settings, rt.db, clock))
    try:
        assert await other.tick() == 0  # the claim holds for its lease
        clock.advance(LEASE + timedelta(seconds=1))
        assert await other.tick() == 1
    finally:
        await other.close()
    assert len(await hook.pages(1)) == 1
    (message,) = await page_messages(rt, incident)
    assert message.status == "sent" and message.attempts == 2


async def test_stopping_lets_a_send_in_flight_finish(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], hook: Hook
) -> None:
    run_engine_at_commit(rt)
    hook.delay = 0.3  # the receiver is slow: the send is still in flight when the process stops
    incident = await declare(client, tokens["responder"])
    await rt.stop()
    (message,) = await page_messages(rt, incident)
    assert message.status == "sent" and len(await hook.pages(1)) == 1
