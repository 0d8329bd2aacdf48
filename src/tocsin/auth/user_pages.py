"""The console's Users page (admins): the people who sign in and their API tokens; a new user, a new
token shown once, a token revoked, a user disabled or enabled, as `tocsin user` and `tocsin token` do.

When someone leaves or a token leaks, the admin is as likely to be in the console as at a terminal.
A new token is shown once, on the page that answers the form (never behind a redirect, so it is not
in the browser's history); Tocsin keeps only its digest.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from tocsin.auth import schemas, service
from tocsin.auth.models import ApiToken
from tocsin.auth.pages import Who, allowed, posted
from tocsin.auth.roles import Role
from tocsin.core.errors import NotFound, TocsinError
from tocsin.runtime import Runtime, runtime
from tocsin.web import forms
from tocsin.web.errors import PageError, row_number
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]
ROLES = [role.name for role in Role]


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
    """`shown`: (user, token name, token) of a token just made, shown this once."""
    async with rt.db.session() as session:
        users = await service.list_users(session)
        tokens = await service.list_tokens(session, who.principal, everyone=True)
    by_user: dict[str, list[ApiToken]] = {}
    for token, name in tokens:
        by_user.setdefault(name, []).append(token)
    return ui.page(
        "users.html",
        status_code=status_code,
        who=who,
        active="users",
        users=users,
        tokens=by_user,
        roles=ROLES,
        error=error,
        posted=posted or {},
        shown=shown,
    )


@router.get("/users")
async def users_page(who: Who, rt: Rt, ui: Ui) -> Response:
    allowed(who, Role.admin)
    return await _page(rt, ui, who)


@router.post("/users")
async def add_user(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.admin)
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("csrf_token", "password")}
    try:
        body = forms.parse(schemas.UserCreate, form)
        async with rt.db.transaction() as session:
            await service.create_user_from(session, rt.clock, body)
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message, posted=fields)
    return RedirectResponse(f"/users#user-{body.name}", status_code=303)


@router.post("/users/{name}/tokens")
async def add_token(name: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.admin)
    label = form.get("label")
    try:
        body = schemas.TokenCreate(
            name=label.strip() if isinstance(label, str) and label.strip() else "console", user=name
        )
        async with rt.db.transaction() as session:
            user = await service.get_user(session, name)
            token = await service.create_token(session, rt.clock, user, body.name)
    except NotFound as exc:
        raise PageError(404, "No such user", exc.message, who=who) from None
    except ValueError as exc:  # the label (pydantic's ValidationError is a ValueError)
        return await _page(rt, ui, who, status_code=422, error=f"Token name: {_first(exc)}")
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message)
    return await _page(rt, ui, who, status_code=201, shown=(name, body.name, token))


def _first(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    return str(errors()[0]["msg"]) if callable(errors) else str(exc)


@router.post("/users/{name}/{action}")
async def change_user(name: str, action: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    """Disable or enable a user (`action`)."""
    await posted(request, who, Role.admin)
    if action not in ("disable", "enable"):
        raise PageError(404, "No such action", f"{action!r} is not disable or enable", who=who)
    try:
        async with rt.db.transaction() as session:
            if action == "disable":
                await service.disable_user(session, rt.clock, who.principal, name)
            else:
                await service.enable_user(session, name)
    except NotFound as exc:
        raise PageError(404, "No such user", exc.message, who=who) from None
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message)
    return RedirectResponse(f"/users#user-{name}", status_code=303)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    await posted(request, who, Role.admin)
    number = row_number(token_id, "token", who)
    try:
        async with rt.db.transaction() as session:
            _, user = await service.revoke_token(session, rt.clock, who.principal, number)
    except NotFound as exc:
        raise PageError(404, "No such token", exc.message, who=who) from None
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message)
    return RedirectResponse(f"/users#user-{user}", status_code=303)
