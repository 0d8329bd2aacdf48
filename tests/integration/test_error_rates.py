"""Error-rate spikes from a polled /api/monitoring?type=errors (a real local HTTP server) and from
Sentry webhooks, with a fake clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tocsin.alerts.formats import sentry
from tocsin.alerts.signals import FormatError
from tocsin.app import build_runtime
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.monitors import detector_jobs
from tocsin.policy import Policy, PolicyError
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, integration_key, seed_policy_with


class ErrorSummary(ThreadingHTTPServer):
    """A service's monitoring endpoint whose answer the test sets; it records each request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer: tuple[int, Any] = (200, {"summary": {"errors": 0}})
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def errors(self, count: float) -> None:
        self.answer = (200, {"type": "errors", "summary": {"errors": count, "requests": 1000}})


class _Handler(BaseHTTPRequestHandler):
    server: ErrorSummary

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Authorization")))
        status, body = self.server.answer
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[ErrorSummary]:
    server = ErrorSummary()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def policy_with(extra: str) -> Policy:
    return seed_policy_with(extra)


def detectors(url: str) -> str:
    return f"""
error_rates:
  - name: api
    component: api
    source: poll
    url: {url}/api/monitoring?type=errors
    token_env: TOCSIN_TEST_PORTAL_TOKEN
  - name: totals
    source: poll
    url: {url}/totals
    path: summary.total
    counter: true
    interval: 2m
    warmup: 3
  - name: web
    component: application
    source: webhook
    project: front-end
    min_count: 4
    warmup: 5
"""


@pytest.fixture
def rt(db: Database, clock: FakeClock, service: ErrorSummary) -> Runtime:
    policy = policy_with(detectors(service.url))
    return build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy)


