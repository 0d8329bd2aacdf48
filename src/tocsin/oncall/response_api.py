"""Acknowledging pages from where they arrive (a signed link in an email or webhook, a Slack button),
the pages and escalations of an incident, and "escalate now"."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from tocsin.core.http_errors import responses
from tocsin.core.ids import incident_ref
from tocsin.engine import timers
from tocsin.incidents import service as incidents
from tocsin.incidents.api import Ref, Responder, Viewer
from tocsin.incidents.lifecycle import Status
from tocsin.incidents.schemas import Strict, Text
from tocsin.oncall import escalation
from tocsin.oncall.jobs import paging_context
from tocsin.oncall.models import Page
from tocsin.oncall.paging import ACK_ACTION, pages_of
from tocsin.runtime import Runtime, runtime
from tocsin.web.render import Console, console

router = APIRouter(tags=["paging"])
pages_router = APIRouter(include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]
SLACK_TOLERANCE = 300  # seconds: Slack's own advice for rejecting replayed requests


class PageOut(Strict):
    id: int
    person: str
    step: str
    reason: str
    created_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_via: str | None = None


class EscalationOut(Strict):
    chain: str
    trigger: str
    step: int = Field(description="the next step to run, 1-based")
    round: int
    started_at: datetime
    finished_at: datetime | None = None


class TimerOut(Strict):
    kind: str
    due_at: datetime
    fired_at: datetime | None = None
    attempts: int
    last_error: str | None = None


class Paging(Strict):
    pages: list[PageOut]
    escalations: list[EscalationOut]
    timers: list[TimerOut]


class Escalate(Strict):
    chain: str | None = Field(
        default=None, max_length=64, description="default: the policy's unacknowledged chain"
    )
    reason: Text = ""


async def _paging(session: AsyncSession, incident_id: int) -> Paging:
    return Paging(
        pages=[PageOut.model_validate(p, from_attributes=True) for p in await pages_of(session, incident_id)],
        escalations=[
            EscalationOut(
                chain=e.chain,
                trigger=e.trigger,
                step=e.step + 1,
                round=e.round + 1,
                started_at=e.started_at,
                finished_at=e.finished_at,
            )
            for e in await escalation.running(session, incident_id)
        ],
        timers=[
            TimerOut.model_validate(t, from_attributes=True)
            for t in await timers.of_incident(session, incident_id)
        ],
    )


@router.get("/api/v1/incidents/{ref}/paging", response_model=Paging, responses=responses(404))
async def paging(ref: Ref, _: Viewer, rt: Rt) -> Paging:
    """Who was paged, at which step; the escalations running; the incident's timers (pending and fired)."""
    async with rt.db.session() as session:
        incident = await incidents.get(session, ref)
        return await _paging(session, incident.id)


@router.post("/api/v1/incidents/{ref}/escalate", response_model=Paging, responses=responses(404, 422))
async def escalate(ref: Ref, body: Escalate, who: Responder, rt: Rt) -> Paging:
    """Escalate now: the running chain's next step at once, or start the chain."""
    ctx = await paging_context(rt)
    async with rt.db.transaction() as session:
        incident = await incidents.get(session, ref, for_update=True)
        await escalation.escalate_now(
            session, ctx, rt.clock.now(), incident, who.name, body.chain, body.reason
        )
        result = await _paging(session, incident.id)
    rt.bus.publish(f"incident:{incident.id}", "incidents")
    return result


async def acknowledge_page(rt: Runtime, page_id: int, actor: str | None, via: str) -> tuple[Page, bool]:
    """Acknowledge the page's incident as the person paged (or `actor`); False when it already was."""
    async with rt.db.transaction() as session:
        page = await session.get(Page, page_id)
        if page is None:
            raise NotFound(f"no page {page_id}", field="page")
        incident = await incidents.get(session, page.incident_id, for_update=True)
        done = False
        if incident.acknowledged_at is None and incident.status == Status.triggered.value:
            await incidents.acknowledge(session, rt.clock, rt.policy, incident, actor or page.person, via=via)
            done = True
        elif page.acknowledged_at is None:
            page.acknowledged_at, page.acknowledged_via = rt.clock.now(), via
    rt.bus.publish(f"incident:{page.incident_id}", "incidents")
    return page, done


