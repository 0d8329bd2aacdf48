"""The console's Integrations page (admins): every alert source, a new one with the configuration to
paste into its sender, and disabling, enabling or re-keying one, as `tocsin integration` does.

A new or rotated key is shown once, on the page that answers the form (never behind a redirect, so
it is not in the browser's history), with what to paste into the sender (`alerts.setup`).
"""

from __future__ import annotations

import typing
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from tocsin.alerts import integrations, schemas, setup
from tocsin.auth.pages import Who, allowed, posted
from tocsin.auth.roles import Role
from tocsin.core.errors import NotFound, TocsinError
from tocsin.policy.alerting import IntegrationKind
from tocsin.runtime import Runtime, runtime
from tocsin.web import forms
from tocsin.web.errors import PageError
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]
KINDS = typing.get_args(IntegrationKind)
ACTIONS = ("disable", "enable", "key")


def _base_url(rt: Runtime, request: Request) -> str:
    return rt.settings.public_url or str(request.base_url)


async def _page(
    rt: Runtime,
    ui: Ui,
    who: Who,
    *,
    status_code: int = 200,
    error: str = "",
    posted: dict[str, str] | None = None,
    shown: tuple[str, str, str] | None = None,
) -> Response:
    """`shown`: (name, key, what to paste) of a key just made, shown this once."""
    async with rt.db.session() as session:
        rows = await integrations.listing(session)
    return ui.page(
        "integrations.html",
        status_code=status_code,
        who=who,
        active="integrations",
        integrations=rows,
        kinds=KINDS,
        services=[s.name for s in rt.policy.services],
        error=error,
        posted=posted or {},
        shown=shown,
    )


@router.get("/integrations")
async def integrations_page(who: Who, rt: Rt, ui: Ui) -> Response:
    allowed(who, Role.admin)
    return await _page(rt, ui, who)


@router.post("/integrations")
async def add_integration(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.admin)
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        body = forms.parse(schemas.IntegrationCreate, form)
        async with rt.db.transaction() as session:
            row, key = await integrations.create(
                session,
                rt.clock,
                rt.policy,
                name=body.name,
                kind=body.kind,
                service=body.service,
                severity_rules=[],
                actor=who.name,
            )
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message, posted=fields)
    paste = setup.snippet(row.kind, _base_url(rt, request), key)
    return await _page(rt, ui, who, status_code=201, shown=(row.name, key, paste))


@router.post("/integrations/{name}/{action}")
async def change_integration(name: str, action: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    """Disable, enable, or give a new key (`action`: disable, enable, key)."""
    await posted(request, who, Role.admin)
    if action not in ACTIONS:
        raise PageError(404, "No such action", f"{action!r} is not one of {', '.join(ACTIONS)}", who=who)
    try:
        async with rt.db.transaction() as session:
            if action == "key":
                row, key = await integrations.rotate(session, name)
            elif action == "disable":
                row = await integrations.disable(session, rt.clock, name)
            else:
                row = await integrations.enable(session, name)
    except NotFound as exc:
        raise PageError(404, "No such integration", exc.message, who=who) from None
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message)
    rt.keys.forget()  # this process's key cache: the change holds from the next request
    if action == "key":
        paste = setup.snippet(row.kind, _base_url(rt, request), key)
        return await _page(rt, ui, who, shown=(row.name, key, paste))
    return RedirectResponse("/integrations", status_code=303)
