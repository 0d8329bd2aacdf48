"""Webhooks to a real local receiver that checks the signature and the replay window."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tocsin.db.engine import Database
from tocsin.notify import service
from tocsin.notify.channels.webhook import WebhookChannel, signature, verify_signature
from tocsin.notify.models import OutboxMessage
from tocsin.notify.sender import Sender
from tocsin.testing import FakeClock, running_server

SECRET = b"whsec-test"


class Receiver:
    """What a well-behaved receiver does: verify, then count each Idempotency-Key."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[int] = []  # status codes to answer before 200, in order
        self.hang = asyncio.Event()  # never set: a receiver that does not answer

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        if not verify_signature(
            SECRET, headers["x-tocsin-timestamp"], body, headers["x-tocsin-signature"], self.clock.now()
        ):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.received.append((headers["idempotency-key"], await request.json()))
        if self.answers:
            return Response(status_code=self.answers.pop(0))
        return JSONResponse({"ok": True})

    async def slow(self, request: Request) -> Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.hang.wait(), 1)
        return Response()

    async def missing(self, request: Request) -> Response:
        return Response("no such hook", status_code=404)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.hook, methods=["POST"]),
                Route("/slow", self.slow, methods=["POST"]),
                Route("/missing", self.missing, methods=["POST"]),
            ]
        )


@contextmanager
def serving(app: Starlette, port: int) -> Iterator[str]:
    import threading
    import time

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the receiver did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def receiver(clock: FakeClock) -> Receiver:
    return Receiver(clock)


@pytest.fixture
def url(receiver: Receiver) -> Iterator[str]:
    with running_server(receiver.app()) as base:
        yield base


MakeSender = Callable[..., Sender]


@pytest.fixture
async def make_sender(db: Database, clock: FakeClock) -> AsyncIterator[MakeSender]:
    """Senders over a webhook channel, closed (their pooled connections too) after the test."""
    made: list[Sender] = []

    def make(timeout: float = 10.0) -> Sender:
        channel = WebhookChannel(SECRET, clock, timeout=timeout)
        made.append(Sender(db, clock, {"webhook": channel}, jitter=lambda: 0.0))
        return made[-1]

    yield make
    for sender in made:
        await sender.close()


async def queue(db: Database, clock: FakeClock, key: str, target: str) -> None:
    async with db.transaction() as session:
        await service.enqueue(
            session, clock.now(), channel="webhook", target=target, kind="page", key=key,
            payload={"text": "INC-1 P1 Checkout down", "incident": "INC-1"},
        )  # fmt: skip


async def stored(db: Database, key: str) -> OutboxMessage:
    async with db.session() as session:
        found = await service.by_key(session, key)
    assert found is not None
    return found


def test_signature_checks_body_secret_and_window() -> None:
    clock = FakeClock()
    now = str(int(clock.now().timestamp()))
    body = b'{"text":"hi"}'
    header = signature(SECRET, now, body)
    assert verify_signature(SECRET, now, body, header, clock.now())
    assert verify_signature(SECRET.decode(), now, body, f"v1=deadbeef, {header}", clock.now())  # rotation
    assert not verify_signature(SECRET, now, b'{"text":"hi!"}', header, clock.now())
    assert not verify_signature(b"other", now, body, header, clock.now())
    assert not verify_signature(SECRET, now, body, header, clock.now() + timedelta(minutes=6))  # replay
    assert not verify_signature(SECRET, "not-a-time", body, header, clock.now())


async def test_delivered_signed_with_idempotency_key(
    db: Database, clock: FakeClock, receiver: Receiver, url: str, make_sender: MakeSender
) -> None:
    await queue(db, clock, "w1", f"{url}/hook")
    await make_sender().tick()
    assert receiver.received == [("w1", {"text": "INC-1 P1 Checkout down", "incident": "INC-1"})]
    sent = await stored(db, "w1")
    assert sent.status == "sent" and sent.result == {"status_code": 200}


async def test_500_then_200_is_retried_and_delivered_once(
    db: Database, clock: FakeClock, receiver: Receiver, url: str, make_sender: MakeSender
) -> None:
    receiver.answers = [500]
    await queue(db, clock, "w2", f"{url}/hook")
    sender = make_sender()
    await sender.tick()
    failing = await stored(db, "w2")
    assert failing.status == "pending" and failing.last_error == "HTTP 500"
    clock.advance(seconds=5)
    await sender.tick()
    clock.advance(minutes=30)
    await sender.tick()
    assert [key for key, _ in receiver.received] == ["w2", "w2"]  # the 500 and the 200: one success
    assert (await stored(db, "w2")).status == "sent"


async def test_a_hanging_receiver_times_out_and_is_retried(
    db: Database, clock: FakeClock, receiver: Receiver, url: str, make_sender: MakeSender
) -> None:
    await queue(db, clock, "w3", f"{url}/slow")
    await make_sender(timeout=0.2).tick()
    waiting = await stored(db, "w3")
    assert waiting.status == "pending" and waiting.last_error == "no answer within 0.2 s"


async def test_404_fails_without_retry(
    db: Database, clock: FakeClock, receiver: Receiver, url: str, make_sender: MakeSender
) -> None:
    await queue(db, clock, "w4", f"{url}/missing")
    await make_sender().tick()
    failed = await stored(db, "w4")
    assert failed.status == "failed" and failed.last_error == "HTTP 404: no such hook"


async def test_receiver_down_for_an_hour_gets_everything_once(
    db: Database, clock: FakeClock, receiver: Receiver, make_sender: MakeSender
) -> None:
    port = free_port()
    target = f"http://127.0.0.1:{port}/hook"
    for i in range(3):
        await queue(db, clock, f"down{i}", target)
    sender = make_sender()
    start = clock.now()
    while clock.now() - start < timedelta(hours=1):
        await sender.tick()
        clock.advance(minutes=1)
    assert (await stored(db, "down0")).last_error is not None
    with serving(receiver.app(), port):
        clock.advance(minutes=10)
        await sender.tick()
        clock.advance(hours=1)
        await sender.tick()
    assert sorted(key for key, _ in receiver.received) == ["down0", "down1", "down2"]
