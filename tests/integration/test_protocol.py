"""`tocsin serve`'s protocol (`tocsin.web.protocol`): ready answers and direct routes, in a real uvicorn
server and in `tocsin serve`."""

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

from tocsin.health.metrics import Metrics
from tocsin.testing import bearer
from tocsin.web.direct import Answer, Call, Direct, Later, Reply, Table
from tocsin.web.protocol import DirectProtocol
from tocsin.web.ready import Ready

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


async def echo(call: Call) -> Answer:
    """A direct route that says what it was given."""
    if call.params.get("name") == "slow":
        await asyncio.sleep(0.2)
    if call.params.get("name") == "broken":
        raise RuntimeError("the database is down")
    said = {
        "method": call.method,
        "params": call.params,
        "key": call.query_param("key"),
        "type": call.header("content-type"),
        "body": call.body.decode(),
        "state": call.state,
    }
    return Answer.json(201, said, {"x-direct": "1"})


PENDING: dict[str, asyncio.Future[str]] = {}  # the futures the /later route's requests wait for, by name


def later(call: Call) -> Reply:
    """A direct route that answers once the test settles its future: `then` builds the answer, or fails
    (LookupError is the route's own 404, anything else a 503), or waits again (`twice`)."""
    name = call.params["name"]
    if name == "now":
        return Answer(204)
    if name == "missing":
        raise LookupError("no such thing")
    PENDING[name] = asyncio.get_running_loop().create_future()

    def then(value: str) -> Reply:
        if value == "lookup":
            raise LookupError(value)
        if value == "broken":
            raise RuntimeError(value)
        if value == "twice":
            again: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(again.set_result, "again")
            return Later(again, lambda more: Answer(200, f"{name} {value} {more}".encode()))
        return Answer(200, f"{name} {value}".encode())

    return Later(PENDING[name], then)


def not_found(exc: Exception) -> Answer | None:
    return Answer(404, str(exc).encode()) if isinstance(exc, LookupError) else None


LIMIT = 1000
TABLE = Table(
    [
        Direct("/echo/{name}", echo),
        Direct("/echo", echo, ("GET", "POST")),
        Direct("/later/{name}", later, rejects=not_found),
    ],
    "the state",
    LIMIT,
)


@contextlib.asynccontextmanager
async def server(app: Recorder, metrics: Metrics | None = None) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=DirectProtocol.serving(answers, TABLE, metrics),
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


def request(method: str, path: str, body: bytes = b"", *headers: str) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: t", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_a_direct_route_is_answered_by_the_protocol_with_its_call() -> None:
    app, metrics = Recorder(), Metrics()
    async with server(app, metrics) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.post(
            "/echo/caf%C3%A9?key=k1&x=2", content=b'{"a": 1}', headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 201 and r.headers["x-direct"] == "1"
        assert r.headers["content-type"] == "application/json" and r.headers["server"] == "uvicorn"
        assert r.json() == {
            "method": "POST",
            "params": {"name": "café"},
            "key": "k1",
            "type": "application/json",
            "body": '{"a": 1}',
            "state": "the state",
        }

        # A chunked body, and a GET where the route takes one.
        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"ab", b"cd"):
                yield part

        assert (await client.post("/echo/x", content=chunks())).json()["body"] == "abcd"
        assert (await client.get("/echo")).json()["method"] == "GET"
        # A method the route does not take, and other paths, go to the app.
        assert (await client.get("/echo/x")).text == "app /echo/x"
        assert (await client.post("/echo/x/y", content=b"")).text == "app /echo/x/y"
        # A handler that fails: 503 with Retry-After, and the connection goes on.
        broken = await client.post("/echo/broken", content=b"{}")
        assert broken.status_code == 503 and broken.headers["retry-after"] == "5"
        assert broken.json()["error"]["code"] == "unavailable"
        assert (await client.post("/echo/again", content=b"")).status_code == 201
    assert app.paths == ["GET /echo/x", "POST /echo/x/y"]
    counted = {
        (s.labels["route"], s.labels["status"]) for m in metrics.http_requests.collect() for s in m.samples
    }
    assert {("/echo/{name}", "201"), ("/echo", "201"), ("/echo/{name}", "503")} <= counted


