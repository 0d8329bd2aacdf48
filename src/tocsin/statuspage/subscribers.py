"""The only code that writes subscribers: subscribe (rate-limited, double opt-in for email), confirm,
unsubscribe, and the fan-out of each public update to them through the outbox."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.clock import Clock
from tocsin.core.errors import InvalidInput, NotFound, TocsinError
from tocsin.notify import service as outbox
from tocsin.policy.models import Policy
from tocsin.reports.schemas import valid_email
from tocsin.statuspage import compat, notices, snapshot
from tocsin.statuspage.links import Links
from tocsin.statuspage.models import StatusUpdate, SubscribeAttempt, Subscriber

ATTEMPT_WINDOW = timedelta(hours=1)
RESEND_CONFIRMATION_AFTER = timedelta(hours=1)
CHANNELS = ("email", "webhook")
MAX_URL = 500


class RateLimited(TocsinError):
    """Too many subscription attempts from one client address; answered 429 with Retry-After."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many subscription attempts from this address; try again in {retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


async def attempt(session: AsyncSession, clock: Clock, policy: Policy, client: str) -> None:
    """Count one attempt from `client`; RateLimited (and nothing written) when over the policy's limit."""
    now = clock.now()
    since = now - ATTEMPT_WINDOW
    recent = await session.scalar(
        select(func.count()).where(SubscribeAttempt.client == client, SubscribeAttempt.at > since)
    )
    if (recent or 0) >= policy.status_page.subscribe_limit:
        oldest = await session.scalar(
            select(func.min(SubscribeAttempt.at)).where(
                SubscribeAttempt.client == client, SubscribeAttempt.at > since
            )
        )
        wait = int(((oldest or now) + ATTEMPT_WINDOW - now).total_seconds()) + 1
        raise RateLimited(max(wait, 1))
    session.add(SubscribeAttempt(client=client[:64], at=now))


async def prune_attempts(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(SubscribeAttempt).where(SubscribeAttempt.at <= now - ATTEMPT_WINDOW))


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


async def check_target(policy: Policy, channel: str, target: str) -> str:
    """The address or URL, normalised; InvalidInput saying what is wrong with it."""
    target = target.strip()
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}; one of email, webhook", field="channel")
    if channel == "email":
        address = valid_email(target)
        if address is None:
            raise InvalidInput(f"{target[:100]!r} is not an email address", field="email")
        local, _, domain = address.partition("@")
        return f"{local}@{domain.lower()}"
    if len(target) > MAX_URL:
        raise InvalidInput(f"the URL is longer than {MAX_URL} characters", field="url")
    try:
        url = httpx.URL(target)
    except (httpx.InvalidURL, ValueError):
        raise InvalidInput("not a URL", field="url") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput("must be an http:// or https:// URL with a host", field="url")
    if url.userinfo:
        raise InvalidInput("must not carry a user name or password", field="url")
    if not policy.status_page.allow_private_webhooks:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(url.host, port)
        except OSError:
            raise InvalidInput(f"cannot resolve {url.host!r}", field="url") from None
        if any(_private(str(info[4][0])) for info in found):
            raise InvalidInput(
                f"{url.host} is a loopback, private or otherwise non-public address; webhooks must be "
                "public (or set status_page.allow_private_webhooks in the policy)",
                field="url",
            )
    return str(url)


async def subscribe(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    links: Links,
    *,
    client: str,
    channel: str,
    target: str,
    components: list[str],
) -> Subscriber:
    """Subscribe a checked target (see check_target). Email waits for confirmation; a webhook is live."""
    now = clock.now()
    known = policy.component_names
    for name in components:
        if name not in known:
            raise InvalidInput(f"unknown component {name!r}", field="components")
    row = await session.scalar(
        select(Subscriber).where(Subscriber.channel == channel, Subscriber.target == target).with_for_update()
    )
    if row is None:
        row = Subscriber(channel=channel, target=target, state="pending", client=client[:64], created_at=now)
        session.add(row)
    row.components = sorted(set(components))
    if channel == "webhook":
        if row.state != "confirmed":
            row.state, row.confirmed_at, row.unsubscribed_at = "confirmed", now, None
        await session.flush()
        return row
    if row.state == "confirmed":
        await session.flush()
        return row
    if row.state == "unsubscribed":
        row.state, row.unsubscribed_at, row.confirm_sent_at = "pending", None, None
    await session.flush()
    if row.confirm_sent_at is None or now - row.confirm_sent_at >= RESEND_CONFIRMATION_AFTER:
        row.confirm_sent_at = now
        await outbox.enqueue(
            session,
            now,
            channel="email",
            target=row.target,
            kind="status_confirm",
            key=f"status-confirm:{row.id}:{int(now.timestamp())}",
            payload=notices.confirmation(
                policy.organization, links.page, links.confirm(row.id), links.unsubscribe(row.id)
            ),
        )
    return row


