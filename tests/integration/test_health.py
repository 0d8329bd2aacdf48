"""/api/health, /api/monitoring and /metrics: on both databases, and with a database that is gone."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tocsin.app import build_runtime, create_app
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.health import service
from tocsin.testing import FakeClock, bearer


@pytest.fixture
def rt_backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


async def test_health_is_ok_with_the_database(client: httpx.AsyncClient, rt_backend: str) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"]
    assert body["database"] == {"status": "ok", "backend": rt_backend, "detail": "ok"}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers, like a database behind a dead proxy."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _unreachable_url(backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return "postgresql+psycopg://postgres@127.0.0.1:1/tocsin"  # nothing listens on port 1
    return f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'tocsin.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
async def down(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database cannot be reached."""
    threads = set(threading.enumerate())
    db = Database(_unreachable_url(request.param, tmp_path))
    if request.param == "sqlite":
        (tmp_path / "gone").rmdir()  # Database() creates SQLite's directory; take it away again
    rt = build_runtime(Settings(database_url=db.url, background=False), clock=FakeClock(), db=db)
    transport = httpx.ASGITransport(app=create_app(runtime=rt))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as c:
            yield c
    finally:
        await db.dispose()
        # aiosqlite stops a failed connection's worker thread without waiting for it; let it finish
        # while this test's event loop is still open to hear back.
        for thread in set(threading.enumerate()) - threads:
            thread.join(timeout=2)


async def test_health_is_503_with_the_reason_when_the_database_is_gone(down: httpx.AsyncClient) -> None:
    started = time.monotonic()
    r = await down.get("/api/health")
    assert time.monotonic() - started < 5
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy"
    assert body["database"]["status"] == "unreachable"
    assert body["database"]["detail"] and body["database"]["detail"] != "ok"
    r = await down.get("/api/monitoring?type=health")
    assert r.status_code == 503
    assert r.json()["summary"]["status"] == "unhealthy"


async def test_api_routes_are_503_in_our_shape_when_the_database_is_gone(down: httpx.AsyncClient) -> None:
    for path in ("/api/v1/incidents", "/api/monitoring?type=metrics", "/metrics"):
        r = await down.get(path, headers=bearer("tsn_whatever"))
        assert r.status_code == 503, (path, r.text)
        assert r.json()["error"]["code"] == "unavailable"
        assert r.headers["retry-after"]


async def test_a_database_that_never_answers_times_out(silent_server: int) -> None:
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/tocsin")
    try:
        started = time.monotonic()
        body = await service.health(db, within=0.3)
        assert time.monotonic() - started < 2
        assert body["status"] == "unhealthy"
        assert body["database"]["detail"] == "no answer within 0.3 s"
    finally:
        await db.dispose()


async def test_monitoring_summaries(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    h = bearer(tokens["viewer"])
    r = await client.get("/api/monitoring")
    assert r.status_code == 200 and r.json()["type"] == "health"
    assert r.json()["summary"]["status"] == "ok"

    responder = bearer(tokens["responder"])
    for severity in ("P0", "P2", "P2"):
        r = await client.post(
            "/api/v1/incidents",
            json={"title": f"{severity} trouble", "severity": severity},
            headers=responder,
        )
        assert r.status_code == 201, r.text
    clock.advance(minutes=20)  # past the P0's 15-minute response deadline, within the P2s' two hours
    summary = (await client.get("/api/monitoring?type=metrics", headers=h)).json()["summary"]
    assert summary["open_incidents"] == 3
    assert summary["open_by_severity"] == {"P0": 1, "P2": 2}
    assert summary["sla_breaches"]["response"] == 1
    assert summary["breached_incidents"] == 1

    await client.get("/api/v1/incidents/INC-999", headers=h)  # a 404, counted as a client error
    summary = (await client.get("/api/monitoring?type=errors", headers=h)).json()["summary"]
    assert summary["requests"] >= 6 and summary["client_errors"] >= 1 and summary["server_errors"] == 0
    assert summary["error_rate"] == 0.0


async def test_monitoring_type_is_checked_and_needs_a_token_past_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/monitoring?type=bogus")
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "type"
    for kind in ("metrics", "errors"):
        r = await client.get(f"/api/monitoring?type={kind}")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/metrics")).status_code == 401


async def test_metrics_are_prometheus_text(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    responder = bearer(tokens["responder"])
    for severity in ("P0", "P1", "P1"):
        await client.post(
            "/api/v1/incidents",
            json={"title": f"{severity} trouble", "severity": severity},
            headers=responder,
        )
    await client.post("/api/v1/incidents/INC-2/resolve", json={}, headers=responder)
    clock.advance(minutes=40)
    r = await client.get("/metrics", headers=bearer(tokens["viewer"]))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    open_incidents = {s.labels["severity"]: s.value for s in families["tocsin_open_incidents"].samples}
    assert open_incidents == {"P0": 1.0, "P1": 1.0, "P2": 0.0, "P3": 0.0}
    breaches = {s.labels["kind"]: s.value for s in families["tocsin_sla_breaches"].samples}
    assert breaches["response"] == 2.0  # P0 after 15 min and P1 after 30 min unacknowledged
    assert {"tocsin_http_requests", "tocsin_http_request_duration_seconds"} <= set(families)
