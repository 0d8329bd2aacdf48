"""Paging: a person paged for an incident, reached over their contacts by their notification rules.

A page is a row (unique per incident, person and step, so no step pages anyone twice however many
workers run or however often a handler is retried) plus outbox messages: the rules with no delay are
queued at once, in the same transaction; delayed ones ("email after 5 min if still unacknowledged")
are timers that check the acknowledgement first. Every message carries a signed acknowledgement link
(email, webhook) or button (Slack).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.ids import incident_ref
from tocsin.db.engine import publish_after_commit
from tocsin.engine import secrets, timers
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind, append
from tocsin.incidents.timers import PAGE_NOTIFY
from tocsin.notify import service as outbox
from tocsin.oncall.models import Page
from tocsin.policy.models import Policy
from tocsin.policy.oncall import NotifyRule, Person

ACTOR = "tocsin"
ACK_ACTION = "tocsin_ack"  # the Slack button's action_id


@dataclass(frozen=True)
class Links:
    """Where the console is, and the key that signs acknowledgement links."""

    base_url: str
    key: bytes

    def incident(self, incident_id: int) -> str:
        return f"{self.base_url}/incidents/{incident_id}"

    def ack(self, page_id: int) -> str:
        return f"{self.base_url}/ack/{page_id}?sig={secrets.sign(self.key, 'ack', str(page_id))}"

    def valid_ack(self, page_id: int, signature: str) -> bool:
        return secrets.verify(self.key, signature, "ack", str(page_id))


@dataclass(frozen=True)
class Paging:
    """What paging needs besides the session and the time."""

    policy: Policy
    links: Links
    slack: bool  # whether Slack is configured: announcements go there, else to the log

    @property
    def throttle(self) -> tuple[int, Any]:
        t = self.policy.paging.throttle
        return t.messages, t.per

    def person(self, name: str) -> Person | None:
        return next((p for p in self.policy.people if p.name == name), None)


def _headline(incident: Incident) -> str:
    return f"[{incident.severity}] {incident_ref(incident.id)}: {incident.title}"


def page_message(ctx: Paging, incident: Incident, page: Page, via: str) -> dict[str, Any]:
    """The message of a page over one contact."""
    ack_url = ctx.links.ack(page.id)
    url = ctx.links.incident(incident.id)
    text = (
        f"{_headline(incident)}\n{page.reason}\nStatus: {incident.status}. Incident channel: {incident.channel}\n"
        f"Acknowledge: {ack_url}\nIncident: {url}"
    )
    if via == "email":
        return {"subject": f"Paged: {_headline(incident)}", "text": text}
    if via == "webhook":
        return {
            "text": text,
            "event": "page",
            "incident": {
                "id": incident_ref(incident.id),
                "title": incident.title,
                "severity": incident.severity,
                "status": incident.status,
                "channel": incident.channel,
                "url": url,
            },
            "person": page.person,
            "step": page.step,
            "reason": page.reason,
            "acknowledge_url": ack_url,
        }
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_headline(incident)}*\n{page.reason}"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "style": "primary",
                    "action_id": ACK_ACTION,
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "value": str(page.id),
                },
                {"type": "button", "text": {"type": "plain_text", "text": "Open incident"}, "url": url},
            ],
        },
    ]
    return {"text": text, "blocks": blocks}


async def send_rule(
    session: AsyncSession,
    ctx: Paging,
    now: datetime,
    incident: Incident,
    page: Page,
    index: int,
    rule: NotifyRule,
) -> None:
    """Queue the page's message for one notification rule."""
    person = ctx.person(page.person)
    target = person.contact(rule.via) if person is not None else None
    if target is None:
        return
    await outbox.enqueue(
        session,
        now,
        channel=rule.via,
        target=target,
        kind="page",
        key=f"page:{page.id}:{index}",
        payload=page_message(ctx, incident, page, rule.via),
        incident_id=incident.id,
        person=page.person,
        throttle=ctx.throttle,
    )
    publish_after_commit(session, "outbox")


async def page(
    session: AsyncSession, ctx: Paging, now: datetime, incident: Incident, name: str, step: str, reason: str
) -> Page | None:
    """Page `name` for the incident at `step`; None when this step has paged them already."""
    values = {
        "incident_id": incident.id,
        "person": name,
        "step": step,
        "reason": reason,
        "created_at": now,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    row: Page | None = await session.scalar(
        insert(Page).values(**values).on_conflict_do_nothing().returning(Page)
    )
    if row is None:
        return None
    person = ctx.person(name)
    rules = person.rules(ctx.policy.paging.default_notify) if person is not None else []
    data: dict[str, Any] = {"person": name, "step": step, "reason": reason}
    if not rules:
        data["unreachable"] = (
            f"{name} is not among the policy's people" if person is None else f"{name} has no contact methods"
        )
    else:
        data["rules"] = [f"{r.via} after {int(r.after.total_seconds() // 60)}m" for r in rules]
    append(session, incident, EventKind.page, ACTOR, now, data)
    for index, rule in enumerate(rules):
        if rule.after.total_seconds() <= 0:
            await send_rule(session, ctx, now, incident, row, index, rule)
        else:
            await timers.schedule(
                session,
                now,
                PAGE_NOTIFY,
                f"{row.id}:{index}",
                now + rule.after,
                {"page": row.id, "rule": index},
                incident_id=incident.id,
            )
    return row


async def pages_of(session: AsyncSession, incident_id: int) -> list[Page]:
    query = select(Page).where(Page.incident_id == incident_id).order_by(Page.created_at, Page.id)
    return list(await session.scalars(query))


async def direct(
    session: AsyncSession,
    ctx: Paging,
    now: datetime,
    incident: Incident,
    name: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
) -> bool:
    """Send a person a message over their first contact (Slack, email, webhook); False if they have none."""
    person = ctx.person(name)
    if person is None:
        return False
    for via in ("slack", "email", "webhook") if ctx.slack else ("email", "webhook"):
        target = person.contact(via)
        if target is not None:
            await outbox.enqueue(
                session,
                now,
                channel=via,
                target=target,
                kind=kind,
                key=f"{key}:{name}",
                payload=payload,
                incident_id=incident.id,
                person=name,
                throttle=ctx.throttle,
            )
            publish_after_commit(session, "outbox")
            return True
    return False


async def to_channel(
    session: AsyncSession,
    ctx: Paging,
    now: datetime,
    incident: Incident,
    channel: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
    thread: str | None = None,
) -> None:
    """Post to a Slack channel, or to the log when Slack is not configured."""
    await outbox.enqueue(
        session,
        now,
        channel="slack" if ctx.slack else "console",
        target=channel,
        kind=kind,
        key=key,
        payload=payload,
        incident_id=incident.id,
        thread=thread,
    )
    publish_after_commit(session, "outbox")
