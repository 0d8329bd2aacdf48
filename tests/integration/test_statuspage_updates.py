"""Status updates from incidents, and what the public page and its Statuspage JSON then show."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tocsin.runtime import Runtime
from tocsin.statuspage import cache as cache_module
from tocsin.testing import FakeClock, bearer

HOSTILE = '<script>alert("x")</script> & "quotes"'


async def declare(client: httpx.AsyncClient, token: str, **body: Any) -> str:
    data = {"title": "Checkout fails", "severity": "P0", "components": ["api", "database"], **body}
    r = await client.post("/api/v1/incidents", json=data, headers=bearer(token))
    assert r.status_code == 201, r.text
    ref: str = r.json()["id"]
    return ref


async def summary(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/status/api/v2/summary.json")
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    body: dict[str, Any] = r.json()
    return body


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in doc["components"] if not c["group"]}


async def test_first_update_fills_the_template_sets_components_and_meets_the_deadline(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    token = tokens["responder"]
    ref = await declare(client, token, description="Payments time out at checkout")
    before = await summary(client)
    assert before["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert before["incidents"] == []  # no update posted yet: nothing public

    draft = (await client.get(f"/api/v1/incidents/{ref}/status-updates/draft", headers=bearer(token))).json()
    assert draft["status"] == "investigating" and draft["first"] is True
    assert draft["body"].startswith("🔴 We're investigating reports of payments time out at checkout.")
    assert draft["components"] == {"api": "major_outage", "database": "major_outage"}

    clock.advance(minutes=10)
    r = await client.post(f"/api/v1/incidents/{ref}/status-updates", json={}, headers=bearer(token))
    assert r.status_code == 201, r.text
    update = r.json()
    assert update["status"] == "investigating" and "Posted: 2026-11-26 10:10 EST" in update["body"]
    assert {a["code"]: a["new_status"] for a in update["affected_components"]} == {
        "api": "major_outage",
        "database": "major_outage",
    }

    silent = await declare(client, token, title="Nobody told customers")
    clock.advance(minutes=40)  # past the 30-minute status-page deadline of both
    incident = (await client.get(f"/api/v1/incidents/{ref}", headers=bearer(token))).json()
    assert incident["sla"]["status_page_breached"] is False
    other = (await client.get(f"/api/v1/incidents/{silent}", headers=bearer(token))).json()
    assert other["sla"]["status_page_breached"] is True
    timeline = (await client.get(f"/api/v1/incidents/{ref}/timeline", headers=bearer(token))).json()
    kinds = [e["kind"] for e in timeline]
    assert "status_update" in kinds

    doc = await summary(client)
    assert doc["status"] == {"indicator": "critical", "description": "Major System Outage"}
    assert statuses(doc)["api"] == "major_outage" and statuses(doc)["application"] == "operational"
    assert [i["id"] for i in doc["incidents"]] == [ref]
    assert doc["incidents"][0]["impact"] == "critical"
    group = next(c for c in doc["components"] if c["group"])
    assert group["status"] == "major_outage" and "api" in group["components"]

    page = await client.get("/status")
    assert page.status_code == 200 and "Checkout fails" in page.text and "Major outage" in page.text


async def test_resolution_brings_components_back_and_empties_unresolved(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    token = tokens["responder"]
    ref = await declare(client, token)
    await client.post(
        f"/api/v1/incidents/{ref}/status-updates",
        json={"status": "identified", "body": "Found it."},
        headers=bearer(token),
    )
    clock.advance(minutes=20)
    r = await client.post(
        f"/api/v1/incidents/{ref}/status-updates", json={"status": "resolved"}, headers=bearer(token)
    )
    assert r.status_code == 201, r.text
    assert r.json()["body"].startswith("✅ This incident has been resolved.")
    unresolved = (await client.get("/status/api/v2/incidents/unresolved.json")).json()
    assert unresolved["incidents"] == []
    listed = (await client.get("/status/api/v2/incidents.json")).json()["incidents"]
    assert listed[0]["status"] == "resolved" and listed[0]["resolved_at"] is not None
    assert [u["status"] for u in listed[0]["incident_updates"]] == ["resolved", "identified"]  # newest first
    assert set(statuses(await summary(client)).values()) == {"operational"}
    status = (await client.get("/status/api/v2/status.json")).json()["status"]
    assert status == {"indicator": "none", "description": "All Systems Operational"}


async def test_internal_and_closed_incidents_are_refused_and_never_public(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    token, commander = tokens["responder"], tokens["commander"]
    internal = await declare(
        client, token, title="Internal build broken", severity="P3", customer_facing=False
    )
    r = await client.post(f"/api/v1/incidents/{internal}/status-updates", json={}, headers=bearer(token))
    assert r.status_code == 409 and r.json()["error"]["field"] == "customer_facing"
    closed = await declare(client, token, title="Old one")
    for action in ("resolve", "close"):
        done = await client.post(f"/api/v1/incidents/{closed}/{action}", json={}, headers=bearer(commander))
        assert done.status_code == 200, done.text
    r = await client.post(f"/api/v1/incidents/{closed}/status-updates", json={}, headers=bearer(token))
    assert r.status_code == 409 and "closed" in r.json()["error"]["message"]
    doc = await summary(client)
    assert doc["incidents"] == [] and set(statuses(doc).values()) == {"operational"}
    assert "Internal build broken" not in (await client.get("/status/history/")).text
    updates = (await client.get(f"/api/v1/incidents/{closed}/status-updates", headers=bearer(token))).json()
    assert updates == []  # nothing half-written


async def test_unknown_component_and_bad_status_are_422(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    token = tokens["responder"]
    ref = await declare(client, token)
    r = await client.post(
        f"/api/v1/incidents/{ref}/status-updates",
        json={"components": {"nope": "major_outage"}},
        headers=bearer(token),
    )
    assert r.status_code == 422 and "unknown component" in r.json()["error"]["message"]
    r = await client.post(
        f"/api/v1/incidents/{ref}/status-updates",
        json={"components": {"api": "on_fire"}},
        headers=bearer(token),
    )
    assert r.status_code == 422
    assert (await client.get(f"/api/v1/incidents/{ref}/status-updates", headers=bearer(token))).json() == []
    viewer = await client.post(
        f"/api/v1/incidents/{ref}/status-updates", json={}, headers=bearer(tokens["viewer"])
    )
    assert viewer.status_code == 403


async def test_hostile_text_is_escaped_everywhere(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    token = tokens["responder"]
    ref = await declare(client, token, title=HOSTILE)
    r = await client.post(
        f"/api/v1/incidents/{ref}/status-updates", json={"body": HOSTILE}, headers=bearer(token)
    )
    assert r.status_code == 201, r.text
    for path in ("/status", "/status/history/", f"/status/incidents/{ref}/", "/status/feed.atom"):
        text = (await client.get(path)).text
        assert "<script>" not in text, path
        assert "&lt;script&gt;" in text, path
    assert (await summary(client))["incidents"][0]["name"] == HOSTILE


@pytest.mark.parametrize(
    "path",
    ["/status", "/status/history/", "/status/feed.atom", "/status/status.css", "/status/incidents/INC-999/"],
)
async def test_public_paths_need_no_login(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == (404 if "INC-999" in path else 200), r.text


async def test_once_rendered_no_request_waits_on_the_database(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The once-a-second check of the page version runs in the background; requests meanwhile get the
    current render, and a check that hangs or fails never holds them up."""
    app_cache = client._transport.app.state.status_cache  # type: ignore[attr-defined]
    assert (await client.get("/status/api/v2/summary.json")).status_code == 200  # the first render waits
    released = asyncio.Event()
    checks = 0

    async def hanging(now: float) -> None:
        nonlocal checks
        checks += 1
        await released.wait()
        raise RuntimeError("the database is away")

    monkeypatch.setattr(app_cache, "_refresh", hanging)
    monkeypatch.setattr(cache_module, "POLL_SECONDS", 0.0)  # every request would be due for a check
    for _ in range(20):
        r = await asyncio.wait_for(client.get("/status/api/v2/summary.json"), timeout=5)
        assert r.status_code == 200
    assert checks == 1  # one check in flight at a time, however many requests arrive
    released.set()
    await asyncio.sleep(0.01)
    assert (await client.get("/status/api/v2/summary.json")).status_code == 200  # the last render, still
    await asyncio.sleep(0.01)
    assert checks == 2  # the failed check is tried again
    await app_cache.close()