async def alerts(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    """Every alert, open or resolved, oldest first."""
    found: list[dict[str, Any]] = []
    for status in ("open", "resolved"):
        r = await client.get("/api/v1/alerts", params={"status": status}, headers=bearer(token))
        assert r.status_code == 200, r.text
        found += r.json()
    return sorted(found, key=lambda a: a["id"])


async def open_alerts(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/alerts", params={"status": "open"}, headers=bearer(token))
    found: list[dict[str, Any]] = r.json()
    return found


async def error_rates(client: httpx.AsyncClient, token: str) -> dict[str, dict[str, Any]]:
    r = await client.get("/api/v1/error-rates", headers=bearer(token))
    assert r.status_code == 200, r.text
    return {d["name"]: d for d in r.json()}


async def minute(rt: Runtime, clock: FakeClock) -> int:
    """One pass of the error-rate loop, then a minute passes."""
    changed = await detector_jobs.check_error_rates(rt)
    clock.advance(minutes=1)
    return changed


async def test_a_polled_spike_raises_one_alert_and_clears(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    clock: FakeClock,
    rt: Runtime,
    service: ErrorSummary,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOCSIN_TEST_PORTAL_TOKEN", "portal-token")
    noise = [47, 49, 48, 50, 46, 48, 49, 47, 48, 48, 50, 46, 48, 47, 49, 48]
    changes = []
    for count in [*noise, 250, 250, 260, 240, 255, 48, 47, 49, 48, *noise]:
        service.errors(count)
        changes.append(await minute(rt, clock))
    assert (
        changes == [0] * 17 + [1] + [0] * 5 + [1] + [0] * 17
    )  # raised at the 2nd high, cleared at the 3rd normal
    first, *_ = [a for a in await alerts(client, tokens["viewer"]) if a["dedup_key"] == "error-rate:api"]
    assert first["summary"] == "api errors 250/min vs baseline 48/min (5.2\u00d7)"
    assert first["status"] == "resolved" and first["component"] == "api"
    api = [p for p, _ in service.requests if p.startswith("/api/monitoring")]
    assert len(api) == len(changes)  # one poll a minute, the interval
    assert {auth for p, auth in service.requests if p.startswith("/api")} == {"Bearer portal-token"}
    state = (await error_rates(client, tokens["viewer"]))["api"]
    assert state["status"] == "normal" and 47 < state["baseline"] < 49 and state["last_error"] == ""


async def test_polls_only_when_due_and_survive_restarts_and_bad_answers(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    clock: FakeClock,
    rt: Runtime,
    db: Database,
    service: ErrorSummary,
) -> None:
    service.errors(20)
    for _ in range(12):
        await minute(rt, clock)
    await detector_jobs.check_error_rates(rt)
    polled = len(service.requests)
    clock.advance(seconds=59)
    await detector_jobs.check_error_rates(rt)
    assert len(service.requests) == polled  # nothing was due yet
    clock.advance(seconds=1)
    # A restarted process keeps the learned baseline and raises at once, with no new warm-up.
    for answer in [(503, {"summary": {}}), (200, b"<html>"), (200, {"summary": {"errors": "many"}})]:
        service.answer = answer
        fresh = build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=rt.policy)
        assert await minute(fresh, clock) == 0
        assert (await error_rates(client, tokens["viewer"]))["api"]["last_error"]
    service.answer = (200, {"summary": {"error_rate": 200}})  # the default's second path
    fresh = build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=rt.policy)
    assert await minute(fresh, clock) == 0
    assert await minute(fresh, clock) == 1
    [alert] = await alerts(client, tokens["viewer"])
    assert alert["summary"] == "api errors 200/min vs baseline 20/min (10\u00d7)"


async def test_a_running_total_is_sampled_as_its_increase_per_minute(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock, rt: Runtime, service: ErrorSummary
) -> None:
    total = 1000
    for minutes in range(40):
        if minutes == 20:
            total = 10  # the service restarted: its total starts again, which is no spike
        # 30 errors a minute, then 300 a minute from minute 30
        total += 300 if minutes >= 30 else 30
        service.answer = (200, {"summary": {"total": total}})
        await minute(rt, clock)
    [alert] = [a for a in await alerts(client, tokens["viewer"]) if a["dedup_key"] == "error-rate:totals"]
    assert alert["summary"] == "totals errors 300/min vs baseline 30/min (10\u00d7)"
    assert alert["status"] == "firing" and alert["severity"] == "P2"


def event_alert(project: str = "front-end", project_id: int = 1) -> dict[str, Any]:
    """An issue alert as Sentry's integration platform sends it (trimmed)."""
    return {
        "action": "triggered",
        "actor": {"id": "sentry", "name": "Sentry", "type": "application"},
        "data": {
            "event": {
                "event_id": "e4874d664c3540c1a32eab185f12c5ab",
                "issue_id": "1117540176",
                "issue_url": "https://sentry.io/api/0/issues/1117540176/",
                "level": "error",
                "project": project_id,
                "title": "ReferenceError: heck is not defined",
                "url": f"https://sentry.io/api/0/projects/test-org/{project}/events/e4874d664c3540c1a32eab185f12c5ab/",
                "web_url": "https://sentry.io/organizations/test-org/issues/1117540176/events/e4874d664c3540c1a32eab185f12c5ab/",
            },
            "triggered_rule": "Very Important Alert Rule!",
            "issue_alert": {"title": "Very Important Alert Rule!", "settings": []},
        },
        "installation": {"uuid": "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"},
    }


@pytest.fixture
async def sentry_key(client: httpx.AsyncClient, tokens: dict[str, str]) -> str:
    return await integration_key(client, tokens["admin"], "sentry", "sentry")


async def test_sentry_events_counted_per_window_raise_and_clear(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock, rt: Runtime, sentry_key: str
) -> None:
    url = f"/api/v1/integrations/sentry?key={sentry_key}"
    hook = {"Sentry-Hook-Resource": "event_alert"}
    per_minute = [5, 6, 4, 5, 5, 6, 4, 5, 5, 5, 30, 28, 31, 5, 4, 6, 5, 5]
    firing = []
    for count in per_minute:
        for _ in range(count):
            r = await client.post(url, json=event_alert(), headers=hook)
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "ok", "events": 1, "counted": ["web"]}
        await minute(rt, clock)
        firing.append(
            any(a["dedup_key"] == "error-rate:web" for a in await open_alerts(client, tokens["viewer"]))
        )
    # A minute's window closes with the first event or loop pass after it: the 2nd high minute (11)
    # raises in minute 12, the 3rd normal one (15) clears in minute 16.
    assert firing == [False] * 12 + [True] * 4 + [False] * 2
    [alert] = [a for a in await alerts(client, tokens["viewer"]) if a["dedup_key"] == "error-rate:web"]
    assert alert["summary"] == "application errors 28/min vs baseline 5/min (5.6\u00d7)"
    assert alert["status"] == "resolved" and alert["component"] == "application"
    # A quiet spell closes its windows as zeros: the baseline learns it, nothing is raised.
    for _ in range(5):
        assert await minute(rt, clock) == 0
    assert (await error_rates(client, tokens["viewer"]))["web"]["last_value"] == 0


