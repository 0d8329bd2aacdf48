"""The outbox sender: claims due messages, hands them to their channels, records what happened.

Claiming is a short transaction that takes due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
senders in other processes take other rows), counts the attempt and pushes `next_attempt_at` a lease
ahead. Sending happens outside any transaction, several at once. The outcome is written in a
transaction of its own per message: sent, retried with exponential backoff, or failed. A sender that
dies mid-send leaves its rows to be retried once the lease runs out; a send never outlives its lease,
so two senders never hold one row at once.

A channel that is down only delays its messages: they are retried (5 s, 10 s, 20 s ... at most 10
minutes apart) until `give_up_after` (24 h) has passed since they were queued, and each is sent once
when the channel is back. Every delivery and every final failure goes on the incident's timeline.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.bus import Bus
from tocsin.core.clock import Clock
from tocsin.core.errors import NotFound
from tocsin.db.engine import Database, after_commit
from tocsin.incidents import service as incidents
from tocsin.incidents.timeline import EventKind
from tocsin.notify import service
from tocsin.notify.channels.base import Channel, DeliveryError
from tocsin.notify.models import OutboxMessage

log = logging.getLogger("tocsin.notify")

LEASE = timedelta(seconds=60)  # a send is cut off at half of it (30 s), within every channel's timeout
GIVE_UP_AFTER = timedelta(hours=24)
MAX_BACKOFF = timedelta(minutes=10)
CONCURRENCY = 16


def backoff(attempts: int, jitter: float = 0.0) -> timedelta:
    """Wait after the n-th failed attempt: 5 s * 2^(n-1), at most 10 minutes, plus `jitter` of it."""
    seconds = min(5 * 2 ** max(attempts - 1, 0), MAX_BACKOFF.total_seconds())
    return timedelta(seconds=seconds * (1 + jitter))


@dataclass(frozen=True)
class Claimed:
    """A claimed message as it was when claimed, and the result of its thread's first post."""

    message: OutboxMessage
    attempts: int
    payload: dict[str, Any]
    previous: dict[str, Any] | None


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any] | None = None
    error: DeliveryError | None = None


