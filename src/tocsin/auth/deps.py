"""Request authentication: bearer API tokens for scripts, session cookies (+ CSRF) for the console."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tocsin.auth import service
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.errors import Forbidden, Unauthorized
from tocsin.runtime import Runtime, runtime

SESSION_COOKIE = "tocsin_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(auto_error=False, description="an API token from `tocsin token create`")


async def principal_from_request(request: Request, rt: Runtime, token: str | None) -> Principal:
    """Who is calling: the bearer token if given, else the console session cookie."""
    if token:
        async with rt.db.session() as session:
            principal, token_id, last_used = await service.token_principal(session, token)
        now = rt.clock.now()
        if last_used is None or now - last_used >= service.LAST_USED_EVERY:
            async with rt.db.transaction() as session:
                await service.token_used(session, token_id, now)
        return principal
    async with rt.db.session() as session:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise Unauthorized("an API token is required (Authorization: Bearer <token>)")
        principal, csrf = await service.session_principal(session, rt.clock, cookie)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent, csrf):
            raise Forbidden("missing or wrong CSRF token", field=CSRF_HEADER)
    return principal


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must be authenticated and hold at least `role`."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        rt: Runtime = Depends(runtime),
    ) -> Principal:
        if credentials is None and request.headers.get("authorization"):
            raise Unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        principal = await principal_from_request(
            request, rt, credentials.credentials if credentials else None
        )
        principal.require(role)
        return principal

    return dependency