async def test_sentry_webhook_protocol(client: httpx.AsyncClient, sentry_key: str) -> None:
    url = f"/api/v1/integrations/sentry?key={sentry_key}"
    other = await client.post(
        url, json=event_alert("back-end", 2), headers={"Sentry-Hook-Resource": "event_alert"}
    )
    assert other.json() == {"status": "ok", "events": 1, "counted": []}
    error = {"action": "created", "data": {"error": event_alert()["data"]["event"]}}
    r = await client.post(url, json=error, headers={"Sentry-Hook-Resource": "error"})
    assert r.json()["counted"] == ["web"]
    r = await client.post(url, json=error)  # no header: recognised by its shape
    assert r.json()["counted"] == ["web"]
    plugin = {
        "project": "front-end",
        "project_name": "Front End",
        "level": "error",
        "message": "boom",
        "id": "7",
    }
    assert (await client.post(url, json=plugin)).json()["counted"] == ["web"]
    issue = {"action": "resolved", "data": {"issue": {"id": "1"}}}
    r = await client.post(url, json=issue, headers={"Sentry-Hook-Resource": "issue"})
    assert r.json() == {"status": "ok", "events": 0, "counted": []}
    r = await client.post(url, json=[1, 2])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    r = await client.post(url, content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await client.post("/api/v1/integrations/sentry", json=event_alert())
    assert r.status_code == 401 and r.json()["error"]["field"] == "key"


async def test_sentry_signature_is_checked_when_the_client_secret_is_set(
    client: httpx.AsyncClient, rt: Runtime, sentry_key: str
) -> None:
    rt.settings.sentry_client_secret = "sentry-client-secret"
    url = f"/api/v1/integrations/sentry?key={sentry_key}"
    body = json.dumps(event_alert()).encode()
    good = hmac.new(b"sentry-client-secret", body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "Sentry-Hook-Resource": "event_alert"}
    r = await client.post(url, content=body, headers={**headers, "Sentry-Hook-Signature": good})
    assert r.status_code == 200 and r.json()["counted"] == ["web"]
    for signature in (None, "0" * 64, hmac.new(b"other", body, hashlib.sha256).hexdigest()):
        sent = {**headers, "Sentry-Hook-Signature": signature} if signature else headers
        r = await client.post(url, content=body, headers=sent)
        assert r.status_code == 401 and r.json()["error"]["field"] == "sentry-hook-signature"
    tampered = body.replace(b"front-end", b"back-end")
    r = await client.post(url, content=tampered, headers={**headers, "Sentry-Hook-Signature": good})
    assert r.status_code == 401


def test_sentry_parser() -> None:
    [event] = sentry.parse(event_alert(), "event_alert")
    assert (event.project, event.project_id, event.issue_id) == ("front-end", "1", "1117540176")
    assert event.title == "ReferenceError: heck is not defined" and event.level == "error"
    no_url = event_alert()
    del no_url["data"]["event"]["url"]
    assert sentry.parse(no_url, "event_alert")[0].project == "1"
    assert sentry.parse({"action": "critical", "data": {}}, "metric_alert") == []
    for body, resource in [
        ({"action": "created", "data": {}}, "event_alert"),
        ({"action": "triggered", "data": {"event": "x"}}, "event_alert"),
        ({"action": "triggered", "data": {"event": {}}}, "event_alert"),
        ({"hello": "world"}, None),
        ("text", None),
    ]:
        with pytest.raises(FormatError):
            sentry.parse(body, resource)


def test_extracting_the_error_count() -> None:
    paths = ("summary.errors", "summary.error_rate")
    assert detector_jobs.extract({"summary": {"errors": 3}}, paths) == 3
    assert detector_jobs.extract({"summary": {"error_rate": 0.25}}, paths) == 0.25
    assert detector_jobs.extract({"data": [{"count": "12"}]}, ("data.0.count",)) == 12
    for document in [{"summary": {}}, {"summary": {"errors": True}}, {"summary": {"errors": -1}}, []]:
        with pytest.raises(detector_jobs.PollError):
            detector_jobs.extract(document, paths)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, source: poll}", "source poll needs a url"),
        ("{name: a, source: webhook, url: 'http://x'}", "url is for source poll"),
        ("{name: a, source: poll, url: 'http://x', project: p}", "project is for source webhook"),
        ("{name: a, source: webhook, component: nope}", 'unknown component "nope"'),
        ("{name: a, source: webhook, factor: 1}", "greater than 1"),
        ("{name: a, source: webhook, factor: 3, clear_factor: 4}", "clear_factor must be below factor"),
        ("{name: a, source: poll, url: 'http://x', path: 'a..b'}", "is not a path"),
        ("{name: a, source: sms}", "'poll' or 'webhook'"),
    ],
)
def test_policy_checks_error_rates(entry: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_with(f"error_rates:\n  - {entry}\n")
    assert message in str(caught.value)
