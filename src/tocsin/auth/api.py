"""JSON routes for users and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tocsin.auth import schemas, service
from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.http_errors import responses
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1", tags=["auth"])


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
        return await service.create_user(
            session,
            rt.clock,
            name=body.name,
            role=Role.parse(body.role),
            password=body.password,
            display_name=body.display_name,
            email=body.email,
        )


@router.post("/tokens", response_model=schemas.TokenOut, status_code=201, responses=responses(404))
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