class Sender:
    """Delivers due outbox messages through `channels` (by channel name)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        channels: Mapping[str, Channel],
        bus: Bus | None = None,
        *,
        lease: timedelta = LEASE,
        give_up_after: timedelta = GIVE_UP_AFTER,
        concurrency: int = CONCURRENCY,
        jitter: Callable[[], float] = lambda: random.uniform(0, 0.1),
    ) -> None:
        self.db = db
        self.clock = clock
        self.channels = channels
        self.bus = bus
        self.lease = lease
        self.give_up_after = give_up_after
        self.jitter = jitter
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        # A send that takes longer than this is abandoned (and retried): never past the lease.
        self.send_timeout = min(60.0, lease.total_seconds() / 2)

    async def tick(self, limit: int = 100) -> int:
        """Send the due messages (at most `limit`); how many were attempted."""
        claimed = await self._claim(limit)
        if claimed:
            await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        async with self.db.transaction() as session:
            query = (
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            return await _take(session, query, now + self.lease)

    async def claim_new(self, session: AsyncSession) -> None:
        """Claim the messages this transaction queued for now, and send them once it commits.

        A `Database.before_commit` hook: a page leaves as soon as the incident that caused it is
        committed, without waiting for the next claim. The claim is the usual lease, so if this process
        dies before sending, another sender takes the message when the lease runs out.
        """
        ids = session.info.pop(service.NEW, None)
        if not ids:
            return
        now = self.clock.now()
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.id)
        )
        claimed = await _take(session, query, now + self.lease)
        if claimed:
            after_commit(session, lambda: self._start(claimed))

    def _start(self, claimed: list[Claimed]) -> None:
        for item in claimed:
            task = asyncio.create_task(self._deliver(item), name=f"tocsin-send-{item.message.id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def close(self, grace: float = 5.0) -> None:
        """Let the sends started by `claim_new` finish for up to `grace` seconds, stop the rest (their
        messages are retried once the lease runs out), and close the channels."""
        tasks, self._inflight = list(self._inflight), set()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in self.channels.values():
            aclose = getattr(channel, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _deliver(self, item: Claimed) -> None:
        async with self._slots:
            outcome = await self._send(item)
        try:
            await self._record(item, outcome)
        except Exception:
            # The row stays claimed: it is retried after the lease, never lost.
            log.exception("could not record the delivery of outbox message %d", item.message.id)

    async def _send(self, item: Claimed) -> Outcome:
        message = item.message
        channel = self.channels.get(message.channel)
        if channel is None:
            return Outcome(error=DeliveryError(f"no channel named {message.channel!r}", retryable=False))
        try:
            async with asyncio.timeout(self.send_timeout):
                return Outcome(result=await channel.send(message, item.previous))
        except DeliveryError as error:
            return Outcome(error=error)
        except TimeoutError:
            return Outcome(error=DeliveryError(f"no answer within {self.send_timeout:g} s", retryable=True))
        except Exception as error:
            # A channel's bug must not stop the sender: record it and retry like any other failure.
            log.exception("channel %s failed on outbox message %d", message.channel, message.id)
            return Outcome(error=DeliveryError(f"{type(error).__name__}: {error}", retryable=True))

    async def _record(self, item: Claimed, outcome: Outcome) -> None:
        now = self.clock.now()
        incident_id = item.message.incident_id
        incident = None
        async with self.db.transaction() as session:
            if incident_id is not None:  # the incident first, as every writer of the timeline does
                incident = await _incident(session, incident_id)
            row = await session.scalar(
                select(OutboxMessage).where(OutboxMessage.id == item.message.id).with_for_update()
            )
            if row is None or row.status != "pending":
                return
            status = self._apply(row, item, outcome, now)
            if status is None or incident is None:
                return
            await incidents.record(
                session,
                self.clock,
                incident,
                EventKind.notification,
                "tocsin",
                {
                    "message": row.id,
                    "channel": row.channel,
                    "target": row.target,
                    "kind": row.kind,
                    "person": row.person,
                    "status": status,
                    "attempts": row.attempts,
                    "error": row.last_error,
                },
            )
        if self.bus is not None:
            self.bus.publish(f"incident:{incident_id}")

    def _apply(self, row: OutboxMessage, item: Claimed, outcome: Outcome, now: datetime) -> str | None:
        """Write the outcome on the row; the status to put on the timeline, or None for a retry."""
        if outcome.error is None:
            row.result = outcome.result
            row.sent_at = now
            row.last_error = None
            if row.payload != item.payload:
                # Coalesced while in flight: send once more, as an update of what was just sent.
                row.attempts, row.next_attempt_at = 0, now
            else:
                row.status = "sent"
            return "sent"
        error = outcome.error
        if row.attempts != item.attempts:
            return None  # the lease ran out and another sender holds the row now: its outcome counts
        row.last_error = error.message[:2000]
        if error.retryable and now - row.created_at < self.give_up_after:
            wait = backoff(row.attempts, self.jitter())
            if error.retry_after is not None:
                wait = max(wait, timedelta(seconds=min(error.retry_after, MAX_BACKOFF.total_seconds())))
            row.next_attempt_at = now + wait
            return None
        row.status = "failed"
        log.warning("outbox message %d to %s %s failed: %s", row.id, row.channel, row.target, error.message)
        return "failed"


async def _take(session: AsyncSession, query: Select[OutboxMessage], until: datetime) -> list[Claimed]:
    """Claim the rows of `query` until `until`: count the attempt and push `next_attempt_at` to the lease's end."""
    claimed = []
    rows: list[OutboxMessage] = list(await session.scalars(query))
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = until
        previous = await _first_post(session, row) if row.thread else None
        claimed.append(Claimed(row, row.attempts, dict(row.payload), previous))
    return claimed


async def _incident(session: AsyncSession, incident_id: int) -> Any:
    try:
        return await incidents.get(session, incident_id, for_update=True)
    except NotFound:
        return None


async def _first_post(session: AsyncSession, row: OutboxMessage) -> dict[str, Any] | None:
    """The result of the first message sent on the row's thread (the post later ones update)."""
    result: dict[str, Any] | None = await session.scalar(
        select(OutboxMessage.result)
        .where(
            OutboxMessage.thread == row.thread,
            OutboxMessage.channel == row.channel,
            OutboxMessage.target == row.target,
            OutboxMessage.sent_at.is_not(None),
        )
        .order_by(OutboxMessage.sent_at, OutboxMessage.id)
        .limit(1)
    )
    return result