async def test_direct_routes_keep_http_order_limits_and_expect_continue() -> None:
    app = Recorder()
    async with server(app) as port:
        # Pipelined: the answers keep the requests' order; a direct request queued behind another one
        # goes through the app (here the recorder), in turn.
        raw = request("POST", "/echo/slow", b"1") + request("GET", "/slow") + request("POST", "/echo/c", b"3")
        data = await exchange(port, raw)
        order = [data.index(b) for b in (b'"body":"1"', b"app /slow", b"app /echo/c")]
        assert order == sorted(order), data
        # Keep-alive: one direct answer after another on one connection, which stays open.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for body in (b"x", b"y"):
            writer.write(request("POST", "/echo/a", body))
            answer = await asyncio.wait_for(reader.readuntil(b'"state":"the state"}'), 5)
            assert answer.startswith(b"HTTP/1.1 201 Created") and b"connection: close" not in answer
        writer.close()
        # HTTP/1.0, and Connection: close: answered, then closed.
        for raw in (
            b"POST /echo/a HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
            request("POST", "/echo/a", b"x", "Connection: close"),
        ):
            data = await exchange(port, raw, until_closed=True)
            assert data.startswith(b"HTTP/1.1 201 Created") and b"connection: close\r\n" in data
        # Expect: 100-continue is answered before the body is sent.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo/a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        answer = await asyncio.wait_for(reader.readuntil(b'"ok"'), 5)
        assert answer.startswith(b"HTTP/1.1 201 Created")
        writer.close()
        # Past the limit, announced or streamed: the route's 413, and the connection closed.
        announced = f"POST /echo/a HTTP/1.1\r\nContent-Length: {LIMIT + 1}\r\n\r\n".encode()
        streamed = (
            b"POST /echo/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"200\r\n" + b"x" * 512 + b"\r\n"
        )
        for raw in (announced, streamed * 1 + b"200\r\n" + b"x" * 512 + b"\r\n"):
            data = await exchange(port, raw, until_closed=True)
            assert data.startswith(b"HTTP/1.1 413 Request Entity Too Large"), data
            assert b"too_large" in data and b"connection: close\r\n" in data
    assert app.paths == ["GET /slow", "POST /echo/c"]


async def test_a_direct_route_waits_for_a_future_with_no_task_a_request() -> None:
    app = Recorder()
    async with server(app) as port:
        tasks = len(asyncio.all_tasks())
        names = ["done", "failed", "cancelled", "lookup", "broken", "twice"]
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in names]
        for name, (_, writer) in zip(names, connections, strict=True):
            writer.write(request("POST", f"/later/{name}"))
        for _ in range(500):  # up to 5 s for the server to read them all
            if len(PENDING) == len(names):
                break
            await asyncio.sleep(0.01)
        assert sorted(PENDING) == sorted(names)
        # Six requests wait, and not one task more runs for them.
        assert len(asyncio.all_tasks()) == tasks
        PENDING["done"].set_result("ok")
        PENDING["failed"].set_exception(RuntimeError("the commit failed"))
        PENDING["cancelled"].cancel()
        PENDING["lookup"].set_result("lookup")
        PENDING["broken"].set_result("broken")
        PENDING["twice"].set_result("twice")
        answers = []
        for reader, writer in connections:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append((head.split(b" ")[1].decode(), (await reader.readexactly(length)).decode()))
            writer.close()
        assert answers[0] == ("200", "done ok")
        assert answers[1][0] == answers[2][0] == answers[4][0] == "503"  # failed, cancelled, or raised
        assert '"unavailable"' in answers[1][1]
        assert answers[3] == ("404", "lookup")  # the route's own answer to its error
        assert answers[5] == ("200", "twice twice again")
        # Answered at once, or refused at once, in the same ways.
        now, missing = (
            await exchange(port, request("POST", "/later/now")),
            await exchange(port, request("POST", "/later/missing")),
        )
        assert now.startswith(b"HTTP/1.1 204") and missing.startswith(b"HTTP/1.1 404")
    PENDING.clear()
    assert app.paths == []


@pytest.mark.slow
def test_tocsin_serve_answers_ingest_as_the_app_does(tmp_path: Path) -> None:
    token = "direct-protocol-token-1"
    with serving(tmp_path, TOCSIN_BOOTSTRAP_TOKEN=token) as (url, _):
        r = httpx.post(
            f"{url}/api/v1/integrations", json={"name": "g", "kind": "generic"}, headers=bearer(token)
        )
        key = r.json()["key"]
        port = int(url.rsplit(":", 1)[1])
        # The same request twice, pipelined: the protocol answers the first, the app the second.
        cases = [
            (
                "POST",
                "/api/v2/alerts",
                b"[{",
                ["Content-Type: application/json", f"Authorization: Bearer {key}"],
            ),
            ("POST", "/api/v2/alerts", b"[]", ["Content-Type: text/plain", f"Authorization: Bearer {key}"]),
            ("POST", "/api/v1/integrations/generic", b"{}", ["Authorization: Bearer wrong"]),
            ("POST", "/v2/enqueue", b'{"routing_key": "nope"}', []),
            ("POST", "/api/v1/heartbeats/nightly", b"", [f"Authorization: Bearer {key}"]),
        ]
        for method, path, body, headers in cases:
            data = asyncio.run(exchange(port, request(method, path, body, *headers) * 2))
            first, second = (part.split(b"\r\n\r\n", 1) for part in data.split(b"HTTP/1.1 ")[1:])
            assert first[0].split(b"\r\n")[0] == second[0].split(b"\r\n")[0], data
            assert first[1] == second[1] and first[0].startswith((b"4", b"2")), data
        sent = {"summary": "Disk full on db-1", "severity": "critical", "dedup_key": "disk-db-1"}
        r = httpx.post(f"{url}/api/v1/integrations/generic", json=sent, headers=bearer(key))
        assert r.status_code == 202 and r.json()["status"] == "opened"
        assert r.json()["incident"].startswith("INC-")
        alerts = httpx.get(f"{url}/api/v1/alerts", headers=bearer(token)).json()
        assert [a["dedup_key"] for a in alerts] == ["disk-db-1"]
        huge = httpx.post(
            f"{url}/api/v2/alerts", content=b"[" + b" " * 20_000_000 + b"]", headers=bearer(key)
        )
        assert huge.status_code == 413 and "body over" in huge.json()


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
