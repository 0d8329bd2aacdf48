"""JSON routes for users and API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic.json_schema import SkipJsonSchema

from tocsin.auth import schemas, service
from tocsin.auth.deps import require
from tocsin.auth.models import ApiToken
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.http_errors import responses
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1", tags=["auth"])

UserName = Annotated[str, Path(pattern=schemas.NAME_PATTERN, description="the user's login name")]
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the token's id, from GET /api/v1/tokens")]


@router.get("/me", response_model=schemas.UserOut, responses=responses(404))
async def me(principal: Principal = Depends(require(Role.viewer)), rt: Runtime = Depends(runtime)) -> object:
    async with rt.db.session() as session:
        return await service.get_user(session, principal.name)


@router.get("/users", response_model=list[schemas.UserOut])
async def list_users(_: Principal = Depends(require(Role.admin)), rt: Runtime = Depends(runtime)) -> object:
    async with rt.db.session() as session:
        return await service.list_users(session)


@router.post("/users", response_model=schemas.UserOut, status_code=201, responses=responses(409))
async def create_user(
    body: schemas.UserCreate, _: Principal = Depends(require(Role.admin)), rt: Runtime = Depends(runtime)
) -> object:
    async with rt.db.transaction() as session:
        return await service.create_user_from(session, rt.clock, body)


@router.post("/tokens", response_model=schemas.TokenOut, status_code=201, responses=responses(404, 409))
async def create_token(
    body: schemas.TokenCreate,
    principal: Principal = Depends(require(Role.viewer)),
    rt: Runtime = Depends(runtime),
) -> schemas.TokenOut:
    """Create an API token for yourself, or (admins) for another user; the token is shown once."""
    if body.user and body.user != principal.name:
        principal.require(Role.admin)
    async with rt.db.transaction() as session:
        user = await service.get_user(session, body.user or principal.name)
        token = await service.create_token(session, rt.clock, user, body.name)
        out = schemas.TokenOut(name=body.name, user=user.name, role=user.role, token=token)
    return out


def _token_info(token: ApiToken, user: str) -> schemas.TokenInfo:
    return schemas.TokenInfo(
        id=token.id,
        name=token.name,
        user=user,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


@router.get("/tokens", response_model=list[schemas.TokenInfo], responses=responses(404))
async def list_tokens(
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    rt: Annotated[Runtime, Depends(runtime)],
    # Absent or a name: a query string cannot carry null, so the schema offers only the string, and
    # (skipping the null takes the pattern out of the schema too) states the pattern again.
    user: Annotated[
        str | SkipJsonSchema[None],
        Query(
            pattern=schemas.NAME_PATTERN,
            json_schema_extra={"pattern": schemas.NAME_PATTERN},
            description="this user's tokens instead of your own (admins)",
        ),
    ] = None,
    everyone: Annotated[bool, Query(alias="all", description="every user's tokens (admins)")] = False,
) -> list[schemas.TokenInfo]:
    """API tokens: your own, or (admins) one user's or everyone's; never the secret.

    Oldest first, revoked ones included. `user=NAME` lists that user's (admins, unless it is you),
    `all=true` everyone's (admins); not both (422).
    """
    async with rt.db.session() as session:
        rows = await service.list_tokens(session, principal, user=user, everyone=everyone)
    return [_token_info(token, name) for token, name in rows]


@router.delete("/tokens/{token_id}", response_model=schemas.TokenInfo, responses=responses(404, 409))
async def revoke_token(
    token_id: TokenId,
    principal: Annotated[Principal, Depends(require(Role.viewer))],
    rt: Annotated[Runtime, Depends(runtime)],
) -> schemas.TokenInfo:
    """Revoke an API token: your own, or (admins) anyone's.

    It is refused from the next request on, by every process (tokens are looked up on each request,
    never cached). Another user's token is 404 to non-admins, so ids reveal nothing; one revoked
    already is 409.
    """
    async with rt.db.transaction() as session:
        token, user = await service.revoke_token(session, rt.clock, principal, token_id)
        return _token_info(token, user)


@router.post("/users/{name}/disable", response_model=schemas.UserOut, responses=responses(404, 409))
async def disable_user(
    name: UserName,
    principal: Annotated[Principal, Depends(require(Role.admin))],
    rt: Annotated[Runtime, Depends(runtime)],
) -> object:
    """Disable a user: their tokens and password are refused, their console sessions end.

    From the next request on, by every process; an open live timeline stops within 15 seconds. Not
    yourself, nor the last enabled admin (409). Disabling a disabled user changes nothing.
    """
    async with rt.db.transaction() as session:
        return await service.disable_user(session, rt.clock, principal, name)


@router.post("/users/{name}/enable", response_model=schemas.UserOut, responses=responses(404))
async def enable_user(
    name: UserName,
    _: Annotated[Principal, Depends(require(Role.admin))],
    rt: Annotated[Runtime, Depends(runtime)],
) -> object:
    """Enable a disabled user: their tokens that were not revoked, and their password, work again."""
    async with rt.db.transaction() as session:
        return await service.enable_user(session, name)
