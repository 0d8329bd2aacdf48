"""The only code that writes the outbox: queue a message with its cause, read deliveries back.

A message is a row written in the caller's transaction, so it exists exactly when its cause does;
the sender (`tocsin.notify.sender`) delivers it later, with retries. Callers publish the bus topic
`"outbox"` after their commit to wake the sender at once (it also polls every second).

Payload conventions (a JSON object; `text` is required except for webhooks):

- `text`: the plain-text message; the whole message for console and Slack without blocks, the body
  of an email, and what every channel falls back to.
- `subject` (email): the subject line; default the first line of `text`.
- `html` (email, optional): an HTML alternative to `text`.
- `attachments` (email, optional): a list of `{"filename", "content_type", "content"}` where
  `content` is text, e.g. an iCal invite with `content_type` `text/calendar; method=REQUEST`.
- `blocks` (Slack, optional): Block Kit blocks (buttons, sections); `text` stays the notification
  text and the fallback.
- `op` (Slack): `post` (default; on a thread, later messages update the first post in place) or
  `create_channel` with `name` (without `#`) and `invite` (Slack user ids). The row's `result` keeps
  what Slack answered: `{"channel", "ts"}` for a post, `{"channel_id", "name", "invited"}` for a
  channel.
- webhook: the payload is the JSON body as it is (`text` is optional there).

Idempotency: the same `key` twice keeps one row (INSERT ... ON CONFLICT DO NOTHING, so it holds when
two transactions race). A message that is coalesced into a pending one on its thread (see `enqueue`)
leaves no row of its own: re-enqueueing it coalesces again, which changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.errors import InvalidInput
from tocsin.db.engine import advisory_lock
from tocsin.incidents import service as incidents
from tocsin.incidents.timeline import EventKind
from tocsin.notify.models import OutboxMessage

NEW = "tocsin.outbox.new"  # session.info: ids of the messages this transaction queued for now
CHANNELS = ("slack", "email", "webhook", "console")
STATUSES = ("pending", "sent", "failed", "suppressed")
ACTOR = "tocsin"


class _At:
    """A clock stopped at `now`, for services that take a clock (the timeline)."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def _check(channel: str, target: str, kind: str, key: str, payload: dict[str, Any]) -> None:
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}", field="channel")
    if not target or len(target) > 500:
        raise InvalidInput("target must be 1 to 500 characters", field="target")
    if not kind or len(kind) > 40:
        raise InvalidInput("kind must be 1 to 40 characters", field="kind")
    if not key or len(key) > 200:
        raise InvalidInput("key must be 1 to 200 characters", field="key")
    if channel != "webhook" and not isinstance(payload.get("text"), str):
        # A webhook's payload is its JSON body as it is (e.g. Statuspage's webhook shape): no text needed.
        raise InvalidInput("payload needs a text (the plain-text message)", field="payload.text")


async def by_key(session: AsyncSession, key: str) -> OutboxMessage | None:
    """The message with this idempotency key, if any."""
    found: OutboxMessage | None = await session.scalar(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
    )
    return found


