"""The public page's forms: subscribe, confirm (double opt-in) and one-click unsubscribe.

They have no session and so no CSRF token: subscribing only ever sends a confirmation mail (rate-limited
per client address), and unsubscribing needs a signed link. A GET never changes anything (mail scanners
fetch links): the link shows a button, and the button (or a mail client's RFC 8058 one-click POST) acts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from tocsin.core.errors import TocsinError
from tocsin.reports.api import client_address
from tocsin.runtime import Runtime, runtime
from tocsin.statuspage import subscribers
from tocsin.statuspage.cache import PUBLIC_HEADERS, StatusCache
from tocsin.statuspage.links import links, links_in
from tocsin.statuspage.subscribers import RateLimited

router = APIRouter(include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]
SubscriberId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Token = Annotated[str, Query(max_length=100)]
MAX_FORM_FIELDS = 300
MAX_BLOCKED = 10_000  # client addresses remembered as over their limit
PRIVATE_HEADERS = {**PUBLIC_HEADERS, "Cache-Control": "no-store"}


def _cache(request: Request) -> StatusCache:
    found: StatusCache = request.app.state.status_cache
    return found


async def _message(request: Request, status_code: int, title: str, text: str, **extra: str) -> Response:
    cache = _cache(request)
    body = cache.renderer.message(await cache.current(), title, text, **extra)
    headers = dict(PRIVATE_HEADERS)
    if isinstance(extra.get("retry_after"), str):
        headers["Retry-After"] = extra["retry_after"]
    return HTMLResponse(body, status_code=status_code, headers=headers)


def _blocked(request: Request, rt: Runtime, client: str) -> RateLimited | None:
    """A client over its limit is refused from memory until its window ends: a flood costs no queries."""
    blocked: dict[str, datetime] = request.app.state.__dict__.setdefault("status_subscribe_blocked", {})
    until = blocked.get(client)
    now = rt.clock.now()
    if until is None:
        return None
    if until <= now:
        del blocked[client]
        return None
    return RateLimited(int((until - now).total_seconds()) + 1)


def _block(request: Request, rt: Runtime, client: str, retry_after: int) -> None:
    blocked: dict[str, datetime] = request.app.state.__dict__.setdefault("status_subscribe_blocked", {})
    if len(blocked) >= MAX_BLOCKED:
        now = rt.clock.now()
        for key in [k for k, until in blocked.items() if until <= now] or list(blocked)[: MAX_BLOCKED // 2]:
            del blocked[key]
    blocked[client] = rt.clock.now() + timedelta(seconds=retry_after)


@router.post("/status/subscribe")
async def subscribe(request: Request, rt: Rt) -> Response:
    """The page's subscribe forms: email (a confirmation mail follows) or webhook (live at once)."""
    client = client_address(request)
    refused = _blocked(request, rt, client)
    try:
        if refused is not None:
            raise refused
        async with rt.db.transaction() as session:
            await subscribers.attempt(session, rt.clock, rt.policy, client)
    except RateLimited as exc:
        _block(request, rt, client, exc.retry_after)
        return await _message(
            request, 429, "Too many attempts", exc.message, retry_after=str(exc.retry_after)
        )
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    channel = str(form.get("channel") or "email")
    target = str(form.get("url" if channel == "webhook" else "email") or "")
    components = [str(c) for c in form.getlist("components") if isinstance(c, str) and c]
    try:
        checked = await subscribers.check_target(rt.policy, channel, target)
        async with rt.db.transaction() as session:
            signed = await links_in(session, rt)
            row = await subscribers.subscribe(
                session,
                rt.clock,
                rt.policy,
                signed,
                client=client,
                channel=channel,
                target=checked,
                components=components,
            )
    except TocsinError as exc:
        return await _message(request, exc.status_code, "Not subscribed", exc.message)
    rt.bus.publish("outbox")
    if row.channel == "webhook":
        return await _message(request, 200, "Webhook subscribed", f"{row.target} will receive every update.")
    return await _message(
        request,
        200,
        "Check your email",
        f"We sent a link to {row.target}. Open it to confirm; nothing is sent to you until then.",
    )


async def _ask(request: Request, rt: Runtime, action: str, subscriber_id: int, token: str) -> Response:
    if not (await links(rt)).valid(action, subscriber_id, token):
        return await _message(
            request, 404, "Link not valid", "This link is not valid (it may have been mistyped)."
        )
    title, text, button = (
        ("Confirm your subscription", "Confirm to receive status updates by email.", "Confirm subscription")
        if action == "confirm"
        else ("Unsubscribe", "You will receive no more status updates.", "Unsubscribe")
    )
    return await _message(
        request, 200, title, text, form_action=f"{request.url.path}?{request.url.query}", button=button
    )


@router.get("/status/subscribers/{subscriber_id}/confirm")
async def confirm_page(request: Request, subscriber_id: SubscriberId, token: Token, rt: Rt) -> Response:
    return await _ask(request, rt, "confirm", subscriber_id, token)


@router.post("/status/subscribers/{subscriber_id}/confirm")
async def confirm(request: Request, subscriber_id: SubscriberId, token: Token, rt: Rt) -> Response:
    signed = await links(rt)
    try:
        async with rt.db.transaction() as session:
            row = await subscribers.confirm(session, rt.clock, signed, subscriber_id, token)
    except TocsinError as exc:
        return await _message(request, exc.status_code, "Not confirmed", exc.message)
    if row.state != "confirmed":
        return await _message(
            request, 409, "Not confirmed", "This address has unsubscribed; subscribe again."
        )
    return await _message(request, 200, "Subscribed", f"{row.target} will receive status updates.")


@router.get("/status/subscribers/{subscriber_id}/unsubscribe")
async def unsubscribe_page(request: Request, subscriber_id: SubscriberId, token: Token, rt: Rt) -> Response:
    return await _ask(request, rt, "unsubscribe", subscriber_id, token)


@router.post("/status/subscribers/{subscriber_id}/unsubscribe")
async def unsubscribe(request: Request, subscriber_id: SubscriberId, token: Token, rt: Rt) -> Response:
    """The page's button and mail clients' one-click unsubscribe (RFC 8058) both land here."""
    signed = await links(rt)
    try:
        async with rt.db.transaction() as session:
            row = await subscribers.unsubscribe(session, rt.clock, signed, subscriber_id, token)
    except TocsinError as exc:
        return await _message(request, exc.status_code, "Not unsubscribed", exc.message)
    return await _message(request, 200, "Unsubscribed", f"{row.target} will receive no more status updates.")
