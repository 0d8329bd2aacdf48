"""Console sign-in: the login form, the session cookie, CSRF tokens on every form, sign-out."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from tocsin.auth import service
from tocsin.auth.deps import SESSION_COOKIE
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.errors import Forbidden, Unauthorized
from tocsin.runtime import Runtime, runtime
from tocsin.web.errors import LoginRequired, PageError, safe_next
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

# Before there is a session, the login form is protected by a double-submit cookie instead.
LOGIN_CSRF_COOKIE = "tocsin_login_csrf"
CSRF_FIELD = "csrf_token"
MAX_NAME = 64
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class PageSession:
    """The signed-in user of a console page and the CSRF token their forms must carry."""

    principal: Principal
    csrf: str

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def role(self) -> str:
        return self.principal.role.name

    def can(self, role: Role) -> bool:
        return self.principal.role >= role

    @property
    def can_respond(self) -> bool:
        return self.can(Role.responder)

    @property
    def can_command(self) -> bool:
        return self.can(Role.commander)

    @property
    def can_admin(self) -> bool:
        return self.can(Role.admin)


async def page_session(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> PageSession:
    """Dependency: the web session from the cookie; without one the page redirects to /login."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired(here if request.method == "GET" else "/")
    try:
        async with rt.db.session() as session:
            principal, csrf = await service.session_principal(session, rt.clock, cookie)
    except Unauthorized:
        raise LoginRequired(here if request.method == "GET" else "/") from None
    return PageSession(principal, csrf)


Who = Annotated[PageSession, Depends(page_session)]


def forbidden(who: PageSession, exc: Forbidden) -> PageError:
    return PageError(403, "Not allowed", exc.message, who=who)


async def posted(request: Request, who: PageSession, role: Role) -> FormData:
    """The form of a POST, once its CSRF token matches the session's and the user holds `role`."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not secrets.compare_digest(sent, who.csrf):
        raise PageError(
            403,
            "Form expired",
            "This form did not carry your session's security token. Reload the page and try again.",
            who=who,
        )
    allowed(who, role)
    return form


def allowed(who: PageSession, role: Role) -> None:
    """A 403 page unless the signed-in user holds `role` (a page only some roles may see)."""
    try:
        who.principal.require(role)
    except Forbidden as exc:
        raise forbidden(who, exc) from None


def _login_page(
    ui: Console, rt: Runtime, next_path: str, *, error: str = "", name: str = "", status_code: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = ui.page(
        "login.html", status_code=status_code, who=None, csrf=token, next=next_path, error=error, name=name
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=rt.settings.cookie_secure,
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(
    request: Request, ui: Annotated[Console, Depends(console)], rt: Annotated[Runtime, Depends(runtime)]
) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            async with rt.db.session() as session:
                await service.session_principal(session, rt.clock, cookie)
            return RedirectResponse(next_path, status_code=303)
        except Unauthorized:
            pass
    return _login_page(ui, rt, next_path)


@router.post("/login")
async def login(
    request: Request, ui: Annotated[Console, Depends(console)], rt: Annotated[Runtime, Depends(runtime)]
) -> Response:
    form = await request.form()
    name, password, sent = (form.get(k) for k in ("name", "password", CSRF_FIELD))
    next_path = safe_next(str(form.get("next") or "/"))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        return _login_page(
            ui, rt, next_path, error="The sign-in form expired. Please try again.", status_code=403
        )
    if not isinstance(name, str) or not isinstance(password, str) or not name.strip() or not password:
        return _login_page(ui, rt, next_path, error="Enter your name and password.", status_code=422)
    name = name.strip()
    try:
        if len(name) > MAX_NAME or len(password) > MAX_PASSWORD:
            raise Unauthorized("wrong name or password")  # no such user can exist; skip the hashing
        async with rt.db.transaction() as session:
            secret, _ = await service.login(session, rt.clock, name, password, rt.settings.session_days)
    except Unauthorized:
        return _login_page(
            ui, rt, next_path, error="Wrong name or password.", name=name[:MAX_NAME], status_code=401
        )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=rt.settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=rt.settings.cookie_secure,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, who: Who, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    await posted(request, who, Role.viewer)
    async with rt.db.transaction() as session:
        await service.logout(session, rt.clock, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=rt.settings.cookie_secure, httponly=True, samesite="lax"
    )
    return response
