"""The web console through HTTP, on SQLite and PostgreSQL, with a fake clock."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI, Request

from tocsin.alerts import pages as alert_pages
from tocsin.app import build_runtime, create_app
from tocsin.auth.deps import SESSION_COOKIE
from tocsin.auth.roles import Role
from tocsin.config import Settings
from tocsin.core.bus import Bus
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, user_with_token
from tocsin.web import sse

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ALERT = re.compile(r'role="alert">(.*?)</div>', re.S)


@dataclass
class Browser:
    """A signed-in console user: an HTTP client holding the session cookie, and the CSRF token."""

    client: httpx.AsyncClient
    csrf: str
    token: str

    async def post(
        self, path: str, data: dict[str, Any] | None = None, csrf: str | None = None
    ) -> httpx.Response:
        return await self.client.post(
            path, data={**(data or {}), "csrf_token": self.csrf if csrf is None else csrf}
        )

    async def page(self, path: str) -> str:
        r = await self.client.get(path)
        assert r.status_code == 200, r.text
        return r.text


def client_for(app: FastAPI, scheme: str = "http") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://tocsin.test")


async def login(client: httpx.AsyncClient, name: str, password: str, next_path: str = "/") -> httpx.Response:
    form = await client.get("/login", params={"next": next_path})
    match = CSRF.search(form.text)
    assert match, form.text
    return await client.post(
        "/login", data={"name": name, "password": password, "csrf_token": match[1], "next": next_path}
    )


@pytest.fixture
def app(rt: Runtime) -> FastAPI:
    return create_app(runtime=rt)


@pytest.fixture
async def sign_in(
    app: FastAPI, rt: Runtime, clock: FakeClock
) -> AsyncIterator[Callable[[Role], Awaitable[Browser]]]:
    clients: list[httpx.AsyncClient] = []

    async def open_as(role: Role) -> Browser:
        name = f"{role.name}-web"
        token = await user_with_token(rt.db, clock, name, role, password=PASSWORD)
        client = client_for(app)
        clients.append(client)
        assert (await login(client, name, PASSWORD)).status_code == 303
        match = CSRF.search((await client.get("/")).text)
        assert match
        return Browser(client, match[1], token)

    yield open_as
    for client in clients:
        await client.aclose()


async def declare(b: Browser, **fields: Any) -> str:
    r = await b.post("/incidents", {"title": "Sign-in emails not arriving", "severity": "P1", **fields})
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


async def test_login_sets_a_strict_session_cookie(app: FastAPI, rt: Runtime, clock: FakeClock) -> None:
    await user_with_token(rt.db, clock, "ada", Role.responder, password=PASSWORD)
    async with client_for(app) as c:
        r = await login(c, "ada", "wrong password")
        assert r.status_code == 401 and "Wrong name or password" in r.text
        assert SESSION_COOKIE not in c.cookies
        r = await login(c, "nobody", PASSWORD)
        assert r.status_code == 401
        r = await login(c, "ada", PASSWORD, next_path="/incidents/INC-7")
        assert r.status_code == 303 and r.headers["location"] == "/incidents/INC-7"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        page = await c.get("/")
        assert page.status_code == 200 and "ada" in page.text and "Declare incident" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert (await c.get("/login")).status_code == 303  # already signed in
    async with client_for(app) as c:
        r = await login(c, "ada", PASSWORD, next_path="//evil.example/")
        assert r.headers["location"] == "/"


async def test_cookie_is_secure_when_configured(rt: Runtime, clock: FakeClock) -> None:
    secure = build_runtime(Settings(database_url=rt.db.url, cookie_secure=True), clock=clock, db=rt.db)
    await user_with_token(rt.db, clock, "ada", Role.responder, password=PASSWORD)
    async with client_for(create_app(runtime=secure), "https") as c:
        r = await login(c, "ada", PASSWORD)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


async def test_pages_redirect_to_login_without_a_session(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = await client.get("/incidents/INC-1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/incidents/INC-1"
    for path in ("/incidents", "/incidents/INC-1/notes", "/logout"):
        r = await client.post(path, data={"text": "x"})
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    client.cookies.set(SESSION_COOKIE, "not-a-session")
    assert (await client.get("/incidents/INC-1/events")).status_code == 303


async def test_logout_ends_the_session(sign_in: Callable[[Role], Awaitable[Browser]]) -> None:
    b = await sign_in(Role.viewer)
    assert (await b.post("/logout", csrf="wrong")).status_code == 403
    r = await b.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await b.client.get("/")).status_code == 303


async def test_forms_without_the_session_csrf_token_are_refused(
    sign_in: Callable[[Role], Awaitable[Browser]], app: FastAPI
) -> None:
    b = await sign_in(Role.commander)
    await declare(b)
    for csrf in ("", "forged"):
        r = await b.post("/incidents/INC-1/notes", {"text": "sneaky"}, csrf=csrf)
        assert r.status_code == 403 and "security token" in r.text
        r = await b.post("/incidents", {"title": "sneaky", "severity": "P3"}, csrf=csrf)
        assert r.status_code == 403
    assert "sneaky" not in await b.page("/incidents/INC-1")
    async with client_for(app) as c:  # the login form has its own token, bound to a cookie
        r = await c.post("/login", data={"name": "commander-web", "password": PASSWORD, "csrf_token": "x"})
        assert r.status_code == 403 and SESSION_COOKIE not in c.cookies


async def test_viewer_reads_but_cannot_act(sign_in: Callable[[Role], Awaitable[Browser]]) -> None:
    commander, v, responder = [await sign_in(r) for r in (Role.commander, Role.viewer, Role.responder)]
    await declare(commander)
    page = await v.page("/incidents/INC-1")
    assert "Sign-in emails not arriving" in page and "read-only access" in page
    assert 'action="/incidents/INC-1/' not in page and "Declare incident" not in await v.page("/")
    for path, data in [
        ("/incidents/INC-1/notes", {"text": "viewer was here"}),
        ("/incidents/INC-1/acknowledge", {}),
    ]:
        r = await v.post(path, data)
        assert r.status_code == 403 and "responder role" in r.text
    assert (await v.post("/incidents", {"title": "x", "severity": "P3"})).status_code == 403
    for path, data in [
        ("/incidents/INC-1/roles", {"role": "scribe", "person": "ada", "action": "assign"}),
        ("/incidents/INC-1/close", {}),
        ("/incidents/INC-1/reopen", {"reason": "x"}),
    ]:
        r = await responder.post(path, data)
        assert r.status_code == 403 and "commander role" in r.text, path
    assert 'action="/incidents/INC-1/roles"' not in await responder.page("/incidents/INC-1")
    page = await v.page("/incidents/INC-1")
    assert "viewer was here" not in page and 'id="event-2"' not in page


async def test_hostile_text_is_escaped(sign_in: Callable[[Role], Awaitable[Browser]]) -> None:
    b = await sign_in(Role.responder)
    await declare(b, title="<script>alert(1)</script>", description='<img src=x onerror="alert(2)">')
    await b.post(
        "/incidents/INC-1/commands", {"command": "echo '</pre><script>alert(3)</script>'", "output": "<b>"}
    )
    for path in ("/", "/incidents/INC-1"):
        page = await b.page(path)
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>" not in page
    page = await b.page("/incidents/INC-1")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;/pre&gt;&lt;script&gt;alert(3)" in page


async def test_every_form_lands_on_the_timeline(
    sign_in: Callable[[Role], Awaitable[Browser]], clock: FakeClock
) -> None:
    b = await sign_in(Role.commander)
    assert await declare(b, components=["api", "database"], customer_facing="false") == "/incidents/INC-1"
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("acknowledge", {"note": "on it"}, "on it"),
        ("notes", {"text": "503s on /api/posts"}, "503s on /api/posts"),
        ("hypotheses", {"text": "the 14:02 deploy"}, "Hypothesis #1"),
        ("hypotheses/1", {"state": "refuted", "result": "deploy was fine"}, "deploy was fine"),
        (
            "commands",
            {"command": "railway status", "output": "degraded\nretrying", "exit_code": "3"},
            "exit 3",
        ),
        ("assignments", {"person": "linus", "task": "watch error rate"}, "watch error rate"),
        ("actions", {"text": "restarted the pool"}, "restarted the pool"),
        ("updates", {"text": "mitigating, next update 30m"}, "Management update"),
        ("severity", {"severity": "P0", "reason": "all users affected"}, "all users affected"),
        (
            "roles",
            {"role": "scribe", "person": "grace", "action": "assign"},
            "<strong>grace</strong> is now scribe",
        ),
        ("roles", {"role": "scribe", "person": "grace", "action": "unassign"}, "is no longer scribe"),
        ("status", {"status": "mitigated", "note": "pool restarted"}, "pool restarted"),
        (
            "resolve",
            {"summary": "stable for 15 minutes", "override_reason": "watched by hand"},
            "stable for 15 minutes",
        ),
        ("close", {}, 'status-closed">Closed'),
        ("reopen", {"reason": "errors are back"}, "Reopened"),
    ]
    for seq, (action, data, expected) in enumerate(steps, start=2):
        clock.advance(minutes=1)
        r = await b.post(f"/incidents/INC-1/{action}", data)
        assert r.status_code == 303, (action, ALERT.findall(r.text))
        assert r.headers["location"] == f"/incidents/INC-1#event-{seq}"
        page = await b.page("/incidents/INC-1")
        event = page.split(f'id="event-{seq}"')[1].split("</li>")[0]
        assert expected in event, (action, event)
    assert (
        '<pre class="output" tabindex="0" aria-label="output"><code>degraded\nretrying</code></pre>' in page
    )
    assert "P0" in page.split('id="incident-summary"')[1].split("</header>")[0]


async def test_errors_show_as_readable_pages(sign_in: Callable[[Role], Awaitable[Browser]]) -> None:
    b = await sign_in(Role.commander)
    await declare(b)
    r = await b.post("/incidents/INC-1/status", {"status": "closed"})
    assert r.status_code == 409 and r.headers["content-type"].startswith("text/html")
    assert "cannot move INC-1 from triggered to closed" in ALERT.findall(r.text)[0]
    r = await b.post("/incidents/INC-1/severity", {"severity": "P0"})
    assert r.status_code == 422 and "Reason is required." in r.text
    r = await b.post("/incidents/INC-1/assignments", {"person": "<bad>", "task": "keep this text"})
    assert r.status_code == 422 and "Person has characters that are not allowed" in r.text
    assert ">keep this text</textarea>" in r.text  # the form is filled in again
    r = await b.post("/incidents/INC-1/commands", {"command": "x", "exit_code": "zero"})
    assert r.status_code == 422 and "Exit code must be a whole number." in r.text
    r = await b.post("/incidents/INC-1/hypotheses/99", {"state": "confirmed"})
    assert r.status_code == 404 and "no hypothesis 99" in r.text
    for path in ("/incidents/INC-42", "/incidents/INC-²", "/incidents/nope"):
        r = await b.client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
    assert (await b.post("/incidents/INC-1/explode")).status_code == 404
    r = await b.post("/incidents", {"title": "Half a form", "severity": ""})
    assert r.status_code == 422 and "Severity is required." in r.text
    assert 'value="Half a form"' in r.text and '<details class="card declare" id="declare" open>' in r.text


async def test_dashboard_orders_by_urgency_with_countdowns(
    sign_in: Callable[[Role], Awaitable[Browser]], clock: FakeClock
) -> None:
    b = await sign_in(Role.responder)
    await declare(b, severity="P2", title="Slow API")  # INC-1
    await declare(b, severity="P1", title="Older P1")  # INC-2
    clock.advance(minutes=10)
    await declare(b, severity="P1", title="Newer P1")  # INC-3
    await declare(b, severity="P0", title="Everything down")  # INC-4
    await declare(b, severity="P3", title="Typo")  # INC-5
    await b.post("/incidents/INC-5/resolve", {})
    clock.advance(minutes=12)  # INC-4's 15 minute response deadline has 3 minutes left
    page = await b.page("/")
    table = page.split("<tbody>")[1].split("</tbody>")[0]
    assert re.findall(r'<span class="ref">(INC-\d+)</span>', table) == ["INC-4", "INC-2", "INC-3", "INC-1"]
    rows = table.split("</tr>")
    assert '<span class="cd cd-warn" data-deadline="2026-11-26T15:25:00+00:00"' in rows[0]
    assert "⚠ 3m 00s left" in rows[0] and "10:25 EST" in rows[0]
    assert "cd-ok" in rows[1] and "8m 00s left" in rows[1]  # 30 min to respond, 22 gone
    assert "Recently resolved" in page and "INC-5" in page.split("Recently resolved")[1]
    clock.advance(minutes=5)
    assert "✕ overdue 2m 00s" in (await b.page("/")).split("</tr>")[1]


async def test_incident_page_shows_deadlines_in_the_policy_time_zone(
    sign_in: Callable[[Role], Awaitable[Browser]], clock: FakeClock
) -> None:
    b = await sign_in(Role.responder)
    await declare(b, severity="P0", title="Down")
    clock.advance(minutes=20)
    await b.post("/incidents/INC-1/acknowledge")
    page = await b.page("/incidents/INC-1")
    sla = page.split('id="sla-heading"')[1].split("</section>")[0]
    assert "America/New_York" in sla
    assert (
        'due <time datetime="2026-11-26T15:15:00+00:00" title="Thursday 2026-11-26 10:15 EST">10:15 EST'
        in sla
    )
    assert "✕ missed by 5m 00s" in sla and "Breached" in sla
    assert "Acknowledged in 20m 00s" in sla


class Stream:
    """Drives the ASGI app by hand to read part of an endless event stream, then disconnects."""

    def __init__(self, app: FastAPI, path: str, query: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.started: dict[str, Any] = {}
        self.text = ""
        self._asked = False
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"tocsin.test"), *headers], "client": ("127.0.0.1", 5000),
            "server": ("tocsin.test", 80),
        }  # fmt: skip
        self.task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = message
        elif message["type"] == "http.response.body":
            await self.chunks.put(message.get("body", b""))

    async def until(self, text: str) -> str:
        async with asyncio.timeout(5):
            while text not in self.text:
                self.text += (await self.chunks.get()).decode()
        return self.text

    async def close(self) -> None:
        self.gone.set()
        await asyncio.wait_for(self.task, 5)


async def test_event_stream_sends_existing_then_live_events(
    sign_in: Callable[[Role], Awaitable[Browser]], app: FastAPI, client: httpx.AsyncClient
) -> None:
    b = await sign_in(Role.responder)
    await declare(b, title="Stream me")
    await b.post("/incidents/INC-1/notes", {"text": "first <note>"})
    cookie = [(b"cookie", f"{SESSION_COOKIE}={b.client.cookies[SESSION_COOKIE]}".encode())]
    stream = Stream(app, "/incidents/INC-1/events", "after=0", cookie)
    try:
        text = await stream.until("first &lt;note&gt;")
        assert stream.started["status"] == 200
        assert (b"content-type", b"text/event-stream; charset=utf-8") in stream.started["headers"]
        assert text.startswith("retry: ") and "event: timeline\nid: 1\ndata: " in text and "id: 2\n" in text
        r = await client.post(
            "/api/v1/incidents/INC-1/notes", json={"text": "live\r\nfrom the API"}, headers=bearer(b.token)
        )
        assert r.status_code == 201
        text = await stream.until("from the API")
        assert "id: 3\n" in text and "live\ndata: from the API</p>" in text
        r = await client.post("/api/v1/incidents/INC-1/acknowledge", json={}, headers=bearer(b.token))
        text = await stream.until(
            'event: summary\ndata: <div class="summary" id="incident-summary" data-status="acknowledged">'
        )
    finally:
        await stream.close()
    resumed = Stream(app, "/incidents/INC-1/events", "after=0", [*cookie, (b"last-event-id", b"3")])
    try:
        text = await resumed.until("id: 4\n")
        assert "id: 1\n" not in text and "id: 3\n" not in text
    finally:
        await resumed.close()


async def test_event_stream_ends_when_the_session_does(
    sign_in: Callable[[Role], Awaitable[Browser]], app: FastAPI, client: httpx.AsyncClient
) -> None:
    b = await sign_in(Role.responder)
    await declare(b)
    cookie = [(b"cookie", f"{SESSION_COOKIE}={b.client.cookies[SESSION_COOKIE]}".encode())]
    stream = Stream(app, "/incidents/INC-1/events", "after=1", cookie)
    try:
        await stream.until("retry: ")
        assert (await b.post("/logout")).status_code == 303
        await client.post(
            "/api/v1/incidents/INC-1/notes", json={"text": "after logout"}, headers=bearer(b.token)
        )
        await asyncio.wait_for(asyncio.shield(stream.task), 5)  # ends by itself, before any disconnect
        while not stream.chunks.empty():
            stream.text += (await stream.chunks.get()).decode()
        assert "after logout" not in stream.text
    finally:
        await stream.close()


class Connected:
    """Stands in for a request whose client never leaves."""

    async def is_disconnected(self) -> bool:
        return False


async def test_stream_sends_keep_alives_and_ends_after_its_lifetime() -> None:
    async def poll(cursor: int) -> sse.Batch:
        if cursor == 0:
            return sse.Batch([sse.Message("one\rtwo", "timeline", 1)], 1)
        return sse.Batch([], cursor)

    request = cast(Request, Connected())
    async with asyncio.timeout(5):
        body = sse.stream(request, Bus(), "incident:1", poll, 0, wait_seconds=0.01, lifetime_seconds=0.1)
        chunks = [chunk async for chunk in body]
    assert chunks[:2] == ["retry: 3000\n\n", "event: timeline\nid: 1\ndata: one\ndata: two\n\n"]
    assert set(chunks[2:]) == {": keep-alive\n\n"}


async def test_an_incident_from_alerts_shows_them(
    sign_in: Callable[[Role], Awaitable[Browser]], app: FastAPI
) -> None:
    b = await sign_in(Role.admin)
    r = await b.client.post(
        "/api/v1/integrations", json={"name": "prom", "kind": "prometheus"}, headers=bearer(b.token)
    )
    key = r.json()["key"]
    alerts = [
        {
            "labels": {"alertname": f"Down{i}", "severity": "critical"},
            "annotations": {"summary": f"<b>api {i}</b> down"},
        }
        for i in range(12)
    ]
    assert (await b.client.post("/api/v2/alerts", json=alerts, headers=bearer(key))).status_code == 200
    html = await b.page("/incidents/INC-1")
    assert 'id="alerts"' in html and "12 firing" in html
    assert "&lt;b&gt;api 0&lt;/b&gt; down" in html and "<b>api 0</b>" not in html
    assert "opened the incident" in html and "via prom" in html


async def test_an_alert_on_the_incident_page_shows_its_labels_links_and_details(
    sign_in: Callable[[Role], Awaitable[Browser]], app: FastAPI
) -> None:
    """What the sender attached, for the engineer: PagerDuty's custom details, the source link, the
    labels; a link that is not http(s) is not made a link."""
    b = await sign_in(Role.admin)
    r = await b.client.post(
        "/api/v1/integrations", json={"name": "pd", "kind": "pagerduty"}, headers=bearer(b.token)
    )
    event = {
        "routing_key": r.json()["key"],
        "event_action": "trigger",
        "payload": {
            "summary": "Magic link emails failing",
            "source": "sendgrid",
            "severity": "error",
            "custom_details": {"bounced": 412, "note": "<script>x()</script>"},
        },
        "links": [
            {"href": "https://status.sendgrid.com", "text": "SendGrid status"},
            {"href": "javascript:alert(1)", "text": "bad"},
        ],
    }
    assert (await b.client.post("/v2/enqueue", json=event)).status_code == 202
    listed = (await b.client.get("/api/v1/alerts", headers=bearer(b.token))).json()
    assert listed[0]["details"] == {"bounced": 412, "note": "<script>x()</script>"}
    html = await b.page("/incidents/INC-1")
    assert '<a href="https://status.sendgrid.com" rel="noopener noreferrer nofollow"' in html
    assert "javascript:" not in html and "<script>x()" not in html
    assert "&#34;bounced&#34;: 412" in html or '"bounced": 412' in html
    prom = await b.client.post(
        "/api/v1/integrations", json={"name": "prom", "kind": "prometheus"}, headers=bearer(b.token)
    )
    firing = {
        "labels": {"alertname": "ApiDown", "instance": "api-1"},
        "annotations": {"summary": "api-1 down", "runbook_url": "https://wiki.example/api-down"},
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
    }
    assert (
        await b.client.post("/api/v2/alerts", json=[firing], headers=bearer(prom.json()["key"]))
    ).is_success
    html = await b.page("/incidents/INC-1")  # the same (service-less) group: one incident
    assert '<a href="https://wiki.example/api-down" rel="noopener noreferrer nofollow"' in html
    assert (
        '<a href="http://prometheus.example/graph?g0.expr=up"' in html
        and "<code>instance=api-1</code>" in html
    )
    resolved = await b.client.post("/api/v1/incidents/INC-1/resolve", json={}, headers=bearer(b.token))
    assert resolved.status_code == 200, resolved.text
    assert "2 open alerts resolved with it" in await b.page("/incidents/INC-1")


async def test_a_resolution_s_override_reason_is_on_the_timeline(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> None:
    b = await sign_in(Role.admin)
    await declare(b, title="Checkout slow")
    h = bearer(b.token)
    assert (
        await b.client.post("/api/v1/incidents/INC-1/status", json={"status": "mitigated"}, headers=h)
    ).is_success
    r = await b.client.post(
        "/api/v1/incidents/INC-1/resolve", json={"override_reason": "customer confirmed the fix"}, headers=h
    )
    assert r.status_code == 200, r.text
    page = await b.page("/incidents/INC-1")
    assert "Override:</span> customer confirmed the fix" in page


async def test_a_flapping_incident_says_so(sign_in: Callable[[Role], Awaitable[Browser]]) -> None:
    b = await sign_in(Role.admin)
    r = await b.client.post(
        "/api/v1/integrations", json={"name": "checks", "kind": "generic"}, headers=bearer(b.token)
    )
    key = bearer(r.json()["key"])
    for status in ("firing", "resolved", "firing", "resolved"):
        body = {"summary": "Login <slow>", "dedup_key": "login", "status": status}
        assert (
            await b.client.post("/api/v1/integrations/generic", json=body, headers=key)
        ).status_code == 202
    page = await b.page("/incidents/INC-1")
    assert "Flapping · reopened 1 time" in page
    assert "Reopened</span>" in page
    assert (
        "alert &#39;Login &lt;slow&gt;&#39; is back 0s after the incident resolved itself: flapping" in page
    )
    assert "flapping: it stays open until someone acknowledges it" in page


async def test_silencing_from_an_alert_and_ending_it(sign_in: Callable[[Role], Awaitable[Browser]]) -> None:
    """In a storm the person on call silences from the incident page: the alert's labels fill the form,
    the lines that make it too narrow are removed, and what matches later is muted until it is ended."""
    b = await sign_in(Role.responder)
    admin = await sign_in(Role.admin)
    r = await admin.client.post(
        "/api/v1/integrations", json={"name": "prom", "kind": "prometheus"}, headers=bearer(admin.token)
    )
    key = bearer(r.json()["key"])
    disk = {"labels": {"alertname": "DiskFull", "instance": "db-1"}, "annotations": {"summary": "db-1 disk"}}
    assert (await b.client.post("/api/v2/alerts", json=[disk], headers=key)).is_success

    incident = await b.page("/incidents/INC-1")
    link = re.search(r'<a href="(/silences\?[^"]+)">Silence alerts like this</a>', incident)
    assert link, incident
    form = await b.page(link[1].replace("&amp;", "&"))
    assert ">alertname=DiskFull\ninstance=db-1</textarea>" in form
    assert 'aria-current="page">Silences</a>' in form

    for fields, message in [
        ({"matchers": " \n", "duration": "2h", "comment": "x"}, "Give at least one matcher"),
        ({"matchers": "alertname DiskFull", "duration": "2h", "comment": "x"}, "is not a matcher"),
        ({"matchers": "instance=~db-(", "duration": "2h", "comment": "x"}, "not a regular expression"),
        (
            {"matchers": "alertname=DiskFull", "duration": "soon", "comment": "x"},
            "Duration is not a duration",
        ),
        ({"matchers": "alertname=DiskFull", "duration": "200d", "comment": "x"}, "between 1m and 90d"),
        ({"matchers": "alertname=DiskFull", "duration": "2h", "comment": " "}, "Say why"),
    ]:
        refused = await b.post("/silences", fields)
        assert refused.status_code == 422, (fields, refused.text)
        assert message in refused.text and f">{fields['matchers']}</textarea>" in refused.text

    made = await b.post(
        "/silences", {"matchers": "alertname=DiskFull\n", "duration": "2h", "comment": "cleanup"}
    )
    assert made.status_code == 303 and made.headers["location"] == "/silences"
    page = await b.page("/silences")
    assert "<code>alertname=DiskFull</code>" in page and "cleanup <span" in page and "2h left" in page
    (silence,) = (await b.client.get("/api/v1/silences", headers=bearer(b.token))).json()
    assert silence["matchers"] == [
        {"name": "alertname", "value": "DiskFull", "is_regex": False, "is_equal": True}
    ]
    assert silence["created_by"] == "responder-web" and silence["kind"] == "silence"

    other = {"labels": {"alertname": "DiskFull", "instance": "db-2"}}  # a new alert the silence matches
    assert (await b.client.post("/api/v2/alerts", json=[other], headers=key)).is_success
    muted = {
        a["labels"]["instance"]: a["muted_by"]
        for a in (await b.client.get("/api/v1/alerts", headers=bearer(b.token))).json()
    }
    assert muted == {"db-1": None, "db-2": f"silence:{silence['id']}"}
    incident = await b.page("/incidents/INC-1")  # the muted alert joined the open incident, marked so
    assert f'<a class="muted" href="/silences#silence-{silence["id"]}"' in incident

    viewer = await sign_in(Role.viewer)
    seen = await viewer.page("/silences")
    assert "<code>alertname=DiskFull</code>" in seen and "End now" not in seen and "New silence" not in seen
    assert (await viewer.post(f"/silences/{silence['id']}/expire")).status_code == 403
    assert (await b.post("/silences/99999/expire")).status_code == 404
    assert (await b.post("/silences/x1/expire")).status_code == 404

    ended = await b.post(f"/silences/{silence['id']}/expire")
    assert ended.status_code == 303
    assert "Nothing is silenced." in await b.page("/silences")
    assert (await b.client.get("/api/v1/silences", headers=bearer(b.token))).json() == []


async def test_the_alerts_page_lists_every_integration_s_alerts(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> None:
    b = await sign_in(Role.admin)
    h = bearer(b.token)
    prom = (
        await b.client.post("/api/v1/integrations", json={"name": "prom", "kind": "prometheus"}, headers=h)
    ).json()
    pd = (
        await b.client.post("/api/v1/integrations", json={"name": "pd", "kind": "pagerduty"}, headers=h)
    ).json()
    disk = {
        "labels": {"alertname": "DiskFull", "instance": "db-1"},
        "annotations": {"summary": "db-1 disk full"},
    }
    assert (await b.client.post("/api/v2/alerts", json=[disk], headers=bearer(prom["key"]))).is_success
    event = {
        "routing_key": pd["key"],
        "event_action": "trigger",
        "dedup_key": "mail",
        "payload": {"summary": "Mail bouncing", "source": "sendgrid", "severity": "error"},
    }
    assert (await b.client.post("/v2/enqueue", json=event)).status_code == 202
    silence = {"matchers": [{"name": "alertname", "value": "Noise"}], "ends_at": "2099-01-01T00:00:00Z"}
    assert (await b.client.post("/api/v1/silences", json=silence, headers=h)).status_code == 201
    noise = {"labels": {"alertname": "Noise"}}
    assert (await b.client.post("/api/v2/alerts", json=[noise], headers=bearer(prom["key"]))).is_success

    page = await b.page("/alerts")
    assert re.findall(r'<li data-alert="(\d+)">', page) == ["3", "2", "1"]  # newest first
    assert "3 firing · 0 acknowledged · of these, 1 muted (silenced or inhibited)" in page
    assert "prom · prometheus" in page and "pd · sendgrid" in page
    assert '<a href="/incidents/INC-1">INC-1</a>' in page and "Mail bouncing" in page
    assert page.count("Silence alerts like this") == 2  # not on the one already silenced
    assert 'aria-current="page">Alerts</a>' in page and 'aria-current="page">Open</a>' in page

    event["event_action"] = "resolve"
    assert (await b.client.post("/v2/enqueue", json=event)).status_code == 202
    resolved = await b.page("/alerts?status=resolved")
    assert re.findall(r'<li data-alert="(\d+)">', resolved) == ["2"]
    assert "Silence alerts like this" not in resolved
    assert "No acknowledged alerts." in await b.page("/alerts?status=acknowledged")
    assert re.findall(r'<li data-alert="(\d+)">', await b.page("/alerts?status=bogus")) == ["3", "1"]


async def responder_with_prometheus(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> tuple[Browser, dict[str, str]]:
    """A signed-in responder, and the headers that send alerts to a new Prometheus integration."""
    b = await sign_in(Role.responder)
    admin = bearer((await sign_in(Role.admin)).token)
    r = await b.client.post(
        "/api/v1/integrations", json={"name": "prom", "kind": "prometheus"}, headers=admin
    )
    return b, bearer(r.json()["key"])


async def test_the_alerts_page_filters_a_storm_and_counts_what_it_is_made_of(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> None:
    b, key = await responder_with_prometheus(sign_in)
    storm = [{"labels": {"alertname": "DiskFull", "instance": f"db-{i}"}} for i in range(12)]
    storm += [{"labels": {"alertname": "HighLatency", "instance": f"lb-{i}"}} for i in range(5)]
    assert (await b.client.post("/api/v2/alerts", json=storm, headers=key)).is_success

    page = await b.page("/alerts")
    chips = re.findall(r'<a href="([^"]+)" data-group="([^"]*)">', page)
    assert [group for _, group in chips] == ["DiskFull", "HighLatency"]
    assert '<span class="count">12</span>' in page and '<span class="count">5</span>' in page
    assert "Silence alerts matching this filter" not in page  # no filter yet

    narrowed = await b.page(html.unescape(chips[1][0]))
    assert re.findall(r'<li data-alert="(\d+)">', narrowed) == ["17", "16", "15", "14", "13"]
    assert 'value="alertname=&#34;HighLatency&#34;"' in narrowed
    silence = re.search(r'<a href="(/silences\?[^"]+)">Silence alerts matching this filter</a>', narrowed)
    assert silence and html.unescape(silence[1]) == "/silences?m=alertname%3DHighLatency"
    assert "alertname=HighLatency</textarea>" in await b.page(html.unescape(silence[1]))

    regex = await b.page("/alerts?" + urlencode({"f": 'alertname="DiskFull", instance=~"db-1.*"'}))
    assert re.findall(r'<li data-alert="(\d+)">', regex) == ["12", "11", "2"]  # db-11, db-10, db-1
    by_instance = await b.page("/alerts?" + urlencode({"f": "alertname=HighLatency", "by": "instance"}))
    assert re.findall(r'data-group="([^"]*)"', by_instance) == ["lb-0", "lb-1", "lb-2", "lb-3", "lb-4"]
    assert 'aria-current="page">instance</a>' in by_instance

    bad = await b.client.get("/alerts", params={"f": "alertname"})
    assert bad.status_code == 400 and "The filter is not understood" in bad.text
    assert 'value="alertname"' in bad.text  # what was typed, to be mended
    missing = await b.client.get("/alerts", params={"incident": "INC-99"})
    assert missing.status_code == 400 and "INC-99" in missing.text
    assert "No open alerts match this filter." in await b.page("/alerts?f=alertname%3DNothing")

    incident = await b.page("/incidents/INC-1")  # one incident: the storm; its alerts counted by name
    link = re.search(
        r'<a href="([^"]+)" data-group="DiskFull">DiskFull <span class="count">12</span>', incident
    )
    assert link, incident
    of_incident = await b.page(html.unescape(link[1]))
    assert len(re.findall(r"<li data-alert=", of_incident)) == 12
    assert '<h1>Alerts of <a href="/incidents/INC-1">INC-1</a></h1>' in of_incident

    viewer = await sign_in(Role.viewer)
    seen = await viewer.page(html.unescape(chips[1][0]))
    assert "Silence alerts matching this filter" not in seen and len(re.findall("<li data-alert=", seen)) == 5

    made = await b.post("/silences", {"matchers": "instance=~lb-.*", "duration": "2h", "comment": "moving"})
    assert made.status_code == 303
    more = [{"labels": {"alertname": "HighLatency", "instance": f"lb-{i}"}} for i in range(5, 8)]
    assert (await b.client.post("/api/v2/alerts", json=more, headers=key)).is_success
    silences_page = await b.page("/silences")
    assert re.search(r'data-muting="3">mutes 3 open alerts</a>', silences_page), silences_page
    assert 'href="/alerts?f=instance%3D~%22lb-.%2A%22"' in silences_page


async def test_the_alerts_page_pages_back_through_a_storm(
    sign_in: Callable[[Role], Awaitable[Browser]], monkeypatch: pytest.MonkeyPatch
) -> None:
    b, key = await responder_with_prometheus(sign_in)
    storm = [{"labels": {"alertname": "DiskFull", "instance": f"db-{i}"}} for i in range(12)]
    assert (await b.client.post("/api/v2/alerts", json=storm, headers=key)).is_success
    monkeypatch.setattr(alert_pages, "ALERTS_SHOWN", 5)
    seen: list[str] = []
    path = "/alerts?" + urlencode({"f": "alertname=DiskFull"})
    for _ in range(5):
        page = await b.page(path)
        seen += re.findall(r'<li data-alert="(\d+)">', page)
        older = re.search(r'<a href="([^"]+)" rel="next">Older alerts</a>', page)
        if not older:
            break
        assert "Newest</a>" in page or len(seen) == 5
        path = html.unescape(older[1])
    assert seen == [str(i) for i in range(12, 0, -1)]
    assert (
        len(re.findall("<li data-alert=", await b.page(f"/alerts?before={2**31}"))) == 5
    )  # not an id: ignored


async def test_alerts_are_resolved_by_hand_from_the_console(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> None:
    b, key = await responder_with_prometheus(sign_in)
    sent = [{"labels": {"alertname": "HostDown", "instance": f"old-{i}"}} for i in range(3)]
    sent.append({"labels": {"alertname": "HostDown", "instance": "live-1"}})
    assert (await b.client.post("/api/v2/alerts", json=sent, headers=key)).is_success

    shown = await b.page("/alerts?" + urlencode({"f": "instance=~old-.*"}))
    form = re.search(
        r'<form method="post" action="/alerts/resolve" class="inline" aria-label="Resolve the alerts shown">(.*?)</form>',
        shown,
        re.S,
    )
    assert form and "Resolve the 3 shown" in form[1]
    ids = re.findall(r'name="alert" value="(\d+)"', form[1])
    back = html.unescape(re.search(r'name="back" value="([^"]+)"', form[1])[1])  # type: ignore[index]
    assert ids == ["3", "2", "1"] and back == "/alerts?status=open&f=instance%3D~%22old-.%2A%22"
    done = await b.post("/alerts/resolve", {"alert": ids, "back": back})
    assert done.status_code == 303 and done.headers["location"] == back + "&resolved=3"
    after = await b.page(done.headers["location"])
    assert "Resolved 3 alerts by hand." in after and "No open alerts match this filter." in after
    twice = await b.post("/alerts/resolve", {"alert": ids, "back": back})
    assert "they were resolved already" in await b.page(twice.headers["location"])

    # One alert, from the incident page: back to it, its timeline saying who.
    incident = await b.page("/incidents/INC-1")
    assert incident.count("Resolve this alert") == 1  # the one still open
    done = await b.post("/alerts/resolve", {"alert": "4", "back": "/incidents/INC-1"})
    assert done.status_code == 303 and done.headers["location"] == "/incidents/INC-1#alerts"
    incident = await b.page("/incidents/INC-1")
    assert "1 resolved by hand · 0 still open" in incident and "Resolve this alert" not in incident
    assert "Triggered" in incident  # nobody acknowledged it: it waits for someone

    # Never sent elsewhere; refused without the form's token or the role.
    outside = await b.post("/alerts/resolve", {"alert": "1", "back": "https://evil.example/alerts"})
    assert outside.headers["location"] == "/alerts?resolved=0"
    assert (await b.post("/alerts/resolve", {"alert": "1"}, csrf="forged")).status_code == 403
    live = [{"labels": {"alertname": "HostDown", "instance": "live-2"}}]
    assert (await b.client.post("/api/v2/alerts", json=live, headers=key)).is_success
    assert "Resolve the 1 shown" in await b.page("/alerts?f=alertname%3DHostDown")
    viewer = await sign_in(Role.viewer)
    seen = await viewer.page("/alerts?f=alertname%3DHostDown")
    assert "live-2" in seen and "/alerts/resolve" not in seen
    assert (await viewer.post("/alerts/resolve", {"alert": "1"})).status_code == 403
    junk = await b.post("/alerts/resolve", {"alert": ["x", "9" * 40, "-1"], "back": "/alerts"})
    assert junk.status_code == 303 and junk.headers["location"] == "/alerts?resolved=0"


async def test_integrations_are_made_and_rekeyed_on_the_console_with_what_to_paste(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> None:
    b = await sign_in(Role.admin)
    assert "No integrations yet" in await b.page("/integrations")
    made = await b.post(
        "/integrations", {"name": "prod-prometheus", "kind": "prometheus", "service": "portal"}
    )
    assert made.status_code == 201, made.text
    key = re.search(r'<code class="secret" aria-label="Key">([0-9a-f]{32})</code>', made.text)
    assert key, made.text
    assert "credentials: " + key[1] in made.text and "targets: [&#34;tocsin.test&#34;]" in made.text
    alert = [{"labels": {"alertname": "DiskFull"}}]
    assert (await b.client.post("/api/v2/alerts", json=alert, headers=bearer(key[1]))).status_code == 200
    page = await b.page("/integrations")
    assert '<tr data-integration="prod-prometheus">' in page and key[1] not in page  # never shown again

    rotated = await b.post("/integrations/prod-prometheus/key")
    assert rotated.status_code == 200
    new = re.search(r'<code class="secret" aria-label="Key">([0-9a-f]{32})</code>', rotated.text)
    assert new and new[1] != key[1]
    assert (await b.client.post("/api/v2/alerts", json=alert, headers=bearer(key[1]))).status_code == 401
    assert (await b.client.post("/api/v2/alerts", json=alert, headers=bearer(new[1]))).status_code == 200

    assert (await b.post("/integrations/prod-prometheus/disable")).status_code == 303
    assert "Disabled</span>" in await b.page("/integrations")
    assert (await b.client.post("/api/v2/alerts", json=alert, headers=bearer(new[1]))).status_code == 401
    assert (await b.post("/integrations/prod-prometheus/enable")).status_code == 303
    assert (await b.client.post("/api/v2/alerts", json=alert, headers=bearer(new[1]))).status_code == 200

    taken = await b.post("/integrations", {"name": "prod-prometheus", "kind": "generic"})
    assert taken.status_code == 409 and "prod-prometheus" in taken.text
    bad = await b.post("/integrations", {"name": "Prod Prometheus", "kind": "generic"})
    assert bad.status_code == 422 and "Name has characters that are not allowed here." in bad.text
    assert 'value="Prod Prometheus"' in bad.text  # the form keeps what was typed
    assert (await b.post("/integrations/nope/disable")).status_code == 404
    assert (await b.post("/integrations/prod-prometheus/explode")).status_code == 404

    responder = await sign_in(Role.responder)
    assert (await responder.client.get("/integrations")).status_code == 403
    assert 'href="/integrations"' not in await responder.page("/")
    assert (await responder.post("/integrations", {"name": "x", "kind": "generic"})).status_code == 403


async def test_admins_manage_users_and_their_tokens_on_the_console(
    sign_in: Callable[[Role], Awaitable[Browser]],
) -> None:
    b = await sign_in(Role.admin)
    page = await b.page("/users")
    assert '<tr id="user-admin-web" data-user="admin-web">' in page and '<span class="tag">you</span>' in page
    assert 'aria-current="page">Users</a>' in page

    made = await b.post(
        "/users",
        {
            "name": "ada",
            "role": "commander",
            "display_name": "Ada L",
            "email": "ada@example.com",
            "password": "correct horse",
        },
    )
    assert made.status_code == 303 and made.headers["location"] == "/users#user-ada"
    (ada,) = [
        u for u in (await b.client.get("/api/v1/users", headers=bearer(b.token))).json() if u["name"] == "ada"
    ]
    assert ada["role"] == "commander" and ada["email"] == "ada@example.com" and ada["display_name"] == "Ada L"
    taken = await b.post("/users", {"name": "ada", "role": "viewer", "password": "another one"})
    assert taken.status_code == 409 and "user &#39;ada&#39; exists" in taken.text
    assert 'value="ada"' in taken.text and "another one" not in taken.text  # the password is never shown back
    bad = await b.post("/users", {"name": "Ada Lovelace", "role": "viewer"})
    assert bad.status_code == 422 and "Name" in bad.text
    short = await b.post("/users", {"name": "bob", "role": "viewer", "password": "short"})
    assert short.status_code == 422 and "Password" in short.text

    shown = await b.post("/users/ada/tokens", {"label": "laptop"})
    assert shown.status_code == 201
    token = re.search(r'<code class="secret" aria-label="Token">(tsn_[^<]+)</code>', shown.text)
    assert token and "The token laptop of ada, shown this once" in shown.text
    assert (await b.client.get("/api/v1/me", headers=bearer(token[1]))).json()["name"] == "ada"
    page = await b.page("/users")
    assert (
        token[1] not in page
        and "<code>laptop</code>" in page
        and "never used" not in page.split("laptop")[1][:200]
    )
    (info,) = [t for t in (await b.client.get("/api/v1/tokens?user=ada", headers=bearer(b.token))).json()]

    revoked = await b.post(f"/tokens/{info['id']}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/users#user-ada"
    assert (await b.client.get("/api/v1/me", headers=bearer(token[1]))).status_code == 401
    again = await b.post(f"/tokens/{info['id']}/revoke")
    assert again.status_code == 409 and "revoked already" in again.text

    second = re.search(r'aria-label="Token">(tsn_[^<]+)<', (await b.post("/users/ada/tokens", {})).text)
    assert second  # a token named "console" when no name is given
    assert (await b.post("/users/ada/disable")).status_code == 303
    assert (await b.client.get("/api/v1/me", headers=bearer(second[1]))).status_code == 401
    page = await b.page("/users")
    row = page.split('data-user="ada"')[1].split("</tr>")[0]
    assert "Disabled" in row and "New token" not in row and "Enable ada" in row
    refused = await b.post("/users/ada/tokens", {"label": "x"})
    assert refused.status_code == 409 and "is disabled" in refused.text
    assert (await b.post("/users/ada/enable")).status_code == 303
    assert (await b.client.get("/api/v1/me", headers=bearer(second[1]))).status_code == 200

    self_disable = await b.post("/users/admin-web/disable")
    assert self_disable.status_code == 409 and "themselves" in self_disable.text
    assert (await b.post("/users/nobody/disable")).status_code == 404
    assert (await b.post("/users/nobody/tokens", {"label": "x"})).status_code == 404
    assert (await b.post("/users/ada/explode")).status_code == 404
    assert (await b.post("/tokens/99999/revoke")).status_code == 404
    assert (await b.post("/tokens/x1/revoke")).status_code == 404
    assert (await b.post("/users/ada/disable", csrf="forged")).status_code == 403

    commander = await sign_in(Role.commander)
    assert (await commander.client.get("/users")).status_code == 403
    assert 'href="/users"' not in await commander.page("/")
    assert (await commander.post("/users", {"name": "eve", "role": "admin"})).status_code == 403
    assert (await commander.post("/users/ada/disable")).status_code == 403