async def _signed_page(rt: Runtime, page_id: int, sig: str) -> None:
    ctx = await paging_context(rt)
    if not ctx.links.valid_ack(page_id, sig):
        raise Forbidden("this acknowledgement link is not valid (it may have been cut short)", field="sig")


Sig = Annotated[str, Query(max_length=128)]


@pages_router.get("/ack/{page_id}")
async def ack_form(page_id: int, sig: Sig, rt: Rt, ui: Annotated[Console, Depends(console)]) -> Response:
    """The link in a page: shows the incident and a button (a link scanner's GET acknowledges nothing)."""
    await _signed_page(rt, page_id, sig)
    async with rt.db.session() as session:
        page = await session.get(Page, page_id)
        if page is None:
            raise NotFound(f"no page {page_id}", field="page")
        incident = await incidents.get(session, page.incident_id)
    return ui.page(
        "oncall/ack.html", who=None, page=page, incident=incident, ref=incident_ref(incident.id), done=False
    )


@pages_router.post("/ack/{page_id}")
async def ack(page_id: int, sig: Sig, rt: Rt, ui: Annotated[Console, Depends(console)]) -> Response:
    await _signed_page(rt, page_id, sig)
    page, done = await acknowledge_page(rt, page_id, None, "link")
    async with rt.db.session() as session:
        incident = await incidents.get(session, page.incident_id)
    return ui.page(
        "oncall/ack.html", who=None, page=page, incident=incident, ref=incident_ref(incident.id), done=done
    )


def verify_slack(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """Slack's request signature: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>"), fresh within 5 minutes."""
    try:
        if abs(now - int(timestamp)) > SLACK_TOLERANCE:
            return False
    except ValueError:
        return False
    expected = (
        "v0="
        + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected, signature)


@router.post("/api/v1/slack/interactions", include_in_schema=False)
async def slack_interactions(request: Request, rt: Rt) -> Response:
    """Slack's interactivity request URL: the Acknowledge button on a page."""
    secret = rt.settings.slack_signing_secret
    if not secret:
        raise Forbidden(
            "Slack interactivity is not configured (set TOCSIN_SLACK_SIGNING_SECRET)", field="signature"
        )
    body = await request.body()
    if not verify_slack(
        secret,
        request.headers.get("x-slack-request-timestamp", ""),
        body,
        request.headers.get("x-slack-signature", ""),
        time.time(),
    ):
        raise Unauthorized("bad or stale Slack signature", field="signature")
    try:
        payload = orjson.loads(parse_qs(body.decode())["payload"][0])
        actions = payload.get("actions") or []
        user = (payload.get("user") or {}).get("id", "")
    except (KeyError, IndexError, ValueError, UnicodeDecodeError, AttributeError):
        return JSONResponse({"error": "not a Slack interaction payload"}, status_code=400)
    ctx = await paging_context(rt)
    person = next((p.name for p in ctx.policy.people if p.slack and p.slack == user), None)
    for action in actions:
        if isinstance(action, dict) and action.get("action_id") == ACK_ACTION:
            try:
                page_id = int(str(action.get("value")))
            except ValueError:
                continue
            try:
                page, done = await acknowledge_page(rt, page_id, person or f"slack:{user}", "slack")
            except (NotFound, Conflict):
                continue
            text = f"{'Acknowledged' if done else 'Already acknowledged'}: {incident_ref(page.incident_id)}"
            return JSONResponse({"replace_original": False, "text": text})
    return JSONResponse({"text": "nothing to do"})
