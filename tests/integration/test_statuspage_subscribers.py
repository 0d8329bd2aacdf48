"""Subscribing by email (double opt-in, one-click unsubscribe) and webhook; bad input; the outbox fan-out."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tocsin.app import build_runtime, create_app
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.notify.models import OutboxMessage
from tocsin.policy.loader import default_policy
from tocsin.runtime import Runtime
from tocsin.statuspage.models import SubscribeAttempt, Subscriber
from tocsin.testing import FakeClock, bearer

LINK = re.compile(
    r"http://127\.0\.0\.1:8080(/status/subscribers/\d+/(?:confirm|unsubscribe)\?token=[0-9a-f]+)"
)


async def outbox(rt: Runtime, kind: str | None = None) -> list[OutboxMessage]:
    async with rt.db.session() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return list(await session.scalars(query))


async def subscribe(client: httpx.AsyncClient, **form: Any) -> httpx.Response:
    return await client.post("/status/subscribe", data=form)


async def incident_with_update(client: httpx.AsyncClient, token: str, components: list[str]) -> str:
    r = await client.post(
        "/api/v1/incidents",
        json={"title": "Sign-in broken", "severity": "P1", "components": components},
        headers=bearer(token),
    )
    ref: str = r.json()["id"]
    posted = await client.post(f"/api/v1/incidents/{ref}/status-updates", json={}, headers=bearer(token))
    assert posted.status_code == 201, posted.text
    return ref


async def test_email_double_opt_in_updates_and_one_click_unsubscribe(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    r = await subscribe(client, channel="email", email="Ada@Example.COM")
    assert r.status_code == 200 and "Check your email" in r.text
    [mail] = await outbox(rt, "status_confirm")
    assert mail.channel == "email" and mail.target == "Ada@example.com"
    confirm = LINK.search(mail.payload["text"])
    assert confirm and "/confirm?" in confirm.group(1)
    assert mail.payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Nothing before confirmation.
    await incident_with_update(client, tokens["responder"], ["authentication"])
    assert await outbox(rt, "status_update") == []

    page = await client.get(confirm.group(1))  # a GET (a mail scanner's) changes nothing
    assert page.status_code == 200 and "Confirm subscription" in page.text
    async with rt.db.session() as session:
        assert (await session.scalar(select(Subscriber.state))) == "pending"
    assert (await client.post(confirm.group(1))).status_code == 200
    async with rt.db.session() as session:
        assert (await session.scalar(select(Subscriber.state))) == "confirmed"

    ref = await incident_with_update(client, tokens["responder"], ["email"])
    [update] = await outbox(rt, "status_update")
    assert update.incident_id == int(ref.removeprefix("INC-"))
    assert update.payload["subject"].endswith("Sign-in broken: Investigating")
    assert "Partial outage" in update.payload["text"]
    unsubscribe = re.search(
        r"<http://127\.0\.0\.1:8080(/status/[^>]+)>", update.payload["headers"]["List-Unsubscribe"]
    )
    assert unsubscribe is not None
    # RFC 8058: the mail client POSTs the body "List-Unsubscribe=One-Click".
    r = await client.post(unsubscribe.group(1), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "Unsubscribed" in r.text
    await client.post(
        f"/api/v1/incidents/{ref}/status-updates",
        json={"status": "resolved"},
        headers=bearer(tokens["responder"]),
    )
    assert len(await outbox(rt, "status_update")) == 1
    deliveries = (await client.get(f"/api/v1/incidents/{ref}", headers=bearer(tokens["viewer"]))).status_code
    assert deliveries == 200


async def test_component_subscribers_hear_only_of_their_components(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    await subscribe(client, channel="email", email="cdn@example.com", components=["cdn"])
    await subscribe(client, channel="email", email="all@example.com")
    for mail in await outbox(rt, "status_confirm"):
        link = LINK.search(mail.payload["text"])
        assert link is not None
        await client.post(link.group(1))
    await incident_with_update(client, tokens["responder"], ["database"])
    assert [m.target for m in await outbox(rt, "status_update")] == ["all@example.com"]


async def test_forged_links_and_unknown_components_are_refused(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await subscribe(client, channel="email", email="ada@example.com")
    assert (await client.post("/status/subscribers/1/confirm?token=" + "0" * 40)).status_code == 404
    assert (await client.get("/status/subscribers/1/unsubscribe?token=nope")).status_code == 404
    r = await subscribe(client, channel="email", email="bob@example.com", components=["nope"])
    assert r.status_code == 422
    async with rt.db.session() as session:
        assert [s.target for s in await session.scalars(select(Subscriber))] == ["ada@example.com"]


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b", "ada@@example.com", "x" * 300 + "@example.com", ""]
)
async def test_malformed_addresses_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, rt: Runtime, address: str
) -> None:
    r = await subscribe(client, channel="email", email=address)
    assert r.status_code == 422 and "email address" in r.text
    async with rt.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert await outbox(rt) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.5/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/hook",
        "http://user:pw@93.184.215.14/hook",
        "not a url",
    ],
)
async def test_webhooks_to_private_or_odd_urls_are_refused(
    client: httpx.AsyncClient, rt: Runtime, url: str
) -> None:
    r = await subscribe(client, channel="webhook", url=url)
    assert r.status_code == 422, r.text
    async with rt.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 0


async def test_webhook_subscribers_get_statuspage_payloads_when_private_urls_are_allowed(
    db: Database, clock: FakeClock, tokens: dict[str, str]
) -> None:
    seed = default_policy()
    policy = seed.model_copy(
        update={"status_page": seed.status_page.model_copy(update={"allow_private_webhooks": True})}
    )
    rt = build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy)
    transport = httpx.ASGITransport(app=create_app(runtime=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
        r = await subscribe(client, channel="webhook", url="http://127.0.0.1:9000/hook")
        assert r.status_code == 200 and "Webhook subscribed" in r.text
        ref = await incident_with_update(client, tokens["responder"], ["api"])
    [hook] = await outbox(rt, "status_update")
    assert hook.channel == "webhook" and hook.target == "http://127.0.0.1:9000/hook"
    body = hook.payload
    assert set(body) == {"meta", "page", "incident"}  # Statuspage's shape, nothing added
    assert set(body["meta"]) == {"unsubscribe", "documentation"}
    assert set(body["page"]) == {"id", "status_indicator", "status_description"}
    assert body["page"]["status_indicator"] == "major"
    assert (
        body["incident"]["id"] == ref and body["incident"]["incident_updates"][0]["status"] == "investigating"
    )
    # and Statuspage's separate component_update for each component the update changed
    changes = await outbox(rt, "component_update")
    assert changes and all(c.target == "http://127.0.0.1:9000/hook" for c in changes)
    change = changes[0].payload
    assert set(change) == {"meta", "page", "component_update", "component"}
    assert set(change["component_update"]) == {"created_at", "new_status", "old_status", "id", "component_id"}
    assert change["component_update"]["old_status"] == "operational"
    assert change["component"]["id"] == change["component_update"]["component_id"] == "api"
    assert change["component"]["status"] == change["component_update"]["new_status"] != "operational"


async def test_ten_thousand_attempts_from_one_address_are_rate_limited(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    limit = rt.policy.status_page.subscribe_limit
    answers = [
        (await subscribe(client, channel="email", email=f"u{i}@example.com")).status_code
        for i in range(limit)
    ]
    assert answers == [200] * limit
    refused = 0
    for i in range(10_000 - limit):
        r = await client.post("/status/subscribe", data={"channel": "email", "email": f"x{i}@example.com"})
        refused += r.status_code == 429
        if i == 0:
            assert int(r.headers["retry-after"]) > 0 and "Too many attempts" in r.text
    assert refused == 10_000 - limit
    async with rt.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(SubscribeAttempt)) == limit
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == limit