async def test_after_a_change_the_waiting_requests_share_one_read(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process changed the page: every request waits for the new render, all on one read, and all
    wake when it ends (they once took a lock in turn, one per pass of the event loop)."""
    app_cache = client._transport.app.state.status_cache  # type: ignore[attr-defined]
    assert (await client.get("/status/api/v2/summary.json")).status_code == 200
    real, reads, released, read = app_cache._refresh, 0, asyncio.Event(), asyncio.Event()

    async def slow_read(now: float) -> None:
        nonlocal reads
        reads += 1
        await released.wait()
        await real(now)
        read.set()

    monkeypatch.setattr(app_cache, "_refresh", slow_read)
    app_cache.invalidate()
    waiting = [asyncio.create_task(client.get("/status/api/v2/status.json")) for _ in range(50)]
    await asyncio.sleep(0.05)
    assert reads == 1 and not any(task.done() for task in waiting)
    released.set()
    await asyncio.wait_for(read.wait(), timeout=10)
    for _ in range(25):  # a few passes of the loop answer all 50, not one pass each
        await asyncio.sleep(0)
    assert all(task.done() for task in waiting)
    assert {task.result().status_code for task in waiting} == {200} and reads == 1
    await app_cache.close()


async def test_close_ends_every_read_even_one_a_change_let_go_of(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read under way when this process changes the page is let go of (a new one starts); closing
    the cache must still end it, or it dies with the event loop mid-transaction and its connection stays
    idle in a transaction on the server, holding locks (it once hung a later test's TRUNCATE)."""
    app_cache = client._transport.app.state.status_cache  # type: ignore[attr-defined]
    assert (await client.get("/status/api/v2/summary.json")).status_code == 200
    inside, began, ended = asyncio.Event(), [], []

    async def stuck_read(now: float) -> None:
        began.append(now)
        try:
            async with rt.db.session() as session:
                await cache_module.service.version(session)  # the transaction is open
                inside.set()
                await asyncio.Event().wait()
        finally:
            ended.append(now)

    monkeypatch.setattr(app_cache, "_refresh", stuck_read)
    app_cache.invalidate()
    first = asyncio.create_task(client.get("/status/api/v2/status.json"))
    await asyncio.wait_for(inside.wait(), timeout=5)
    app_cache.invalidate()  # the page changed again: the next request starts a read of its own
    second = asyncio.create_task(client.get("/status/api/v2/status.json"))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(app_cache.close(), timeout=5)
    assert ended == began == [began[0]]  # the stuck read left its session, the next never began
    assert not app_cache._tasks
    for task in (first, second):
        task.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
