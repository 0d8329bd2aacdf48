"""The ready-answer protocol (`tocsin.web.ready`) in a real uvicorn server, and in `tocsin serve`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from test_serve import free_port, serving

from tocsin.testing import bearer
from tocsin.web.ready import Ready, ReadyProtocol

READY = Ready.of(Response(b"ready body", media_type="text/plain", headers={"x-ready": "1"}))


class Recorder:
    """An ASGI app that says which requests reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(f"{scope['method']} {scope['path']}")
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        await Response(f"app {scope['path']}".encode(), media_type="text/plain")(scope, receive, send)


def answers(method: bytes, url: bytes) -> Ready | None:
    return READY if url == b"/ready" else None


@contextlib.asynccontextmanager
async def server(app: Recorder) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=ReadyProtocol.serving(answers),
        loop="asyncio",
        log_level="warning",
        lifespan="off",
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    for _ in range(500):  # up to 5 s
        if running.started:
            break
        await asyncio.sleep(0.01)
    assert running.started
    try:
        yield port
    finally:
        running.should_exit = True
        await task


async def exchange(port: int, raw: bytes, until_closed: bool = False) -> bytes:
    """Send raw bytes on one connection; read what comes back until it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 5 if until_closed else 0.5)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        assert not until_closed, f"the connection stayed open after {data!r}"
    writer.close()
    return data


async def test_a_ready_get_is_answered_without_the_app_with_uvicorn_headers() -> None:
    app = Recorder()
    async with server(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200 and ready.content == b"ready body"
        assert ready.headers["x-ready"] == "1" and ready.headers["content-type"].startswith("text/plain")
        assert ready.headers["content-length"] == "10"
        assert ready.headers["server"] == "uvicorn" and "date" in ready.headers
        head = await client.head("/ready")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "10"
        other = await client.get("/other")
        with_query = await client.get("/ready?x=1")
        posted = await client.post("/ready", content=b"{}")
        assert (other.text, with_query.text, posted.text) == ("app /other", "app /ready", "app /ready")
    assert app.paths == ["GET /other", "GET /ready", "POST /ready"]


async def test_keep_alive_pipelining_and_http_1_0() -> None:
    app = Recorder()
    async with server(app) as port:
        # Pipelined on one connection: answers keep the requests' order; a ready path queued behind
        # a request the app is still answering goes to the app, in turn.
        raw = b"".join(
            f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for path in ("/ready", "/slow", "/ready")
        )
        data = await exchange(port, raw)
        assert data.count(b"HTTP/1.1 200 OK") == 3, data
        order = [data.index(b) for b in (b"ready body", b"app /slow", b"app /ready")]
        assert order == sorted(order), data
        # Keep-alive: two ready answers on one connection, which stays open.
        data = await exchange(port, b"GET /ready HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        assert data.count(b"ready body") == 2 and b"connection: close" not in data
        # HTTP/1.0, and 1.1 with Connection: close: answered, then closed.
        for request in (b"GET /ready HTTP/1.0\r\n\r\n", b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n"):
            data = await exchange(port, request, until_closed=True)
            assert data.endswith(b"ready body") and b"connection: close\r\n" in data
        # A ready GET that carries a body: the body is not taken for a next request.
        data = await exchange(
            port, b"GET /ready HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /other HTTP/1.1\r\n\r\n"
        )
        assert data.count(b"HTTP/1.1 200 OK") == 2 and b"app /other" in data
    assert app.paths == ["GET /slow", "GET /ready", "GET /other"]


@pytest.mark.slow
def test_tocsin_serve_answers_the_status_page_as_the_app_does_and_shows_a_change_at_once(
    tmp_path: Path,
) -> None:
    token = "ready-protocol-token-1"
    with serving(tmp_path, TOCSIN_BOOTSTRAP_TOKEN=token) as (url, _):
        for path in ("/status", "/status/api/v2/summary.json", "/status/status.css", "/status/feed.atom"):
            httpx.get(f"{url}{path}")  # rendered once: the next GET is a ready answer
            ready, through_app = httpx.get(f"{url}{path}"), httpx.get(f"{url}{path}?via=app")
            assert ready.status_code == through_app.status_code == 200
            assert ready.content == through_app.content
            assert ready.headers.keys() == through_app.headers.keys()
        assert httpx.get(f"{url}/status/api/v2/status.json").json()["status"]["indicator"] == "none"
        r = httpx.post(
            f"{url}/api/v1/incidents",
            json={"title": "Checkout is down", "severity": "P0", "components": ["api"]},
            headers=bearer(token),
        )
        ref = r.json()["id"]
        httpx.post(f"{url}/api/v1/incidents/{ref}/status-updates", json={}, headers=bearer(token))
        # This process changed the page: the very next GET waits for the new render, not the old bytes.
        status = httpx.get(f"{url}/status/api/v2/status.json").json()["status"]
        assert status["indicator"] == "critical"
        page = httpx.get(f"{url}/status/incidents/{ref.lower()}/")
        assert page.status_code == 200 and "Checkout is down" in page.text
        missing = httpx.get(f"{url}/status/incidents/INC-999/")
        assert missing.status_code == 404
        metrics = httpx.get(f"{url}/metrics", headers=bearer(token)).text
        assert 'route="/status/api/v2/status.json",status="200"' in metrics