async def _signed(
    session: AsyncSession, links: Links, action: str, subscriber_id: int, token: str
) -> Subscriber:
    row = await session.get(Subscriber, subscriber_id, with_for_update=True)
    if row is None or not links.valid(action, subscriber_id, token):
        raise NotFound("this link is not valid (it may have been mistyped)", field="token")
    return row


async def confirm(
    session: AsyncSession, clock: Clock, links: Links, subscriber_id: int, token: str
) -> Subscriber:
    """Follow the link of the confirmation mail: a pending subscriber starts receiving updates."""
    row = await _signed(session, links, "confirm", subscriber_id, token)
    if row.state == "pending":
        row.state, row.confirmed_at = "confirmed", clock.now()
    return row


async def unsubscribe(
    session: AsyncSession, clock: Clock, links: Links, subscriber_id: int, token: str
) -> Subscriber:
    """One click, no questions: the subscriber receives nothing more."""
    row = await _signed(session, links, "unsubscribe", subscriber_id, token)
    if row.state != "unsubscribed":
        row.state, row.unsubscribed_at = "unsubscribed", clock.now()
    return row


async def listing(session: AsyncSession, limit: int = 1000) -> list[Subscriber]:
    return list(await session.scalars(select(Subscriber).order_by(Subscriber.id).limit(limit)))


async def fan_out(
    session: AsyncSession,
    now: datetime,
    policy: Policy,
    links: Links,
    *,
    subject: str,
    update: StatusUpdate,
    components: list[str],
) -> int:
    """Queue the update for every confirmed subscriber of its components, in the update's transaction."""
    rows = list(await session.scalars(select(Subscriber).where(Subscriber.state == "confirmed")))
    touched = set(components)
    wanted = [r for r in rows if not r.components or touched & set(r.components)]
    if not wanted:
        return 0
    snap = await snapshot.load(session, policy, now)
    key = f"INC-{update.incident_id}" if update.incident_id is not None else f"MNT-{update.maintenance_id}"
    item = next((i for i in [*snap.incidents, *snap.maintenances] if i.key == key), None)
    view = next((u for u in item.updates if u.id == update.id), None) if item else None
    if item is None or view is None:
        return 0
    link = f"{links.page}/incidents/{item.key}"
    for row in wanted:
        unsubscribe = links.unsubscribe(row.id)
        if row.channel == "email":
            payload = notices.update_mail(policy.organization, item, view, link, unsubscribe)
        else:
            payload = compat.webhook(snap, links.page, item, unsubscribe)
            await _component_updates(session, now, snap, links.page, update, row, unsubscribe)
        await outbox.enqueue(
            session,
            now,
            channel=row.channel,
            target=row.target,
            kind="status_update",
            key=f"status:{update.id}:{row.id}",
            payload=payload,
            incident_id=update.incident_id,
        )
    return len(wanted)


async def _component_updates(
    session: AsyncSession,
    now: datetime,
    snap: snapshot.Snapshot,
    url: str,
    update: StatusUpdate,
    row: Subscriber,
    unsubscribe: str,
) -> None:
    """Webhook subscribers also get Statuspage's `component_update` for each component the update changed."""
    for change in update.affected or []:
        if row.components and change.get("code") not in row.components:
            continue
        payload = compat.component_webhook(snap, url, change, update.created_at, unsubscribe)
        if payload is None:
            continue
        await outbox.enqueue(
            session,
            now,
            channel="webhook",
            target=row.target,
            kind="component_update",
            key=f"status:{update.id}:{row.id}:{change['code']}",
            payload=payload,
            incident_id=update.incident_id,
        )