async def enqueue(
    session: AsyncSession,
    now: datetime,
    *,
    channel: str,
    target: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
    incident_id: int | None = None,
    person: str | None = None,
    thread: str | None = None,
    not_before: datetime | None = None,
    throttle: tuple[int, timedelta] | None = None,
) -> OutboxMessage:
    """Queue one message in the caller's transaction; the existing row when `key` was queued before.

    `thread`: a pending message on the same thread (channel and target) takes this payload instead
    of a second row being queued. `throttle=(n, window)`: when (channel, target) already has `n`
    messages from the last `window`, this one is stored `suppressed` and never sent.
    """
    _check(channel, target, kind, key, payload)
    if thread is not None:
        existing = await by_key(session, key)  # a key queued before is never coalesced again
        if existing is not None:
            return existing
        coalesced = await _coalesce(session, now, channel, target, kind, thread, payload, not_before)
        if coalesced is not None:
            return coalesced
    over = throttle is not None and await _over_limit(session, now, channel, target, throttle)
    values: dict[str, Any] = {
        "channel": channel,
        "target": target,
        "kind": kind,
        "idempotency_key": key,
        "thread": thread,
        "incident_id": incident_id,
        "person": person,
        "payload": payload,
        "status": "suppressed" if over else "pending",
        "attempts": 0,
        "next_attempt_at": max(now, not_before) if not_before is not None else now,
        "created_at": now,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage)
    )
    message: OutboxMessage | None = await session.scalar(statement)
    if message is None:  # queued before (or by a concurrent transaction first)
        existing = await by_key(session, key)
        assert existing is not None
        return existing
    if over and incident_id is not None:
        assert throttle is not None
        await _note_throttled(session, now, message, throttle)
    elif not over and message.next_attempt_at <= now:
        session.info.setdefault(NEW, []).append(message.id)
    return message


async def _coalesce(
    session: AsyncSession,
    now: datetime,
    channel: str,
    target: str,
    kind: str,
    thread: str,
    payload: dict[str, Any],
    not_before: datetime | None,
) -> OutboxMessage | None:
    """The pending message on the thread, now carrying this payload; None when there is none."""
    await advisory_lock(session, f"outbox-thread:{channel}:{target}:{thread}")
    pending: OutboxMessage | None = await session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.thread == thread,
            OutboxMessage.channel == channel,
            OutboxMessage.target == target,
            OutboxMessage.status == "pending",
        )
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update()
    )
    if pending is not None:
        pending.payload = payload  # the newest state replaces an unsent older one
        pending.kind = kind
        if pending.attempts == 0 and not_before is None:
            pending.next_attempt_at = min(pending.next_attempt_at, now)
    return pending


async def _over_limit(
    session: AsyncSession, now: datetime, channel: str, target: str, throttle: tuple[int, timedelta]
) -> bool:
    limit, window = throttle
    recent = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.target == target,
            OutboxMessage.created_at > now - window,
            OutboxMessage.status != "suppressed",
        )
    )
    return (recent or 0) >= limit


async def _note_throttled(
    session: AsyncSession, now: datetime, message: OutboxMessage, throttle: tuple[int, timedelta]
) -> None:
    """Tell the timeline once per window that messages to this target are held back."""
    assert message.incident_id is not None
    incident = await incidents.get(session, message.incident_id, for_update=True)  # also serialises the check
    limit, window = throttle
    earlier = await session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.channel == message.channel,
            OutboxMessage.target == message.target,
            OutboxMessage.status == "suppressed",
            OutboxMessage.created_at > now - window,
            OutboxMessage.id != message.id,
        )
        .limit(1)
    )
    if earlier is not None:
        return
    await incidents.record(
        session,
        _At(now),
        incident,
        EventKind.notification,
        ACTOR,
        {
            "channel": message.channel,
            "target": message.target,
            "kind": message.kind,
            "person": message.person,
            "status": "suppressed",
            "error": f"more than {limit} messages in {int(window.total_seconds())} s: "
            "further messages in this window are recorded, not sent",
        },
    )


async def deliveries(session: AsyncSession, incident_id: int) -> dict[str, int]:
    """How many of the incident's messages are pending, sent, failed and suppressed."""
    rows = await session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.incident_id == incident_id)
        .group_by(OutboxMessage.status)
    )
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in rows:
        counts[status] = count
    return counts


async def messages(session: AsyncSession, incident_id: int, limit: int = 1000) -> list[OutboxMessage]:
    """The incident's messages, oldest first."""
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.incident_id == incident_id)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(rows)


async def totals(session: AsyncSession) -> dict[str, int]:
    """Messages by status across all incidents (for /metrics)."""
    rows = await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in rows:
        counts[status] = count
    return counts
