"""Server-sent events: poll the database on each wake-up of the bus, so any process's writes show up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from tocsin.core.bus import Bus

RETRY_MS = 3000


@dataclass(frozen=True)
class Message:
    """One server-sent event."""

    data: str
    event: str | None = None
    id: int | None = None

    def encode(self) -> str:
        # A bare CR ends a line in the event-stream format, so normalise before splitting into data lines.
        text = self.data.replace("\r\n", "\n").replace("\r", "\n")
        lines = [f"event: {self.event}"] if self.event else []
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines.extend(f"data: {line}" for line in text.split("\n"))
        return "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class Batch:
    """What a poll found: the messages to send, the new cursor, whether more are waiting, whether to stop."""

    messages: list[Message]
    cursor: int
    more: bool = False
    end: bool = False


Poll = Callable[[int], Awaitable[Batch]]


def last_event_id(request: Request, after: int) -> int:
    """Where to resume: the browser's Last-Event-ID on a reconnect, else `after`."""
    header = request.headers.get("last-event-id", "").strip()
    if header.isdigit() and len(header) < 12:
        return max(after, int(header))
    return after


async def stream(
    request: Request,
    bus: Bus,
    topic: str,
    poll: Poll,
    cursor: int,
    *,
    wait_seconds: float = 15,
    lifetime_seconds: float = 1800,
) -> AsyncIterator[str]:
    """Send what `poll` finds after `cursor`, then sleep on `topic` (or `wait_seconds`) and poll again.

    Ends when the client goes away or after `lifetime_seconds`; EventSource then reconnects with
    Last-Event-ID, so a long-lived page never holds one request forever.
    """
    loop = asyncio.get_running_loop()
    ends = loop.time() + lifetime_seconds
    yield f"retry: {RETRY_MS}\n\n"
    while loop.time() < ends and not await request.is_disconnected():
        woken = asyncio.ensure_future(bus.wait(topic, wait_seconds))
        try:
            # Subscribe before reading: a commit that lands after the read still wakes this loop.
            await asyncio.sleep(0)
            batch = await poll(cursor)
            cursor = batch.cursor
            for message in batch.messages:
                yield message.encode()
            if batch.end:
                return
            if batch.more:
                continue
            if not await woken:
                yield ": keep-alive\n\n"
        finally:
            woken.cancel()
