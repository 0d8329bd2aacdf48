"""Health-check monitors against real local servers (HTTP, TCP, self-signed TLS), on SQLite and PostgreSQL.

The runner's clock is a FakeClock moved by the tests; the checks themselves are real network traffic to
127.0.0.1. How late 1,000 monitors start on the real clock is measured by bench/monitors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tocsin.alerts.models import Alert
from tocsin.app import build_runtime, create_app
from tocsin.auth.roles import Role
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.monitors import jobs
from tocsin.monitors.models import MonitorDaily, MonitorHourly, MonitorResult, MonitorState
from tocsin.monitors.runner import MonitorRunner
from tocsin.policy import Policy, default_policy
from tocsin.policy.monitors import MonitorSpec
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, user_with_token

# ------------------------------------------------------------------------------------- local servers


class LocalServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 (optionally TLS) whose answer the test switches."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.status = 200
        self.body: Any = {"status": "ok"}
        self.delay = 0.0
        self.hits = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._closing = asyncio.Event()

    async def __aenter__(self) -> LocalServer:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.context, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        # Handlers end on their own once their connection is gone (cancelling them makes asyncio log).
        self._closing.set()
        for writer in self._handlers.values():
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                if length:
                    await reader.readexactly(length)
                self.hits += 1
                if self.delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self.delay)
                if self._closing.is_set():
                    return
                body = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (self.status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._handlers.pop(task, None)
            writer.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connecting is refused


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1, valid for 30 days from now."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# ------------------------------------------------------------------------------------------ runtimes

MakeRuntime = Callable[..., Runtime]


def monitor(name: str, **fields: Any) -> MonitorSpec:
    return MonitorSpec.model_validate({"name": name, "component": "api", **fields})


def with_monitors(*monitors: MonitorSpec) -> Policy:
    return default_policy().model_copy(update={"monitors": list(monitors)})


@pytest.fixture
async def make_rt(db: Database, clock: FakeClock) -> AsyncIterator[MakeRuntime]:
    made: list[Runtime] = []

    def make(*monitors: MonitorSpec) -> Runtime:
        made.append(
            build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=with_monitors(*monitors))
        )
        return made[-1]

    yield make
    for rt in made:
        await rt.ingestor.close()


@pytest.fixture
async def runners() -> AsyncIterator[Callable[[Runtime], MonitorRunner]]:
    made: list[MonitorRunner] = []

    def make(rt: Runtime, **options: Any) -> MonitorRunner:
        made.append(MonitorRunner(rt, **options))
        return made[-1]

    yield make
    for runner in made:
        await runner.close()


@contextlib.asynccontextmanager
async def api(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
        yield client


def stepper(runner: MonitorRunner, clock: FakeClock, every: timedelta) -> Callable[[], Awaitable[int]]:
    async def step() -> int:
        clock.advance(every)
        return await runner.tick(wait=True)

    return step


async def monitor_alerts(rt: Runtime) -> list[Alert]:
    async with rt.db.session() as session:
        return list(
            await session.scalars(select(Alert).where(Alert.dedup_key.like("monitor:%")).order_by(Alert.id))
        )


# ------------------------------------------------------------------------------------------- tests


async def test_http_monitor_opens_an_alert_after_three_failures_and_resolves_after_two_successes(
    make_rt: MakeRuntime,
    runners: Callable[[Runtime], MonitorRunner],
    clock: FakeClock,
    tokens: dict[str, str],
) -> None:
    async with LocalServer() as server:
        rt = make_rt(
            monitor(
                "shop-api",
                url=f"http://127.0.0.1:{server.port}/api/health",
                conditions=["[STATUS] == 200", "[BODY].status == ok and [RESPONSE_TIME] < 5000"],
            )
        )
        runner = runners(rt)
        step = stepper(runner, clock, timedelta(seconds=30))
        await runner.tick(wait=True)
        assert await step() == 1
        server.status, server.body = 503, {"status": "down"}
        for _ in range(2):
            assert await step() == 1
        assert await monitor_alerts(rt) == []  # two failures: below the threshold of three
        await step()
        (alert,) = await monitor_alerts(rt)
        assert alert.status == "firing" and alert.dedup_key == "monitor:shop-api"
        assert (
            alert.labels["monitor"] == "shop-api" and alert.component == "api" and alert.service == "portal"
        )
        assert alert.summary.startswith("Monitor shop-api is down (3 failed checks): [STATUS] (503) == 200;")
        assert '[BODY].status ("down") == ok' in alert.summary
        assert alert.incident_id is not None
        await step()  # still failing: no second alert
        server.status, server.body = 200, {"status": "ok"}
        await step()
        assert (await monitor_alerts(rt))[0].status == "firing"  # one success: below the threshold of two
        await step()
        (alert,) = await monitor_alerts(rt)
        assert alert.status == "resolved"
        assert server.hits == 7

        async with api(rt) as client:
            listed = (await client.get("/api/v1/monitors", headers=bearer(tokens["viewer"]))).json()
            (shop,) = listed
            assert shop["status"] == "up" and shop["alerted"] is False and shop["consecutive_successes"] == 2
            assert shop["last_result"]["ok"] is True and shop["last_result"]["status_code"] == 200
            assert shop["uptime"]["24h"] == pytest.approx(3 / 7)
            r = await client.get(
                "/api/v1/monitors/shop-api/results?limit=3", headers=bearer(tokens["viewer"])
            )
            assert r.status_code == 200
            assert [x["ok"] for x in r.json()] == [True, True, False]
            failed = r.json()[2]
            assert failed["status_code"] == 503 and failed["failed"].startswith("[STATUS] (503) == 200; ")
            assert (
                await client.get("/api/v1/monitors/nope/results", headers=bearer(tokens["viewer"]))
            ).status_code == 404
            assert (await client.get("/api/v1/monitors")).status_code == 401
            incident = (
                await client.get(f"/api/v1/incidents/{alert.incident_id}", headers=bearer(tokens["viewer"]))
            ).json()
            assert incident["status"] == "resolved"  # cleared before anyone acknowledged it


async def test_errors_timeouts_and_a_closed_tcp_port(
    make_rt: MakeRuntime, runners: Callable[[Runtime], MonitorRunner], clock: FakeClock
) -> None:
    async with LocalServer() as server:
        server.delay = 3.0
        rt = make_rt(
            monitor(
                "slow",
                url=f"http://127.0.0.1:{server.port}/",
                timeout="1s",
                interval="5s",
                failure_threshold=1,
            ),
            monitor("refused-http", url=f"http://127.0.0.1:{closed_port()}/", interval="5s", timeout="5s"),
            monitor("open-tcp", kind="tcp", host="127.0.0.1", port=server.port, interval="5s", timeout="5s"),
            monitor(
                "closed-tcp", kind="tcp", host="127.0.0.1", port=closed_port(), interval="5s", timeout="5s"
            ),
            monitor(
                "expect-closed",
                kind="tcp",
                host="127.0.0.1",
                port=closed_port(),
                interval="5s",
                timeout="5s",
                conditions=["[CONNECTED] == false"],
            ),
        )
        runner = runners(rt)
        await runner.tick()
        clock.advance(seconds=5)
        assert await runner.tick(wait=True) == 5
        async with rt.db.session() as session:
            states = {s.monitor: s for s in await session.scalars(select(MonitorState))}
        assert states["slow"].last_error == "timed out after 1s" and states["slow"].status == "down"
        assert states["refused-http"].last_error == "connection refused"
        assert states["refused-http"].last_failed == "[STATUS] (missing) < 400"
        assert states["open-tcp"].last_ok is True and states["open-tcp"].last_latency_ms is not None
        assert (
            states["closed-tcp"].last_ok is False and states["closed-tcp"].last_error == "connection refused"
        )
        assert states["closed-tcp"].last_failed == "[CONNECTED] (false) == true"
        assert states["expect-closed"].last_ok is True
        (alert,) = await monitor_alerts(rt)  # failure_threshold 1: the slow one alerted at once
        assert alert.summary == "Monitor slow is down (1 failed check): timed out after 1s"


async def test_tls_certificate_expiry_on_a_self_signed_server(
    make_rt: MakeRuntime,
    runners: Callable[[Runtime], MonitorRunner],
    clock: FakeClock,
    self_signed: ssl.SSLContext,
) -> None:
    clock.set(datetime.now(UTC))  # the certificate is valid for 30 days from the real now
    async with LocalServer(self_signed) as server:
        rt = make_rt(
            monitor("cert", kind="tls", host="127.0.0.1", port=server.port, insecure=True, interval="1h"),
            monitor("cert-verified", kind="tls", host="127.0.0.1", port=server.port, interval="1h"),
            monitor(
                "https",
                url=f"https://127.0.0.1:{server.port}/",
                insecure=True,
                interval="1h",
                conditions=["[STATUS] == 200 and [CERTIFICATE_EXPIRATION] > 20d"],
            ),
        )
        runner = runners(rt)
        await runner.tick()
        clock.advance(hours=1)
        assert await runner.tick(wait=True) == 3
        async with rt.db.session() as session:
            states = {s.monitor: s for s in await session.scalars(select(MonitorState))}
        assert states["cert"].last_ok is True, states["cert"].last_failed
        assert states["https"].last_ok is True, (states["https"].last_error, states["https"].last_failed)
        assert states["cert-verified"].last_ok is False
        assert (states["cert-verified"].last_error or "").startswith("certificate verify failed: self")

        clock.advance(days=20)  # 10 days left: below the default 14 days of a tls monitor
        await runner.tick(wait=True)
        async with rt.db.session() as session:
            cert = await session.get(MonitorState, "cert")
            https = await session.get(MonitorState, "https")
        assert cert is not None and cert.last_ok is False
        assert cert.last_failed is not None and cert.last_failed.startswith("[CERTIFICATE_EXPIRATION] (9d2")
        assert cert.last_failed.endswith(") > 14d")
        assert https is not None and https.last_ok is False


async def test_hourly_and_daily_aggregates_are_time_weighted_and_raw_results_are_pruned(
    make_rt: MakeRuntime,
    runners: Callable[[Runtime], MonitorRunner],
    clock: FakeClock,
    tokens: dict[str, str],
) -> None:
    clock.set(datetime(2026, 11, 26, 15, 0, tzinfo=UTC))
    async with LocalServer() as server:
        rt = make_rt(
            monitor("shop-api", url=f"http://127.0.0.1:{server.port}/", interval="15m", failure_threshold=10)
        )
        runner = runners(rt)
        await runner.tick(wait=True)
        step = stepper(runner, clock, timedelta(minutes=15))
        while clock.now() < datetime(2026, 11, 28, 0, 5, tzinfo=UTC):
            # Down for four checks (one hour of the 27th, as checks stand for the time until the next).
            down = (
                datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
                <= clock.now()
                < datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
            )
            server.status = 503 if down else 200
            await step()
        written = await runner.rollup()
        assert written > 30
        assert await runner.rollup() == 0  # nothing twice

    async with rt.db.session() as session:
        day = await session.get(MonitorDaily, ("shop-api", datetime(2026, 11, 27, tzinfo=UTC)))
        hours = list(
            await session.scalars(
                select(MonitorHourly)
                .where(MonitorHourly.hour >= datetime(2026, 11, 27, tzinfo=UTC))
                .order_by(MonitorHourly.hour)
            )
        )
        first_day = await session.get(MonitorDaily, ("shop-api", datetime(2026, 11, 26, tzinfo=UTC)))
    assert day is not None and first_day is not None
    assert (day.checks, day.ok_checks) == (96, 92)
    assert day.observed_seconds == pytest.approx(86400)
    assert day.up_seconds == pytest.approx(86400 - 3600)
    assert day.latency_p50 is not None and day.latency_p99 is not None and day.latency_p50 <= day.latency_p99
    assert len([h for h in hours if h.hour < datetime(2026, 11, 28, tzinfo=UTC)]) == 24
    assert sum(h.up_seconds for h in hours[:24]) == pytest.approx(day.up_seconds)
    assert first_day.observed_seconds <= 9 * 3600  # observed only since the monitor started, at 15:00

    async with api(rt) as client:
        r = await client.get(
            "/api/v1/monitors/shop-api/aggregates?period=daily&days=3", headers=bearer(tokens["viewer"])
        )
        assert r.status_code == 200
        assert [a["start"][:10] for a in r.json()] == ["2026-11-26", "2026-11-27"]
        assert r.json()[1]["uptime"] == pytest.approx(23 / 24)
        (listed,) = (await client.get("/api/v1/monitors", headers=bearer(tokens["viewer"]))).json()
        assert listed["uptime"]["24h"] == pytest.approx(23 / 24, abs=0.02)

    clock.advance(days=8)
    await runner.rollup()
    async with rt.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(MonitorResult)) == 0
        assert await session.scalar(select(func.count()).select_from(MonitorDaily)) == 3  # kept for years


async def test_one_runner_at_a_time_and_removed_monitors_resolve(
    make_rt: MakeRuntime, runners: Callable[[Runtime], MonitorRunner], clock: FakeClock
) -> None:
    spec = monitor(
        "gone",
        kind="tcp",
        host="127.0.0.1",
        port=closed_port(),
        interval="10s",
        timeout="5s",
        failure_threshold=1,
    )
    rt = make_rt(spec)
    first, second = runners(rt), runners(rt)
    await first.tick()
    assert await second.tick() == 0  # the first holds the lease
    clock.advance(seconds=10)
    assert await first.tick(wait=True) == 1
    assert [a.status for a in await monitor_alerts(rt)] == ["firing"]
    await first.close()  # gives the lease up
    await second.tick()  # takes the lease and the standings the first left
    clock.advance(seconds=10)
    assert await second.tick(wait=True) == 1  # fails again, still alerted: no second alert
    assert [a.status for a in await monitor_alerts(rt)] == ["firing"]
    await second.close()

    without = runners(make_rt())
    await without.rollup()
    assert [a.status for a in await monitor_alerts(rt)] == ["resolved"]


def test_register_adds_the_runner_and_rollup_loops(rt: Runtime) -> None:
    runner = jobs.register(rt)
    assert {"monitors", "monitor-rollup"} <= {loop.name for loop in rt.loops.loops}
    assert runner.specs == {}  # the seed's monitors ship disabled


async def test_the_checks_page_shows_what_fails_first(
    make_rt: MakeRuntime, runners: Callable[[Runtime], MonitorRunner], clock: FakeClock
) -> None:
    """The console's Checks page reads what the API reads: a check down past its threshold is at the top,
    named in the banner, with its last result and the condition that failed."""
    async with LocalServer() as shop, LocalServer() as docs:
        rt = make_rt(
            monitor("aa-docs", url=f"http://127.0.0.1:{docs.port}/docs"),
            monitor("zz-shop", url=f"http://127.0.0.1:{shop.port}/health", conditions=["[STATUS] == 200"]),
        )
        await user_with_token(rt.db, clock, "ada", Role.viewer, password="correct horse battery")
        runner = runners(rt)
        step = stepper(runner, clock, timedelta(seconds=30))
        await runner.tick(wait=True)
        shop.status = 503
        for _ in range(3):
            await step()
        async with api(rt) as client:
            assert (await client.get("/checks")).status_code == 303  # signed in only
            form = await client.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf
            login = {"name": "ada", "password": "correct horse battery", "csrf_token": csrf[1], "next": "/"}
            assert (await client.post("/login", data=login)).status_code == 303
            page = (await client.get("/checks")).text
    assert re.findall(r'<tr data-check="([^"]+)">', page) == ["zz-shop", "aa-docs"]  # failing first
    assert "1 failing:</strong> zz-shop</div>" in page
    assert (
        '<span class="check check-down">Down</span>' in page
        and '<span class="check check-up">Up</span>' in page
    )
    assert "3 of 3 failures" in page and "alert open" in page and " · 503 · " in page
    assert "failed: <code>[STATUS] (503) == 200</code>" in page
    assert "No heartbeats" in page and "No error-rate detectors" in page
    assert 'aria-current="page">Checks</a>' in page
